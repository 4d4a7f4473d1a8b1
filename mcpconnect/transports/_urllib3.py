"""Real HTTP through urllib3: pooled, streaming, bounded, closable from any thread."""

from __future__ import annotations

import contextlib
import ssl
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping

import urllib3
from urllib3.exceptions import ConnectTimeoutError as _Urllib3ConnectTimeout
from urllib3.exceptions import HTTPError, ReadTimeoutError

from .._timeouts import Timeouts
from ..errors import ConnectTimeoutError, TransportError
from ._base import Request, where

__all__ = ["Urllib3Transport"]

_READ_SIZE = 256 * 1024


def _describe(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or exc
    return f"{type(reason).__name__}: {reason}"


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
                    self._complete = True
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
            with contextlib.suppress(OSError, ValueError, RuntimeError):
                self._response.shutdown()
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

    TLS is verified (``ca_certs`` and ``ssl_context`` adjust it). Redirects are never
    followed, so the API key is never sent to another host. Proxies come from
    ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY`` when ``trust_env`` is true, or from an
    explicit ``proxy_url``.
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
        self._pool_kwargs: dict[str, object] = {"maxsize": maxsize, "block": False}
        if ca_certs is not None:
            self._pool_kwargs["ca_certs"] = ca_certs
        if ssl_context is not None:
            self._pool_kwargs["ssl_context"] = ssl_context
        self._proxy_url = proxy_url
        self._trust_env = trust_env
        self._lock = threading.Lock()
        self._direct = urllib3.PoolManager(**self._pool_kwargs)  # type: ignore[arg-type]
        self._proxies: dict[str, urllib3.ProxyManager] = {}

    def _manager_for(self, url: str) -> urllib3.PoolManager:
        proxy = self._proxy_url or (self._env_proxy(url) if self._trust_env else None)
        if proxy is None:
            return self._direct
        with self._lock:
            manager = self._proxies.get(proxy)
            if manager is None:
                manager = urllib3.ProxyManager(proxy, **self._pool_kwargs)  # type: ignore[arg-type]
                self._proxies[proxy] = manager
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
        place = where(request.url)
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
        except _Urllib3ConnectTimeout as exc:
            raise ConnectTimeoutError(
                "connect", timeouts.connect or 0.0, "connecting",
                f"could not connect to {place} within {timeouts.connect} s",
            ) from exc
        except ReadTimeoutError as exc:
            raise ConnectTimeoutError(
                "read", timeouts.read or 0.0, "connecting",
                f"no response from {place} within {timeouts.read} s",
            ) from exc
        except (HTTPError, OSError) as exc:
            raise TransportError(f"cannot reach {place}: {_describe(exc)}") from exc
        # The flow enforces the read and authorization limits itself (it closes the
        # response); the socket only needs a backstop that outlasts them both.
        sock = getattr(response.connection, "sock", None)
        if sock is not None:
            limits = [t for t in (timeouts.read, timeouts.authorization) if t is not None]
            sock.settimeout(max(limits) + 5.0 if limits else None)
        return _Urllib3Response(response, request.url)

    def close(self) -> None:
        """Close every pooled connection."""
        self._direct.clear()
        with self._lock:
            for manager in self._proxies.values():
                manager.clear()
            self._proxies.clear()
