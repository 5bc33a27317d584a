"""Fake upstreams for provider tests: real HTTP/1.1 servers on loopback, one per wire format.

``http`` is the server base (h11, split writes, faults); ``claude`` speaks Anthropic's and
Vertex AI's Messages endpoints, ``openai`` chat completions, ``google_oauth`` the token
endpoint. No internet, no mocks of the code under test.
"""
