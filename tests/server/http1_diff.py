"""The differential check shared by the hypothesis test and the atheris target (fuzz/).

``check(data, points)``: the fast twins give identical events for ``data`` fed whole and cut at
``points``; h11 (the reference) accepts whatever they accept with the same events, and they
reject more than h11 only on the documented smuggling vectors.
"""

from __future__ import annotations

import importlib
from typing import Any

from modelmux import _accel
from modelmux.http1.common import END, NEED_DATA, PAUSED, HTTP1ProtocolError, RequestHead
from modelmux.http1.server_h11 import H11Connection

MAX_HEAD = 1 << 20


def twins() -> list[Any]:
    """The pure twin and the native one when it is built (it must be, if native is required)."""
    found = [importlib.import_module("modelmux.http1._server_py").ServerConnection]
    if not _accel.pure_forced() and (_accel.native_required() or _accel.native_available("http1")):
        found.append(importlib.import_module("modelmux._speedups.http1").ServerConnection)
    return found


def trace(cls: Any, pieces: list[bytes]) -> list[object]:
    """Events as comparable values: head fields, joined body, END, PAUSED, or ("error", status)."""
    conn = cls(MAX_HEAD)
    out: list[object] = []
    try:
        for piece in pieces:
            conn.receive_data(piece)
            while True:
                event = conn.next_event()
                if event is NEED_DATA:
                    break
                if event is PAUSED:
                    out.append("PAUSED")
                    return out
                if isinstance(event, RequestHead):
                    out.append((event.method, event.target, event.http_version, event.headers,
                                event.content_length, event.chunked, event.keep_alive,
                                event.expect_continue))
                elif event is END:
                    out.append("END")
                elif out and type(out[-1]) is bytes:
                    out[-1] += event  # type: ignore[operator]
                else:
                    out.append(bytes(event))  # type: ignore[call-overload]
    except HTTP1ProtocolError as exc:
        out.append(("error", exc.status))
    return out


def failed(result: list[object]) -> bool:
    return bool(result) and isinstance(result[-1], tuple) and result[-1][0] == "error"


def documented_divergence(data: bytes, h11_result: list[object]) -> bool:
    """h11 accepted what the fast path rejects on purpose."""
    if b"\n " in data or b"\n\t" in data:
        return True  # obs-fold
    head = h11_result[0] if h11_result else None
    if isinstance(head, tuple) and len(head) == 8:
        names = [name for name, _ in head[3]]
        if head[2] not in (b"1.0", b"1.1"):
            return True
        if b"transfer-encoding" in names and b"content-length" in names:
            return True
    return False


def cuts(data: bytes, points: list[int]) -> list[bytes]:
    bounds = sorted({0, len(data), *(p % (len(data) + 1) for p in points)})
    return [data[a:b] for a, b in zip(bounds, bounds[1:])] or [b""]


def check(data: bytes, points: list[int]) -> None:
    """The invariant above; raises AssertionError with the evidence when it does not hold."""
    classes = twins()
    whole = [trace(cls, [data]) for cls in classes]
    cut = [trace(cls, cuts(data, points)) for cls in classes]
    assert all(r == whole[0] for r in whole + cut), (data, whole, cut)
    ours, ref = whole[0], trace(H11Connection, [data])
    if failed(ref):
        if ref[:-1] and ref[-2] == "END" and ours[len(ref) - 1:] == ["PAUSED"]:
            return  # h11 errors on bytes after a Connection: close request; we hold them
        assert failed(ours), (data, ours, ref)
        assert ours[:-1] == ref[:len(ours) - 1], (data, ours, ref)
    elif failed(ours):
        assert documented_divergence(data, ref), (data, ours, ref)
    else:
        assert ours == ref, (data, ours, ref)
