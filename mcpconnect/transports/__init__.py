"""Transports: how mcpconnect sends its one HTTP request and reads the body as it arrives.

``Urllib3Transport`` is the default; ``FakeTransport`` replays scripted responses for tests.
Any object with ``send(request, timeouts)`` and ``close()`` will do (see :class:`Transport`)
if it keeps this contract, so that ``cancel`` and every limit work through it exactly as
through the built-in ones (:class:`mcpconnect.testing.TransportContract` checks it):

1. ``send(request, timeouts)`` returns once the status line and the headers are in. It raises
   :class:`~mcpconnect.ConnectTimeoutError` with ``limit="connect"`` when opening the
   connection (TCP, TLS handshake, proxy tunnel) takes longer than ``timeouts.connect``, with
   ``limit="read"`` when the headers do not come within ``timeouts.read`` of sending the
   request, and :class:`~mcpconnect.TransportError` (or any :class:`OSError`) when the
   network fails. It follows no redirects.
2. When ``request.watch`` is not ``None`` (the request comes from a connect), ``send`` tells
   it what it is doing and how to break it: ``watch.on_stop(stopper)`` with a function that,
   called from another thread, makes whatever ``send`` is blocked in (DNS excepted) fail at
   once; ``watch.connecting()`` before it opens a new connection (not for a pooled one);
   ``watch.sent()`` once the request is out. Any error ``send`` raises after a stop is
   fine: the connect raises the reason of the stop (``ConnectCancelledError``, a
   ``ConnectTimeoutError``) instead. A transport that ignores ``request.watch`` still
   works, but cancel and the limits then reach it only after the headers.
3. The :class:`Response`'s ``iter_chunks()`` yields each chunk as soon as it arrives, and
   ``close()`` from another thread ends a blocked ``iter_chunks()`` promptly. Failures while
   reading are :class:`~mcpconnect.TransportError` (or :class:`OSError`).
4. ``close()`` on the transport releases its pooled connections; no socket outlives it.

``Urllib3Transport`` is imported on first use, so this package works without urllib3.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._base import Request, Response, SendWatch, Transport, header
from ._fake import FakeResponse, FakeTransport, Hang, Pause, load_recording, sse_stream

if TYPE_CHECKING:
    from ._urllib3 import Urllib3Transport

__all__ = [
    "FakeResponse",
    "FakeTransport",
    "Hang",
    "Pause",
    "Request",
    "Response",
    "SendWatch",
    "Transport",
    "Urllib3Transport",
    "header",
    "load_recording",
    "sse_stream",
]


def __getattr__(name: str) -> Any:
    if name == "Urllib3Transport":
        from ._urllib3 import Urllib3Transport

        return Urllib3Transport
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
