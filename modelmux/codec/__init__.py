"""Wire codecs: SSE (native twin and pure twin behind one face), outgoing HTTP/2 fields."""
