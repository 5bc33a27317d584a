"""The chat lane through a real ``modelmux serve`` and the official OpenAI SDK: the same calls
with the lane on (the default) and off (``MODELMUX_LANE=0``) give the same answers, errors and
access lines."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import openai

from tests.e2e.proc import LOOPBACK_SERVER, ServeProcess
from tests.e2e.threaded import threaded
from tests.fakes.openai import FakeOpenAI

_VARYING = re.compile(r" (latency_ms|ttft_ms|overhead_ms)=\S+|(?<=client=127\.0\.0\.1):\d+")
PLAIN_HEADERS = ("content-type", "content-length", "x-request-id", "x-modelmux-provider",
                 "x-modelmux-attempts", "server")


def calls(home: Path, env: dict[str, str]) -> tuple[list[Any], list[str], int]:
    """Answers (status, headers, JSON) and errors of a few SDK calls, the access lines and
    how many requests the lane handed to the handler (its debug line)."""
    with threaded(FakeOpenAI()) as fake:
        config = home / "config.toml"
        config.write_text(LOOPBACK_SERVER + '[logging]\nlevel = "debug"\n' + (
            '[[provider]]\nname = "up"\ntype = "openai_compatible"\nmodels = ["gpt-x"]\n'
            f'base_url = "{fake.origin}/v1"\nmax_retries = 0\n'))
        proc = ServeProcess(["serve", "--config", str(config), "--loop", "uvloop"], env=env,
                            home=home)
        client = openai.OpenAI(base_url=proc.url + "/v1", api_key="unused", max_retries=0,
                               timeout=10)
        out: list[Any] = []
        try:
            for i, fault in enumerate([None, None, None, "429", "503", None]):
                if fault is not None:
                    fake.faults.append(fault)
                try:
                    raw = client.chat.completions.with_raw_response.create(
                        model="gpt-x", messages=[{"role": "user", "content": f"hi {i}"}],
                        max_tokens=20, extra_headers={"x-request-id": f"sdk-{i}"})
                except openai.APIStatusError as exc:
                    out.append((exc.status_code, exc.body, exc.response.headers.get(
                        "x-request-id")))
                    continue
                headers = {name: raw.headers.get(name) for name in PLAIN_HEADERS}
                out.append((raw.http_response.status_code, headers, raw.parse().model_dump()))
        finally:
            client.close()
            assert proc.stop() == 0
        lines = [_VARYING.sub("", line.split(": ", 1)[1]) for line in proc.lines
                 if "modelmux.access" in line]
        handed = sum("chat lane: " in line for line in proc.lines)
        return out, lines, handed


def test_sdk_calls_answer_alike_with_and_without_the_lane(tmp_path: Path) -> None:
    (tmp_path / "on").mkdir()
    (tmp_path / "off").mkdir()
    with_lane = calls(tmp_path / "on", {})
    without = calls(tmp_path / "off", {"MODELMUX_LANE": "0"})
    assert with_lane[:2] == without[:2]
    answers, lines, handed = with_lane
    assert handed == 2 and without[2] == 0  # the 429 and the 503 went through the lane first
    assert [a[0] for a in answers] == [200, 200, 200, 429, 502, 200]
    assert len(lines) == 6 and all("path=/v1/chat/completions" in line for line in lines)
