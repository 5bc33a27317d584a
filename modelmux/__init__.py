"""ModelMux: one OpenAI-compatible front door for many model providers."""

__version__ = "2.0.0"
