"""An in-memory transport that replays scripted responses and records the requests it got."""

from __future__ import annotations

import json
import pathlib
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import attrs

from .._timeouts import Timeouts
from ..errors import ConnectTimeoutError, TransportError
from ._base import Request, without_userinfo

__all__ = [
    "FakeResponse",
    "FakeTransport",
    "Hang",
    "Pause",
    "load_recording",
    "sse_stream",
]

_EVENT_STREAM = {"content-type": "text/event-stream; charset=utf-8"}


@attrs.frozen
class Pause:
    """A script step: wait ``seconds`` before the next chunk (ended early by ``close()``)."""

    seconds: float


@attrs.frozen
class Hang:
    """A script step: send nothing more, and keep the stream open until it is closed."""


Step = bytes | Pause | Hang | BaseException


def _check_steps(instance: object, attribute: attrs.Attribute[Any], value: Sequence[Any]) -> None:
    for step in value:
        if not isinstance(step, (bytes, Pause, Hang, BaseException)):
            raise TypeError(
                f"a FakeResponse chunk must be bytes, Pause, Hang or an exception, got {step!r}"
            )


def _steps(value: Iterable[Step]) -> tuple[Step, ...]:
    return tuple(value)


Wait = Pause | Hang | BaseException


def _check_waits(instance: object, attribute: attrs.Attribute[Any], value: Sequence[Any]) -> None:
    for step in value:
        if not isinstance(step, (Pause, Hang, BaseException)):
            raise TypeError(
                f"a FakeResponse {attribute.name} step must be Pause, Hang or an exception, "
                f"got {step!r}"
            )


@attrs.frozen
class FakeResponse:
    """A scripted response: ``status``, ``headers``, and ``chunks``, the body as a list of
    steps: ``bytes`` (one chunk), :class:`Pause`, :class:`Hang`, or an exception instance
    (raised at that point, as a broken network would).

    ``connecting`` and ``waiting`` script what ``send`` goes through before the headers, as
    :class:`Pause`, :class:`Hang` or exception steps: opening the connection (the
    ``connect`` limit applies, as to a real socket) and waiting for the headers after the
    request is out (the ``read`` limit). Both empty (the default): the headers are in at once.
    """

    status: int = 200
    headers: Mapping[str, str] = attrs.field(factory=lambda: dict(_EVENT_STREAM))
    chunks: Sequence[Step] = attrs.field(default=(), converter=_steps, validator=_check_steps)
    connecting: Sequence[Wait] = attrs.field(
        default=(), converter=_steps, validator=_check_waits, kw_only=True
    )
    waiting: Sequence[Wait] = attrs.field(
        default=(), converter=_steps, validator=_check_waits, kw_only=True
    )


class _OpenFakeResponse:
    """What :meth:`FakeTransport.send` returns: a :class:`FakeResponse` being played."""

    def __init__(self, script: FakeResponse) -> None:
        self.status = script.status
        self.headers = dict(script.headers)
        self._steps = script.chunks
        self._closed = threading.Event()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed.is_set()

    def iter_chunks(self) -> Iterator[bytes]:
        for step in self._steps:
            if self._closed.is_set():
                break
            if isinstance(step, bytes):
                if step:
                    yield step
            elif isinstance(step, Pause):
                self._closed.wait(step.seconds)
            elif isinstance(step, Hang):
                self._closed.wait()
            else:
                raise step
        if self._closed.is_set():
            raise TransportError("the response was closed while it was being read")

    def close(self) -> None:
        self._closed.set()


Responder = Callable[[Request], FakeResponse]


def _play_head(script: FakeResponse, request: Request, timeouts: Timeouts) -> None:
    """Go through the steps before the headers, as a socket would: a stop (the watch's
    stopper) breaks a wait at once, and a wait past the phase's limit is that limit."""
    watch = request.watch
    stopped = threading.Event()
    if watch is not None:
        watch.on_stop(stopped.set)
    phases = (
        ("connect", timeouts.connect, script.connecting, "could not connect within"),
        ("read", timeouts.read, script.waiting, "no response within"),
    )
    for limit, seconds, steps, says in phases:
        if watch is not None:
            watch.connecting() if limit == "connect" else watch.sent()
        deadline = None if seconds is None else time.monotonic() + seconds
        for step in steps:
            if isinstance(step, BaseException):
                raise step
            wait = None if isinstance(step, Hang) else step.seconds
            left = None if deadline is None else deadline - time.monotonic()
            if stopped.wait(wait if left is None else left if wait is None else min(wait, left)):
                raise TransportError("the request was stopped")
            if deadline is not None and time.monotonic() >= deadline:
                assert seconds is not None
                raise ConnectTimeoutError(
                    limit, seconds, "connecting", f"{says} {seconds:g} s (FakeTransport)"
                )


class FakeTransport:
    """A transport for tests: answers each request with the next scripted response.

    ``responses`` is one :class:`FakeResponse`, a list of them (one per request, in order),
    or a callable that computes a response from the :class:`~mcpconnect.transports.Request`.
    Every request is recorded in :attr:`requests`; every response handed out in
    :attr:`responses_sent` (each has ``.closed``).

    ``assert_all_used=True`` makes :meth:`close` raise ``AssertionError`` if scripted
    responses were never requested (:attr:`unused` lists them); the ``fake_transport``
    fixture closes its transport at the end of the test.
    """

    def __init__(
        self,
        responses: FakeResponse | Iterable[FakeResponse] | Responder = (),
        *,
        assert_all_used: bool = False,
    ) -> None:
        self.assert_all_used = assert_all_used
        self._lock = threading.Lock()
        self._responder: Responder | None = None
        self._queue: list[FakeResponse] = []
        if isinstance(responses, FakeResponse):
            self._queue.append(responses)
        elif callable(responses):
            self._responder = responses
        else:
            self._queue.extend(responses)
        self.requests: list[Request] = []
        self.responses_sent: list[_OpenFakeResponse] = []
        self.timeouts: list[Timeouts] = []
        self.closed = False

    def add(self, *responses: FakeResponse) -> None:
        """Queue more responses."""
        with self._lock:
            self._queue.extend(responses)

    def send(self, request: Request, timeouts: Timeouts) -> _OpenFakeResponse:
        """Record ``request`` and play the next response's ``connecting`` and ``waiting``
        steps (telling ``request.watch``, as the contract in :mod:`mcpconnect.transports`
        asks); return it once its headers are "in"."""
        with self._lock:
            self.requests.append(request)
            self.timeouts.append(timeouts)
            if self._responder is not None:
                script = self._responder(request)
            elif self._queue:
                script = self._queue.pop(0)
            else:
                raise TransportError(
                    f"FakeTransport has no response left for {request.method} "
                    f"{without_userinfo(request.url)}"
                )
        if script.connecting or script.waiting:
            _play_head(script, request, timeouts)
        response = _OpenFakeResponse(script)
        with self._lock:
            self.responses_sent.append(response)
        return response

    def close(self) -> None:
        """Mark the transport closed; the first call checks ``assert_all_used``."""
        if self.closed:
            return
        self.closed = True
        unused = self.unused
        if self.assert_all_used and unused:
            raise AssertionError(
                f"FakeTransport: {len(unused)} scripted response(s) never requested"
                f" (statuses {[r.status for r in unused]})"
            )

    @property
    def unused(self) -> list[FakeResponse]:
        """The scripted responses no request has taken yet, in order."""
        with self._lock:
            return list(self._queue)

    @property
    def last_request(self) -> Request:
        """The most recent request (``IndexError`` when there was none)."""
        return self.requests[-1]


def sse_stream(
    events: Iterable[Mapping[str, Any]],
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    then: Sequence[Step] = (),
) -> FakeResponse:
    """A response whose body is one ``data: <json>\\n\\n`` chunk per event, as Letta writes
    them, followed by the steps in ``then`` (``[Hang()]`` for a server that goes silent)."""
    chunks: list[Step] = [f"data: {json.dumps(dict(e))}\n\n".encode() for e in events]
    chunks.extend(then)
    return FakeResponse(status, dict(headers or _EVENT_STREAM), chunks)


def load_recording(path: str | pathlib.Path, *, chunk_size: int | None = None) -> FakeResponse:
    """A response replaying a recorded body file such as ``tests/fixtures/letta-0.16.8/X.txt``.

    Status and headers come from ``X.headers.txt`` beside it when present (else 200 and an
    event stream). When ``X.status.txt`` says the recording client gave up while the server
    held the stream open (``curl_rc=28``), the replay ends in :class:`Hang`, as the server did.
    ``chunk_size`` splits the body into chunks of that size (default: one chunk).
    """
    body_path = pathlib.Path(path)
    stem = body_path.name[: -len(".txt")] if body_path.name.endswith(".txt") else body_path.name
    body = body_path.read_bytes()
    status, headers = 200, dict(_EVENT_STREAM)
    head_path = body_path.with_name(stem + ".headers.txt")
    if head_path.exists():
        status, headers = _parse_head(head_path.read_text("latin-1"))
    size = chunk_size or max(len(body), 1)
    steps: list[Step] = [body[i : i + size] for i in range(0, len(body), size)]
    status_path = body_path.with_name(stem + ".status.txt")
    if status_path.exists() and "curl_rc=28" in status_path.read_text():
        steps.append(Hang())
    return FakeResponse(status, headers, steps)


def _parse_head(text: str) -> tuple[int, dict[str, str]]:
    lines = [line for line in text.splitlines() if line.strip()]
    status = int(lines[0].split()[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.lower() not in ("transfer-encoding", "content-length"):
            headers[name.strip().lower()] = value.strip()
    return status, headers
