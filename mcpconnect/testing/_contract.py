"""A contract kit for transport authors: the checks a transport passes when it keeps the
contract in :mod:`mcpconnect.transports`.

Subclass :class:`TransportContract` in a pytest test module and say how to make your
transport; pytest then runs every check against it::

    from mcpconnect.testing import TransportContract

    class TestMyTransport(TransportContract):
        def make_transport(self):
            return MyTransport()

Each check serves one *scenario* from a loopback server on 127.0.0.1 that it starts and stops
itself (a server that streams, goes silent, never answers, answers 401, resets the
connection; a TCP connect that hangs; a TLS handshake that stalls) and runs the transport
through it, on its own and under :func:`mcpconnect.connect`. A transport that does not use
sockets (a fake) overrides :meth:`TransportContract.serve` instead and plays each scenario
its own way. Limits in the checks are short (:attr:`TransportContract.short`); cancels are set
while every limit is a minute away, and the connect must end within a few seconds.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import stat
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from .._timeouts import Timeouts
from ..errors import (
    ConnectCancelledError,
    ConnectionFailedError,
    ConnectTimeoutError,
    McpConnectError,
    TransportError,
)
from ..transports._base import Request, Transport

__all__ = ["SCENARIOS", "TransportContract"]

#: Every scenario a check serves (see :meth:`TransportContract.serve`):
#:
#: - ``success``: 200, a ``connection_attempt`` event, a ``success`` event with one tool
#:   (``echo``), the end of the body;
#: - ``silent``: 200, a ``connection_attempt`` event, then nothing, the connection held open;
#: - ``no_headers``: the server reads the request and never answers;
#: - ``unauthorized``: ``401`` with the body ``{"detail":"Unauthorized"}``;
#: - ``reset``: 200, a ``connection_attempt`` event, then a TCP reset;
#: - ``refused``: nothing listens (the TCP connect is refused);
#: - ``hung_connect``: the TCP connect never completes;
#: - ``stalled_tls``: an ``https`` URL whose server accepts the TCP connection and never
#:   answers the TLS handshake.
SCENARIOS = (
    "success", "silent", "no_headers", "unauthorized", "reset", "refused", "hung_connect",
    "stalled_tls",
)

CONNECT_PATH = "/v1/tools/mcp/servers/connect"
CONFIG = {"server_name": "contract", "type": "streamable_http",
          "server_url": "https://mcp.example.com/mcp"}
CONNECTION_ATTEMPT = {"event": "connection_attempt", "server_name": "contract"}
SUCCESS = {"event": "success", "tools": [{"name": "echo", "description": "Echo."}]}
_LONG = 60.0


def sse_frame(event: dict[str, Any]) -> bytes:
    """One event as Letta writes it: ``data: <json>\\n\\n``."""
    return f"data: {json.dumps(event)}\n\n".encode()


class TransportContract:
    """The checks, as a pytest test class to subclass (it is not collected itself: its name
    does not start with ``Test``). Implement :meth:`make_transport`, or override
    :meth:`serve` for a transport without sockets."""

    #: The limit, in seconds, that the limit checks expect to run out.
    short = 0.2

    def make_transport(self) -> Transport:
        """A new transport to check (closed by the check)."""
        raise NotImplementedError("subclass TransportContract and implement make_transport()")

    @contextlib.contextmanager
    def serve(self, scenario: str) -> Iterator[tuple[Transport, str]]:
        """Serve ``scenario`` (one of :data:`SCENARIOS`); yield a transport to run through
        it and the base URL to use. On leaving, the transport is closed and the server
        stopped. Override it for a transport that does not use sockets."""
        with _served(scenario) as base_url:
            transport = self.make_transport()
            try:
                yield transport, base_url
            finally:
                transport.close()

    def open_sockets(self) -> int:
        """How many sockets this process has open (for the leak check)."""
        return _open_sockets()

    # --- helpers ---------------------------------------------------------------------------

    def connect(
        self,
        transport: Transport,
        base_url: str,
        timeout: Timeouts,
        cancel: threading.Event | None = None,
        on_event: Callable[[Any], object] | None = None,
    ) -> Any:
        """:func:`mcpconnect.connect` through ``transport``: its tools, or the exception."""
        from ..client import connect

        try:
            return connect(
                CONFIG, base_url=base_url, api_key="sk-contract", transport=transport,
                timeout=timeout, cancel=cancel, on_event=on_event,
            )
        except McpConnectError as exc:
            return exc

    def cancelled(self, scenario: str, after_first_event: bool = False) -> Any:
        """Run ``scenario`` with every limit a minute away; set the cancel (after the first
        event, or after a short while); return what the connect raised. Fails if the connect
        does not end within a few seconds of the cancel."""
        cancel = threading.Event()
        outcome: list[Any] = []
        with self.serve(scenario) as (transport, base_url):
            on_event = (lambda event: cancel.set()) if after_first_event else None
            thread = threading.Thread(
                target=lambda: outcome.append(
                    self.connect(transport, base_url, Timeouts(
                        connect=_LONG, read=_LONG, authorization=_LONG, total=_LONG,
                    ), cancel, on_event)
                ),
                name="contract-connect", daemon=True,
            )
            thread.start()
            if not after_first_event:
                time.sleep(self.short)  # let it block in the phase, if it can
                cancel.set()
            thread.join(10)
            assert not thread.is_alive(), f"{scenario}: the connect did not end on cancel"
        return outcome[0]

    def limited(self, scenario: str, timeout: Timeouts) -> Any:
        with self.serve(scenario) as (transport, base_url):
            return self.connect(transport, base_url, timeout)

    def _request(self, base_url: str) -> Request:
        body = json.dumps(CONFIG).encode()
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream",
                   "Authorization": "Bearer sk-contract"}
        return Request("POST", base_url + CONNECT_PATH, headers, body)

    # --- the checks: streaming and close ---------------------------------------------------

    def test_streams_each_chunk_as_it_arrives(self) -> None:
        """The first event arrives while the server holds the rest of the body back."""
        with self.serve("silent") as (transport, base_url):
            response = transport.send(self._request(base_url), Timeouts(read=10))
            try:
                assert response.status == 200
                first = _next_within(iter(response.iter_chunks()), 5)
                assert first is not None, "no chunk arrived while the server held the stream"
                assert sse_frame(CONNECTION_ATTEMPT).startswith(first) or first.startswith(
                    sse_frame(CONNECTION_ATTEMPT)
                )
            finally:
                response.close()

    def test_close_from_another_thread_ends_a_blocked_read(self) -> None:
        with self.serve("silent") as (transport, base_url):
            response = transport.send(self._request(base_url), Timeouts(read=_LONG))
            chunks = iter(response.iter_chunks())
            assert _next_within(chunks, 5) is not None
            ended = threading.Event()

            def read_on() -> None:
                with contextlib.suppress(StopIteration, TransportError, OSError):
                    for _ in chunks:
                        pass
                ended.set()

            reader = threading.Thread(target=read_on, name="contract-reader", daemon=True)
            reader.start()
            time.sleep(self.short)  # let it block
            response.close()
            assert ended.wait(5), "close() from another thread did not end the blocked read"
            reader.join(5)

    # --- the checks: a whole connect -------------------------------------------------------

    def test_a_connect_succeeds(self) -> None:
        events: list[Any] = []
        with self.serve("success") as (transport, base_url):
            tools = self.connect(transport, base_url, Timeouts(), on_event=events.append)
        assert not isinstance(tools, Exception), tools
        assert [tool.name for tool in tools] == ["echo"]
        assert [str(event.event) for event in events] == ["connection_attempt", "success"]

    def test_a_non_2xx_status_is_connection_failed_with_the_body(self) -> None:
        error = self.limited("unauthorized", Timeouts())
        assert isinstance(error, ConnectionFailedError), error
        assert error.status == 401
        assert "Unauthorized" in error.body

    def test_a_refused_connection_is_a_transport_error(self) -> None:
        error = self.limited("refused", Timeouts(connect=5))
        assert isinstance(error, TransportError), error

    def test_a_reset_mid_body_is_a_transport_error(self) -> None:
        error = self.limited("reset", Timeouts(read=5))
        assert isinstance(error, TransportError), error

    # --- the checks: limits in every phase -------------------------------------------------

    def test_the_connect_limit_while_the_tcp_connect_hangs(self) -> None:
        error = self.limited("hung_connect", Timeouts(connect=self.short, read=0.05))
        assert isinstance(error, ConnectTimeoutError), error
        assert (error.limit, error.state) == ("connect", "connecting")

    def test_the_connect_limit_while_the_tls_handshake_stalls(self) -> None:
        error = self.limited("stalled_tls", Timeouts(connect=self.short, read=0.05))
        assert isinstance(error, ConnectTimeoutError), error
        assert (error.limit, error.state) == ("connect", "connecting")

    def test_the_read_limit_while_waiting_for_the_headers(self) -> None:
        error = self.limited("no_headers", Timeouts(read=self.short))
        assert isinstance(error, ConnectTimeoutError), error
        assert (error.limit, error.state) == ("read", "started")

    def test_the_read_limit_while_reading(self) -> None:
        error = self.limited("silent", Timeouts(read=self.short))
        assert isinstance(error, ConnectTimeoutError), error
        assert (error.limit, error.state) == ("read", "connection_attempt")

    def test_the_total_limit_while_waiting_for_the_headers(self) -> None:
        error = self.limited("no_headers", Timeouts(read=_LONG, total=self.short))
        assert isinstance(error, ConnectTimeoutError), error
        assert (error.limit, error.state) == ("total", "started")

    def test_the_total_limit_while_reading(self) -> None:
        error = self.limited("silent", Timeouts(read=_LONG, total=self.short))
        assert isinstance(error, ConnectTimeoutError), error
        assert (error.limit, error.state) == ("total", "connection_attempt")

    # --- the checks: cancel in every phase -------------------------------------------------

    def test_cancel_while_the_tcp_connect_hangs(self) -> None:
        error = self.cancelled("hung_connect")
        assert isinstance(error, ConnectCancelledError), error

    def test_cancel_while_the_tls_handshake_stalls(self) -> None:
        error = self.cancelled("stalled_tls")
        assert isinstance(error, ConnectCancelledError), error

    def test_cancel_while_waiting_for_the_headers(self) -> None:
        error = self.cancelled("no_headers")
        assert isinstance(error, ConnectCancelledError), error
        assert error.state == "started"

    def test_cancel_while_reading(self) -> None:
        error = self.cancelled("silent", after_first_event=True)
        assert isinstance(error, ConnectCancelledError), error
        assert error.state == "connection_attempt"

    # --- the checks: no leaks --------------------------------------------------------------

    def test_no_socket_is_left_open(self) -> None:
        baseline = self.open_sockets()
        for scenario in ("success", "unauthorized", "reset", "refused"):
            self.limited(scenario, Timeouts(connect=5, read=5))
        self.limited("silent", Timeouts(read=self.short))
        self.limited("no_headers", Timeouts(read=self.short))
        self.cancelled("silent", after_first_event=True)
        self.cancelled("stalled_tls")
        deadline = time.monotonic() + 3
        while self.open_sockets() > baseline and time.monotonic() < deadline:
            time.sleep(0.02)
        assert self.open_sockets() <= baseline, "the transport left sockets open"


def _next_within(chunks: Iterator[bytes], seconds: float) -> bytes | None:
    """The next chunk, read in a helper thread; ``None`` if none came within ``seconds``."""
    got: list[bytes] = []
    thread = threading.Thread(
        target=lambda: got.append(next(chunks, b"")), name="contract-next", daemon=True
    )
    thread.start()
    thread.join(seconds)
    return got[0] if got else None


def _open_sockets() -> int:
    count = 0
    for name in os.listdir("/dev/fd"):
        with contextlib.suppress(OSError, ValueError):
            if stat.S_ISSOCK(os.fstat(int(name)).st_mode):
                count += 1
    return count


# --- the loopback server ----------------------------------------------------------------------


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


_STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
)
_UNAUTHORIZED = (
    b"HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\n"
    b"Content-Length: 25\r\nConnection: close\r\n\r\n"
    b'{"detail":"Unauthorized"}'
)


class _Server:
    """One scenario on 127.0.0.1, a thread per connection; :meth:`stop` ends them all."""

    def __init__(self, scenario: str) -> None:
        self.scenario = scenario
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._stopping = False
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._accepter = threading.Thread(target=self._accept, name="contract-server",
                                          daemon=True)
        self._accepter.start()

    @property
    def url(self) -> str:
        scheme = "https" if self.scenario == "stalled_tls" else "http"
        return f"{scheme}://127.0.0.1:{self._listener.getsockname()[1]}"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                if self._stopping:
                    conn.close()
                    return
                self._conns.append(conn)
                thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
                self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            if self.scenario == "stalled_tls":
                _hold(conn)
                return
            if not _read_request(conn):
                return
            if self.scenario == "no_headers":
                _hold(conn)
            elif self.scenario == "unauthorized":
                conn.sendall(_UNAUTHORIZED)
            elif self.scenario == "success":
                conn.sendall(_STREAM_HEAD + _chunk(sse_frame(CONNECTION_ATTEMPT))
                             + _chunk(sse_frame(SUCCESS)) + b"0\r\n\r\n")
                _hold(conn)  # until the client closes
            elif self.scenario == "silent":
                conn.sendall(_STREAM_HEAD + _chunk(sse_frame(CONNECTION_ATTEMPT)))
                _hold(conn)
            elif self.scenario == "reset":
                conn.sendall(_STREAM_HEAD + _chunk(sse_frame(CONNECTION_ATTEMPT)))
                time.sleep(0.05)
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with self._lock:
            if conn in self._conns:
                self._conns.remove(conn)
        conn.close()

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            conns, threads = list(self._conns), list(self._threads)
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in [self._accepter, *threads]:
            thread.join(5)


def _hold(conn: socket.socket) -> None:
    """Read and drop until the client closes (or the server stops)."""
    while conn.recv(65536):
        pass


def _read_request(conn: socket.socket) -> bool:
    """Read one request (head and ``Content-Length`` body); ``False`` if the client left."""
    data = b""
    while b"\r\n\r\n" not in data:
        more = conn.recv(65536)
        if not more:
            return False
        data += more
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        more = conn.recv(65536)
        if not more:
            return False
        body += more
    return True


@contextlib.contextmanager
def _served(scenario: str) -> Iterator[str]:
    """The base URL of ``scenario``, served for the duration of the block."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; one of {SCENARIOS}")
    if scenario == "refused":
        with socket.socket() as bound:  # bound, never listening: connects are refused
            bound.bind(("127.0.0.1", 0))
            yield f"http://127.0.0.1:{bound.getsockname()[1]}"
        return
    if scenario == "hung_connect":
        with _hung_listener() as url:
            yield url
        return
    server = _Server(scenario)
    try:
        yield server.url
    finally:
        server.stop()


@contextlib.contextmanager
def _hung_listener() -> Iterator[str]:
    """A listener whose backlog is full and which never accepts: the kernel drops further
    SYNs, so a TCP connect to it waits until its own timeout."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers: list[socket.socket] = []
    try:
        for _ in range(8):
            filler = socket.socket()
            filler.setblocking(False)
            fillers.append(filler)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
        with socket.socket() as probe:
            probe.settimeout(0.1)
            try:
                probe.connect(("127.0.0.1", port))
            except TimeoutError:
                pass
            else:
                import pytest

                pytest.skip("this system accepts TCP connections beyond a full backlog")
        yield f"http://127.0.0.1:{port}"
    finally:
        for sock in [*fillers, listener]:
            sock.close()
