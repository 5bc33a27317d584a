"""The front door: OpenAI-compatible routes over the protocol-neutral exchange."""
