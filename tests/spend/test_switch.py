"""When cost is tracked: the bare default builds nothing; keys, a spend log or a budget turn it
on unless ``enabled = false`` says otherwise."""

from __future__ import annotations

import pytest

from modelmux.config.schema import decode
from modelmux.spend.service import build_spend

PROVIDER = '[[provider]]\nname = "m"\ntype = "mock"\nmodels = ["m"]\n'


@pytest.mark.parametrize(("extra", "on"), [
    ("", False),
    ("[analytics.cost_tracking]\nenabled = true\n", True),
    ("[analytics]\nspend_log = false\n[analytics.cost_tracking]\nmonthly_budget = 10\n", True),
    ("[analytics.cost_tracking]\nenabled = false\nmonthly_budget = 10\n", False),
    ("[[prices]]\nmodel = \"m\"\ninput_per_mtok = 1\noutput_per_mtok = 2\n", False),
])
def test_cost_tracking_is_built_only_when_something_uses_it(extra: str, on: bool) -> None:
    config = decode(PROVIDER + extra)
    assert config.analytics.cost_tracking_on(config.auth.mode) is on
    if not on:
        assert build_spend(config) is None


def test_auth_keys_turn_cost_tracking_on() -> None:
    config = decode(PROVIDER + '[auth]\nmode = "keys"\nmaster_key = "x"\n')
    assert config.analytics.cost_tracking_on(config.auth.mode)
    off = decode(PROVIDER + '[auth]\nmode = "keys"\nmaster_key = "x"\n'
                 "[analytics.cost_tracking]\nenabled = false\n")
    assert not off.analytics.cost_tracking_on(off.auth.mode)


def test_a_cache_hit_costs_nothing_and_its_row_keeps_what_it_saved() -> None:
    """Issue 21: a hit is logged with cost 0 and the cost of the call that made the answer."""
    from modelmux.observability.record import RequestRecord
    from modelmux.pipeline.context import RequestContext
    from modelmux.schemas.openai_chat import request_decoder
    from modelmux.spend.account import CostStage, SpendRow
    from modelmux.spend.prices import PriceTable

    config = decode(PROVIDER + "[[prices]]\nmodel = \"up-m\"\ninput_per_mtok = 2\n"
                    "output_per_mtok = 8\n")
    rows: list[SpendRow] = []
    stage = CostStage(PriceTable(config.prices), [lambda _ctx, row: rows.append(row)],
                         clock=lambda: 1000.0)
    body = b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]}'
    ctx = RequestContext("openai.chat", request_decoder.decode(body), body, [], "req-1",
                         RequestRecord("req-1", "/v1/chat/completions"))
    ctx.status = 200
    ctx.state["cache"] = {"status": "hit", "hit": True, "provider": "up", "model": "up-m",
                          "usage": (1000, 500)}
    stage.on_answer(ctx)
    assert ctx.record.cost_usd == 0.0
    [row] = rows
    assert row.cache_hit and row.cost_usd == 0.0 and row.provider == "up"
    assert row.saved_usd == pytest.approx((1000 * 2 + 500 * 8) / 1e6)
