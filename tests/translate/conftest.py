"""The translator twin a MessagesStreamTranslator test module runs on, one module at a time."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from modelmux.translate import messages_stream as pure_twin
from tests.translate import use_translator
from tests.twins import import_twin, twin_params


@pytest.fixture(scope="module", params=twin_params("messages_stream", pure_twin.__name__))
def messages_twin(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run the tests of a module that uses it on each twin (module scope: hypothesis allows no
    other); the value is the twin's module name."""
    use_translator(import_twin(request.param).MessagesStreamTranslator)
    yield request.param
    use_translator(pure_twin.MessagesStreamTranslator)
