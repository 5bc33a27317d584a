"""Shared state: per-deployment limits held in this process (memory) or in Redis."""
