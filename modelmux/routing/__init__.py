"""Routing: which provider serves a requested model."""
