"""``expected_tokens`` is the prompt estimate plus the output ``max_tokens_of`` gives (else
the default), for every kind of request the doors decode."""

from __future__ import annotations

import msgspec
import pytest

from modelmux.routing.facts import (
    DEFAULT_OUTPUT_TOKENS,
    estimate_prompt_tokens,
    expected_tokens,
    max_tokens_of,
)
from modelmux.schemas.openai_chat import ChatCompletionRequest
from modelmux.schemas.openai_completions import CompletionRequest
from modelmux.schemas.openai_embeddings import EmbeddingRequest

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(("kind", "body"), [
    (ChatCompletionRequest, {"model": "m", "messages": MESSAGES}),
    (ChatCompletionRequest, {"model": "m", "messages": MESSAGES, "max_tokens": 7}),
    (ChatCompletionRequest, {"model": "m", "messages": MESSAGES, "max_tokens": 7,
                             "max_completion_tokens": 9}),
    (CompletionRequest, {"model": "m", "prompt": "x" * 40, "max_tokens": 5}),
    (CompletionRequest, {"model": "m", "prompt": "x"}),
    (EmbeddingRequest, {"model": "m", "input": "y" * 400}),
])
def test_expected_tokens_is_the_prompt_and_the_output(kind: type, body: dict[str, object]
                                                      ) -> None:
    raw = msgspec.json.encode(body)
    request = msgspec.json.decode(raw, type=kind)
    output = max_tokens_of(request)
    assert expected_tokens(request, raw) == estimate_prompt_tokens(raw) + (
        DEFAULT_OUTPUT_TOKENS if output is None else output)


def test_an_empty_body_still_counts_one_prompt_token() -> None:
    request = ChatCompletionRequest(model="m", messages=[])
    assert expected_tokens(request, b"") == 1 + DEFAULT_OUTPUT_TOKENS
