"""The admit stage on the in-process store across several scopes: a refusal at one scope
hands back the slot and tokens taken at the others, and an answer frees every slot."""

from __future__ import annotations

import pytest

from modelmux.pipeline.admit import request_tokens, scope_spec
from modelmux.tenancy.records import Team
from tests.pipeline.test_admit import admit, answer, context, key, refused, stage, who

pytestmark = pytest.mark.usefixtures("gate_twin")


def test_a_refusal_at_the_team_frees_the_slot_taken_at_the_key() -> None:
    s = stage()
    team = Team(id="t1", name="research", rpm=1)
    ident = who(key(max_parallel=1, tpm=10_000, team_id="t1"), team=team)
    first = admit(s, context(ident))
    answer(s, first, None)  # no usage: the estimate stands, the key's slot is free again
    error = refused(s, context(ident))  # the team's one request a minute is spent
    assert "team t1 on requests per minute (limit 1)" in error.message
    key_spec = scope_spec("key", "k1", ident.key)  # type: ignore[arg-type]
    buckets = s.limits.of(key_spec)
    assert buckets.concurrency is not None and buckets.concurrency.in_flight == 0
    assert s.limits.available(key_spec)[1] == 10_000 - request_tokens(first)  # only the first's


def test_every_slot_of_every_scope_is_freed_when_the_answer_ends() -> None:
    s = stage()
    team = Team(id="t1", name="research", max_parallel=1)
    ident = who(key(max_parallel=1, team_id="t1"), team=team)
    first = admit(s, context(ident))
    refused(s, context(ident))
    answer(s, first, (3, 4))
    admit(s, context(ident))
