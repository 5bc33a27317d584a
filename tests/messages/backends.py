"""Every provider type behind the Messages door, each with its fake upstream, under one name.

``backend(kind)`` starts the fake (if any) and an in-process gateway whose ``[models]`` maps
``claude-sonnet-4-5`` to that provider's model, as a Claude Code user would configure it. A
``Backend`` says how to script the fake's faults in its own wire format and what its last
request body was, so one test body runs against all of them.
"""

from __future__ import annotations

import contextlib
import json
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.answers import TOOLS
from tests.fakes.azure import FakeAzure
from tests.fakes.bedrock import FakeBedrock
from tests.fakes.cohere import FakeCohere
from tests.fakes.gemini import FakeGemini
from tests.fakes.google_oauth import FakeGoogleOAuth
from tests.fakes.openai import FakeOpenAI
from tests.fakes.vertex import FakeVertex
from tests.messages.helpers import MOCK_TOML
from tests.providers.harness import Gateway, gateway
from tests.providers.test_claude import claude_gateway

ALIAS = "claude-sonnet-4-5"
KINDS = ["mock", "openai_compatible", "openai", "azure", "huggingface", "anthropic",
         "vertex-claude", "vertex-gemini", "gemini", "cohere", "bedrock", "bedrock-claude"]
NATIVE = {"anthropic", "vertex-claude", "bedrock-claude"}

_OPENAI_FAULTS = {"429": "429", "500": "500", "mid": "error_event"}
FAULTS: dict[str, dict[str, str]] = {
    "openai_compatible": _OPENAI_FAULTS, "openai": _OPENAI_FAULTS, "azure": _OPENAI_FAULTS,
    "huggingface": _OPENAI_FAULTS,
    "anthropic": {"429": "429", "500": "500", "mid": "overloaded_event"},
    "vertex-claude": {"429": "429", "500": "500", "mid": "overloaded_event"},
    "vertex-gemini": {"429": "429", "500": "500", "mid": "error_event"},
    "gemini": {"429": "429", "500": "500", "mid": "error_event"},
    "cohere": {"429": "429", "500": "500", "mid": "error_end"},
    "bedrock": {"429": "429", "500": "500", "mid": "exception_mid"},
    "bedrock-claude": {"429": "429", "500": "500", "mid": "exception_mid"},
}
"""Each fake's name for: an upstream 429, an upstream 500, a failure after the stream began."""

TOOL_RESULT_MARK = {
    "openai_compatible": '"role": "tool"', "openai": '"role": "tool"', "azure": '"role": "tool"',
    "huggingface": '"role": "tool"', "anthropic": '"tool_result"',
    "vertex-claude": '"tool_result"', "vertex-gemini": '"functionResponse"',
    "gemini": '"functionResponse"', "cohere": '"role": "tool"', "bedrock": '"toolResult"',
    "bedrock-claude": '"tool_result"',
}
"""How a tool result looks in each upstream's own request format."""


@dataclass
class Backend:
    kind: str
    gw: Gateway
    faults: deque[str] = field(default_factory=deque)
    bodies: Callable[[], list[Any]] = list

    def fault(self, what: str) -> None:
        """Make the next upstream request fail as ``what`` (a key of ``FAULTS``)."""
        self.faults.append(FAULTS[self.kind][what])

    def last_body(self) -> str:
        """The last chat request the upstream got, as JSON text."""
        body = self.bodies()[-1]
        return json.dumps(json.loads(body) if isinstance(body, bytes) else body,
                          ensure_ascii=False)


def _alias(model: str) -> str:
    return f'max_retries = 0\n[models]\n"{ALIAS}" = "{model}"\n'


def _openai_toml(kind: str, origin: str, model: str, key: str) -> str:
    base = origin if kind == "azure" else f"{origin}/v1"
    version = 'api_version = "2024-10-21"\n' if kind == "azure" else ""
    return (f'[[provider]]\nname = "up"\ntype = "{kind}"\nbase_url = "{base}"\n'
            f'api_key = "{key}"\nmodels = ["{model}"]\n{version}{_alias(model)}')


@contextlib.asynccontextmanager
async def backend(kind: str) -> AsyncIterator[Backend]:
    """The gateway for ``kind`` with its fake upstream answering ``TOOLS``."""
    async with contextlib.AsyncExitStack() as stack:
        enter = stack.enter_async_context
        if kind == "mock":
            gw = await enter(gateway(MOCK_TOML))
            yield Backend(kind, gw)
            return
        if kind in ("openai_compatible", "openai", "huggingface", "azure"):
            model = "gpt-4o-prod" if kind == "azure" else "llama"
            fake: Any = await enter(FakeAzure(answer=TOOLS) if kind == "azure" else
                                    FakeOpenAI(api_key="sk-up", answer=TOOLS))
            gw = await enter(gateway(_openai_toml(kind, fake.origin, model,
                                                  "azure-key" if kind == "azure" else "sk-up")))
            yield Backend(kind, gw, fake.faults, lambda: fake.raw_bodies)
        elif kind == "anthropic":
            s = await enter(claude_gateway("anthropic", answer=TOOLS, extra=_alias("sonnet")))
            yield Backend(kind, s.gw, s.claude.faults, lambda: s.claude.bodies)
        elif kind.startswith("vertex-"):
            oauth = await enter(FakeGoogleOAuth())
            vertex = await enter(FakeVertex(token_ok=oauth.valid, answer=TOOLS))
            model = "sonnet" if kind == "vertex-claude" else "gemini-2.0-flash"
            toml = (f'[[provider]]\nname = "vtx"\ntype = "vertex"\nproject = "p"\n'
                    f'region = "us-east5"\nbase_url = "{vertex.origin}"\n'
                    f'models = ["sonnet", "gemini-2.0-flash"]\n'
                    f"credentials_json = '''{json.dumps(oauth.service_account_info())}'''\n"
                    + _alias(model))
            gw = await enter(gateway(toml))
            half = vertex.claude if kind == "vertex-claude" else vertex.gemini
            yield Backend(kind, gw, half.faults, lambda: half.bodies)
        elif kind == "gemini":
            fake = await enter(FakeGemini(answer=TOOLS))
            gw = await enter(gateway(f'[[provider]]\nname = "gem"\ntype = "gemini"\n'
                                     f'models = ["gemini-2.0-flash"]\napi_key = "AIza-test"\n'
                                     f'base_url = "{fake.origin}"\n'
                                     + _alias("gemini-2.0-flash")))
            yield Backend(kind, gw, fake.faults, lambda: fake.bodies)
        elif kind == "cohere":
            fake = await enter(FakeCohere(answer=TOOLS))
            gw = await enter(gateway(f'[[provider]]\nname = "co"\ntype = "cohere"\n'
                                     f'models = ["command-r-plus"]\napi_key = "co-test"\n'
                                     f'base_url = "{fake.origin}"\n' + _alias("command-r-plus")))
            yield Backend(kind, gw, fake.faults, lambda: fake.bodies)
        elif kind in ("bedrock", "bedrock-claude"):
            fake = await enter(FakeBedrock(answer=TOOLS))
            model = ("us.anthropic.claude-sonnet-4-5-20250929-v1:0" if kind == "bedrock-claude"
                     else "meta.llama3-1-70b-instruct-v1:0")
            gw = await enter(gateway(
                f'[[provider]]\nname = "br"\ntype = "bedrock"\nregion = "us-east-1"\n'
                f'models = ["{model}"]\nbase_url = "{fake.origin}"\n'
                f'access_key_id = "AKIDFAKE000000000001"\nsecret_access_key = "fake/secret"\n'
                + _alias(model)))
            yield Backend(kind, gw, fake.faults, lambda: fake.bodies)
        else:
            raise ValueError(kind)
