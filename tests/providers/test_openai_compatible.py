"""``openai_compatible`` end to end: the official SDK → the real gateway → a fake OpenAI server.

Every upstream byte split gives the SDK the same text, tool calls and usage; the client's body
reaches the upstream with only ``model`` changed; errors, retries and mid-stream failures.
"""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from modelmux.providers.base import usage_from
from tests.fakes.answers import TEXT, TOOLS
from tests.fakes.http import SPLITS
from tests.fakes.openai import FakeOpenAI, chunk_events
from tests.providers.harness import (
    MESSAGES,
    ask_each_way,
    collect,
    from_completion,
    gateway,
)
from tests.server.helpers import connect, read_response
from tests.upstream import LOOPS, on_loops, refused_port, run


def config(up: FakeOpenAI | None, *, extra: str = "", port: int | None = None) -> str:
    origin = up.origin if up is not None else f"http://127.0.0.1:{port}"
    return f"""
[[provider]]
name = "local"
type = "openai_compatible"
models = ["llama", "llama-usage"]
base_url = "{origin}/v1"
{extra}
"""


@pytest.mark.parametrize("split", list(SPLITS))
@pytest.mark.parametrize("loop", LOOPS)
def test_sdk_sees_the_same_answer_in_every_split(loop: str, split: str) -> None:
    async def main() -> None:
        for answer in (TEXT, TOOLS):
            async with (
                FakeOpenAI(answer=answer, split=SPLITS[split]) as up,
                gateway(config(up)) as gw,
                gw.client() as client,
            ):
                await ask_each_way(client, "llama", answer)

    run(loop, main(), timeout=60)


def test_body_goes_upstream_with_only_the_model_changed() -> None:
    raw = (b'{ "model" : "local/qwen-7b", "messages":[{"role":"user","content":"hi \\u00e9"}],'
           b'"top_k": 40, "x_vendor": {"keep": [1, 2.50, null]}, "stream": false}')

    async def main() -> None:
        async with FakeOpenAI(reports="qwen-7b-instruct") as up, gateway(config(up)) as gw:
            reader, writer = await connect(gw.port)
            writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n"
                         b"content-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(raw)
                         + raw)
            status, _, body = await read_response(reader)
            writer.close()
            await writer.wait_closed()
            assert status == 200
            sent = up.raw_bodies[0]
            assert sent == (b'{"model":"qwen-7b",'
                            b'"messages":[{"role":"user","content":"hi \\u00e9"}],'
                            b'"top_k":40,"x_vendor":{"keep": [1, 2.50, null]},"stream":false}')
            answer = json.loads(body)
            assert answer["model"] == "local/qwen-7b"  # what the client asked for
            assert answer["x_vendor_extra"] == {"kept": True}  # unknown response fields survive

    run("asyncio", main())


@pytest.mark.parametrize("asked", [True, False], ids=["stream-to-json", "json-to-stream"])
def test_front_door_stream_mode_reaches_the_upstream(asked: bool) -> None:
    mode = b"never" if asked else b"always"
    doc = {"model": "llama", "messages": MESSAGES, "stream": asked}
    if asked:
        doc["stream_options"] = {"include_usage": True}
    raw = json.dumps(doc).encode()

    async def main() -> None:
        async with FakeOpenAI() as up, gateway(config(up)) as gw:
            reader, writer = await connect(gw.port)
            writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n"
                         b"content-type: application/json\r\nx-modelmux-stream-mode: " + mode
                         + b"\r\ncontent-length: %d\r\n\r\n" % len(raw) + raw)
            status, headers, body = await read_response(reader)
            writer.close()
            await writer.wait_closed()
            assert status == 200
            sent = json.loads(up.raw_bodies[0])
            assert sent["stream"] is (not asked) and "stream_options" not in sent
            if asked:
                assert json.loads(body)["choices"][0]["message"]["content"] == TEXT.text
            else:
                assert headers["content-type"].startswith("text/event-stream")
                assert body.endswith(b"data: [DONE]\n\n")

    run("asyncio", main())


def test_unchanged_model_sends_the_client_bytes_verbatim() -> None:
    async def main() -> None:
        async with FakeOpenAI() as up, gateway(config(up)) as gw, gw.client() as client:
            await client.chat.completions.create(model="llama", messages=MESSAGES, n=2,
                                                 extra_body={"min_p": 0.1})
            sent = json.loads(up.raw_bodies[0])
            assert sent["model"] == "llama" and sent["min_p"] == 0.1
            assert sent["n"] == 2  # the upstream decides what n it serves

    run("asyncio", main())


def test_stream_model_is_rewritten_to_the_public_name() -> None:
    async def main() -> None:
        async with (
            FakeOpenAI(reports="served-as-other") as up,
            gateway(config(up)) as gw,
            gw.client() as client,
        ):
            stream = await client.chat.completions.create(
                model="local/whatever", messages=MESSAGES, stream=True)
            seen = await collect(stream)
            assert seen.model == "local/whatever" and seen.text == TEXT.text
            assert json.loads(up.raw_bodies[0])["model"] == "whatever"

    run("asyncio", main())


def test_events_that_arrive_together_reach_the_client_in_one_chunk() -> None:
    """The upstream writes its whole stream at once: the client gets every event, in order,
    in one HTTP chunk instead of one chunk per event."""
    async def main() -> None:
        async with FakeOpenAI(split=SPLITS["whole"]) as up, gateway(config(up)) as gw:
            reader, writer = await connect(gw.port)
            body = json.dumps({"model": "llama", "messages": MESSAGES, "stream": True}).encode()
            writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\n"
                         b"content-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                         % (len(body), body))
            await reader.readuntil(b"\r\n\r\n")
            frames = []
            while size := int(await reader.readuntil(b"\r\n"), 16):
                frames.append((await reader.readexactly(size + 2))[:-2])
            writer.close()
            events = [event for event in frames[0].split(b"\n\n") if event]
            assert len(frames) == 1 and len(events) > 5
            assert events[-1] == b"data: [DONE]" and all(e.startswith(b"data: ") for e in events)
            sent = [event[6:-2] for event in chunk_events(TEXT, "llama", False)]
            assert [json.loads(e[6:]) for e in events[:-1]] == [json.loads(e) for e in sent[:-1]]

    run("asyncio", main())


def test_api_key_from_env_and_extra_headers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MM_TEST_OPENAI_KEY", "sk-secret")
    extra = 'api_key = "${MM_TEST_OPENAI_KEY}"\n[provider.headers]\nx-org = "acme"\n'

    async def main() -> None:
        async with FakeOpenAI(api_key="sk-secret") as up, gateway(config(up, extra=extra)) as gw:
            async with gw.client() as client:
                await client.chat.completions.create(model="llama", messages=MESSAGES)
            assert up.requests[0].headers["x-org"] == "acme"
            assert up.requests[0].headers["authorization"] == "Bearer sk-secret"

    run("asyncio", main())


ERRORS = [
    # fault, SDK exception, status, code, words in the message
    ("400", openai.BadRequestError, 400, "invalid_request", "'messages' is too short"),
    ("401", openai.InternalServerError, 502, "upstream_auth_failed", "refused ModelMux's own"),
    ("404", openai.NotFoundError, 404, "model_not_found", "does not exist"),
    ("429", openai.RateLimitError, 429, "rate_limit_exceeded", "Rate limit reached"),
    ("500", openai.InternalServerError, 502, "upstream_server_error", "HTTP 500"),
    ("503", openai.InternalServerError, 502, "upstream_server_error", "HTTP 503"),
    ("error_first", openai.BadRequestError, 400, None, "Invalid 'tools'"),  # stream only
    ("error_200", openai.BadRequestError, 400, None, "Model is still loading"),  # JSON only
]


CASES = [pytest.param(*case, stream, id=f"{case[0]}-{'stream' if stream else 'json'}")
         for case in ERRORS for stream in (False, True)
         if (case[0], stream) not in {("error_first", False), ("error_200", True)}]


@pytest.mark.parametrize(("fault", "exc", "status", "code", "words", "stream"), CASES)
def test_upstream_errors_map_to_client_errors(fault: str, exc: type, status: int,
                                              code: str | None, words: str, stream: bool) -> None:
    async def main() -> None:
        async with FakeOpenAI(retry_after="7") as up:
            up.faults.extend([fault] * 3)
            async with gateway(config(up, extra="max_retries = 0")) as gw, gw.client() as client:
                with pytest.raises(exc) as caught:
                    result = await client.chat.completions.create(
                        model="llama", messages=MESSAGES, stream=stream)
                    if stream:
                        await collect(result)
                error: Any = caught.value
                assert error.status_code == status
                assert words in error.message
                if code is not None:
                    assert error.code == code
                if fault == "429":
                    assert error.response.headers["retry-after"] == "7"
                assert len(up.requests) == 1

    run("asyncio", main())


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_retryable_failures_are_retried_before_the_first_byte(stream: bool) -> None:
    async def main() -> None:
        async with FakeOpenAI(answer=TOOLS) as up, gateway(config(up)) as gw:
            up.faults.extend(["429", "reset_early" if stream else "503"])
            async with gw.client() as client:
                result = await client.chat.completions.create(
                    model="llama", messages=MESSAGES, stream=stream)
                seen = await collect(result) if stream else from_completion(result)
                assert seen.text == TOOLS.text and len(seen.tool_calls) == 2
            assert len(up.requests) == 3

    run("asyncio", main())


def test_retries_are_bounded_by_max_retries() -> None:
    async def main() -> None:
        async with FakeOpenAI() as up, gateway(config(up, extra="max_retries = 2")) as gw:
            up.faults.extend(["500"] * 5)
            async with gw.client() as client:
                with pytest.raises(openai.InternalServerError):
                    await client.chat.completions.create(model="llama", messages=MESSAGES)
            assert len(up.requests) == 3

    run("asyncio", main())


@pytest.mark.parametrize("fault", ["reset", "error_event", "no_done"])
def test_mid_stream_failure_ends_with_an_error_event_not_done(fault: str) -> None:
    request = json.dumps({"model": "llama", "messages": MESSAGES, "stream": True}).encode()

    async def main() -> None:
        async with FakeOpenAI() as up, gateway(config(up)) as gw:
            up.faults.append(fault)
            reader, writer = await connect(gw.port)
            writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: "
                         b"application/json\r\ncontent-length: %d\r\n\r\n" % len(request) + request)
            status, _, body = await read_response(reader)
            writer.close()
            await writer.wait_closed()
            assert status == 200 and b"data: [DONE]" not in body
            last = json.loads(body.rstrip().rsplit(b"\n\n", 1)[-1].removeprefix(b"data: "))
            assert "error" in last
            assert len(up.requests) == 1  # never retried once bytes reached the client
            async with gw.client() as client:  # and the SDK raises instead of ending quietly
                up.faults.append(fault)
                stream = await client.chat.completions.create(model="llama", messages=MESSAGES,
                                                              stream=True)
                with pytest.raises(openai.APIError):
                    await collect(stream)

    run("asyncio", main())


def test_stalled_upstream_is_a_504() -> None:
    extra = "[provider.timeouts]\nfirst_byte = 0.2\n"

    async def main() -> None:
        async with FakeOpenAI() as up, gateway(config(up, extra=extra)) as gw:
            up.faults.append("stall")
            async with gw.client() as client:
                with pytest.raises(openai.APIStatusError) as caught:
                    await client.chat.completions.create(model="llama", messages=MESSAGES)
            assert caught.value.status_code == 504
            assert caught.value.code == "upstream_first_byte_timeout"  # type: ignore[attr-defined]

    run("asyncio", main())


@on_loops
def test_unreachable_upstream_is_a_502_after_retries(loop: str) -> None:
    async def main() -> None:
        async with gateway(config(None, port=refused_port())) as gw, gw.client() as client:
            with pytest.raises(openai.InternalServerError) as caught:
                await client.chat.completions.create(model="llama", messages=MESSAGES)
            assert caught.value.status_code == 502
            assert caught.value.code == "upstream_connect_error"  # type: ignore[attr-defined]

    run(loop, main())


def test_unknown_model_is_still_404_model_not_found() -> None:
    async def main() -> None:
        async with FakeOpenAI() as up, gateway(config(up)) as gw, gw.client() as client:
            with pytest.raises(openai.NotFoundError) as caught:
                await client.chat.completions.create(model="nope", messages=MESSAGES)
            assert caught.value.code == "model_not_found"  # type: ignore[attr-defined]
            assert up.requests == []

    run("asyncio", main())


def test_usage_is_read_from_its_own_json() -> None:
    assert usage_from(b'{"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}') == (3, 4)
    assert usage_from(b"{}") == (0, 0)
    assert usage_from(b"null") is None
    assert usage_from(b'"seven"') is None
    assert usage_from(b'{"prompt_tokens": "3"}') is None
