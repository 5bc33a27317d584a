"""A steady chat-completions load from several client threads, counting every failure honestly.

Each loop sends requests back to back (bounded in count; stopped by an event) and never retries:
a request that fails, is cut short (a stream without ``[DONE]`` or with missing text) or whose
connection is refused is counted as such. Reconnecting after a response that said
``Connection: close`` is what HTTP requires, not a retry. Kinds of loop: keep-alive
(http.client), a new connection per request, the OpenAI SDK (httpx pool) with
``max_retries=0``, and httpx over HTTP/2 (h2c), whose pool sends a request again on a new
connection only when a GOAWAY said it was not processed.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx2 as httpx
import openai

BODY = {"model": "mock", "messages": [{"role": "user", "content": "hi"}]}


@dataclass
class Tally:
    """What one client loop saw."""

    name: str
    ok: int = 0
    refused: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def done(self) -> int:
        return self.ok + self.refused + len(self.errors)


def sse_text(data: bytes) -> tuple[str, bool]:
    """The assembled delta text of an SSE chat stream, and whether it ended with ``[DONE]``."""
    text, finished = [], False
    for line in data.decode().split("\n"):
        if not line.startswith("data: "):
            continue
        payload = line.removeprefix("data: ")
        if payload == "[DONE]":
            finished = True
            continue
        for choice in json.loads(payload).get("choices", []):
            text.append(choice.get("delta", {}).get("content") or "")
    return "".join(text), finished


def check_answer(status: int, data: bytes, stream: bool, expected: str) -> str | None:
    """None when the answer is whole, else what is wrong with it."""
    if status != 200:
        return f"status {status}: {data[:200]!r}"
    if stream:
        text, finished = sse_text(data)
        if not finished:
            return f"stream cut short after {len(text)} characters"
    else:
        text = json.loads(data)["choices"][0]["message"]["content"]
    return None if text == expected else f"wrong text ({len(text)} of {len(expected)} characters)"


def http_loop(host: str, port: int, tally: Tally, stop: threading.Event, expected: str, *,
              stream: bool, keep_alive: bool, limit: int, pause: float = 0.0) -> None:
    """Requests on one keep-alive connection, or a new connection for each, ``pause`` apart."""
    body = json.dumps({**BODY, "stream": stream}).encode()
    headers = {"content-type": "application/json"}
    if not keep_alive:
        headers["connection"] = "close"
    conn = http.client.HTTPConnection(host, port, timeout=30)
    for _ in range(limit):
        if stop.is_set():
            break
        if not keep_alive:
            conn = http.client.HTTPConnection(host, port, timeout=30)
        try:
            conn.request("POST", "/v1/chat/completions", body, headers)
            response = conn.getresponse()
            problem = check_answer(response.status, response.read(), stream, expected)
        except ConnectionRefusedError:
            tally.refused += 1
            conn.close()
            continue
        except (OSError, http.client.HTTPException) as exc:
            problem = f"{type(exc).__name__}: {exc}"
            conn.close()  # the next request opens a new connection; this one is not sent again
        if problem is None:
            tally.ok += 1
        else:
            tally.errors.append(problem)
        if not keep_alive:
            conn.close()
        if pause:
            time.sleep(pause)
    conn.close()


def sdk_loop(url: str, tally: Tally, stop: threading.Event, expected: str, *, limit: int) -> None:
    """Streams through the OpenAI SDK, whose httpx pool keeps connections alive between them."""
    with openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=30) as sdk:
        for _ in range(limit):
            if stop.is_set():
                break
            try:
                chunks = list(sdk.chat.completions.create(stream=True, **BODY))  # type: ignore[call-overload]
                text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
                if text == expected:
                    tally.ok += 1
                else:
                    tally.errors.append(f"sdk stream: wrong text ({len(text)} characters)")
            except openai.APIConnectionError as exc:
                if isinstance(exc.__cause__, ConnectionRefusedError) or "refused" in str(exc.__cause__):
                    tally.refused += 1
                else:
                    tally.errors.append(f"sdk: {type(exc.__cause__).__name__}: {exc.__cause__}")
            except openai.APIError as exc:
                tally.errors.append(f"sdk: {type(exc).__name__}: {exc}")


def h2_loop(url: str, tally: Tally, stop: threading.Event, expected: str, *, limit: int) -> None:
    """Streams and plain answers alternating, multiplexed over HTTP/2 (h2c, prior knowledge)."""
    with httpx.Client(http1=False, http2=True, timeout=30) as client:
        for index in range(limit):
            if stop.is_set():
                break
            stream = index % 2 == 0
            try:
                response = client.post(url + "/v1/chat/completions", json={**BODY, "stream": stream})
                problem = check_answer(response.status_code, response.content, stream, expected)
            except httpx.ConnectError as exc:
                if "refused" in str(exc).lower():
                    tally.refused += 1
                    continue
                problem = f"h2: {type(exc).__name__}: {exc}"
            except httpx.HTTPError as exc:
                problem = f"h2: {type(exc).__name__}: {exc}"
            if problem is None:
                tally.ok += 1
            else:
                tally.errors.append(problem)


class Load:
    """Several client loops in threads against one address."""

    def __init__(self, host: str, port: int, url: str, expected: str, limit: int = 3000) -> None:
        """Quick (non-streaming) loops pause 5 ms between requests, so that on a small machine
        they leave the streams some CPU; the streams run back to back."""
        self.stop = threading.Event()
        self.limit = limit
        self.tallies: list[Tally] = []
        self.threads: list[threading.Thread] = []
        plans: list[tuple[str, Callable[[Tally], None]]] = [
            ("keep-alive", lambda t: http_loop(host, port, t, self.stop, expected, stream=False,
                                               keep_alive=True, limit=limit, pause=0.005)),
            ("keep-alive stream", lambda t: http_loop(host, port, t, self.stop, expected, stream=True,
                                                      keep_alive=True, limit=limit)),
            ("keep-alive stream 2", lambda t: http_loop(host, port, t, self.stop, expected, stream=True,
                                                        keep_alive=True, limit=limit)),
            ("new connection", lambda t: http_loop(host, port, t, self.stop, expected, stream=False,
                                                   keep_alive=False, limit=limit, pause=0.005)),
            ("new connection stream", lambda t: http_loop(host, port, t, self.stop, expected, stream=True,
                                                          keep_alive=False, limit=limit)),
            ("sdk stream", lambda t: sdk_loop(url, t, self.stop, expected, limit=limit)),
            ("http/2", lambda t: h2_loop(url, t, self.stop, expected, limit=limit)),
        ]
        for name, plan in plans:
            tally = Tally(name)
            self.tallies.append(tally)
            self.threads.append(threading.Thread(target=plan, args=(tally,), daemon=True))

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def counts(self) -> list[int]:
        return [t.done for t in self.tallies]

    def finish(self, timeout: float = 30.0) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout)
        assert not any(thread.is_alive() for thread in self.threads), "a client loop hung"
