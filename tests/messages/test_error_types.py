"""Every Anthropic error type, with its status, through the official SDK against one gateway
with ``[auth] mode = "keys"``: the caller's own mistakes, the gateway's refusals and the
upstream's failures, each in Anthropic's shape with a ``request-id``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anthropic
import pytest

from tests.fakes.claude import FakeClaude
from tests.messages.helpers import USER, post
from tests.providers.harness import gateway
from tests.upstream import run

MASTER = "sk-master-messages-0123456789"


def config(db: Path, claude: FakeClaude) -> str:
    return f"""
[server]
max_body_bytes = 4096

[auth]
mode = "keys"
master_key = "{MASTER}"
sqlite_path = "{db}"

[[provider]]
name = "mock"
type = "mock"
models = ["mock"]

[[provider]]
name = "claude"
type = "anthropic"
api_key = "sk-ant-test"
base_url = "{claude.origin}"
models = ["sonnet"]
max_retries = 0
"""


async def new_key(port: int, **fields: Any) -> str:
    status, _, body = await post(port, "/admin/keys", json.dumps(fields).encode(),
                                 {"authorization": f"Bearer {MASTER}"})
    assert status == 201, body
    return str(json.loads(body)["key"])


def sdk(port: int, key: str) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=f"http://127.0.0.1:{port}", api_key=key,
                                    max_retries=0, timeout=10.0)


async def refused(client: anthropic.AsyncAnthropic, error: type[anthropic.APIStatusError],
                  status: int, kind: str, **create: Any) -> anthropic.APIStatusError:
    """The SDK's exception for a create that must fail with ``status`` and type ``kind``."""
    args: dict[str, Any] = {"model": "mock", "max_tokens": 8, "messages": USER, **create}
    with pytest.raises(error) as caught:
        await client.messages.create(**args)
    got = caught.value
    assert got.status_code == status and got.request_id
    assert got.response.headers["request-id"] == got.response.headers["x-request-id"]
    body: Any = got.body
    assert set(body) == {"type", "error"} and body["type"] == "error"
    assert set(body["error"]) == {"type", "message"} and body["error"]["type"] == kind
    assert body["error"]["message"]
    return got


def test_every_error_type_and_status(tmp_path: Path) -> None:
    async def main() -> None:
        async with FakeClaude() as claude, \
                gateway(config(tmp_path / "keys.db", claude)) as gw:
            port = gw.port
            master = sdk(port, MASTER)
            only_mock = sdk(port, await new_key(port, name="only-mock", models=["mock"]))
            limited = sdk(port, await new_key(port, name="limited", rpm=1))
            wrong = sdk(port, "sk-mm-not-a-key")
            async with master, only_mock, limited, wrong:
                await refused(master, anthropic.BadRequestError, 400, "invalid_request_error",
                              messages=[{"role": "robot", "content": "x"}])
                await refused(wrong, anthropic.AuthenticationError, 401, "authentication_error")
                with pytest.raises(anthropic.AuthenticationError):
                    await wrong.messages.count_tokens(model="mock", messages=USER)
                await refused(only_mock, anthropic.PermissionDeniedError, 403,
                              "permission_error", model="sonnet")
                await refused(master, anthropic.NotFoundError, 404, "not_found_error",
                              model="no-such-model")
                await refused(master, anthropic.APIStatusError, 413, "request_too_large",
                              messages=[{"role": "user", "content": "x" * 8192}])
                await limited.messages.create(model="mock", max_tokens=8, messages=USER)
                got = await refused(limited, anthropic.RateLimitError, 429, "rate_limit_error")
                assert int(got.response.headers["retry-after"]) >= 1
                claude.faults.append("500")
                await refused(master, anthropic.InternalServerError, 500, "api_error",
                              model="sonnet")
                claude.faults.append("529")
                await refused(master, anthropic.InternalServerError, 529, "overloaded_error",
                              model="sonnet")
                claude.faults.append("401")  # the upstream refusing the gateway's own key
                got = await refused(master, anthropic.InternalServerError, 500, "api_error",
                                    model="sonnet")
                assert "not yours" in got.body["error"]["message"]  # type: ignore[index]
                done = await only_mock.messages.with_raw_response.create(
                    model="mock", max_tokens=8, messages=USER)
                assert done.headers["request-id"]  # the gateway kept serving

    run("asyncio", main())
