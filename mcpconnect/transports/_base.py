"""The transport interface: one HTTP request in, status, headers and body chunks out.

The contract every transport keeps is in the docstring of :mod:`mcpconnect.transports`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol, runtime_checkable

import attrs

from .._timeouts import Timeouts
from ..errors import without_userinfo

__all__ = [
    "Request", "Response", "SendWatch", "Transport", "header", "where", "without_userinfo",
]

_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key"})
# The user-info of URLs anywhere in a text: from "//" to the last "@" before the host ends.


def _redacted(headers: Mapping[str, str]) -> str:
    shown = {k: ("***" if k.lower() in _SECRET_HEADERS else v) for k, v in headers.items()}
    return repr(shown)


class SendWatch(Protocol):
    """What a connect gives its transport as ``request.watch`` (see the module docstring).

    All three methods are called by the transport from the thread that runs ``send``.
    """

    def connecting(self) -> None:
        """A new connection is being opened: the ``connect`` limit counts until
        :meth:`sent`, the ``read`` limit does not."""

    def sent(self) -> None:
        """The request is out: the wait for the headers is the ``read`` limit's."""

    def on_stop(self, stopper: Callable[[], object]) -> None:
        """Call ``stopper()`` (from another thread, perhaps more than once, perhaps at
        once if the connect was already stopped) to break the send; it must not block.
        A later call replaces the stopper."""


@attrs.frozen
class Request:
    """One HTTP request. The ``repr`` hides the values of secret headers and the URL's
    user-info.

    ``watch`` is set by a connect (see :class:`SendWatch`); it is not part of the request's
    value (equality and ``repr`` ignore it)."""

    method: str
    url: str = attrs.field(repr=lambda url: repr(without_userinfo(url)))
    headers: Mapping[str, str] = attrs.field(factory=dict, repr=_redacted)
    body: bytes | None = attrs.field(default=None, repr=lambda b: f"<{len(b or b'')} bytes>")
    watch: SendWatch | None = attrs.field(default=None, repr=False, eq=False, kw_only=True)

    def json(self) -> Any:
        """The body parsed as JSON (``None`` when there is no body)."""
        return None if self.body is None else json.loads(self.body)


@runtime_checkable
class Response(Protocol):
    """An open response. ``headers`` is a mapping of header names to values (look names up
    with :func:`header`, which ignores case). ``iter_chunks()`` yields body bytes as they
    arrive (never an empty chunk) and ends at the end of the body. ``close()`` may be called
    from any thread, also while another thread is blocked in ``iter_chunks()``: it must make
    that read end promptly (by an exception or by ending the iteration)."""

    @property
    def status(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    def iter_chunks(self) -> Iterator[bytes]: ...

    def close(self) -> None: ...


@runtime_checkable
class Transport(Protocol):
    """Opens HTTP requests: see the contract in :mod:`mcpconnect.transports`. ``send``
    returns once the status and headers are in; ``close()`` releases pooled connections."""

    def send(self, request: Request, timeouts: Timeouts) -> Response: ...

    def close(self) -> None: ...


def where(url: str) -> str:
    """The URL without credentials, query or fragment: safe to put in a message.
    Never raises, also for a malformed URL."""
    scheme, sep, rest = str(url).partition("://")
    if not sep:
        scheme, rest = "", scheme
    rest = re.split(r"[?#]", rest, maxsplit=1)[0]
    netloc, slash, path = rest.partition("/")
    host = netloc.rpartition("@")[2]
    return f"{scheme}{sep}{host}{slash}{path}"


def header(headers: Mapping[str, str], name: str) -> str | None:
    """The value of header ``name`` (any case), or ``None``."""
    value = headers.get(name)
    if value is not None:
        return value
    name = name.lower()
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None
