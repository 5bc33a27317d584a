"""The mock provider's lazy slicing of ``text * repeat`` into ``chunks`` pieces."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from modelmux.config.providers import MockProviderConfig
from modelmux.providers.mock import MockProvider


@settings(max_examples=200, deadline=None)
@given(text=st.text(min_size=1, max_size=20), repeat=st.integers(0, 30), chunks=st.integers(1, 50))
def test_pieces_concatenate_to_the_answer(text: str, repeat: int, chunks: int) -> None:
    provider = MockProvider(MockProviderConfig(name="m", models=["m"], text=text, repeat=repeat, chunks=chunks))
    pieces = [provider.piece(i) for i in range(chunks)]
    assert "".join(pieces) == text * repeat
    sizes = [len(p) for p in pieces]
    assert max(sizes) - min(sizes) <= 1
