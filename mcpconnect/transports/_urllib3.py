"""Real HTTP through urllib3: pooled, streaming, bounded, closable from any thread.

Theory of operation
-------------------
One ``urllib3.PoolManager`` per transport (plus one ``ProxyManager`` per proxy in use). A
request is sent with ``preload_content=False``, no retries and no redirects; the body is read
with ``read1()``, which returns what one socket read got, so each chunk reaches the caller as
soon as it arrives (``stream()`` would wait for a full buffer).

Two things let another thread stop a connect at any moment (the contract in
:mod:`mcpconnect.transports`):

- while :meth:`Urllib3Transport.send` opens the connection and waits for the headers, an
  :class:`_InFlight` is the connect's stopper (``request.watch.on_stop``). The send hands it
  to its connection pool as an extra keyword of ``urlopen``, which urllib3 passes on to the
  pool's ``_make_request(conn, ...)``; our pool class binds it to the connection there, and
  our connection class opens its socket itself (``_new_conn``) so that the in-flight object
  holds a duplicate of the socket's descriptor from before the TCP connect. Shutting that
  duplicate down ends a TCP connect, a TLS handshake (after which urllib3 has replaced the
  socket object) or a wait for the headers, whichever is under way;
- once there is a response, :meth:`_Urllib3Response.close` shuts the socket down under a
  blocked ``read1()`` (``HTTPResponse.shutdown()``), and the reading thread then closes it.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import sys
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from typing import Any

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError as _Urllib3ConnectTimeout
from urllib3.exceptions import (
    HTTPError,
    NameResolutionError,
    NewConnectionError,
    ReadTimeoutError,
)
from urllib3.exceptions import ProtocolError as _Urllib3ProtocolError
from urllib3.exceptions import ProxyError as _Urllib3ProxyError
from urllib3.util.connection import allowed_gai_family

from .._timeouts import Timeouts
from ..errors import ConfigError, ConnectTimeoutError, McpConnectError, TransportError
from ._base import Request, SendWatch, where, without_userinfo

__all__ = ["Urllib3Transport"]

_READ_SIZE = 256 * 1024

#: Connections kept per host by default: one per connect running at once, for up to this many.
DEFAULT_MAXSIZE = 1024


# --- the send in flight ---------------------------------------------------------------------


class _Broken(OSError):
    """The send was stopped before its socket existed."""


class _InFlight:
    """One :meth:`Urllib3Transport.send` while it connects and waits for the headers, so that
    another thread can break it (:meth:`close`, the connect's stopper).

    It also remembers the phase, so that a socket timeout while connecting (TCP or TLS) is
    reported as the ``connect`` limit and one while waiting for the headers as ``read``.
    """

    def __init__(self, watch: SendWatch | None) -> None:
        self.watch = watch
        self.connecting = False
        self._lock = threading.Lock()
        self._conn: HTTPConnection | None = None
        self._breaker: socket.socket | None = None  # a dup() of the socket being opened
        self._broken = False
        self._done = False

    def use(self, conn: HTTPConnection) -> None:
        """The send is using ``conn`` (a pooled one perhaps). Raises if it was broken."""
        with self._lock:
            self._conn = conn
            if self._broken:
                raise _Broken("the connect was stopped")

    def opening(self, sock: socket.socket) -> None:
        """``sock`` is being connected: keep a duplicate of it to shut down. Raises (and
        closes ``sock``) if the send was broken."""
        with self._lock:
            if not self._broken:
                self._close_breaker()
                self._breaker = sock.dup()
                return
        sock.close()
        raise _Broken("the connect was stopped")

    def start_connecting(self) -> None:
        self.connecting = True
        if self.watch is not None:
            self.watch.connecting()

    def sent(self) -> None:
        self.connecting = False
        if self.watch is not None:
            self.watch.sent()

    def finish(self) -> None:
        with self._lock:
            self._done = True
            self._conn = None
            self._close_breaker()

    def close(self) -> None:
        """Break the send (another thread). Does nothing once the send has returned."""
        with self._lock:
            if self._done:
                return
            self._broken = True
            # Under the lock: finish() must not close the duplicate while we shut it down.
            for sock in (self._breaker, getattr(self._conn, "sock", None)):
                if sock is not None:
                    with contextlib.suppress(OSError, ValueError):
                        sock.shutdown(socket.SHUT_RDWR)

    def _close_breaker(self) -> None:
        if self._breaker is not None:
            self._breaker.close()
            self._breaker = None


class _TrackedHTTPConnection(HTTPConnection):
    """Opens its socket itself, telling the send in flight (``self.flight``) about it."""

    flight: _InFlight | None = None

    def _new_conn(self) -> socket.socket:
        flight = self.flight
        if flight is None:
            return super()._new_conn()
        try:
            sock = _open_socket(
                (self._dns_host, self.port), self.timeout, self.source_address,
                self.socket_options, flight,
            )
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc
        except TimeoutError as exc:
            raise _Urllib3ConnectTimeout(
                self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})"
            ) from exc
        except OSError as exc:
            raise NewConnectionError(
                self, f"Failed to establish a new connection: {exc}"
            ) from exc
        sys.audit("http.client.connect", self, self.host, self.port)
        return sock

    def connect(self) -> None:
        flight = self.flight
        if flight is not None:
            flight.start_connecting()
        super().connect()

    def request(self, *args: Any, **kwargs: Any) -> None:
        flight = self.flight
        if flight is not None:
            flight.use(self)
        super().request(*args, **kwargs)
        if flight is not None:
            flight.sent()


def _open_socket(
    address: tuple[str, int],
    timeout: float | None,
    source_address: tuple[str, int] | None,
    options: Any,
    flight: _InFlight,
) -> socket.socket:
    """``urllib3.util.connection.create_connection``, telling ``flight`` of each socket
    before it connects."""
    host, port = address
    host = host.strip("[]")
    error: OSError | None = None
    family = allowed_gai_family()
    for af, socktype, proto, _, sa in socket.getaddrinfo(host, port, family, socket.SOCK_STREAM):
        sock = socket.socket(af, socktype, proto)
        try:
            for option in options or ():
                sock.setsockopt(*option)
            sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            flight.opening(sock)
            sock.connect(sa)
            return sock
        except _Broken:
            raise
        except OSError as exc:
            error = exc
            sock.close()
    raise error or OSError("getaddrinfo returned no address")


class _TrackedPool:
    """Mixed into our pools: ``urlopen(..., flight=...)`` reaches ``_make_request`` with the
    connection it uses, which is where the flight is bound to the connection."""

    def _make_request(self, conn: Any, *args: Any, flight: _InFlight | None = None,
                      **kwargs: Any) -> Any:
        conn.flight = flight
        try:
            return super()._make_request(conn, *args, **kwargs)  # type: ignore[misc]
        finally:
            conn.flight = None


class _TrackedHTTPSConnection(_TrackedHTTPConnection, HTTPSConnection):
    pass


class _TrackedHTTPConnectionPool(_TrackedPool, HTTPConnectionPool):
    ConnectionCls = _TrackedHTTPConnection


class _TrackedHTTPSConnectionPool(_TrackedPool, HTTPSConnectionPool):
    ConnectionCls = _TrackedHTTPSConnection


_POOL_CLASSES = {"http": _TrackedHTTPConnectionPool, "https": _TrackedHTTPSConnectionPool}


# --- the response ----------------------------------------------------------------------------


def _describe(exc: BaseException) -> str:
    """What went wrong, for a message: urllib3's texts may hold URLs, never their user-info.

    urllib3's ``ProtocolError`` (easily taken for mcpconnect's) and ``ProxyError`` are
    described by their cause, and an early end of the body in words, so that no urllib3
    class name shows."""
    reason = getattr(exc, "reason", None) or exc
    if isinstance(reason, (_Urllib3ProtocolError, _Urllib3ProxyError)):  # (text, cause)
        cause = reason.args[-1] if reason.args else None
        if not isinstance(cause, BaseException):
            return without_userinfo(str(cause or "the connection broke"))
        if isinstance(reason, _Urllib3ProxyError):
            return f"cannot use the proxy: {_describe(cause)}"
        reason = cause
    if isinstance(reason, NewConnectionError) and isinstance(reason.__cause__, OSError):
        reason = reason.__cause__  # its own text names urllib3's connection class
    if isinstance(reason, http.client.IncompleteRead):  # urllib3's InvalidChunkLength too
        # A closed connection and a chunk size that is no number look the same here.
        return "the response body was cut short or malformed"
    return without_userinfo(f"{type(reason).__name__}: {reason}")


class _Urllib3Response:
    """An open urllib3 response. ``close()`` is safe from any thread: it shuts the socket
    down, which ends a read blocked in another thread."""

    def __init__(self, response: urllib3.BaseHTTPResponse, url: str) -> None:
        self._response = response
        self._url = url
        self._lock = threading.Lock()
        self._closed = False
        self._reading = False
        self._released = False
        self._complete = False
        self.status = response.status
        self.headers: Mapping[str, str] = response.headers

    def iter_chunks(self) -> Iterator[bytes]:
        read1 = self._response.read1
        try:
            while True:
                with self._lock:
                    if self._closed:
                        raise TransportError("the response was closed while it was being read")
                    self._reading = True
                try:
                    # read1() returns what one read got, as soon as it arrives;
                    # stream() would wait for a full buffer.
                    data = read1(_READ_SIZE)
                finally:
                    with self._lock:
                        self._reading = False
                if not data:
                    # An end after close() is the shutdown, not the end of the body.
                    self._complete = not self._closed
                    return
                yield data
        except ReadTimeoutError as exc:
            raise self._error(
                ConnectTimeoutError(
                    "read", _timeout_of(exc), "reading", f"no data from {where(self._url)}"
                )
            ) from exc
        except (HTTPError, OSError, ValueError, AttributeError) as exc:
            # ValueError/AttributeError: the file was closed under a blocked read.
            raise self._error(
                TransportError(f"connection to {where(self._url)} broke: {_describe(exc)}")
            ) from exc
        finally:
            self._release()

    def _error(self, default: Exception) -> Exception:
        if self._closed:
            return TransportError("the response was closed while it was being read")
        return default

    def close(self) -> None:
        with self._lock:
            self._closed = True
            reading = self._reading
        if reading:
            # Another thread is blocked in read1(): wake it; it releases the response itself.
            try:
                self._response.shutdown()
            except (OSError, ValueError, RuntimeError):
                sock = getattr(self._response.connection, "sock", None)
                if sock is not None:
                    with contextlib.suppress(OSError, ValueError):
                        sock.shutdown(socket.SHUT_RDWR)
            return
        self._release()

    def _release(self) -> None:
        with self._lock:
            if self._released:
                return
            self._released = True
        response = self._response
        if not self._complete:
            # The body was not read to its end: the connection cannot be reused.
            with contextlib.suppress(OSError, ValueError):
                response.close()
        response.release_conn()


def _timeout_of(exc: BaseException) -> float:
    pool = getattr(exc, "pool", None)
    timeout = getattr(pool, "timeout", None)
    read = getattr(timeout, "read_timeout", None)
    return float(read) if isinstance(read, (int, float)) else 0.0


class Urllib3Transport:
    """The default transport: urllib3, one ``PoolManager`` per transport, thread-safe.

    TLS is verified (``ca_certs``, a PEM file of trusted CAs, or ``ssl_context`` adjust it).
    Redirects are never followed, so the API key is never sent to another host. Proxies come
    from ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY`` when ``trust_env`` is true (the default),
    or from an explicit ``proxy_url`` (credentials in a proxy URL are sent to the proxy as
    ``Proxy-Authorization``). ``maxsize`` is how many connections the pool keeps per host:
    size it for the connects that run at once (the default, 1,024, lets a thousand users wait
    on one client); past it, each connect that ends beyond it makes urllib3 close its
    connection and log a "Connection pool is full" warning.

    A send made by a connect is watched while it waits, so ``cancel`` and the ``total`` limit
    also stop it before the response headers are in.
    """

    def __init__(
        self,
        *,
        ca_certs: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        proxy_url: str | None = None,
        trust_env: bool = True,
        maxsize: int = DEFAULT_MAXSIZE,
    ) -> None:
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 1:
            raise ConfigError(f"maxsize must be an int of at least 1, got {maxsize!r}")
        if proxy_url is not None:
            _check_proxy_url(proxy_url, "proxy_url", ConfigError)
        self._pool_kwargs: dict[str, Any] = {"maxsize": maxsize, "block": False}
        if ca_certs is not None:
            self._pool_kwargs["ca_certs"] = ca_certs
        if ssl_context is not None:
            self._pool_kwargs["ssl_context"] = ssl_context
        self._proxy_url = proxy_url
        self._trust_env = trust_env
        self._lock = threading.Lock()
        self._direct = self._tracked(urllib3.PoolManager(**self._pool_kwargs))
        self._proxies: dict[str, urllib3.ProxyManager] = {}

    def __repr__(self) -> str:
        proxy = where(self._proxy_url) if self._proxy_url else None
        return f"Urllib3Transport(proxy_url={proxy!r}, trust_env={self._trust_env})"

    @staticmethod
    def _tracked(manager: urllib3.PoolManager) -> urllib3.PoolManager:
        manager.pool_classes_by_scheme = _POOL_CLASSES
        # urllib3 2 drops pools on clear() (and on eviction) without closing them: their
        # idle sockets then wait for the garbage collector. Close them at once.
        manager.pools.dispose_func = _close_pool
        return manager

    def _manager_for(self, url: str) -> urllib3.PoolManager:
        proxy = self._proxy_url or (self._env_proxy(url) if self._trust_env else None)
        if proxy is None:
            return self._direct
        with self._lock:
            manager = self._proxies.get(proxy)
            if manager is None:
                _check_proxy_url(proxy, "the proxy URL from the environment", TransportError)
                auth = urllib3.util.parse_url(proxy).auth
                auth = urllib.parse.unquote(auth) if auth else None
                headers = urllib3.make_headers(proxy_basic_auth=auth) if auth else None
                manager = urllib3.ProxyManager(
                    proxy, proxy_headers=headers, **self._pool_kwargs
                )
                self._proxies[proxy] = self._tracked(manager)  # type: ignore[assignment]
        return manager

    @staticmethod
    def _env_proxy(url: str) -> str | None:
        proxies = urllib.request.getproxies_environment()
        parts = urllib.parse.urlsplit(url)
        bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
        if parts.hostname and bypass(parts.hostname, proxies):
            return None
        return proxies.get(parts.scheme)

    def send(self, request: Request, timeouts: Timeouts) -> _Urllib3Response:
        """Send ``request``; return once the status line and headers are in. Raises as the
        contract in :mod:`mcpconnect.transports` says."""
        flight = _InFlight(request.watch)
        if request.watch is not None:
            request.watch.on_stop(flight.close)
        try:
            response = self._manager_for(request.url).request(
                request.method,
                request.url,
                body=request.body,
                headers=dict(request.headers),
                preload_content=False,
                decode_content=False,  # never inflate a compressed body: the client refuses it
                redirect=False,
                retries=False,
                timeout=urllib3.Timeout(connect=timeouts.connect, read=timeouts.read),
                flight=flight,  # to our pool's _make_request (see the module docstring)
            )
        except (HTTPError, OSError) as exc:
            raise _send_error(exc, request.url, timeouts, flight.connecting) from _cause(exc)
        except (ValueError, TypeError) as exc:
            # http.client's text may hold a header's value (the API key): never show it.
            raise TransportError(
                f"cannot send the request to {where(request.url)}: its URL or a header is "
                f"invalid ({type(exc).__name__})"
            ) from None
        finally:
            flight.finish()
        # The watchdog enforces the read and authorization limits (it closes the response);
        # the socket only needs a backstop that outlasts them both.
        sock = getattr(response.connection, "sock", None)
        if sock is not None:
            sock.settimeout(_backstop(timeouts))
        return _Urllib3Response(response, request.url)

    def close(self) -> None:
        """Close every idle pooled connection (one in use is closed when its response is)."""
        self._direct.clear()
        with self._lock:
            for manager in self._proxies.values():
                manager.clear()
            self._proxies.clear()


def _check_proxy_url(url: object, what: str, error: type[McpConnectError]) -> None:
    """Raise ``error`` for a proxy URL urllib3 cannot use; user-info masked, and not chained
    (urllib3's own message repeats the URL whole)."""
    if not isinstance(url, str):
        raise error(f"{what} must be a string, got {type(url).__name__}")
    try:
        parsed = urllib3.util.parse_url(url)
        urllib3.ProxyManager(url)  # what urllib3 refuses, as it would refuse it later
    except (HTTPError, ValueError) as exc:
        raise error(f"{what} is not a valid proxy URL ({type(exc).__name__}): "
                    f"{without_userinfo(url)!r}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise error(f"{what} must be an http(s) URL with a host: {without_userinfo(url)!r}")


def _close_pool(pool: HTTPConnectionPool) -> None:
    with contextlib.suppress(Exception):
        pool.close()


def _backstop(timeouts: Timeouts) -> float | None:
    """The socket's own read timeout while streaming: longer than any silence the watchdog
    allows, ``None`` when some state may legitimately be silent for ever."""
    if timeouts.read is None or timeouts.authorization is None:
        return None
    return max(timeouts.read, timeouts.authorization) + 5.0


def _cause(exc: BaseException) -> BaseException | None:
    """``exc`` to chain, unless its text shows a URL's user-info (urllib3's
    ``LocationParseError`` repeats the URL whole)."""
    text = str(exc)
    return exc if without_userinfo(text) == text else None


def _send_error(
    exc: BaseException, url: str, timeouts: Timeouts, connecting: bool
) -> McpConnectError:
    """What a failed send raises, naming the URL without credentials. A timeout while the
    connection was being opened (TCP or TLS) is the ``connect`` limit's, whatever urllib3
    calls it."""
    place = where(url)
    connect_limit = ConnectTimeoutError(
        "connect", timeouts.connect or 0.0, "connecting",
        f"could not connect to {place} within {timeouts.connect or 0.0:g} s",
    )
    if isinstance(exc, NewConnectionError):  # also a urllib3 ConnectTimeoutError
        cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc
        return TransportError(f"cannot reach {place}: {_describe(cause)}")
    if isinstance(exc, _Urllib3ConnectTimeout):
        return connect_limit
    if isinstance(exc, (ReadTimeoutError, TimeoutError)):
        if connecting:
            return connect_limit
        return ConnectTimeoutError(
            "read", timeouts.read or 0.0, "connecting",
            f"no response from {place} within {timeouts.read or 0.0:g} s",
        )
    return TransportError(f"cannot reach {place}: {_describe(exc)}")
