"""Client values cannot forge log lines: every logger that prints one escapes control characters
and line separators, in the text and the JSON format, as ``logs.setup`` configures them."""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import h2.config
import h2.events
import msgspec
import pytest

from modelmux.config.schema import Config, LoggingConfig
from modelmux.observability import logs
from modelmux.observability.access import MAX_TEXT, logfmt
from tests.logging_state import restored_logging
from tests.observability.helpers import chat_body, gateway, request
from tests.server.h2_helpers import RawH2
from tests.server.helpers import connect, read_response

CHAT = "/v1/chat/completions"
FORGED = "2026-01-01 00:00:00,000 INFO modelmux.access[1]: FORGED"
SEPARATORS = ["\n", "\r", "\r\n", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028",
              "\u2029"]
EVIL = "evil" + "".join(f"{sep}{FORGED}" for sep in SEPARATORS) + "\x1b[2J\x00\x7f\x9b"
"""Every character ``str.splitlines`` breaks at, each followed by a forged line, then a terminal
escape and other C0/C1 controls."""
RAW = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
TEXT_LINE = re.compile(
    r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ (modelmux[.a-z0-9]*)\[\d+\]: (.*)")


@contextlib.contextmanager
def log_file(tmp_path: Path, fmt: str, level: str = "info") -> Iterator[Path]:
    """``logs.setup`` as ``modelmux serve`` calls it, writing to a file; restored afterwards."""
    path = tmp_path / "mm.log"
    with restored_logging():
        assert logs.setup(level, fmt, str(path)) is None
        yield path


def checked_lines(path: Path, fmt: str) -> list[str]:
    """The log's lines, each one a whole record (or an indented traceback line); no raw control
    character and no line that a client value started."""
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert lines
    for line in lines:
        assert not RAW.search(line), line
        assert not line.startswith(FORGED), line
        if fmt == "json":
            assert isinstance(json.loads(line), dict), line
        else:
            assert TEXT_LINE.match(line) or line.startswith(" "), line
    return lines


def messages(lines: list[str], fmt: str, logger: str) -> list[str]:
    """The messages of ``logger``'s records, JSON-decoded in the JSON format."""
    if fmt == "json":
        return [entry["message"] for entry in map(json.loads, lines) if entry["logger"] == logger]
    matches = (TEXT_LINE.fullmatch(line) for line in lines)
    return [match.group(2) for match in matches if match and match.group(1) == logger]


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_server_error_line_escapes_the_model(run, tmp_path: Path, fmt: str) -> None:
    async def main() -> None:
        async with gateway() as (_, port, _, _):
            status, _, _ = await request(port, "POST", CHAT, chat_body(EVIL, stream=False))
            assert status == 404

    with log_file(tmp_path, fmt) as path:
        run(main())
    lines = checked_lines(path, fmt)
    (line,) = [m for m in messages(lines, fmt, "modelmux.server") if "model_not_found" in m]
    assert ("The model `" + EVIL) in line if fmt == "json" else "evil\\n" + FORGED in line


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_access_line_escapes_the_model(run, tmp_path: Path, fmt: str) -> None:
    async def main() -> None:
        async with gateway() as (_, port, _, _):
            await request(port, "POST", CHAT, chat_body(EVIL, stream=False))

    with log_file(tmp_path, fmt) as path:
        run(main())
    lines = checked_lines(path, fmt)
    (line,) = messages(lines, fmt, "modelmux.access")
    quoted = re.search(r'model=("(?:[^"\\]|\\.)*")', line)
    assert quoted and json.loads(quoted.group(1)) == EVIL[:MAX_TEXT] and "status=404" in line
    if fmt == "json":
        (entry,) = [e for e in map(json.loads, lines) if e["logger"] == "modelmux.access"]
        assert entry["model"] == EVIL[:MAX_TEXT]


def test_logfmt_quotes_line_separators() -> None:
    line = logfmt({"model": "a\x85b\u2028c\u2029d\x9be", "path": "/"})
    assert not RAW.search(line) and len(line.splitlines()) == 1
    assert json.loads(line.split("=", 1)[1].split(" path=")[0]) == "a\x85b\u2028c\u2029d\x9be"


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_body_log_escapes_bodies(run, tmp_path: Path, fmt: str) -> None:
    def bodies_on(config: Config) -> Config:
        return msgspec.structs.replace(config, logging=LoggingConfig(level="debug",
                                                                     debug_bodies=True))

    async def main() -> None:
        async with gateway(change=bodies_on) as (_, port, _, _):
            await request(port, "POST", CHAT, chat_body("mock", stream=True, content=EVIL))
            await request(port, "POST", CHAT, chat_body("gpt-x", stream=False, content=EVIL))
            assert await _raw_body(port, EVIL.encode()) == 400

    with log_file(tmp_path, fmt, "debug") as path:
        run(main())
    lines = checked_lines(path, fmt)
    logged = messages(lines, fmt, "modelmux.bodies")
    assert sum("evil" in m for m in logged) == 4  # two chat requests, one upstream, the non-JSON
    assert any("data: [DONE]" in m for m in logged)  # a stream's chunks, line breaks and all


async def _raw_body(port: int, body: bytes) -> int:
    """POST a body that is not JSON; the status."""
    reader, writer = await connect(port)
    try:
        writer.write(f"POST {CHAT} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        status, _, _ = await read_response(reader)
        return status
    finally:
        writer.close()


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_http2_error_line_escapes_a_bad_path(run, tmp_path: Path, fmt: str) -> None:
    path_value = "/v1/nope" + EVIL.replace("\x00", "")

    async def main() -> None:
        async with gateway() as (_, port, _, _):
            client = await RawH2.open(port)
            client.conn.config = h2.config.H2Configuration(
                client_side=True, header_encoding=None, validate_outbound_headers=False,
                normalize_outbound_headers=False)
            try:
                sid = client.request(path_value)
                client.flush()
                await client.read_until(h2.events.StreamEnded, sid)
            finally:
                await client.close()

    with log_file(tmp_path, fmt) as path:
        run(main())
    lines = checked_lines(path, fmt)
    assert any("/v1/nope" in m for m in messages(lines, fmt, "modelmux.server"))


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_traceback_lines_are_escaped_and_indented(tmp_path: Path, fmt: str) -> None:
    with log_file(tmp_path, fmt) as path:
        try:
            raise ValueError(EVIL)
        except ValueError:
            logging.getLogger("modelmux.server").exception("unhandled error for %s", EVIL,
                                                           stack_info=True)
    lines = checked_lines(path, fmt)
    if fmt == "json":
        (entry,) = map(json.loads, lines)
        assert entry["message"] == f"unhandled error for {EVIL}"
        assert EVIL in entry["exception"]
    else:
        assert TEXT_LINE.match(lines[0]) and len(lines) > 3
        assert all(line.startswith("  ") for line in lines[1:])
        assert any("Traceback (most recent call last):" in line for line in lines)
