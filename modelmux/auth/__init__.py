"""Credentials ModelMux itself presents to upstreams (Google OAuth for Vertex AI).

Inbound client authentication is not here yet; each module owns one credential kind.
"""
