"""count_tokens' estimate when the provider cannot count: a real tokenizer where one ships for
the deployment's model family, else four characters a token.

The one that ships is OpenAI's ``o200k_base`` (GPT-4o, GPT-4.1, GPT-5, o-series, gpt-oss):
``data/o200k_base.tiktoken.gz`` is OpenAI's published rank file byte for byte (sha256
``O200K_SHA256``, the hash ``tiktoken`` checks; MIT, ``data/LICENSE-tiktoken``). Encoding with
it needs ``tiktoken`` (the ``tokenizers`` extra); the ranks are read on first use, in a thread,
once per app. Message overheads follow OpenAI's cookbook "How to count tokens with tiktoken".
No tokenizer of current Claude, Gemini, Llama, Qwen or Command models is public, so those are
estimated from characters.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import importlib.util
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from modelmux.schemas.anthropic_request import Block, CountTokensRequest

if TYPE_CHECKING:
    import tiktoken

log = logging.getLogger("modelmux.api")

CHARS_PER_TOKEN = 4
IMAGE_TOKENS = 1600
"""What an image or document block is counted as: about a 1.15-megapixel image
("Vision > Calculate image costs": width * height / 750)."""
O200K = "o200k_base"
O200K_DATA = Path(__file__).with_name("data") / "o200k_base.tiktoken.gz"
O200K_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"
O200K_MODELS = ("gpt-4o", "chatgpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4-mini",
                "gpt-oss")
"""Model names (and their dated or suffixed variants) that OpenAI tokenizes with o200k_base."""
_CONTRACTIONS = "('s|'S|'t|'T|'re|'rE|'Re|'RE|'ve|'vE|'Ve|'VE|'m|'M|'ll|'lL|'Ll|'LL|'d|'D)?"
_O200K_PATTERN = "|".join([
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+" + _CONTRACTIONS,
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*" + _CONTRACTIONS,
    r"\p{N}{1,3}", r" ?[^\s\p{L}\p{N}]+[\r\n/]*", r"\s*[\r\n]+", r"\s+(?!\S)", r"\s+",
])
_O200K_SPECIAL = {"<|endoftext|>": 199999, "<|endofprompt|>": 200018}
PER_MESSAGE = 4
"""Tokens OpenAI's chat format adds for each message: 3 around it, 1 for its role."""
REPLY_PRIMING = 3
"""Tokens that start the assistant's reply."""
_encode = msgspec.json.Encoder().encode


@dataclass
class Prompt:
    """The countable parts of a request: its texts, its messages (the system prompt is one),
    its media blocks."""

    texts: list[str] = field(default_factory=list)
    messages: int = 0
    media: int = 0


def prompt_of(request: CountTokensRequest) -> Prompt:
    """The system prompt, messages, tool calls and results and tool definitions as text."""
    prompt = Prompt()
    texts = prompt.texts
    system = request.system
    if isinstance(system, str):
        texts.append(system)
        prompt.messages += 1
    elif system is not None:
        texts.extend(block.text for block in system)
        prompt.messages += 1
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
    name = model.rsplit("/", 1)[-1].lower()
    return any(name == known or name.startswith(known + "-") for known in O200K_MODELS)


def load_o200k(path: Path = O200K_DATA) -> tiktoken.Encoding:
    """The o200k_base encoding from the shipped rank file (slow: run it in a thread).

    Raises:
        ImportError: ``tiktoken`` is not installed.
        OSError, ValueError: the rank file is missing or damaged.
    """
    import tiktoken

    ranks: dict[bytes, int] = {}
    with gzip.open(path, "rb") as lines:
        for line in lines:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return tiktoken.Encoding(O200K, pat_str=_O200K_PATTERN, mergeable_ranks=ranks,
                             special_tokens=_O200K_SPECIAL)


class TokenEstimator:
    """Estimates a prompt's tokens for one deployment model; built with the app, it loads
    nothing until a model with a shipped tokenizer is counted."""

    def __init__(self, data: Path = O200K_DATA) -> None:
        self.data = data
        self.available = importlib.util.find_spec("tiktoken") is not None
        self._loading: asyncio.Future[tiktoken.Encoding | None] | None = None

    async def count(self, model: str, request: CountTokensRequest) -> tuple[int, str]:
        """(tokens, the tokenizer's name: ``o200k_base`` or ``chars``) for ``request`` as
        ``model`` would see it."""
        prompt = prompt_of(request)
        encoding = await self._o200k() if uses_o200k(model) else None
        if encoding is None:
            return by_characters(prompt), "chars"
        tokens = await asyncio.to_thread(_encoded_length, encoding, prompt.texts)
        tokens += PER_MESSAGE * prompt.messages + REPLY_PRIMING + prompt.media * IMAGE_TOKENS
        return tokens, O200K

    async def _o200k(self) -> tiktoken.Encoding | None:
        if not self.available:
            return None
        if self._loading is None:
            self._loading = asyncio.ensure_future(asyncio.to_thread(self._load))
        return await asyncio.shield(self._loading)

    def _load(self) -> tiktoken.Encoding | None:
        try:
            return load_o200k(self.data)
        except (OSError, ValueError, EOFError) as exc:
            log.warning("cannot load the o200k_base tokenizer from %s (%s); count_tokens "
                        "estimates from characters", self.data, exc)
            return None


def _encoded_length(encoding: tiktoken.Encoding, texts: list[str]) -> int:
    return sum(len(encoding.encode_ordinary(text)) for text in texts if text)
