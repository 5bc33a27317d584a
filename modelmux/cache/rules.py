"""``[[cache.rules]]``: which requests the cache may serve and store, in the routing DSL.

A request is cached unless some ``skip_if`` matches; when there are ``cache_if`` rules, at
least one must match too. No rules: every request is cached. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from modelmux.config.features import CacheRule
from modelmux.rules.compiler import Rule, RuleError, compile_rule


class CacheRules:
    """The compiled rules.

    Raises (at build):
        RuleError: a rule does not compile, or gives both or neither of its conditions.
    """

    __slots__ = ("cache_if", "skip_if")

    def __init__(self, rules: Iterable[CacheRule]) -> None:
        cache_if: list[Rule] = []
        skip_if: list[Rule] = []
        for rule in rules:
            if (rule.cache_if is None) == (rule.skip_if is None):
                raise RuleError("give exactly one of `cache_if` and `skip_if`", "", 1)
            if rule.cache_if is not None:
                cache_if.append(compile_rule(rule.cache_if))
            else:
                assert rule.skip_if is not None
                skip_if.append(compile_rule(rule.skip_if))
        self.cache_if = tuple(cache_if)
        self.skip_if = tuple(skip_if)

    def __bool__(self) -> bool:
        return bool(self.cache_if or self.skip_if)

    def allow(self, facts: Mapping[str, object]) -> bool:
        """True when a request with these facts may use the cache."""
        if any(rule.matches(facts) for rule in self.skip_if):
            return False
        return not self.cache_if or any(rule.matches(facts) for rule in self.cache_if)
