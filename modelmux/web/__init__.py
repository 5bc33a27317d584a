"""The dashboard's static files (``static/``), shipped as package data; no Python code."""
