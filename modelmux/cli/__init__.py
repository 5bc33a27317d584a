"""The ``modelmux`` command line."""
