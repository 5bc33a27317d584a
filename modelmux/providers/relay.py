"""The stream interfaces of a provider: ``Relay`` converts its stream format, sans-I/O, and a
``Spliceable`` is one try's stream as the provider describes it, for the call stage to open,
relay and splice (``pipeline.stream``). Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Protocol

from modelmux.errors import ModelMuxError
from modelmux.upstream.response import Response


class Relay(Protocol):
    """Sans-I/O stream conversion: upstream body bytes in, SSE-framed client chunks out.

    ``early_error`` is set (and nothing is returned) when the stream failed before producing
    anything, so the caller can still answer with a status or retry; ``finished`` once the
    terminal chunk (``[DONE]`` or an error event) was returned; ``usage`` once the upstream
    reported its token counts. A relay whose clients speak another format than OpenAI's may
    have ``error_frame(error) -> bytes``: the frame that ends its stream after a failure.
    """

    early_error: ModelMuxError | None

    @property
    def started(self) -> bool: ...

    @property
    def finished(self) -> bool: ...

    @property
    def usage(self) -> tuple[int, int] | None:
        """(input, output) tokens (``base.Tokens``), once the upstream reported them."""
        ...

    def feed(self, data: bytes) -> list[bytes]: ...

    def close(self) -> list[bytes]: ...


class Spliceable(Protocol):
    """A provider's stream the call stage can splice to the client (``pipeline.stream``): its
    endpoint profile opens the try's request, its relay factory reads the answer's format.
    Nothing is sent before ``open``; what the try costs goes on its call's stats."""

    def new_relay(self) -> Relay:
        """A fresh relay for the answer's stream format (the relay factory)."""
        ...

    @property
    def provider(self) -> str:
        """The provider's name, for log lines."""
        ...

    def open(self) -> Awaitable[Response]:
        """Send the request (URL, auth, body) and return the 2xx answer head.

        Raises:
            ModelMuxError: as ``transport.ProviderClient.post``.
        """
        ...
