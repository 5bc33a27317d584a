"""HTTP/1.1 for both roles, as h11 serves client and server: the grammar, head parsing and
framing (``common``), the server's and the client's sans-I/O connections (each a native twin in
``modelmux._speedups`` with its pure twin here) and the h11 reference backends."""
