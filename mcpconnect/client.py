"""The blocking entry points: :class:`Client`, :func:`connect` and :func:`stream_events`.

They resolve the settings, build the request, and pump the response's chunks through the
SSE decoder and the connect flow, with every wait bounded (see :mod:`mcpconnect._watchdog`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import urllib.parse
from collections.abc import Callable, Generator, Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

import attrs

from ._checks import check_header_text
from ._settings import _Settings, resolve_api_key, resolve_base_url
from ._timeouts import Timeouts
from ._version import __version__
from ._watchdog import Watch
from .errors import (
    ConfigError,
    ConnectCancelledError,
    ConnectionFailedError,
    McpConnectError,
    ProtocolError,
    StreamEndedError,
    TransportError,
)
from .flow import ConnectFlow
from .models import McpConnectConfig, McpOauthEvent, McpTool
from .sse import SSEDecoder
from .transports._base import Request, Response, Transport, header, where, without_userinfo

if TYPE_CHECKING:
    from .servers import McpServer

__all__ = ["Client", "EventStream", "connect", "connect_request", "stream_events"]

log = logging.getLogger("mcpconnect")

CONNECT_PATH = "/v1/tools/mcp/servers/connect"
CONNECT_SERVER_PATH = "/v1/mcp-servers/connect/"
MAX_ERROR_BODY = 64 * 1024
ERROR_BODY_SECONDS = 5.0

#: What ``on_event`` takes: a callable called with each :class:`~mcpconnect.McpOauthEvent`;
#: its return value is ignored.
OnEvent = Callable[[McpOauthEvent], object]
#: A server config: a :class:`~mcpconnect.McpConnectConfig`, or a mapping in the wire's shape
#: (``server_name``, ``type``, ``server_url``, ``auth_header``, ``auth_token``,
#: ``custom_headers``).
ConfigLike = McpConnectConfig | Mapping[str, Any]
#: A time limit: a :class:`~mcpconnect.Timeouts`, a number of seconds (the ``total`` limit,
#: the others at their defaults), or ``None`` (the client's limits, else the defaults).
TimeoutLike = Timeouts | float | None


def _check_transport(transport: object) -> Transport:
    for method in ("send", "close"):
        if not callable(getattr(transport, method, None)):
            raise ConfigError(
                f"transport must have callable send() and close() methods, "
                f"got {type(transport).__name__} without {method}()"
            )
    return transport  # type: ignore[return-value]


def _check_call(on_event: object, cancel: object) -> None:
    """The arguments of one connect, checked before any request."""
    if on_event is not None and not callable(on_event):
        raise ConfigError(f"on_event must be callable or None, got {type(on_event).__name__}")
    if cancel is not None and not callable(getattr(cancel, "is_set", None)):
        raise ConfigError(
            "cancel must be a threading.Event (anything with is_set()) or None, "
            f"got {type(cancel).__name__}"
        )


def _as_config(config: ConfigLike) -> McpConnectConfig:
    if isinstance(config, McpConnectConfig):
        return config
    if isinstance(config, Mapping):
        return McpConnectConfig.from_dict(config)
    raise ConfigError(
        f"config must be a McpConnectConfig or a mapping, got {type(config).__name__}"
    )


class _Stopper:
    """How another thread stops one connect (``EventStream.close()``, ``Client.close()``):
    also before it has started, and whatever it is blocked in (through its :class:`Watch`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watch: Watch | None = None
        self._stopped = False

    def started(self, watch: Watch) -> None:
        """The connect thread made its watch; a stop that came first applies to it now."""
        with self._lock:
            self._watch = watch
            stopped = self._stopped
        if stopped:
            watch.stop(ConnectCancelledError(str(watch.state)))

    def stop(self) -> None:
        """Any thread: the connect raises :class:`~mcpconnect.ConnectCancelledError`."""
        with self._lock:
            self._stopped = True
            watch = self._watch
        if watch is not None:
            watch.stop(ConnectCancelledError(str(watch.state)))


class EventStream(Iterator[McpOauthEvent]):
    """The events of one connect, as they arrive. Iterating ends after ``success`` (then
    :attr:`tools` holds the tools) and raises on everything else, as :func:`connect` does.

    Closing it (``close()``, leaving a ``with`` block, or dropping it) closes the connection,
    also when the caller stops early. ``close()`` may be called from any thread: a ``next()``
    blocked in another thread then raises :class:`~mcpconnect.ConnectCancelledError`. Once
    closed, iterating ends.
    """

    def __init__(
        self,
        events: Generator[McpOauthEvent, None, list[McpTool]],
        on_close: Callable[[], object] | None = None,
        stopper: _Stopper | None = None,
    ) -> None:
        self._events = events
        self._on_close = on_close
        self._stopper = stopper
        self._lock = threading.Lock()
        self._running = False  # a thread is inside next(self._events)
        self._closed = False
        self._finished = False
        self.tools: list[McpTool] | None = None

    def __iter__(self) -> EventStream:
        return self

    def __next__(self) -> McpOauthEvent:
        with self._lock:
            if self._closed:
                raise StopIteration
            self._running = True
        try:
            event = next(self._events)
        except StopIteration as stop:
            if stop.value is not None:  # a generator already over stops with None
                self.tools = stop.value
            self._idle()
            self.close()
            raise StopIteration from None
        except BaseException:
            self._idle()
            self.close()
            raise
        if self._idle():  # closed by another thread meanwhile: finish here, on this thread
            self._finish()
        return event

    def _idle(self) -> bool:
        """Leave ``next()``; whether the stream was closed meanwhile."""
        with self._lock:
            self._running = False
            return self._closed

    def close(self) -> None:
        """Close the connection. Idempotent; safe from any thread."""
        with self._lock:
            self._closed = True
            running = self._running
        if running:
            # Another thread is inside next(): stop the connect (its blocked read fails); that
            # thread then finishes the generator, which only it may touch.
            if self._stopper is not None:
                self._stopper.stop()
            return
        self._finish()

    def _finish(self) -> None:
        with self._lock:
            if self._finished:
                return
            self._finished = True
        try:
            self._events.close()
        finally:
            on_close, self._on_close = self._on_close, None
            if on_close is not None:
                on_close()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


class Client:
    """A connection to one Letta server; thread-safe, so one may serve many threads.

    Use it in a ``with`` block, or call :meth:`close`.

    Args:
        base_url: The Letta server, e.g. ``http://localhost:8283``. Default: the
            ``LETTA_BASE_URL`` variable, else ``env.LETTA_BASE_URL`` in the settings file,
            else ``https://api.letta.com``.
        api_key: Sent as ``Authorization: Bearer <api_key>``. Default: ``LETTA_API_KEY``,
            else ``env.LETTA_API_KEY`` in the settings file; if there is none,
            :class:`~mcpconnect.MissingApiKeyError` is raised here, before any request.
        transport: How requests are sent (see :mod:`mcpconnect.transports`). Default: a
            :class:`~mcpconnect.transports.Urllib3Transport` of the client's own, closed with
            it; a transport you pass stays open.
        timeout: The time limits of every call (a call may pass its own): a
            :class:`~mcpconnect.Timeouts`, a number (the ``total`` limit), or ``None`` for
            the defaults.
        settings_path: The settings file to read instead of ``~/.letta/settings.json``;
            it must exist.
        source: Sent as ``X-Letta-Source``; Letta picks the OAuth redirect URI by it
            (``None``: not sent).
        user_agent: The ``User-Agent`` header (default ``mcpconnect/<version>``).

    Every argument is checked here: a bad one (a base URL with a query or a bad port, an API
    key with a control or non-Latin-1 character, a transport without ``send``/``close``, ...)
    raises :class:`~mcpconnect.ConfigError` naming it, and never repeats the key.
    """

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        transport: Transport | None = None,
        timeout: TimeoutLike = None,
        settings_path: str | os.PathLike[str] | None = None,
        source: str | None = "letta-code",
        user_agent: str | None = None,
    ) -> None:
        settings = _Settings(settings_path)
        self.base_url = resolve_base_url(base_url, _settings=settings)
        self._api_key = resolve_api_key(api_key, _settings=settings)
        self.timeouts = Timeouts.coerce(timeout)
        if source is not None:
            check_header_text(source, "source")
        if user_agent is not None:
            check_header_text(user_agent, "user_agent")
        if transport is not None:
            _check_transport(transport)
        self._headers = {
            "Accept": "text/event-stream",
            # The body is read as it is sent: never a compressed one (see _check_response).
            "Accept-Encoding": "identity",
            "Authorization": f"Bearer {self._api_key}",
            "User-Agent": user_agent or f"mcpconnect/{__version__}",
        }
        if source:
            self._headers["X-Letta-Source"] = source
        if transport is None:
            from .transports._urllib3 import Urllib3Transport

            self._transport: Transport = Urllib3Transport()
            self._owns_transport = True
        else:
            self._transport = transport
            self._owns_transport = False
        self._lock = threading.Lock()
        self._closed = False
        self._running: set[_Stopper] = set()  # the connects in flight

    def __repr__(self) -> str:
        return (
            f"Client(base_url={without_userinfo(self.base_url)!r}, "
            f"transport={type(self._transport).__name__})"
        )

    def close(self) -> None:
        """Close the client: connects in flight (also in other threads, and event streams
        not yet read to their end) raise :class:`~mcpconnect.ConnectCancelledError`, new ones
        raise :class:`~mcpconnect.ConfigError`, and the transport is closed if the client
        made it. Idempotent."""
        with self._lock:
            self._closed = True
            running = list(self._running)
        for stopper in running:
            stopper.stop()
        if self._owns_transport:
            self._transport.close()

    def _open(self) -> _Stopper:
        """A new connect or request: refused once the client is closed, stopped by
        :meth:`close` (the caller hands its watch to :meth:`_Stopper.started`)."""
        stopper = _Stopper()
        with self._lock:
            if self._closed:
                raise ConfigError("this Client is closed: make a new one to connect")
            self._running.add(stopper)
        return stopper

    def _forget(self, stopper: _Stopper) -> None:
        with self._lock:
            self._running.discard(stopper)

    @contextlib.contextmanager
    def _in_flight(self) -> Iterator[_Stopper]:
        """:meth:`_open` and :meth:`_forget` around one request."""
        stopper = self._open()
        try:
            yield stopper
        finally:
            self._forget(stopper)

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- the flows -------------------------------------------------------------------------

    def connect(
        self,
        config: ConfigLike,
        *,
        on_event: OnEvent | None = None,
        cancel: threading.Event | None = None,
        timeout: TimeoutLike = None,
    ) -> list[McpTool]:
        """Connect the MCP server ``config`` through Letta and return its tools.

        Args:
            config: The MCP server: a :class:`~mcpconnect.McpConnectConfig`, or a mapping in
                the wire's shape (``server_name``, ``type``, ``server_url``, ``auth_header``,
                ``auth_token``, ``custom_headers``).
            on_event: Called with every :class:`~mcpconnect.McpOauthEvent`, in order, as soon
                as it arrives; show the user the ``url`` of the ``authorization_url`` event.
                An exception it raises propagates unchanged (the connection is closed first).
            cancel: A :class:`threading.Event`; setting it from another thread stops the
                connect promptly with :class:`~mcpconnect.ConnectCancelledError`, also while
                it waits on a silent stream.
            timeout: This call's limits (a :class:`~mcpconnect.Timeouts` or a number, the
                ``total``); default: the client's.

        Returns:
            The tools of the ``success`` event, as :class:`~mcpconnect.McpTool` values.

        Raises:
            ConfigError: A bad argument or config, before any request.
            ConnectionFailedError: The HTTP status was not 2xx (``.status``, ``.body``).
            ServerError: The stream said ``error`` (``.message``); a
                :class:`~mcpconnect.MissingAuthorizationUrlError` for OAuth without a URL.
            ConnectTimeoutError: A time limit ran out (``.limit``, ``.state``).
            ConnectCancelledError: ``cancel`` was set, or the client was closed.
            TransportError: The network failed (refused, reset, TLS, truncated body).
            StreamEndedError: The body ended before ``success`` or ``error``.
            ProtocolError: The answer is not an event stream Letta would send.
        """
        _check_call(on_event, cancel)
        return _drain(self.stream_events(config, cancel=cancel, timeout=timeout), on_event)

    def stream_events(
        self,
        config: ConfigLike,
        *,
        cancel: threading.Event | None = None,
        timeout: TimeoutLike = None,
    ) -> EventStream:
        """The same flow as :meth:`connect`, as an iterator of events.

        Args:
            config: The MCP server, as for :meth:`connect`.
            cancel: As for :meth:`connect`.
            timeout: As for :meth:`connect`.

        Returns:
            An :class:`EventStream`: iterate it (ideally in a ``with`` block); after
            ``success`` its ``tools`` holds the tools. Leaving the block, ``close()``,
            ``break`` or dropping it closes the connection.

        Raises:
            ConfigError: A bad argument or config, here. Everything else that :meth:`connect`
                raises comes while iterating, after the ``error`` event itself was yielded.
        """
        _check_call(None, cancel)
        return self._stream(self.connect_request(config), cancel, timeout)

    def connect_request(self, config: ConfigLike) -> Request:
        """The request :meth:`connect` sends for ``config``: ``POST
        {base_url}/v1/tools/mcp/servers/connect`` with this client's headers (``Accept``,
        ``Accept-Encoding``, ``Authorization``, ``User-Agent``, ``X-Letta-Source``,
        ``Content-Type``) and the config in the wire's JSON shape as the body.

        For code that does its own I/O (an asyncio client, say): send it with any HTTP
        library and feed the body to :class:`~mcpconnect.sse.SSEDecoder` and
        :class:`~mcpconnect.ConnectFlow`. Raises :class:`~mcpconnect.ConfigError` for an
        invalid config."""
        body = json.dumps(_as_config(config).to_dict()).encode()
        headers = {**self._headers, "Content-Type": "application/json"}
        return Request("POST", self.base_url + CONNECT_PATH, headers, body)

    def connect_server(
        self,
        mcp_server_id: str,
        *,
        on_event: OnEvent | None = None,
        cancel: threading.Event | None = None,
        timeout: TimeoutLike = None,
    ) -> list[McpTool]:
        """Reconnect an MCP server Letta already knows, by id
        (``GET /v1/mcp-servers/connect/{id}``); otherwise as :meth:`connect`."""
        _check_call(on_event, cancel)
        events = self.stream_server_events(mcp_server_id, cancel=cancel, timeout=timeout)
        return _drain(events, on_event)

    def stream_server_events(
        self,
        mcp_server_id: str,
        *,
        cancel: threading.Event | None = None,
        timeout: TimeoutLike = None,
    ) -> EventStream:
        """:meth:`connect_server` as an iterator of events."""
        _check_call(None, cancel)
        if not isinstance(mcp_server_id, str) or not mcp_server_id:
            raise ConfigError(f"mcp_server_id must be a non-empty string, got {mcp_server_id!r}")
        url = self.base_url + CONNECT_SERVER_PATH + urllib.parse.quote(mcp_server_id, safe="")
        request = Request("GET", url, dict(self._headers))
        return self._stream(request, cancel, timeout, server_id=mcp_server_id)

    def _stream(
        self,
        request: Request,
        cancel: threading.Event | None,
        timeout: TimeoutLike,
        on_close: Callable[[], object] | None = None,
        server_id: str | None = None,
    ) -> EventStream:
        timeouts = Timeouts.coerce(timeout, self.timeouts)
        stopper = self._open()

        def finished() -> None:
            self._forget(stopper)
            if on_close is not None:
                on_close()

        events = _run(self._transport, request, timeouts, cancel, stopper)
        if server_id is not None:  # a registered server: Letta's 404 is ServerNotFoundError
            from .servers import _unknown_id

            events = _unknown_id(events, server_id)
        return EventStream(events, finished, stopper)

    # --- registered servers: thin wrappers over mcpconnect.servers ------------------------

    def add_server(
        self,
        config: ConfigLike,
        *,
        name: str | None = None,
        on_event: OnEvent | None = None,
        cancel: threading.Event | None = None,
        timeout: TimeoutLike = None,
    ) -> McpServer:
        """Connect the MCP server ``config`` exactly as :meth:`connect` does (OAuth
        included), then register it in Letta (``POST /v1/mcp-servers/``) with the config's
        exact ``server_url``, by which Letta links the authorization it stored. Return the
        created :class:`~mcpconnect.McpServer`, with the tools the connect returned.

        ``name`` is the server's name (default: the config's ``server_name``; for a mapping
        without one, :func:`~mcpconnect.servers.default_server_name` of the URL); it must
        match :data:`~mcpconnect.servers.NAME_PATTERN`, else
        :class:`~mcpconnect.ConfigError` before any request. An ``auth_header`` other than
        ``Authorization: Bearer …`` is registered as a custom header, since Letta would turn
        it into a bearer token. ``on_event`` and ``cancel`` work as in :meth:`connect`;
        ``timeout``'s ``total`` covers both steps, the other limits each request.

        Raises what :meth:`connect` raises, and for the registration
        :class:`~mcpconnect.DuplicateServerNameError` (409),
        :class:`~mcpconnect.ConnectionFailedError` (another status; 422 explained),
        :class:`~mcpconnect.ProtocolError`, :class:`~mcpconnect.TransportError`,
        :class:`~mcpconnect.ConnectTimeoutError`, :class:`~mcpconnect.ConnectCancelledError`;
        after an OAuth authorization, their message says that Letta stored it.
        """
        from .servers import _add

        return _add(self, config, name=name, on_event=on_event, cancel=cancel, timeout=timeout)

    def list_servers(
        self, *, cancel: threading.Event | None = None, timeout: TimeoutLike = None
    ) -> list[McpServer]:
        """Every MCP server registered in Letta (``GET /v1/mcp-servers/``; the whole
        organization's, also other clients'), without tools. Raises
        :class:`~mcpconnect.ConnectionFailedError`, :class:`~mcpconnect.ProtocolError`,
        :class:`~mcpconnect.TransportError`, :class:`~mcpconnect.ConnectTimeoutError` or
        :class:`~mcpconnect.ConnectCancelledError`."""
        from .servers import _list

        return _list(self, cancel=cancel, timeout=timeout)

    def get_server(
        self,
        mcp_server_id: str,
        *,
        cancel: threading.Event | None = None,
        timeout: TimeoutLike = None,
    ) -> McpServer:
        """The MCP server ``mcp_server_id`` (``GET /v1/mcp-servers/{id}``), without tools.
        Raises :class:`~mcpconnect.ServerNotFoundError` for an unknown id, otherwise as
        :meth:`list_servers`."""
        from .servers import _get

        return _get(self, mcp_server_id, cancel=cancel, timeout=timeout)

    def delete_server(
        self,
        mcp_server_id: str,
        *,
        cancel: threading.Event | None = None,
        timeout: TimeoutLike = None,
    ) -> None:
        """Delete the MCP server ``mcp_server_id`` (``DELETE /v1/mcp-servers/{id}``).
        Raises :class:`~mcpconnect.ServerNotFoundError` for an unknown id (Letta answers
        400), otherwise as :meth:`list_servers`."""
        from .servers import _delete

        _delete(self, mcp_server_id, cancel=cancel, timeout=timeout)


def _drain(events: EventStream, on_event: OnEvent | None) -> list[McpTool]:
    with events:
        for event in events:
            if on_event is not None:
                on_event(event)
    if events.tools is None:  # the stream was closed before success
        raise ConnectCancelledError("closed")
    return events.tools


def _open(
    transport: Transport,
    request: Request,
    timeouts: Timeouts,
    cancel: threading.Event | None,
    stopper: _Stopper,
    *,
    state: str | None = None,
    started: float | None = None,
) -> tuple[Watch, Response]:
    """Send ``request`` under a new watch (cancel and the limits, before the headers too);
    return the watch, attached to the response. The caller detaches it and closes the
    response. ``state`` names the step in messages; the ``total`` counts from ``started``."""
    watch = Watch(timeouts, cancel, where(request.url))
    if state is not None:
        watch.state = state
    if started is not None:
        watch.started = started
    stopper.started(watch)
    stopped = watch.check()
    if stopped is not None:
        raise stopped
    log.debug("%s %s", request.method, without_userinfo(request.url))
    try:
        response = transport.send(attrs.evolve(request, watch=watch), _send_timeouts(timeouts))
    except (McpConnectError, OSError) as exc:
        watch.detach()
        raise watch.failure(exc, f"cannot reach {where(request.url)}") from exc
    except BaseException:
        watch.detach()
        raise
    watch.attach(response)
    return watch, response


def _run(
    transport: Transport,
    request: Request,
    timeouts: Timeouts,
    cancel: threading.Event | None,
    stopper: _Stopper,
) -> Generator[McpOauthEvent, None, list[McpTool]]:
    """The read loop: one request, its chunks through the decoder and the flow."""
    watch, response = _open(transport, request, timeouts, cancel, stopper)
    try:
        flow = ConnectFlow()
        try:
            _check_response(response, watch)
        except (ConnectionFailedError, ProtocolError):
            raise  # the head is in and is the error, whatever happened to the body
        try:
            decoder = SSEDecoder(bare_json_lines=True)
            for chunk in response.iter_chunks():
                watch.activity()
                for sse in decoder.feed(chunk):
                    event = flow.receive(sse)
                    if event is None:
                        continue
                    watch.state = flow.state
                    watch.authorizing(flow.limit == "authorization")
                    watch.holding(True)  # time spent in the caller is not the server's silence
                    yield event
                    watch.holding(False)
                    if flow.done:
                        return flow.result()
            decoder.close()
        except (McpConnectError, OSError) as exc:
            raise watch.failure(exc, "the connection broke") from exc
        if watch.reason is not None:
            raise watch.reason
        raise StreamEndedError(flow.state.value)
    finally:
        watch.detach()
        response.close()


def _send_timeouts(timeouts: Timeouts) -> Timeouts:
    """The limits for opening the request: connect and read within the total."""
    total = timeouts.total
    if total is None:
        return timeouts
    return attrs.evolve(
        timeouts,
        connect=min(total, timeouts.connect or total),
        read=min(total, timeouts.read or total),
    )


def _error_body(response: Response, watch: Watch) -> str:
    """The start of an error body: at most ``MAX_ERROR_BODY`` bytes, read for at most
    ``ERROR_BODY_SECONDS`` (then ``watch`` is stopped, which closes ``response``), whatever
    the limits. What arrived is kept when the body breaks off, stalls or is cut short: the
    status is the error, not that."""
    body = bytearray()
    # An error is rare: a timer thread for it costs nothing that matters, and bounds the
    # read also when the caller turned the read limit off.
    timer = threading.Timer(
        ERROR_BODY_SECONDS, watch.stop, [TransportError("the error body took too long")]
    )
    timer.daemon = True
    timer.start()
    try:
        for chunk in response.iter_chunks():
            body += chunk
            if len(body) >= MAX_ERROR_BODY:
                break
    except (McpConnectError, OSError) as exc:
        log.debug("the error body broke off after %d bytes: %s", len(body), type(exc).__name__)
    finally:
        timer.cancel()
    return bytes(body[:MAX_ERROR_BODY]).decode("utf-8", "replace")


def _media_type(content_type: str) -> str:
    """``text/event-stream`` from ``Text/Event-Stream; charset=utf-8``."""
    return content_type.partition(";")[0].strip().lower()


def _check_response(response: Response, watch: Watch) -> None:
    status = response.status
    if not 200 <= status < 300:
        body = _error_body(response, watch)
        location = header(response.headers, "location")
        if 300 <= status < 400 and location:
            raise ConnectionFailedError(
                status, body,
                f"Connection failed ({status}): redirected to {location}; "
                "redirects are not followed, so that the API key stays with the server",
            )
        raise ConnectionFailedError(status, body)
    encoding = header(response.headers, "content-encoding")
    if encoding is not None and encoding.strip().lower() not in ("", "identity"):
        # Decoding a compressed body would take memory the limits do not see (a zip bomb).
        raise ProtocolError(
            f"the server sent a body with Content-Encoding {encoding!r}; only an "
            "uncompressed event stream is read (the request says Accept-Encoding: identity)"
        )
    content_type = header(response.headers, "content-type")
    if content_type is not None and _media_type(content_type) != "text/event-stream":
        # One read only: the point is not to wait on a body that is not a stream. Whatever
        # that read does, the content type is the error.
        try:
            first = next(iter(response.iter_chunks()), b"")
        except (McpConnectError, OSError):
            first = b""
        preview = first[:200].decode("utf-8", "replace")
        raise ProtocolError(
            f"expected an event stream, got {content_type!r}: {preview!r}"
        )


def connect(
    config: ConfigLike,
    *,
    on_event: OnEvent | None = None,
    cancel: threading.Event | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    transport: Transport | None = None,
    timeout: TimeoutLike = None,
    settings_path: str | os.PathLike[str] | None = None,
    source: str | None = "letta-code",
) -> list[McpTool]:
    """Connect the MCP server ``config`` through the Letta server and return its tools.

    A one-shot :meth:`Client.connect` (a client made and closed for this call).

    Args:
        config: The MCP server: a :class:`~mcpconnect.McpConnectConfig`, or a mapping in the
            wire's shape (``server_name``, ``type``, ``server_url``, ``auth_header``,
            ``auth_token``, ``custom_headers``).
        on_event: Called with every :class:`~mcpconnect.McpOauthEvent`, in order, as soon as
            it arrives; show the user the ``url`` of the ``authorization_url`` event. An
            exception it raises propagates unchanged (the connection is closed first).
        cancel: A :class:`threading.Event`; setting it from another thread stops the connect
            promptly with :class:`~mcpconnect.ConnectCancelledError`.
        base_url: The Letta server; default ``LETTA_BASE_URL``, else the settings file, else
            ``https://api.letta.com``.
        api_key: Letta's API key; default ``LETTA_API_KEY``, else the settings file, else
            :class:`~mcpconnect.MissingApiKeyError` before any request.
        transport: How the request is sent; default a new
            :class:`~mcpconnect.transports.Urllib3Transport`. Yours is not closed.
        timeout: A :class:`~mcpconnect.Timeouts`, a number (the ``total`` limit), or ``None``
            (connect 10 s, read 60 s, authorization 330 s, total 900 s).
        settings_path: The settings file instead of ``~/.letta/settings.json``.
        source: Sent as ``X-Letta-Source`` (Letta picks the OAuth redirect by it).

    Returns:
        The tools of the ``success`` event, as :class:`~mcpconnect.McpTool` values.

    Raises:
        McpConnectError: A subclass for everything that goes wrong; see
            :meth:`Client.connect` for which one when.
    """
    with Client(
        base_url=base_url,
        api_key=api_key,
        transport=transport,
        timeout=timeout,
        settings_path=settings_path,
        source=source,
    ) as client:
        return client.connect(config, on_event=on_event, cancel=cancel)


def stream_events(
    config: ConfigLike,
    *,
    cancel: threading.Event | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    transport: Transport | None = None,
    timeout: TimeoutLike = None,
    settings_path: str | os.PathLike[str] | None = None,
    source: str | None = "letta-code",
) -> EventStream:
    """:func:`connect` as an iterator of events: a one-shot :meth:`Client.stream_events`.

    Args:
        config: The MCP server, as for :func:`connect`.
        cancel: As for :func:`connect`.
        base_url: As for :func:`connect`.
        api_key: As for :func:`connect`.
        transport: As for :func:`connect`.
        timeout: As for :func:`connect`.
        settings_path: As for :func:`connect`.
        source: As for :func:`connect`.

    Returns:
        An :class:`EventStream`; closing it (``with`` block, ``close()``, ``break`` and
        dropping it) closes the connection and the client made for it.

    Raises:
        ConfigError: A bad argument or config (and MissingApiKeyError), here; everything
            else that :func:`connect` raises comes while iterating.
    """
    client = Client(
        base_url=base_url,
        api_key=api_key,
        transport=transport,
        timeout=timeout,
        settings_path=settings_path,
        source=source,
    )
    try:
        _check_call(None, cancel)
        request = client.connect_request(config)
    except BaseException:
        client.close()
        raise
    return client._stream(request, cancel, None, on_close=client.close)


class _NoTransport:
    """The transport of a client that only builds requests."""

    def send(self, request: Request, timeouts: Timeouts) -> Response:
        raise RuntimeError("this client only builds requests")

    def close(self) -> None:
        pass


def connect_request(
    config: ConfigLike,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    settings_path: str | os.PathLike[str] | None = None,
    source: str | None = "letta-code",
    user_agent: str | None = None,
) -> Request:
    """The :class:`~mcpconnect.transports.Request` that :func:`connect` would send for
    ``config`` (see :meth:`Client.connect_request`), with the settings resolved as
    :class:`Client` resolves them: ``base_url`` and ``api_key`` from the arguments, else
    ``LETTA_BASE_URL``/``LETTA_API_KEY``, else the settings file. Opens no connection and
    imports no HTTP library.

    Raises :class:`~mcpconnect.MissingApiKeyError` when there is no API key and
    :class:`~mcpconnect.ConfigError` for an invalid argument or config.
    """
    client = Client(
        base_url=base_url, api_key=api_key, transport=_NoTransport(),
        settings_path=settings_path, source=source, user_agent=user_agent,
    )
    return client.connect_request(config)
