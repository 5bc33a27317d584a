"""Wire codecs: SSE (native twin and pure twin behind one face); more framings later."""
