"""Transports: how mcpconnect sends its one HTTP request and reads the body as it arrives.

``Urllib3Transport`` is the default; ``FakeTransport`` replays scripted responses for tests.
Any object with ``send(request, timeouts)`` and ``close()`` will do (see :class:`Transport`).
``Urllib3Transport`` is imported on first use, so this package works without urllib3.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._base import Request, Response, Transport, header
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
