# cython: language_level=3
# Native twin of modelmux.http1._client_py: the same source, compiled by Cython. One
# source keeps the twins identical byte for byte (the differential tests run both); compiling
# removes the interpreter's dispatch around the regular-expression work.
include "../modelmux/http1/_client_py.py"

# The response head is scanned by the server module's native header scanner (one pass with
# class tables) instead of the twin's regular expressions; the name is rebound here, so the
# pure twin stays pure.
from modelmux._speedups.http1 import parse_response_head
