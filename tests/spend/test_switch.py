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
