"""The embeddings answer readers' fuzz invariant (right count of floats, or UpstreamError), as
a bounded run."""

from __future__ import annotations

import pytest

from tests.fuzz_targets import load


def test_embed_answers_fuzz_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    load("embed_answers_fuzz").smoke(3000, seed=11)
    assert "3000 inputs ok" in capsys.readouterr().out
