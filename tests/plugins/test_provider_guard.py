"""The guard around a provider plugin, through the real call stage: it keeps the plugin's retry
policy, serves every method the plugin implements (and the built-in refusal for those it does
not), and turns an exception or an answer of the wrong type into ``PluginFailed`` naming it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

import pytest

from modelmux.errors import InvalidRequest, PluginFailed, UpstreamError
from modelmux.pipeline.tries import complete, open_stream
from modelmux.plugins import ChatCall, EmbedCall, Provider, RetryPolicy, TextCall
from modelmux.providers.base import CallStats
from modelmux.providers.plugins import GuardedProvider
from modelmux.providers.token_count import Counted, CountInput, CountUnavailable
from modelmux.schemas.openai_chat import request_decoder
from modelmux.schemas.openai_completions import completion_decoder
from modelmux.schemas.openai_embeddings import embedding_decoder

CHAT = b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]}'
EMBED = b'{"model": "m", "input": "hi"}'
TEXT = b'{"model": "m", "prompt": "hi"}'
NAMED = "The 'mine' plugin failed: RuntimeError."


def chat() -> ChatCall:
    return ChatCall(request_decoder.decode(CHAT), CHAT, model="m", public_model="m",
                    completion_id="c1", created=1, request_id="r1")


def embed() -> EmbedCall:
    return EmbedCall(embedding_decoder.decode(EMBED), EMBED, model="m", public_model="m",
                     request_id="r2")


def text() -> TextCall:
    return TextCall(completion_decoder.decode(TEXT), TEXT, model="m", public_model="m",
                    request_id="r3")


async def no_sleep(delay: float) -> None:
    return None


def busy() -> UpstreamError:
    error = UpstreamError("busy")
    error.retryable = True
    return error


class Full(Provider):
    """Implements every provider method; ``give`` is what each returns (or raises)."""

    type = "full"
    retry = RetryPolicy(max_retries=3, sleep=no_sleep)

    def __init__(self, give: Any = b"ok", pieces: list[Any] | None = None) -> None:
        super().__init__("p", ["m"])
        self.give = give
        self.pieces = [b"data: 1\n\n", b"data: [DONE]\n\n"] if pieces is None else pieces
        self.failures: list[Exception] = []

    def _out(self) -> Any:
        if self.failures:
            raise self.failures.pop(0)
        if isinstance(self.give, Exception):
            raise self.give
        return self.give

    async def complete(self, call: ChatCall) -> bytes:
        return self._out()  # type: ignore[no-any-return]

    async def embed(self, call: EmbedCall) -> bytes:
        return self._out()  # type: ignore[no-any-return]

    async def complete_text(self, call: TextCall) -> bytes:
        return self._out()  # type: ignore[no-any-return]

    async def _stream(self) -> AsyncGenerator[bytes, None]:
        for piece in self.pieces:
            if isinstance(piece, Exception):
                raise piece
            yield piece

    def stream(self, call: ChatCall) -> AsyncGenerator[bytes, None]:
        return self._stream()

    def stream_text(self, call: TextCall) -> AsyncGenerator[bytes, None]:
        return self._stream()

    def speaks_messages(self, model: str) -> bool:
        return self._out()  # type: ignore[no-any-return]

    def counts_tokens(self, model: str) -> bool:
        return self._out()  # type: ignore[no-any-return]

    async def count_tokens(self, prompt: CountInput, model: str, stats: CallStats) -> Counted:
        return self._out()  # type: ignore[no-any-return]


class Minimal(Provider):
    """Only what a provider must implement (no ``type`` attribute of its own)."""

    async def complete(self, call: ChatCall) -> bytes:
        return b"ok"

    async def _stream(self) -> AsyncGenerator[bytes, None]:
        yield b"data: [DONE]\n\n"

    def stream(self, call: ChatCall) -> AsyncGenerator[bytes, None]:
        return self._stream()


def guard(plugin: Provider) -> GuardedProvider:
    return GuardedProvider(plugin, "mine")


async def collect(chunks: AsyncGenerator[bytes, None], first: bytes) -> list[bytes]:
    return [first, *[piece async for piece in chunks]]


def streamed(provider: Provider, call: ChatCall | TextCall) -> list[bytes]:
    async def run() -> list[bytes]:
        return await collect(*await open_stream(provider, call))
    return asyncio.run(run())


def test_the_plugins_retry_policy_is_kept_and_the_call_stage_uses_it() -> None:
    plugin = Full()
    guarded = guard(plugin)
    assert guarded.retry is plugin.retry and guarded.retry.max_retries == 3
    plugin.failures = [busy() for _ in range(3)]
    call = chat()
    assert asyncio.run(complete(guarded, call)) == b"ok"
    assert call.stats.retries == 3
    plugin.failures = [busy() for _ in range(4)]
    with pytest.raises(UpstreamError):
        asyncio.run(complete(guarded, chat()))


def test_every_method_the_plugin_implements_is_served() -> None:
    guarded = guard(Full())
    assert asyncio.run(complete(guarded, embed())) == b"ok"
    assert asyncio.run(complete(guarded, text())) == b"ok"
    assert streamed(guarded, text()) == [b"data: 1\n\n", b"data: [DONE]\n\n"]
    assert streamed(guarded, chat()) == [b"data: 1\n\n", b"data: [DONE]\n\n"]
    flags = guard(Full(give=True))
    assert flags.speaks_messages("m") is True and flags.counts_tokens("m") is True
    counted = Counted(7, "native")
    assert asyncio.run(guard(Full(give=counted)).count_tokens(None, "m", CallStats())) is counted  # type: ignore[arg-type]


def test_what_the_plugin_leaves_out_is_refused_naming_the_entry_point() -> None:
    guarded = guard(Minimal("p", ["m"]))
    with pytest.raises(InvalidRequest, match=r"provider 'p' \(type mine\) does not serve embeddings"):
        asyncio.run(complete(guarded, embed()))
    with pytest.raises(InvalidRequest, match=r"\(type mine\) does not serve /v1/completions"):
        asyncio.run(complete(guarded, text()))
    with pytest.raises(InvalidRequest, match=r"\(type mine\) does not serve /v1/completions"):
        streamed(guarded, text())
    with pytest.raises(CountUnavailable):
        asyncio.run(guarded.count_tokens(None, "m", CallStats()))  # type: ignore[arg-type]
    assert guarded.speaks_messages("m") is False and guarded.counts_tokens("m") is False


def _methods(guarded: GuardedProvider) -> dict[str, Callable[[], Awaitable[object] | object]]:
    return {
        "complete": lambda: complete(guarded, chat()),
        "embed": lambda: complete(guarded, embed()),
        "complete_text": lambda: complete(guarded, text()),
        "count_tokens": lambda: guarded.count_tokens(None, "m", CallStats()),  # type: ignore[arg-type]
        "speaks_messages": lambda: guarded.speaks_messages("m"),
        "counts_tokens": lambda: guarded.counts_tokens("m"),
    }


def _run(thunk: Callable[[], Awaitable[object] | object]) -> object:
    result = thunk()
    if asyncio.iscoroutine(result):
        return asyncio.run(result)
    return result


@pytest.mark.parametrize("method", list(_methods(guard(Full()))))
def test_a_method_that_raises_is_a_500_naming_the_plugin(
        method: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, "modelmux.providers"), \
            pytest.raises(PluginFailed) as caught:
        _run(_methods(guard(Full(give=RuntimeError("secret text"))))[method])
    assert caught.value.status == 500 and caught.value.message == NAMED
    assert "plugin mine (provider p) failed" in caplog.text


@pytest.mark.parametrize("method", list(_methods(guard(Full()))))
def test_a_method_that_returns_the_wrong_type_is_a_500_naming_the_plugin(
        method: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, "modelmux.providers"), \
            pytest.raises(PluginFailed) as caught:
        _run(_methods(guard(Full(give="a str")))[method])
    expected = {"speaks_messages": "bool", "counts_tokens": "bool",
                "count_tokens": "Counted"}.get(method, "bytes")
    what = "complete" if method == "complete" else method
    assert caught.value.message == (f"The 'mine' plugin failed: {what} gave str, "
                                    f"not {expected}.")
    assert "plugin mine (provider p) failed" in caplog.text


@pytest.mark.parametrize("kind", ["chat", "text"])
@pytest.mark.parametrize(("pieces", "message"), [
    ([RuntimeError("x")], NAMED),
    (["data: 1\n\n"], "The 'mine' plugin failed: {what} gave str, not bytes."),
    ([b"data: 1\n\n", RuntimeError("x")], NAMED),
    ([b"data: 1\n\n", bytearray(b"data: 2\n\n")],
     "The 'mine' plugin failed: {what} gave bytearray, not bytes."),
], ids=["raises-first", "str-first", "raises-later", "bytearray-later"])
def test_a_stream_that_raises_or_yields_the_wrong_type_ends_in_plugin_failed(
        kind: str, pieces: list[Any], message: str) -> None:
    guarded = guard(Full(pieces=pieces))
    with pytest.raises(PluginFailed) as caught:
        streamed(guarded, chat() if kind == "chat" else text())
    what = "stream" if kind == "chat" else "stream_text"
    assert caught.value.message == message.format(what=what)


def test_a_modelmux_error_from_the_plugin_passes_unchanged() -> None:
    error = UpstreamError("upstream said no")
    with pytest.raises(UpstreamError) as caught:
        asyncio.run(complete(guard(Full(give=error)), embed()))
    assert caught.value is error
