"""Real loopback servers for testing HTTP clients: scripted HTTP/1.1, TLS, a forward proxy.

Theory of operation
-------------------
A :class:`ScriptedServer` listens on ``127.0.0.1:0``. Each accepted connection gets a daemon
thread that reads a request (request line, headers, body by ``Content-Length`` or chunked),
records it, picks a *script* and runs it. A script is a list of steps; each step writes bytes
(:class:`Status`, :class:`Chunk`, :class:`Raw`, :class:`End`), waits (:class:`Pause`,
:class:`WaitFor`, :class:`HoldOpen`) or ends the connection (:class:`Close`). After each step
the server appends a :class:`SendRecord` (a global sequence number and ``time.monotonic()``),
so a test can prove the order in which things happened without ever measuring a duration.

When a script runs out of steps without closing, the connection stays open for a further
request (keep-alive), until the client closes it, the idle timeout runs out, or the server
stops. Whenever the server sees EOF or an error reading from the client, it sets
:attr:`ServerConnection.client_closed`; the waiting steps watch for that too, and end the
script early when the client goes away.

Every loop polls in short slices and checks the server's stop flag, every wait has a deadline,
and :meth:`ScriptedServer.stop` shuts down every socket (which wakes blocked calls) and joins
the threads. Nothing here can keep the test process alive: all threads are daemons.

The module also offers TLS (:class:`LoopbackCA`, built on ``trustme``), a forward proxy
(:class:`ForwardProxy`: absolute-URI requests and ``CONNECT`` tunnels, loopback targets only),
redirects (:func:`redirect_script`), socket counting for leak tests
(:func:`open_socket_count`, :func:`wait_for_socket_count`) and pytest fixtures.
"""

from __future__ import annotations

import contextlib
import gc
import http
import ipaddress
import itertools
import json
import os
import select
import socket
import ssl
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import trustme

__all__ = [
    "Chunk",
    "Close",
    "End",
    "ForwardProxy",
    "HoldOpen",
    "LoopbackCA",
    "Pause",
    "Raw",
    "RecordedRequest",
    "Script",
    "ScriptSource",
    "ScriptedServer",
    "SendRecord",
    "ServerConnection",
    "ServerFactory",
    "Status",
    "Step",
    "WaitFor",
    "forward_proxy",
    "loopback_ca",
    "open_socket_count",
    "redirect_script",
    "scripted_server",
    "server_factory",
    "socket_baseline",
    "sse_chunk",
    "sse_script",
    "tls_server",
    "wait_for_socket_count",
]

HOST = "127.0.0.1"
POLL = 0.02  # seconds: how often a blocked loop looks at the stop flag
MAX_HEAD = 64 * 1024
MAX_BODY = 16 * 1024 * 1024


# --------------------------------------------------------------------------------------------
# Steps
# --------------------------------------------------------------------------------------------


@dataclass(eq=False)
class Status:
    """Write a status line and headers (and ``body``, if given, with its Content-Length).

    Unless ``defaults=False``, a response without ``body`` gets ``Transfer-Encoding: chunked``
    and ``content-type: text/event-stream; charset=utf-8``; a response with ``body`` gets
    ``Content-Length``. A default is skipped when ``headers`` already name that header.
    """

    code: int
    headers: Sequence[tuple[str, str]] = ()
    body: bytes | None = None
    reason: str | None = None
    defaults: bool = True

    @classmethod
    def json(cls, code: int, obj: Any, headers: Sequence[tuple[str, str]] = ()) -> Status:
        """A complete JSON response (``application/json``, Content-Length)."""
        return cls(
            code,
            headers=[("content-type", "application/json"), *headers],
            body=json.dumps(obj).encode(),
        )

    @classmethod
    def redirect(cls, location: str, code: int = 302) -> Status:
        """A complete redirect response with ``Location`` and an empty body."""
        return cls(code, headers=[("Location", location)], body=b"")

    def render(self) -> bytes:
        names = {name.lower() for name, _ in self.headers}
        headers = list(self.headers)
        if self.defaults:
            if self.body is None:
                if "transfer-encoding" not in names and "content-length" not in names:
                    headers.append(("Transfer-Encoding", "chunked"))
                if "content-type" not in names:
                    headers.append(("content-type", "text/event-stream; charset=utf-8"))
            elif "content-length" not in names and "transfer-encoding" not in names:
                headers.append(("Content-Length", str(len(self.body))))
        reason = self.reason
        if reason is None:
            try:
                reason = http.HTTPStatus(self.code).phrase
            except ValueError:
                reason = "Unknown"
        head = f"HTTP/1.1 {self.code} {reason}\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in headers)
        return head.encode("latin-1") + b"\r\n" + (self.body or b"")


@dataclass(eq=False)
class Chunk:
    """One HTTP/1.1 chunk, sent in one write. ``Chunk(b"")`` is the terminating chunk."""

    data: bytes

    def render(self) -> bytes:
        return b"%x\r\n%s\r\n" % (len(self.data), self.data)


@dataclass(eq=False)
class Raw:
    """Bytes exactly as given (for broken framing, non-chunked bodies, partial chunks)."""

    data: bytes

    def render(self) -> bytes:
        return self.data


@dataclass(eq=False)
class End:
    """The terminating ``0`` chunk of a chunked body."""

    def render(self) -> bytes:
        return b"0\r\n\r\n"


@dataclass(eq=False)
class Pause:
    """Send nothing for ``seconds`` (ends early if the server stops or the client closes)."""

    seconds: float


@dataclass(eq=False)
class WaitFor:
    """Block until the test sets ``event``.

    Ends the script early if the server stops, the client closes, or ``timeout`` runs out (the
    last is recorded in :attr:`ScriptedServer.errors` and the connection is reset).
    """

    event: threading.Event
    timeout: float = 30.0


@dataclass(eq=False)
class Close:
    """Close the connection: FIN by default, RST (``SO_LINGER`` 0) with ``reset=True``."""

    reset: bool = False


@dataclass(eq=False)
class HoldOpen:
    """Keep the connection open, sending nothing, until the client closes it or the server
    stops (or ``timeout`` runs out, then the server closes it). Ends the script."""

    timeout: float = 60.0


Step = Status | Chunk | Raw | End | Pause | WaitFor | Close | HoldOpen
Script = Sequence[Step]


def sse_chunk(event: Any, *, event_name: str | None = None) -> Chunk:
    """A chunk holding one SSE event: ``data: <json>\\n\\n`` (after ``event: <name>\\n``)."""
    prefix = f"event: {event_name}\n" if event_name is not None else ""
    return Chunk(f"{prefix}data: {json.dumps(event)}\n\n".encode())


def sse_script(*events: Any, end: bool = True) -> list[Step]:
    """``200`` event stream with one chunk per event, then the terminating chunk if ``end``."""
    steps: list[Step] = [Status(200)]
    steps.extend(sse_chunk(event) for event in events)
    if end:
        steps.append(End())
    return steps


def redirect_script(location: str, code: int = 302) -> list[Step]:
    """A script answering with a redirect (302, 307, ...) to ``location``."""
    return [Status.redirect(location, code)]


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------


@dataclass
class RecordedRequest:
    """A request as the server read it."""

    method: str
    target: str  # as on the request line (origin form, or absolute form via a proxy)
    path: str  # path and query, also when the target was in absolute form
    version: str
    headers: list[tuple[str, str]]
    body: bytes
    connection_id: int
    received_at: float  # time.monotonic()

    def header(self, name: str, default: str | None = None) -> str | None:
        """The value of header ``name`` (case-insensitive), repeated values joined by ", "."""
        return self.header_map.get(name.lower(), default)

    @property
    def header_map(self) -> dict[str, str]:
        """Headers with lower-cased names; repeated headers joined by ``", "``."""
        out: dict[str, str] = {}
        for name, value in self.headers:
            key = name.lower()
            out[key] = f"{out[key]}, {value}" if key in out else value
        return out

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class SendRecord:
    """One step the server carried out: ``seq`` orders all steps of a server.

    The record is appended just *after* the step's bytes were written, so a client may see
    the bytes a moment before the record exists: use :meth:`ScriptedServer.wait_for_step`
    rather than :meth:`ScriptedServer.record_of` once the client has read them.
    """

    seq: int
    started_at: float  # time.monotonic() before the step began (before its first byte)
    at: float  # time.monotonic() once the step's bytes were written (or its wait ended)
    step: Step
    index: int  # position of the step in its script
    connection_id: int
    request_index: int  # index into ScriptedServer.requests of the request being answered


@dataclass(eq=False)
class ServerConnection:
    """One accepted connection, as the server saw it."""

    id: int
    sock: socket.socket
    client_closed: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    closed_by_server: bool = False
    reset_by_server: bool = False
    error: str | None = None
    buffer: bytearray = field(default_factory=bytearray)


# --------------------------------------------------------------------------------------------
# Socket helpers (shared by the server and the proxy)
# --------------------------------------------------------------------------------------------


class _Stopped(Exception):
    pass


class _ClientGone(Exception):
    pass


def _reset(sock: socket.socket) -> None:
    """Close with RST rather than FIN."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _recv_some(sock: socket.socket, timeout: float = POLL) -> bytes | None:
    """Up to 64 KiB, ``b""`` at EOF or on error, ``None`` when nothing came within ``timeout``."""
    try:
        sock.settimeout(timeout)
        return sock.recv(65536)
    except (TimeoutError, ssl.SSLWantReadError):
        return None
    except (OSError, ValueError):
        return b""


def _split_head(
    buffer: bytearray,
) -> tuple[str, list[tuple[str, str]]] | None:
    """Take a complete request head out of ``buffer``: (request line, headers), or ``None``."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        if len(buffer) > MAX_HEAD:
            raise ValueError("request head too long")
        return None
    head = bytes(buffer[:end]).decode("latin-1")
    del buffer[: end + 4]
    line, *rest = head.split("\r\n")
    headers = []
    for raw in rest:
        name, sep, value = raw.partition(":")
        if not sep:
            raise ValueError(f"bad header line {raw!r}")
        headers.append((name.strip(), value.strip()))
    return line, headers


def _parse_hostport(hostport: str, default_port: int) -> tuple[str, int]:
    if hostport.startswith("["):
        host, _, rest = hostport[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = hostport.partition(":")
    return host, int(port) if port else default_port


def _is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP literals; never resolves a name."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Listener:
    """A listening socket with an accept thread; ``handle`` runs in a thread per connection."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._sockets: set[socket.socket] = set()
        self._listen: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self.errors: list[str] = []
        self.port = 0

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def _start(self) -> None:
        if self._listen is not None:
            raise RuntimeError(f"{self._name} already started")
        listen = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listen.bind((HOST, 0))
        listen.listen(64)
        self._listen = listen
        self.port = listen.getsockname()[1]
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name=f"{self._name}-accept", daemon=True
        )
        self._accept_thread.start()

    def _accept_loop(self) -> None:
        listen = self._listen
        assert listen is not None
        while not self._stopping.is_set():
            try:
                readable, _, _ = select.select([listen], [], [], POLL * 5)
                if not readable:
                    continue
                sock, _ = listen.accept()
            except (OSError, ValueError):
                return  # listening socket closed by stop()
            with self._lock:
                if self._stopping.is_set():
                    sock.close()
                    return
                self._sockets.add(sock)
                thread = threading.Thread(
                    target=self._run_handler, args=(sock,), name=f"{self._name}-conn", daemon=True
                )
                self._threads.append(thread)
            thread.start()

    def _run_handler(self, sock: socket.socket) -> None:
        try:
            self._handle(sock)
        except _Stopped:
            pass
        except Exception as exc:
            self._error(f"{type(exc).__name__}: {exc}")
        finally:
            self._forget(sock)
            sock.close()

    def _handle(self, sock: socket.socket) -> None:
        raise NotImplementedError

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)
        if self._stopping.is_set():
            _shutdown(sock)

    def _forget(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)

    def _error(self, message: str) -> None:
        with self._lock:
            self.errors.append(message)

    def stop(self, timeout: float = 5.0) -> None:
        """Close the listener and every connection; join the threads (bounded by ``timeout``)."""
        self._stopping.set()
        if self._listen is not None:
            _shutdown(self._listen)  # wakes the accept loop's select() at once on Linux
        if self._accept_thread is not None:
            self._accept_thread.join(timeout)
        if self._listen is not None:
            self._listen.close()
        with self._lock:
            sockets = list(self._sockets)
            threads = list(self._threads)
        for sock in sockets:
            _shutdown(sock)  # wakes any thread blocked on it
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        for sock in sockets:
            sock.close()

    def _read_head(
        self, sock: socket.socket, buffer: bytearray, timeout: float
    ) -> tuple[str, list[tuple[str, str]]] | None:
        """Read a request head; ``None`` if the peer closed (or went idle) before one came."""
        deadline = time.monotonic() + timeout
        while True:
            head = _split_head(buffer)
            if head is not None:
                return head
            if self._stopping.is_set():
                raise _Stopped
            if time.monotonic() > deadline:
                return None
            data = _recv_some(sock)
            if data == b"":
                return None
            if data:
                buffer += data


# --------------------------------------------------------------------------------------------
# ScriptedServer
# --------------------------------------------------------------------------------------------

ScriptSource = Script | Callable[[RecordedRequest], Script]

_NO_SCRIPT: Script = (Status.json(500, {"detail": "ScriptedServer: no script configured"}),)


class ScriptedServer(_Listener):
    """A raw-socket HTTP/1.1 server that answers each request by running a script.

    ``script`` is the default: a list of steps, or a callable from the
    :class:`RecordedRequest` to a list of steps. Scripts given to :meth:`enqueue` are used
    first, one per request, in order. Pass ``ssl_context`` (a server-side context, see
    :meth:`LoopbackCA.server_context`) to speak TLS; :attr:`url` is then ``https://``.
    """

    def __init__(
        self,
        script: ScriptSource | None = None,
        *,
        ssl_context: ssl.SSLContext | None = None,
        idle_timeout: float = 30.0,
        send_timeout: float = 10.0,
    ) -> None:
        super().__init__("scripted-server")
        self.script: ScriptSource = script if script is not None else _NO_SCRIPT
        self.ssl_context = ssl_context
        self.idle_timeout = idle_timeout
        self.send_timeout = send_timeout
        self._queue: deque[ScriptSource] = deque()
        self._requests: list[RecordedRequest] = []
        self._sends: list[SendRecord] = []
        self._connections: list[ServerConnection] = []
        self._seq = itertools.count()
        self._changed = threading.Condition(self._lock)

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> ScriptedServer:
        self._start()
        return self

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (``https://`` with TLS), without a trailing slash."""
        if not self.port:
            raise RuntimeError("server not started")
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{HOST}:{self.port}"

    # -- scripting -----------------------------------------------------------------------------

    def enqueue(self, *scripts: ScriptSource) -> None:
        """Use these scripts for the next requests, one each, before the default script."""
        with self._lock:
            self._queue.extend(scripts)

    def _script_for(self, request: RecordedRequest) -> Script:
        with self._lock:
            source = self._queue.popleft() if self._queue else self.script
        return source(request) if callable(source) else source

    # -- records -------------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request read so far, in order of arrival (a copy)."""
        with self._lock:
            return list(self._requests)

    @property
    def sends(self) -> list[SendRecord]:
        """Every step carried out so far, in order (a copy)."""
        with self._lock:
            return list(self._sends)

    @property
    def connections(self) -> list[ServerConnection]:
        """Every accepted connection, in order of acceptance (a copy)."""
        with self._lock:
            return list(self._connections)

    def record_of(self, step: Step) -> SendRecord | None:
        """The record of this very step object (by identity), or ``None`` if not yet done."""
        with self._lock:
            return next((r for r in self._sends if r.step is step), None)

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """Wait until ``count`` requests arrived; return them all. Raises ``TimeoutError``."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._requests) >= count, timeout):
                raise TimeoutError(f"{len(self._requests)} of {count} requests arrived")
            return list(self._requests)

    def wait_for_step(self, step: Step, timeout: float = 5.0) -> SendRecord:
        """Wait until this step object was carried out. Raises ``TimeoutError``."""
        with self._changed:
            found = self._changed.wait_for(
                lambda: any(r.step is step for r in self._sends), timeout
            )
            if not found:
                raise TimeoutError(f"step {step!r} was not carried out")
            return next(r for r in self._sends if r.step is step)

    def wait_for_connection(self, index: int = 0, timeout: float = 5.0) -> ServerConnection:
        """Wait until connection number ``index`` (from 0) was accepted."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._connections) > index, timeout):
                raise TimeoutError(f"connection {index} was not accepted")
            return self._connections[index]

    # -- connection handling -------------------------------------------------------------------

    def _handle(self, sock: socket.socket) -> None:
        with self._changed:
            conn = ServerConnection(id=len(self._connections), sock=sock)
            self._connections.append(conn)
            self._changed.notify_all()
        try:
            if self.ssl_context is not None:
                conn.sock = self._tls_handshake(sock)
            self._serve(conn)
        except _Stopped:
            pass
        except ConnectionError as exc:  # the client left in the middle of a request
            conn.client_closed.set()
            conn.error = f"{type(exc).__name__}: {exc}"
        except Exception as exc:
            conn.error = f"{type(exc).__name__}: {exc}"
            self._error(f"connection {conn.id}: {conn.error}")
            _reset(conn.sock)
            conn.closed_by_server = conn.reset_by_server = True
        finally:
            conn.sock.close()
            self._forget(conn.sock)
            conn.done.set()

    def _tls_handshake(self, sock: socket.socket) -> ssl.SSLSocket:
        assert self.ssl_context is not None
        self._forget(sock)
        tls = self.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        self._track(tls)
        tls.settimeout(self.send_timeout)
        tls.do_handshake()
        return tls

    def _serve(self, conn: ServerConnection) -> None:
        while True:
            request = self._read_request(conn)
            if request is None:
                conn.client_closed.set()
                return
            with self._changed:
                request_index = len(self._requests)
                self._requests.append(request)
                self._changed.notify_all()
            script = self._script_for(request)
            if not self._run(conn, script, request_index):
                return

    def _read_request(self, conn: ServerConnection) -> RecordedRequest | None:
        head = self._read_head(conn.sock, conn.buffer, self.idle_timeout)
        if head is None:
            return None
        line, headers = head
        received_at = time.monotonic()
        method, target, version = line.split(" ", 2)
        lower = {name.lower(): value for name, value in headers}
        if "chunked" in lower.get("transfer-encoding", "").lower():
            body = self._read_chunked_body(conn)
        else:
            body = self._read_exactly(conn, int(lower.get("content-length", "0")))
        if target.startswith(("http://", "https://")):
            parts = urlsplit(target)
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        else:
            path = target
        return RecordedRequest(method, target, path, version, headers, body, conn.id, received_at)

    def _fill(self, conn: ServerConnection, deadline: float) -> None:
        if self.stopping:
            raise _Stopped
        if time.monotonic() > deadline:
            raise TimeoutError("request body did not arrive")
        data = _recv_some(conn.sock)
        if data == b"":
            raise ConnectionError("client closed in the middle of a request")
        if data:
            conn.buffer += data

    def _read_exactly(self, conn: ServerConnection, size: int) -> bytes:
        if size > MAX_BODY:
            raise ValueError(f"request body of {size} bytes is too large")
        deadline = time.monotonic() + self.idle_timeout
        while len(conn.buffer) < size:
            self._fill(conn, deadline)
        data = bytes(conn.buffer[:size])
        del conn.buffer[:size]
        return data

    def _read_line(self, conn: ServerConnection) -> bytes:
        deadline = time.monotonic() + self.idle_timeout
        while (end := conn.buffer.find(b"\r\n")) < 0:
            if len(conn.buffer) > MAX_HEAD:
                raise ValueError("chunk size line too long")
            self._fill(conn, deadline)
        line = bytes(conn.buffer[:end])
        del conn.buffer[: end + 2]
        return line

    def _read_chunked_body(self, conn: ServerConnection) -> bytes:
        body = bytearray()
        while True:
            size = int(self._read_line(conn).split(b";")[0], 16)
            if size == 0:
                while self._read_line(conn):  # trailers, up to the empty line
                    pass
                return bytes(body)
            body += self._read_exactly(conn, size)
            if len(body) > MAX_BODY:
                raise ValueError("request body is too large")
            self._read_line(conn)

    def _record(
        self,
        conn: ServerConnection,
        step: Step,
        index: int,
        request_index: int,
        started_at: float,
    ) -> None:
        with self._changed:
            record = SendRecord(
                next(self._seq),
                started_at,
                time.monotonic(),
                step,
                index,
                conn.id,
                request_index,
            )
            self._sends.append(record)
            self._changed.notify_all()

    def _watch(
        self, conn: ServerConnection, deadline: float, until: threading.Event | None
    ) -> bool:
        """Wait, reading whatever the client sends, until ``until`` is set (True) or the
        deadline passes (False). Raises _Stopped or _ClientGone."""
        while True:
            if until is not None and until.is_set():
                return True
            if self.stopping:
                raise _Stopped
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            data = _recv_some(conn.sock, min(POLL, remaining))
            if data == b"":
                conn.client_closed.set()
                raise _ClientGone
            if data:
                conn.buffer += data

    def _run(self, conn: ServerConnection, script: Script, request_index: int) -> bool:
        """Run a script; True if the connection may carry another request."""
        sock = conn.sock
        for index, step in enumerate(script):
            started_at = time.monotonic()
            try:
                if isinstance(step, Pause):
                    self._watch(conn, time.monotonic() + step.seconds, None)
                elif isinstance(step, WaitFor):
                    if not self._watch(conn, time.monotonic() + step.timeout, step.event):
                        self._error(f"connection {conn.id}: WaitFor timed out at step {index}")
                        _reset(sock)
                        conn.closed_by_server = conn.reset_by_server = True
                        return False
                elif isinstance(step, HoldOpen):
                    try:
                        self._watch(conn, time.monotonic() + step.timeout, None)
                        conn.closed_by_server = True  # timed out: we close
                    finally:
                        self._record(conn, step, index, request_index, started_at)
                    return False
                elif isinstance(step, Close):
                    self._record(conn, step, index, request_index, started_at)
                    conn.closed_by_server = True
                    if step.reset:
                        conn.reset_by_server = True
                        _reset(sock)
                    else:
                        with contextlib.suppress(OSError):
                            sock.shutdown(socket.SHUT_WR)
                        sock.close()
                    return False
                else:
                    sock.settimeout(self.send_timeout)
                    sock.sendall(step.render())
            except _ClientGone:
                return False
            except OSError as exc:
                if self.stopping:
                    raise _Stopped from exc
                # The client went away while we were writing: that is its right.
                conn.client_closed.set()
                conn.error = f"send failed at step {index}: {exc}"
                return False
            self._record(conn, step, index, request_index, started_at)
        return True


# --------------------------------------------------------------------------------------------
# TLS
# --------------------------------------------------------------------------------------------


class LoopbackCA:
    """A ``trustme`` CA with a server certificate for ``127.0.0.1`` and ``localhost``.

    ``ca_pem_path`` is the CA certificate as a PEM file (for ``ca_certs=``).
    """

    def __init__(self, directory: Path) -> None:
        self.ca = trustme.CA()
        self.server_cert = self.ca.issue_cert("127.0.0.1", "localhost")
        self.ca_pem_path = directory / "loopback-ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_pem_path))

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.server_cert.configure_cert(ctx)
        return ctx

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts this CA (and nothing else)."""
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        self.ca.configure_trust(ctx)
        return ctx


# --------------------------------------------------------------------------------------------
# ForwardProxy
# --------------------------------------------------------------------------------------------


class ForwardProxy(_Listener):
    """An HTTP forward proxy for loopback targets only.

    Absolute-URI requests (``GET http://127.0.0.1:PORT/path HTTP/1.1``) are rewritten to
    origin form and sent to the target; ``CONNECT host:port`` opens a tunnel. Either way the
    proxy then pipes bytes both ways as they come, so a stream flows through unbuffered; an
    upstream reset is passed on as a reset. Only the first request line of each client
    connection is seen (later keep-alive requests go through the pipe as they are; the
    :class:`ScriptedServer` accepts the absolute form). Anything not on loopback gets 403.
    """

    def __init__(self, *, connect_timeout: float = 5.0, idle_timeout: float = 60.0) -> None:
        super().__init__("forward-proxy")
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self._request_lines: list[str] = []
        self._refused: list[str] = []

    def start(self) -> ForwardProxy:
        self._start()
        return self

    def __enter__(self) -> ForwardProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if not self.port:
            raise RuntimeError("proxy not started")
        return f"http://{HOST}:{self.port}"

    @property
    def requests(self) -> list[str]:
        """Request lines forwarded or tunnelled, e.g. ``"CONNECT 127.0.0.1:4431 HTTP/1.1"``."""
        with self._lock:
            return list(self._request_lines)

    @property
    def refused(self) -> list[str]:
        """Request lines refused (not loopback, bad target, upstream unreachable)."""
        with self._lock:
            return list(self._refused)

    def _refuse(self, sock: socket.socket, line: str, code: int, why: str) -> None:
        with self._lock:
            self._refused.append(line)
        body = why.encode()
        reply = Status(
            code, headers=[("content-type", "text/plain"), ("Connection", "close")], body=body
        )
        with contextlib.suppress(OSError):
            sock.settimeout(self.connect_timeout)
            sock.sendall(reply.render())

    def _handle(self, sock: socket.socket) -> None:
        buffer = bytearray()
        head = self._read_head(sock, buffer, self.idle_timeout)
        if head is None:
            return
        line, headers = head
        method, target, version = line.split(" ", 2)
        if method == "CONNECT":
            host, port = _parse_hostport(target, 443)
        elif target.startswith("http://"):
            parts = urlsplit(target)
            host, port = parts.hostname or "", parts.port or 80
        else:
            self._refuse(sock, line, 400, "absolute-form http:// target or CONNECT expected")
            return
        if not _is_loopback(host):
            self._refuse(sock, line, 403, f"only loopback targets are allowed, not {host!r}")
            return
        try:
            upstream = socket.create_connection((host, port), timeout=self.connect_timeout)
        except OSError as exc:
            self._refuse(sock, line, 502, f"cannot reach {host}:{port}: {exc}")
            return
        self._track(upstream)
        try:
            with self._lock:
                self._request_lines.append(line)
            if method == "CONNECT":
                sock.settimeout(self.connect_timeout)
                sock.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                first = bytes(buffer)
            else:
                parts = urlsplit(target)
                origin = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
                kept = [(n, v) for n, v in headers if not n.lower().startswith("proxy-")]
                head_out = f"{method} {origin} {version}\r\n"
                head_out += "".join(f"{n}: {v}\r\n" for n, v in kept) + "\r\n"
                first = head_out.encode("latin-1") + bytes(buffer)
            if first:
                upstream.settimeout(self.connect_timeout)
                upstream.sendall(first)
            self._pipe(sock, upstream)
        finally:
            self._forget(upstream)
            upstream.close()

    def _pipe(self, client: socket.socket, upstream: socket.socket) -> None:
        """Copy bytes both ways until both sides finished, one side broke, or we stop."""
        peer = {client: upstream, upstream: client}
        open_reads = {client, upstream}
        deadline = time.monotonic() + self.idle_timeout
        for s in open_reads:
            s.setblocking(True)
        while open_reads:
            if self.stopping:
                raise _Stopped
            if time.monotonic() > deadline:
                return
            readable, _, _ = select.select(list(open_reads), [], [], POLL * 5)
            for src in readable:
                dst = peer[src]
                try:
                    data = src.recv(65536)
                except OSError:
                    # Pass a reset on as a reset.
                    _reset(dst)
                    return
                if not data:
                    open_reads.discard(src)
                    with contextlib.suppress(OSError):
                        dst.shutdown(socket.SHUT_WR)
                    continue
                deadline = time.monotonic() + self.idle_timeout
                try:
                    dst.settimeout(self.connect_timeout)
                    dst.sendall(data)
                except OSError:
                    _reset(src)
                    return


# --------------------------------------------------------------------------------------------
# Socket counting
# --------------------------------------------------------------------------------------------


def open_socket_count() -> int:
    """How many file descriptors of this process are sockets (Linux, ``/proc/self/fd``)."""
    count = 0
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}").startswith("socket:["):
                count += 1
        except OSError:
            continue  # closed while we looked
    return count


def socket_baseline() -> int:
    """:func:`open_socket_count` after a garbage collection, so that sockets other code left
    to the collector do not vanish in the middle of a leak test."""
    gc.collect()
    return open_socket_count()


def wait_for_socket_count(target: int, timeout: float = 2.0, interval: float = 0.02) -> int:
    """Poll until at most ``target`` sockets are open or ``timeout`` passed; return the count."""
    deadline = time.monotonic() + timeout
    while True:
        count = open_socket_count()
        if count <= target or time.monotonic() >= deadline:
            return count
        time.sleep(interval)


# --------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------


@pytest.fixture
def scripted_server() -> Iterator[ScriptedServer]:
    """A started plain-HTTP :class:`ScriptedServer` (no default script); stopped afterwards."""
    with ScriptedServer() as server:
        yield server


ServerFactory = Callable[..., ScriptedServer]
"""``server_factory(script=None, *, ssl_context=None, ...)`` -> a started ScriptedServer."""


@pytest.fixture
def server_factory() -> Iterator[ServerFactory]:
    """Call with :class:`ScriptedServer` arguments to get more started servers; all are
    stopped afterwards."""
    servers: list[ScriptedServer] = []

    def make(script: ScriptSource | None = None, **kwargs: Any) -> ScriptedServer:
        server = ScriptedServer(script, **kwargs)
        servers.append(server)
        return server.start()

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def loopback_ca(tmp_path: Path) -> LoopbackCA:
    """A fresh :class:`LoopbackCA`; its PEM file lives in ``tmp_path``."""
    return LoopbackCA(tmp_path)


@pytest.fixture
def tls_server(loopback_ca: LoopbackCA) -> Iterator[ScriptedServer]:
    """A started :class:`ScriptedServer` speaking TLS with a ``loopback_ca`` certificate."""
    with ScriptedServer(ssl_context=loopback_ca.server_context()) as server:
        yield server


@pytest.fixture
def forward_proxy() -> Iterator[ForwardProxy]:
    """A started :class:`ForwardProxy`; stopped afterwards."""
    with ForwardProxy() as proxy:
        yield proxy
