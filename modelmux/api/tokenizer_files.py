"""Tokenizers read from files, each slow to build (call these in a thread): OpenAI's o200k_base
ranks (``tiktoken``), and Hugging Face ``tokenizer.json`` files, plain or gzipped
(``tokenizers``): an operator's, or the legacy Claude tokenizer shipped in ``data/``.

A loaded tokenizer is a ``TokenCounter``: texts in, their total token count out (no special tokens
added). Both libraries release the GIL while they encode (``tokenizers`` only in its batch
call, hence ``encode_batch``), so a long prompt counted in a thread does not stall the loop.
"""

from __future__ import annotations

import base64
import gzip
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import tiktoken
    import tokenizers

TokenCounter = Callable[[list[str]], int]

DATA = Path(__file__).with_name("data")
O200K = "o200k_base"
O200K_DATA = DATA / "o200k_base.tiktoken.gz"
O200K_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"
CLAUDE_LEGACY_DATA = DATA / "claude-legacy-tokenizer.json.gz"
CLAUDE_LEGACY_SHA256 = "c241737df24b4e7f7c9af4fdcee29a0ca903dcb288a8b753bc346a3092911767"
"""sha256 of the uncompressed file: ``anthropic/tokenizer.json`` of the anthropic 0.34.0 sdist
(MIT, ``data/LICENSE-anthropic-tokenizer``)."""
EXTRA_HINT = "pip install 'modelmux[tokenizers]'"
_CONTRACTIONS = "('s|'S|'t|'T|'re|'rE|'Re|'RE|'ve|'vE|'Ve|'VE|'m|'M|'ll|'lL|'Ll|'LL|'d|'D)?"
_O200K_PATTERN = "|".join([
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+" + _CONTRACTIONS,
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*" + _CONTRACTIONS,
    r"\p{N}{1,3}", r" ?[^\s\p{L}\p{N}]+[\r\n/]*", r"\s*[\r\n]+", r"\s+(?!\S)", r"\s+",
])
_O200K_SPECIAL = {"<|endoftext|>": 199999, "<|endofprompt|>": 200018}
_UNSAFE = re.compile(r"[^A-Za-z0-9._+@/-]")


def load_o200k(path: Path = O200K_DATA) -> tiktoken.Encoding:
    """The o200k_base encoding from the shipped rank file.

    Raises:
        ImportError: ``tiktoken`` is not installed.
        OSError, ValueError, EOFError: the rank file is missing or damaged.
    """
    import tiktoken

    ranks: dict[bytes, int] = {}
    with gzip.open(path, "rb") as lines:
        for line in lines:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return tiktoken.Encoding(O200K, pat_str=_O200K_PATTERN, mergeable_ranks=ranks,
                             special_tokens=_O200K_SPECIAL)


def o200k_counter(path: Path = O200K_DATA) -> TokenCounter:
    """A ``TokenCounter`` over ``load_o200k(path)`` (raises as it does)."""
    encode = load_o200k(path).encode_ordinary
    return lambda texts: sum(len(encode(text)) for text in texts)


def load_tokenizer_json(path: Path) -> tokenizers.Tokenizer:
    """A Hugging Face tokenizer from its ``tokenizer.json`` (gzipped when the name ends .gz).

    Raises:
        ImportError: ``tokenizers`` is not installed.
        OSError: the file cannot be read.
        ValueError: the file is not a tokenizer.json (the message says why).
    """
    from tokenizers import Tokenizer

    try:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        text = data.decode("utf-8")
    except EOFError as exc:
        raise ValueError(f"truncated gzip data ({exc})") from None
    try:
        return Tokenizer.from_str(text)
    except Exception as exc:  # noqa: BLE001 (tokenizers raises only the base class)
        raise ValueError(f"not a Hugging Face tokenizer.json: {exc}") from None


def tokenizer_json_counter(path: Path) -> TokenCounter:
    """A ``TokenCounter`` over ``load_tokenizer_json(path)`` (raises as it does)."""
    encode = load_tokenizer_json(path).encode_batch
    return lambda texts: sum(map(len, encode(texts, add_special_tokens=False)))


def label_of(path: Path) -> str:
    """How a configured tokenizer file is named in the count header: its folder and file name
    (``Llama-3.1-8B-Instruct/tokenizer.json``), characters outside ``A-Za-z0-9._+@/-`` as
    ``_``."""
    name = f"{path.parent.name}/{path.name}" if path.parent.name else path.name
    return _UNSAFE.sub("_", name)
