"""A small Hugging Face tokenizer built in code: every word and every run of punctuation is
one token, so a test knows the count of any text (``words``)."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

WORD = re.compile(r"\w+|[^\w\s]+")


def words(text: str) -> int:
    """What the tokenizer counts for ``text``: its words and punctuation runs."""
    return len(WORD.findall(text))


def save_word_tokenizer(path: Path, gzipped: bool = False) -> Path:
    """A WordLevel tokenizer with a whitespace-and-punctuation pre-tokenizer, saved as a
    ``tokenizer.json`` at ``path`` (gzipped when ``gzipped``)."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace

    tokenizer = Tokenizer(WordLevel({"[UNK]": 0, "hello": 1, "world": 2}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = Whitespace()
    path.parent.mkdir(parents=True, exist_ok=True)
    text = tokenizer.to_str()
    if gzipped:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path
