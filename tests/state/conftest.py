"""Fixtures for the shared-state tests: a real redis-server per test."""

from tests.state.redis_server import redis_server

__all__ = ["redis_server"]
