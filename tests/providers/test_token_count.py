"""The counting endpoints' bodies and answers (``providers.token_count``), and the ``tokenize``
key of ``openai_compatible``."""

from __future__ import annotations

import json

import msgspec
import pytest

from modelmux.config.schema import decode
from modelmux.errors import UpstreamError
from modelmux.providers.token_count import (
    COHERE_MAX_CHARS,
    COHERE_MAX_PIECES,
    CountUnavailable,
    cohere_pieces,
    gemini_count_body,
    template_prompt,
    token_list_length,
    total_tokens,
    vertex_count_body,
    vllm_count,
)

GEMINI = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
          "systemInstruction": {"parts": [{"text": "be brief"}]},
          "tools": [{"functionDeclarations": [{"name": "f"}]}],
          "toolConfig": {"functionCallingConfig": {"mode": "ANY"}},
          "generationConfig": {"maxOutputTokens": 1}}


def test_gemini_bodies_keep_only_what_is_counted() -> None:
    studio = json.loads(gemini_count_body(GEMINI, "gemini-2.0-flash"))
    assert studio == {"generateContentRequest": {
        "model": "models/gemini-2.0-flash", "contents": GEMINI["contents"],
        "systemInstruction": GEMINI["systemInstruction"], "tools": GEMINI["tools"]}}
    vertex = json.loads(vertex_count_body({"contents": GEMINI["contents"], "toolConfig": {}}))
    assert vertex == {"contents": GEMINI["contents"]}


def test_answers_are_read_or_refused_as_protocol_errors() -> None:
    assert total_tokens(b'{"totalTokens": 12, "totalBillableCharacters": 40}', "g") == 12
    assert total_tokens(b'{"promptTokensDetails": []}', "g") == 0  # proto3 leaves a zero out
    assert token_list_length(b'{"tokens": [1, 2, 3], "token_strings": ["a", "b", "c"]}', "c") == 3
    assert vllm_count(b'{"count": 7, "max_model_len": 8192, "tokens": []}', "v") == 7
    assert template_prompt(b'{"prompt": "<|user|>hi"}', "l") == "<|user|>hi"
    for bad in (b"not json", b'{"count": "7"}', b"[]"):
        with pytest.raises(UpstreamError) as caught:
            vllm_count(bad, "v")
        assert caught.value.code == "upstream_protocol_error" and "'v'" in caught.value.message


def test_cohere_pieces_fit_its_limit_and_cut_at_spaces() -> None:
    assert cohere_pieces([], "c") == [] and cohere_pieces(["", ""], "c") == []
    assert cohere_pieces(["a", "", "b c"], "c") == ["a\nb c"]
    text = "word " * 30_000
    pieces = cohere_pieces([text], "c")
    assert "".join(pieces) == text
    assert all(len(p) <= COHERE_MAX_CHARS for p in pieces) and len(pieces) == 3
    assert sum(len(p.split()) for p in pieces) == 30_000  # no word split in two
    spaceless = "x" * (COHERE_MAX_CHARS + 10)
    assert [len(p) for p in cohere_pieces([spaceless], "c")] == [COHERE_MAX_CHARS, 10]
    with pytest.raises(CountUnavailable) as caught:
        cohere_pieces(["y" * (COHERE_MAX_CHARS * COHERE_MAX_PIECES + 1)], "c")
    assert caught.value.reason == "too-long"


def test_tokenize_key_is_off_by_default_and_checked() -> None:
    base = ('[[provider]]\nname = "l"\ntype = "openai_compatible"\n'
            'base_url = "http://127.0.0.1:1/v1"\nmodels = ["m"]\n')
    default, = decode(base).provider
    chosen, = decode(base + 'tokenize = "llamacpp"\n').provider
    assert (default.tokenize, chosen.tokenize) == (None, "llamacpp")  # type: ignore[union-attr]
    with pytest.raises(msgspec.ValidationError, match="tokenize"):
        decode(base + 'tokenize = "tgi"\n')
    with pytest.raises(msgspec.ValidationError, match="tokenize"):
        decode(base.replace("openai_compatible", "openai") + 'tokenize = "vllm"\n')
