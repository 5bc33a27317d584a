"""Fixtures for the cache tests: a real redis-server per test that asks for one."""

from tests.state.redis_server import redis_server

__all__ = ["redis_server"]
