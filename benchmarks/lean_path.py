"""What the unavoidable work of a non-streamed chat completion costs, with no layers around it.

Run: ``python benchmarks/lean_path.py [--requests 20000]``. Against ``macro.py``'s nginx mock
(JSON answer, CPU 1), a callback-driven relay on CPU 0 does, per request, only what any
OpenAI-compatible gateway must, with ModelMux's own parts: the HTTP/1.1 request head and body
(the native server parser), the request decoded and checked (``decode_request``), the model
renamed in the upstream body (``upstream_body``), the upstream request framed and its
response parsed (the native client parser, one kept-alive upstream connection per client
connection), the answer's ``model`` renamed back and its usage read (msgspec), and the
response framed with a request id and a Date header. No task, no coroutine, no routing,
metrics or access log. Set against ``floor_relay.py`` (bytes only) and ``macro.py``'s CPU
per request (the whole gateway), it splits ModelMux's cost into the unavoidable work and the
layers around it. A measuring tool, not a gateway: one request at a time per connection, no
error handling beyond closing. Not a pytest test.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from email.utils import formatdate
from pathlib import Path

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import nginx  # noqa: E402
from benchmarks.floor_relay import measure_relay  # noqa: E402
from modelmux.api.chat import decode_request  # noqa: E402
from modelmux.api.ids import new_hex_id  # noqa: E402
from modelmux.http1.client import client_parser  # noqa: E402
from modelmux.http1.common import END, NEED_DATA, RequestHead  # noqa: E402
from modelmux.http1.server import ServerConnection  # noqa: E402
from modelmux.providers.base import usage_from  # noqa: E402
from modelmux.providers.openai_compatible import upstream_body  # noqa: E402

_fields = msgspec.json.Decoder(dict[str, msgspec.Raw])
_encode = msgspec.json.Encoder().encode


class _Back(asyncio.Protocol):
    """The upstream connection: parses the response and hands the whole answer back."""

    def __init__(self, front: _Front) -> None:
        self.front = front
        self.parser = client_parser("fast", 65536)
        self.parts: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        parser = self.parser
        parser.receive_data(data)
        while True:
            event = parser.next_event()
            if event is NEED_DATA:
                return
            if type(event) is bytes:
                self.parts.append(event)
            elif event is END:
                body = b"".join(self.parts)
                self.parts.clear()
                parser.start_next_cycle()
                self.front.answer(body)
                return


class _Front(asyncio.Protocol):
    """The client connection: request in, upstream request out, answer back."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.conn = ServerConnection(65536)
        self.back: _Back | None = None
        self.head: RequestHead | None = None
        self.body: list[bytes] = []
        self.model = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        asyncio.get_running_loop().create_task(self._dial())

    async def _dial(self) -> None:
        loop = asyncio.get_running_loop()
        _, self.back = await loop.create_connection(lambda: _Back(self), self.host, self.port)
        self._process()

    def data_received(self, data: bytes) -> None:
        self.conn.receive_data(data)
        if self.back is not None:
            self._process()

    def _process(self) -> None:
        conn = self.conn
        while True:
            event = conn.next_event()
            if event is NEED_DATA:
                return
            if type(event) is bytes:
                self.body.append(event)
            elif event is END:
                self._forward(b"".join(self.body))
                self.body.clear()
                return
            else:
                self.head = event  # type: ignore[assignment]

    def _forward(self, raw: bytes) -> None:
        request = decode_request(raw)
        self.model = request.model
        sent = upstream_body(raw, sent_model=request.model, sent_stream=bool(request.stream),
                             model=request.model, stream=False)
        headers = [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
                   (b"content-length", b"%d" % len(sent))]
        assert self.back is not None
        self.back.transport.write(self.back.parser.send_request(
            b"POST", b"/v1/chat/completions", headers, sent))

    def answer(self, body: bytes) -> None:
        fields = _fields.decode(body)
        fields["model"] = msgspec.Raw(_encode(self.model))
        usage = fields.get("usage")
        if usage is not None:
            usage_from(usage)  # the gateway counts tokens: the decode is part of the work
        out = _encode(fields)
        headers = [(b"content-type", b"application/json"),
                   (b"x-request-id", new_hex_id().encode()),
                   (b"date", formatdate(int(time.time()), usegmt=True).encode()),
                   (b"content-length", b"%d" % len(out))]
        self.transport.write(self.conn.send_response(200, headers, end=True, body=out))
        self.conn.start_next_cycle()
        self._process()


async def serve(port: int, upstream_port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Front("127.0.0.1", upstream_port), "127.0.0.1",
                                      port)
    await server.serve_forever()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--serve", type=int, nargs=2, help=argparse.SUPPRESS)  # the relay
    ns = parser.parse_args()
    if ns.serve:
        import uvloop

        uvloop.run(serve(*ns.serve))
        return 0
    if nginx.binary() is None:
        print("needs nginx (apt-get install -y nginx)", file=sys.stderr)
        return 2
    measure_relay(__file__, ns.requests)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
