"""Real HTTP through urllib3: pooled, streaming, bounded, closable from any thread.

Theory of operation
-------------------
One ``urllib3.PoolManager`` per transport (plus one ``ProxyManager`` per proxy in use). A
request is sent with ``preload_content=False``, no retries and no redirects; the body is read
with ``read1()``, which returns what one socket read got, so each chunk reaches the caller as
soon as it arrives (``stream()`` would wait for a full buffer).

Two things let another thread stop a connect at any moment (see :mod:`mcpconnect._watchdog`):

- while :meth:`Urllib3Transport.send` waits for the connection and the response headers, the
  connect's watch is attached to an :class:`_InFlight`, which the transport's connection
  classes tell about the connection they are using; closing it shuts that socket down;
- once there is a response, :meth:`_Urllib3Response.close` shuts the socket down under a
  blocked ``read1()`` (``HTTPResponse.shutdown()``), and the reading thread then closes it.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from typing import Any

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError as _Urllib3ConnectTimeout
from urllib3.exceptions import HTTPError, NewConnectionError, ReadTimeoutError

from .._timeouts import Timeouts
from .._watchdog import Watch, take_pending
from ..errors import ConfigError, ConnectTimeoutError, McpConnectError, TransportError
from ._base import Request, where, without_userinfo

__all__ = ["Urllib3Transport"]

_READ_SIZE = 256 * 1024


# --- the send in flight ---------------------------------------------------------------------

_local = threading.local()  # .flight: the _InFlight of the send running on this thread


class _Broken(OSError):
    """The watchdog broke the send before its socket existed."""


class _InFlight:
    """The connection one :meth:`Urllib3Transport.send` is using, so that the watchdog can
    break it from its own thread while the send waits for the connection or the headers.

    ``close()`` is the watchdog's side: it shuts the connection's socket down, or, while the
    socket does not exist yet (a TCP connect in progress), marks the send broken, so that the
    connection is dropped as soon as it is made. Once the send returns, ``close()`` does
    nothing: the response is the watchdog's target from then on.
    """

    def __init__(self, watch: Watch | None) -> None:
        self.watch = watch
        self._lock = threading.Lock()
        self._conn: HTTPConnection | None = None
        self._broken = False
        self._done = False

    def use(self, conn: HTTPConnection) -> None:
        """The send is using ``conn`` (connect thread). Raises if it was broken."""
        with self._lock:
            self._conn = conn
            broken = self._broken
        if broken:
            raise _Broken("the connect was stopped")

    def connecting(self, connecting: bool) -> None:
        """The connection is being opened: the ``connect`` limit applies, not ``read``."""
        if self.watch is not None:
            self.watch.connecting = connecting
            if not connecting:
                self.watch.activity()

    def sent(self) -> None:
        """The request is out: the wait for the headers counts as the server's silence."""
        if self.watch is not None:
            self.watch.activity()

    def finish(self) -> None:
        with self._lock:
            self._done = True
            self._conn = None

    def close(self) -> None:
        """Break the send (watchdog thread)."""
        with self._lock:
            if self._done:
                return
            self._broken = True
            conn = self._conn
        sock = getattr(conn, "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError, ValueError):
                sock.shutdown(socket.SHUT_RDWR)


def _flight() -> _InFlight | None:
    flight: _InFlight | None = getattr(_local, "flight", None)
    return flight


class _TrackedHTTPConnection(HTTPConnection):
    """Tells the send in flight on this thread which connection it uses."""

    def connect(self) -> None:
        flight = _flight()
        if flight is None:
            super().connect()
            return
        flight.use(self)
        flight.connecting(True)
        try:
            super().connect()
        finally:
            flight.connecting(False)
        flight.use(self)  # broken during the TCP connect, when there was no socket to shut

    def request(self, *args: Any, **kwargs: Any) -> None:
        flight = _flight()
        if flight is not None:
            flight.use(self)
        super().request(*args, **kwargs)
        if flight is not None:
            flight.sent()


class _TrackedHTTPSConnection(_TrackedHTTPConnection, HTTPSConnection):
    pass


class _TrackedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _TrackedHTTPConnection


class _TrackedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _TrackedHTTPSConnection


_POOL_CLASSES = {"http": _TrackedHTTPConnectionPool, "https": _TrackedHTTPSConnectionPool}


# --- the response ----------------------------------------------------------------------------


def _describe(exc: BaseException) -> str:
    """What went wrong, for a message: urllib3's texts may hold URLs, never their user-info."""
    reason = getattr(exc, "reason", None) or exc
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
    ``Proxy-Authorization``). ``maxsize`` is how many idle connections a host's pool keeps.

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
        maxsize: int = 10,
    ) -> None:
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
        """Send ``request``; return once the status line and headers are in."""
        watch = take_pending()
        flight = _InFlight(watch)
        if watch is not None:
            watch.attach(flight)
        _local.flight = flight
        sent = False
        try:
            response = self._manager_for(request.url).request(
                request.method,
                request.url,
                body=request.body,
                headers=dict(request.headers),
                preload_content=False,
                redirect=False,
                retries=False,
                timeout=urllib3.Timeout(connect=timeouts.connect, read=timeouts.read),
            )
            sent = True
        except (HTTPError, OSError) as exc:
            raise _send_error(exc, request.url, timeouts, watch) from exc
        finally:
            _local.flight = None
            flight.finish()
            if not sent and watch is not None:
                watch.detach()  # the connect never gets a response to watch
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


def _send_error(
    exc: BaseException, url: str, timeouts: Timeouts, watch: Watch | None
) -> McpConnectError:
    """What a failed send raises: the watch's reason when the watchdog broke it (or a limit
    ran out meanwhile), else the failure, naming the URL without credentials."""
    place = where(url)
    if watch is not None:
        stopped = watch.reason or watch.check()
        if stopped is not None:
            return stopped
    if isinstance(exc, NewConnectionError):  # also a urllib3 ConnectTimeoutError
        cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc
        return TransportError(f"cannot reach {place}: {_describe(cause)}")
    if isinstance(exc, _Urllib3ConnectTimeout):
        return ConnectTimeoutError(
            "connect", timeouts.connect or 0.0, "connecting",
            f"could not connect to {place} within {timeouts.connect or 0.0:g} s",
        )
    if isinstance(exc, ReadTimeoutError):
        return ConnectTimeoutError(
            "read", timeouts.read or 0.0, "connecting",
            f"no response from {place} within {timeouts.read or 0.0:g} s",
        )
    return TransportError(f"cannot reach {place}: {_describe(exc)}")
