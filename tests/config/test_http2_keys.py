"""HTTP/2 keys: ``[server.http2]`` budgets reach the server's settings; ``http2`` per provider."""

from __future__ import annotations

import msgspec
import pytest

from modelmux.config.schema import decode

PROVIDER = '[[provider]]\nname = "a"\ntype = "{type}"\nmodels = ["m"]\n{extra}{line}\n'
EXTRA = {"openai_compatible": 'base_url = "http://127.0.0.1:1/v1"\n', "anthropic": "",
         "vertex": 'project = "p"\nregion = "us-east5"\n'}


def test_server_http2_budgets_reach_the_settings() -> None:
    cfg = decode("[server.http2]\nmax_resets_per_second = 7\nmax_control_frames_per_second = 9\n"
                 "max_continuation_frames = 4\n")
    s = cfg.server.http2.settings()
    assert (s.max_resets_per_second, s.max_control_frames_per_second,
            s.max_continuation_frames) == (7, 9, 4)
    default = decode("").server.http2.settings()
    assert (default.max_resets_per_second, default.max_continuation_frames) == (200, 32)
    with pytest.raises(msgspec.ValidationError, match="max_continuation_frames"):
        decode("[server.http2]\nmax_continuation_frames = 0\n")


@pytest.mark.parametrize("kind", list(EXTRA))
@pytest.mark.parametrize(("line", "want"), [("", None), ("http2 = true", True),
                                            ("http2 = false", False)])
def test_provider_http2_choice(kind: str, line: str, want: bool | None) -> None:
    cfg = decode(PROVIDER.format(type=kind, extra=EXTRA[kind], line=line))
    assert cfg.provider[0].http2 is want  # type: ignore[union-attr]


def test_provider_http2_must_be_a_boolean() -> None:
    text = PROVIDER.format(type="anthropic", extra="", line='http2 = "yes"')
    with pytest.raises(msgspec.ValidationError, match="http2"):
        decode(text)
