"""A mcpconnect transport over httpx's sync client, keeping the whole transport contract.

Run ``python -m pytest examples`` to check it with ``mcpconnect.testing.TransportContract``
(``tests/test_examples.py`` does that in mcpconnect's own suite)::

    client = mcpconnect.Client(transport=HttpxTransport())

How it takes part in cancel and the limits (the contract in ``mcpconnect.transports``):
httpx opens its TCP connections with ``socket.create_connection``, which gives nobody the
socket before the connect is over, so a stop could not break a hung connect. So each send
gets its own ``httpcore.HTTPConnection`` (httpx's engine, public API) with a network backend
that makes the socket first, hands it to the send's stopper, and only then connects; httpx's
``Client`` runs on top of it through a small ``httpx.BaseTransport``. One connection per send
costs nothing here: a connect stream is never reused (it ends when the connect does).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import httpcore
import httpx

from mcpconnect import ConnectTimeoutError, Timeouts, TransportError
from mcpconnect.transports import Request, SendWatch

__all__ = ["HttpxTransport"]


# httpx maps httpcore's exceptions in its own HTTPTransport only: we meet both kinds.
_TIMEOUTS = (httpx.TimeoutException, httpcore.TimeoutException)
_FAILURES = (httpx.HTTPError, httpcore.NetworkError, httpcore.ProtocolError, OSError)


class _Send:
    """One send's sockets, so that another thread can break it (the watch's stopper)."""

    def __init__(self, watch: SendWatch | None) -> None:
        self.watch = watch
        self.connecting = False
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._stopped = False

    def opening(self, sock: socket.socket) -> None:
        """Keep a duplicate of ``sock``: the TLS handshake replaces the socket object, and
        shutting the duplicate down breaks whatever the connection is doing."""
        with self._lock:
            if self._stopped:
                raise OSError("the send was stopped")
            self._sock = sock.dup()

    def finish(self) -> None:
        with self._lock:
            self._stopped = True  # a stop after the send is the response's business
            if self._sock is not None:
                self._sock.close()
                self._sock = None

    def stop(self) -> None:
        with self._lock:
            if self._stopped and self._sock is None:
                return
            self._stopped = True
            if self._sock is not None:
                with contextlib.suppress(OSError):
                    self._sock.shutdown(socket.SHUT_RDWR)

    def trace(self, name: str, info: Mapping[str, Any]) -> None:
        """httpcore's ``trace`` extension: the phases of the send."""
        if name == "connection.connect_tcp.started":
            self.connecting = True
            if self.watch is not None:
                self.watch.connecting()
        elif name == "http11.send_request_body.complete":
            self.connecting = False
            if self.watch is not None:
                self.watch.sent()


class _Backend(httpcore.SyncBackend):
    """Connects a socket that the send can shut down from another thread meanwhile."""

    def __init__(self, send: _Send) -> None:
        self._send = send

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        try:
            self._send.opening(sock)
            sock.settimeout(timeout)
            sock.connect(address)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except TimeoutError as exc:
            sock.close()
            raise httpcore.ConnectTimeout(str(exc)) from exc
        except OSError as exc:
            sock.close()
            raise httpcore.ConnectError(str(exc)) from exc
        return _Stream(sock)


@contextlib.contextmanager
def _mapped(timeout: type[Exception], error: type[Exception]) -> Iterator[None]:
    try:
        yield
    except TimeoutError as exc:
        raise timeout(str(exc)) from exc
    except OSError as exc:
        raise error(str(exc)) from exc


class _Stream(httpcore.NetworkStream):
    """A socket as httpcore reads it (what ``httpcore.SyncBackend`` returns, in public
    terms)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        with _mapped(httpcore.ReadTimeout, httpcore.ReadError):
            self._sock.settimeout(timeout)
            return self._sock.recv(max_bytes)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        with _mapped(httpcore.WriteTimeout, httpcore.WriteError):
            while buffer:
                self._sock.settimeout(timeout)
                buffer = buffer[self._sock.send(buffer):]

    def close(self) -> None:
        self._sock.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        with _mapped(httpcore.ConnectTimeout, httpcore.ConnectError):
            try:
                self._sock.settimeout(timeout)
                return _Stream(ssl_context.wrap_socket(self._sock,
                                                       server_hostname=server_hostname))
            except BaseException:
                self._sock.close()
                raise

    def get_extra_info(self, info: str) -> Any:
        if info == "socket":
            return self._sock
        if info == "ssl_object":
            return self._sock if isinstance(self._sock, ssl.SSLSocket) else None
        return None


class _OneConnection(httpx.BaseTransport):
    """httpx's ``Client`` over one ``httpcore.HTTPConnection`` with our backend."""

    def __init__(self, send: _Send, ssl_context: ssl.SSLContext) -> None:
        self._send = send
        self._ssl_context = ssl_context
        self._conn: httpcore.HTTPConnection | None = None

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        origin = httpcore.Origin(url.raw_scheme, url.raw_host, url.port or
                                 (443 if url.scheme == "https" else 80))
        self._conn = httpcore.HTTPConnection(
            origin, ssl_context=self._ssl_context, keepalive_expiry=0,
            network_backend=_Backend(self._send),
        )
        core = self._conn.handle_request(
            httpcore.Request(
                request.method,
                httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port,
                             target=url.raw_path),
                headers=request.headers.raw,
                content=request.stream,
                extensions=request.extensions,
            )
        )
        return httpx.Response(
            core.status, headers=core.headers, stream=_Body(core),
            extensions=core.extensions,
        )

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


class _Body(httpx.SyncByteStream):
    def __init__(self, core: httpcore.Response) -> None:
        self._core = core

    def __iter__(self) -> Iterator[bytes]:
        yield from self._core.iter_stream()

    def close(self) -> None:
        self._core.close()


class _Response:
    """An open response; ``close()`` from another thread shuts the socket down under a
    blocked read, and the reading thread then closes the response."""

    def __init__(self, client: httpx.Client, response: httpx.Response, url: str) -> None:
        self._client = client
        self._response = response
        self._url = url
        self._lock = threading.Lock()
        self._reading = False
        self._closed = False
        stream = response.extensions.get("network_stream")
        self._sock: socket.socket | None = stream.get_extra_info("socket") if stream else None
        self.status = response.status_code
        self.headers: Mapping[str, str] = dict(response.headers)

    def iter_chunks(self) -> Iterator[bytes]:
        with self._lock:
            if self._closed:
                raise TransportError("the response was closed")
            self._reading = True
        try:
            for chunk in self._response.iter_raw():
                if chunk:
                    yield chunk
        except _TIMEOUTS as exc:
            raise ConnectTimeoutError("read", 0.0, "reading", f"no data from {self._url}") from exc
        except _FAILURES as exc:
            raise TransportError(f"connection to {self._url} broke: {exc!r}") from exc
        finally:
            with self._lock:
                self._reading = False
            self._release()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            reading = self._reading
        if reading and self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)  # the reader wakes and releases
            return
        self._release()

    def _release(self) -> None:
        with contextlib.suppress(Exception):
            self._response.close()
        self._client.close()


class HttpxTransport:
    """A transport over ``httpx.Client``. ``ssl_context`` (default: the system's trusted
    CAs) verifies TLS; redirects are never followed; no proxy is used."""

    def __init__(self, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self._ssl_context = ssl_context or ssl.create_default_context()

    def send(self, request: Request, timeouts: Timeouts) -> _Response:
        send = _Send(request.watch)
        if request.watch is not None:
            request.watch.on_stop(send.stop)
        # With a watch, the watchdog bounds every silence exactly (and closes the response);
        # httpx then only needs a backstop, as it keeps one read timeout for the whole body.
        read = timeouts.read if request.watch is None else None
        client = httpx.Client(
            transport=_OneConnection(send, self._ssl_context), trust_env=False,
            follow_redirects=False,
            timeout=httpx.Timeout(connect=timeouts.connect, read=read, write=read, pool=None),
        )
        try:
            response = client.send(
                client.build_request(
                    request.method, request.url, headers=dict(request.headers),
                    content=request.body, extensions={"trace": send.trace},
                ),
                stream=True,
            )
        except _TIMEOUTS as exc:
            client.close()
            if send.connecting or isinstance(exc, (httpx.ConnectTimeout, httpcore.ConnectTimeout)):
                seconds = timeouts.connect or 0.0
                raise ConnectTimeoutError(
                    "connect", seconds, "connecting", f"could not connect within {seconds:g} s"
                ) from exc
            seconds = timeouts.read or 0.0
            raise ConnectTimeoutError(
                "read", seconds, "connecting", f"no response within {seconds:g} s"
            ) from exc
        except _FAILURES as exc:
            client.close()
            raise TransportError(f"cannot reach the server: {exc!r}") from exc
        except BaseException:
            client.close()
            raise
        finally:
            send.finish()
        return _Response(client, response, request.url)

    def close(self) -> None:
        """Nothing is pooled: each response closes its own connection."""
