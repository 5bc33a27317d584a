"""Credentials ModelMux itself presents to upstreams (Google OAuth for Vertex AI, Entra ID for
Azure, AWS keys and SigV4 signing for Bedrock).

Inbound client authentication is not here yet; each module owns one credential kind.
"""
