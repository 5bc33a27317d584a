"""count_tokens' estimate when the provider cannot count: a real tokenizer where one is known
for the deployment, else four characters a token.

In order: the ``tokenizer`` file the deployment's provider names (a Hugging Face
``tokenizer.json``), else the shipped tokenizer of the model's family (``token_families``):
OpenAI's ``o200k_base`` for GPT-4o-family models (needs ``tiktoken``), the legacy Claude
tokenizer for ``claude-*`` models (needs ``tokenizers``; Anthropic calls it a very rough
estimate from Claude 3 on). Each is loaded on first use, in a thread, once per app.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from modelmux.api.token_families import CHAT_TEMPLATE, CLAUDE_LEGACY, O200K, TokenFamily, family_of
from modelmux.api.tokenizer_files import (
    CLAUDE_LEGACY_DATA,
    EXTRA_HINT,
    O200K_DATA,
    TokenCounter,
    label_of,
    o200k_counter,
    tokenizer_json_counter,
)
from modelmux.schemas.anthropic_request import Block, CountTokensRequest

log = logging.getLogger("modelmux.api")

CHARS_PER_TOKEN = 4
IMAGE_TOKENS = 1600
"""What an image or document block is counted as: about a 1.15-megapixel image
("Vision > Calculate image costs": width * height / 750)."""
FORCED_TOOL_CHOICES = ("any", "tool")
_encode = msgspec.json.Encoder().encode


@dataclass
class Prompt:
    """The countable parts of a request: its texts, its messages (the system prompt is one, and
    then ``system`` is set), its media blocks, whether it has tools (``forced`` when
    ``tool_choice`` makes the model call one)."""

    texts: list[str] = field(default_factory=list)
    messages: int = 0
    media: int = 0
    system: bool = False
    tools: bool = False
    forced: bool = False


def prompt_of(request: CountTokensRequest) -> Prompt:
    """The system prompt, messages, tool calls and results and tool definitions as text."""
    prompt = Prompt()
    texts = prompt.texts
    system = request.system
    if isinstance(system, str):
        texts.append(system)
    elif system is not None:
        texts.extend(block.text for block in system)
    if system is not None:
        prompt.messages += 1
        prompt.system = True
    blocks: list[Block] = []
    for message in request.messages:
        prompt.messages += 1
        if isinstance(message.content, str):
            texts.append(message.content)
        else:
            blocks.extend(message.content)
    while blocks:
        block = blocks.pop()
        texts += [block.text or "", block.name or "", _raw_text(block.input)]
        if isinstance(block.content, str):
            texts.append(block.content)
        elif block.content is not None:
            blocks.extend(block.content)
        if block.type in ("image", "document"):
            prompt.media += 1
    for tool in request.tools or ():
        texts += [tool.name, tool.description or "", _encode(tool.input_schema).decode()]
    prompt.tools = bool(request.tools)
    choice = request.tool_choice
    prompt.forced = choice is not None and choice.type in FORCED_TOOL_CHOICES
    return prompt


def _raw_text(value: msgspec.Raw) -> str:
    """A tool call's input as the JSON text the model sees (nothing when absent)."""
    data = bytes(value)
    return "" if data in (b"", b"null") else data.decode("utf-8", "replace")


def by_characters(prompt: Prompt) -> int:
    """``CHARS_PER_TOKEN`` characters a token of text, plus ``IMAGE_TOKENS`` a media block."""
    chars = sum(len(text) for text in prompt.texts)
    return max(1, -(-chars // CHARS_PER_TOKEN)) + prompt.media * IMAGE_TOKENS


def uses_o200k(model: str) -> bool:
    """True for a model OpenAI tokenizes with o200k_base (a ``vendor/`` prefix is ignored)."""
    return family_of(model) is O200K


@dataclass(frozen=True)
class Source:
    """A deployment's tokenizer: the file ``path`` built by ``load`` (once per path), named
    ``name`` in the header, framed as ``family``; ``configured`` when the operator named the
    file (then even a missing extra is logged)."""

    path: Path
    name: str
    family: TokenFamily
    load: Callable[[Path], TokenCounter]
    installed: bool
    configured: bool = False


TokenizerFiles = Mapping[tuple[str, str | None], Path]
"""Configured tokenizer files by (provider, model); model None for all of a provider's."""


class TokenEstimator:
    """Estimates a prompt's tokens for one deployment; built with the app, it loads nothing
    until a deployment with a tokenizer is counted."""

    def __init__(self, data: Path = O200K_DATA, files: TokenizerFiles | None = None,
                 claude: Path = CLAUDE_LEGACY_DATA) -> None:
        self.data = data
        self.claude = claude
        self.files = dict(files or {})
        self.available = importlib.util.find_spec("tiktoken") is not None
        self.hf_available = importlib.util.find_spec("tokenizers") is not None
        self._loads: dict[Path, asyncio.Future[TokenCounter | None]] = {}

    @classmethod
    def of_config(cls, providers: Iterable[Any]) -> TokenEstimator:
        """The estimator of a config's ``[[provider]]`` tables and their ``tokenizer`` keys."""
        return cls(files=tokenizer_files(providers))

    def source(self, provider: str | None, model: str) -> Source | None:
        """The tokenizer for ``model`` on ``provider``: configured, else its family's."""
        path = None
        if provider is not None:
            path = self.files.get((provider, model)) or self.files.get((provider, None))
        if path is not None:
            return Source(path, label_of(path), CHAT_TEMPLATE, tokenizer_json_counter,
                          self.hf_available, configured=True)
        family = family_of(model)
        if family is O200K:
            return Source(self.data, O200K.tokenizer, O200K, o200k_counter, self.available)
        if family is CLAUDE_LEGACY:
            return Source(self.claude, CLAUDE_LEGACY.tokenizer, CLAUDE_LEGACY,
                          tokenizer_json_counter, self.hf_available)
        return None

    async def count(self, model: str, request: CountTokensRequest,
                    provider: str | None = None) -> tuple[int, str]:
        """(tokens, the tokenizer's name as the header gives it, ``chars`` when estimated from
        characters) for ``request`` as ``model`` on ``provider`` would see it."""
        prompt = prompt_of(request)
        source = self.source(provider, model)
        counter = None if source is None else await self._counter(source)
        if source is None or counter is None:
            return by_characters(prompt), "chars"
        tokens = await asyncio.to_thread(_total, counter, prompt.texts)
        tokens += source.family.overhead(prompt.messages, prompt.system, prompt.tools,
                                         prompt.forced)
        return tokens + prompt.media * IMAGE_TOKENS, source.name

    async def _counter(self, source: Source) -> TokenCounter | None:
        loading = self._loads.get(source.path)
        if loading is None:
            loading = asyncio.ensure_future(asyncio.to_thread(self._load, source))
            self._loads[source.path] = loading
        return await asyncio.shield(loading)

    def _load(self, source: Source) -> TokenCounter | None:
        if not source.installed:
            if source.configured:
                log.warning("cannot load the tokenizer %s: the tokenizers package is not "
                            "installed (%s); count_tokens estimates from characters",
                            source.path, EXTRA_HINT)
            return None
        try:
            return source.load(source.path)
        except (ImportError, OSError, ValueError, EOFError) as exc:
            log.warning("cannot load the %s tokenizer from %s (%s); count_tokens estimates "
                        "from characters", source.name, source.path, exc)
            return None


def tokenizer_files(providers: Iterable[Any]) -> dict[tuple[str, str | None], Path]:
    """The ``tokenizer`` keys of provider tables: one path for all of a provider's models, or
    a table of paths by model; ``~`` expanded."""
    files: dict[tuple[str, str | None], Path] = {}
    for provider in providers:
        named = getattr(provider, "tokenizer", None)
        if isinstance(named, str):
            files[(provider.name, None)] = Path(named).expanduser()
        elif isinstance(named, dict):
            files.update(((provider.name, model), Path(path).expanduser())
                         for model, path in named.items())
    return files


def _total(counter: TokenCounter, texts: list[str]) -> int:
    return counter([text for text in texts if text])
