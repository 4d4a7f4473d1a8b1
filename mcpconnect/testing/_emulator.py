"""A loopback HTTP server that answers like Letta 0.16.8's MCP connect endpoints.

Theory of operation
-------------------
:class:`LettaEmulator` runs a standard-library ``ThreadingHTTPServer`` on 127.0.0.1 in a
background thread; every connection gets its own daemon thread. Two routes run the connect
flow and answer with a chunked ``text/event-stream``, one ``data: <json>\\n\\n`` event per
chunk, written as soon as it is ready:

- ``POST /v1/tools/mcp/servers/connect`` with the server config as the JSON body;
- ``GET /v1/mcp-servers/connect/{id}`` for a server registered with :meth:`add_server`.

What a flow does is a :class:`Scenario`, chosen by the config's ``server_name`` (see
:meth:`LettaEmulator.set_scenario`) or else the emulator's default. In OAuth scenarios the
``authorization_url`` event points at the emulator's own ``/authorize`` page, which redirects
(302) to ``/v1/tools/mcp/oauth/callback`` the way an authorization server would; the callback
releases the stream that waits for it. Plain ``urllib.request.urlopen(url)`` follows the
redirect, so it can play the browser.

A waiting or silent stream sleeps on one condition variable shared by the whole emulator.
:meth:`LettaEmulator.stop` stops accepting, wakes every sleeper, shuts every open socket down
and joins the connection threads, so silent streams never keep it from returning.
"""

from __future__ import annotations

import contextlib
import html
import http.client
import json
import secrets
import select
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, NoReturn
from urllib.parse import parse_qs, urlencode, urlsplit

import attrs

from . import _emulator_servers
from ._emulator_servers import Registry

if TYPE_CHECKING:
    from ..client import Client

__all__ = ["DEFAULT_TOOLS", "LettaEmulator", "OauthMode", "RecordedRequest", "Scenario"]

CONNECT_PATH = "/v1/tools/mcp/servers/connect"
CONNECT_BY_ID_PREFIX = "/v1/mcp-servers/connect/"
CALLBACK_PATH = "/v1/tools/mcp/oauth/callback"
AUTHORIZE_PATH = "/authorize"

_MAX_BODY = 1 << 20
_STOP_JOIN_SECONDS = 5.0
_WAIT_SLICE_SECONDS = 0.2

OauthMode = Literal["approve", "deny", "silent", "no_url"]
_OAUTH_MODES = ("approve", "deny", "silent", "no_url")

#: The three tools of the acceptance MCP server, exactly as the recorded fixtures list them.
DEFAULT_TOOLS: tuple[Mapping[str, Any], ...] = (
    {
        "name": "echo",
        "title": None,
        "description": "Echo the given text back unchanged.",
        "inputSchema": {
            "properties": {"text": {"title": "Text", "type": "string"}},
            "required": ["text"],
            "title": "echoArguments",
            "type": "object",
        },
        "outputSchema": {
            "properties": {"result": {"title": "Result", "type": "string"}},
            "required": ["result"],
            "title": "echoOutput",
            "type": "object",
        },
        "annotations": None,
        "meta": None,
    },
    {
        "name": "add",
        "title": None,
        "description": "Add two integers and return the sum.",
        "inputSchema": {
            "properties": {
                "a": {"title": "A", "type": "integer"},
                "b": {"title": "B", "type": "integer"},
            },
            "required": ["a", "b"],
            "title": "addArguments",
            "type": "object",
        },
        "outputSchema": {
            "properties": {"result": {"title": "Result", "type": "integer"}},
            "required": ["result"],
            "title": "addOutput",
            "type": "object",
        },
        "annotations": None,
        "meta": None,
    },
    {
        "name": "server_mode",
        "title": None,
        "description": "Say which acceptance server answered (noauth or oauth).",
        "inputSchema": {"properties": {}, "title": "server_modeArguments", "type": "object"},
        "outputSchema": {
            "properties": {"result": {"title": "Result", "type": "string"}},
            "required": ["result"],
            "title": "server_modeOutput",
            "type": "object",
        },
        "annotations": None,
        "meta": None,
    },
)


def _tools(tools: Iterable[Mapping[str, Any]]) -> tuple[Mapping[str, Any], ...]:
    return tuple(tools)


def _non_negative(_: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and value < 0:
        raise ValueError(f"{attribute.name} must be >= 0, got {value!r}")


@attrs.frozen(kw_only=True)
class Scenario:
    """What the emulator does with one connect request.

    ``oauth``: ``None`` for a server without auth (``connection_attempt`` then the outcome);
    otherwise ``oauth_required``, ``authorization_url``, ``waiting_for_auth``, and then:
    ``"approve"``: visiting the URL approves and releases the stream, which sends the outcome;
    ``"deny"``: the URL redirects with ``error=access_denied`` and the stream stays silent;
    ``"silent"``: the URL approves but the stream stays silent all the same;
    ``"no_url"``: no ``authorization_url`` event at all, then silence (a wrong MCP path).
    Silent streams last until the client hangs up or the emulator stops.

    The outcome is a ``success`` event listing ``tools``; or, if ``error`` is set, an ``error``
    event with that message; or, if ``stream_error`` is set, an ``event: error`` frame with
    ``{"error": stream_error, "code": stream_error_code}`` (Letta's frame for an exception that
    escapes mid-stream). The body then ends normally.

    ``drop_after``: after writing this many events (``0``: right after the headers) close the
    connection without ending the chunked body. ``delay``: seconds to wait before each event.
    ``remember_token``: a ``server_name`` that was approved before goes straight to the outcome.
    """

    oauth: OauthMode | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.in_(_OAUTH_MODES))
    )
    tools: tuple[Mapping[str, Any], ...] = attrs.field(default=DEFAULT_TOOLS, converter=_tools)
    error: str | None = None
    stream_error: str | None = None
    stream_error_code: str = "INTERNAL_SERVER_ERROR"
    drop_after: int | None = attrs.field(default=None, validator=_non_negative)
    delay: float = attrs.field(default=0.0, validator=_non_negative)
    remember_token: bool = True

    def __attrs_post_init__(self) -> None:
        if self.error is not None and self.stream_error is not None:
            raise ValueError("set at most one of error and stream_error")


_SECRET_HEADERS = ("authorization", "proxy-authorization", "cookie", "x-api-key")


def _redacted_headers(headers: Mapping[str, str]) -> str:
    shown = {k: ("<redacted>" if k.lower() in _SECRET_HEADERS else v) for k, v in headers.items()}
    return repr(shown)


def _redacted(value: Any) -> Any:
    """A JSON body with ``auth_token`` and every ``custom_headers`` value hidden, at any depth."""
    if isinstance(value, list):
        return [_redacted(item) for item in value]
    if not isinstance(value, dict):
        return value
    shown: dict[Any, Any] = {}
    for key, item in value.items():
        if key == "auth_token" and item is not None:
            shown[key] = "<redacted>"
        elif key == "custom_headers" and isinstance(item, dict):
            shown[key] = dict.fromkeys(item, "<redacted>")
        else:
            shown[key] = _redacted(item)
    return shown


@attrs.frozen
class RecordedRequest:
    """One request the emulator received.

    ``path`` is the request target with its query string; ``headers`` has lower-case names
    (the last of repeated headers wins); ``body`` is the body parsed as JSON, or ``None`` when
    it is empty or not JSON; ``raw_body`` is the body as sent. The repr hides secrets: the
    ``Authorization`` header, ``auth_token`` and the values of ``custom_headers``.
    """

    method: str
    path: str
    headers: Mapping[str, str] = attrs.field(repr=_redacted_headers)
    body: Any = attrs.field(repr=lambda body: repr(_redacted(body)))
    raw_body: bytes = attrs.field(repr=False)


@attrs.define
class _Session:
    server_name: str
    scenario: Scenario
    session_id: str
    state: str
    server_url: str = ""
    code: str | None = None
    released: bool = False
    # The waiter of this session sleeps on its own condition (sharing the emulator's lock),
    # so that one authorization wakes one stream, not every stream that waits.
    wakeup: threading.Condition | None = None


class _Hangup(Exception):
    """The stream ends without a proper end: a drop, the client left, or stop()."""


class LettaEmulator:
    """A Letta 0.16.8 stand-in on ``127.0.0.1`` for tests; see the module docstring.

    ``scenario`` is the default :class:`Scenario` (an attribute you may reassign at any
    time). With ``api_key`` set, every route but ``/authorize`` and the OAuth callback answers
    ``401 {"detail":"Unauthorized"}`` unless the request has ``Authorization: Bearer <api_key>``.
    ``port`` 0 picks a free port. Use it as a context manager, or call :meth:`start` and
    :meth:`stop`; it cannot be started twice.
    """

    def __init__(
        self, scenario: Scenario | None = None, *, api_key: str | None = None, port: int = 0
    ) -> None:
        self.scenario: Scenario = scenario if scenario is not None else Scenario()
        self._api_key = api_key
        self._port = port
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._scenarios: dict[str, Scenario] = {}
        self._registry = Registry()  # the /v1/mcp-servers/ routes: _emulator_servers.py
        self._sessions: dict[str, _Session] = {}
        self._tokens: set[str] = set()
        self._requests: list[RecordedRequest] = []
        self._stopping = False
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        where = self.base_url if self._server is not None else "not started"
        return f"<LettaEmulator {where}>"

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> LettaEmulator:
        """Bind the port and serve in a background thread; return ``self``.

        Raises ``RuntimeError`` if it was started before, ``OSError`` if the port is taken.
        """
        if self._server is not None:
            raise RuntimeError("LettaEmulator can be started only once")
        self._server = _Server(self, self._port)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="LettaEmulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every open connection, silent streams included.

        Returns once the connection threads have ended (waiting at most a few seconds for
        them). Calling it again, or before :meth:`start`, does nothing.
        """
        server = self._server
        with self._cond:
            if server is None or self._stopping:
                return
            self._stopping = True
            self._cond.notify_all()
            for session in self._sessions.values():
                if session.wakeup is not None:
                    session.wakeup.notify_all()
        server.shutdown()
        server.server_close()
        with self._cond:
            connections = list(server.connections.items())
        for sock, _ in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for _, thread in connections:
            thread.join(_STOP_JOIN_SECONDS)
        if self._thread is not None:
            self._thread.join(_STOP_JOIN_SECONDS)

    def __enter__(self) -> LettaEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def api_key(self) -> str | None:
        """The API key a client must send as ``Authorization: Bearer <api_key>``; ``None``
        when the emulator takes any key (a client still needs one: see :meth:`client`)."""
        return self._api_key

    def client(self, **kwargs: Any) -> Client:
        """A :class:`mcpconnect.Client` for this emulator: ``base_url`` and ``api_key`` set
        (any key when :attr:`api_key` is ``None``); ``kwargs`` go to ``Client`` and win.

        Close it (or use it in a ``with`` block) when done. Raises ``RuntimeError`` before
        :meth:`start`.
        """
        from ..client import Client

        kwargs.setdefault("base_url", self.base_url)
        kwargs.setdefault("api_key", self._api_key if self._api_key is not None else "any-key")
        return Client(**kwargs)

    def authorize(self, url: str | None, *, timeout: float = 5.0) -> None:
        """Do what the user does in the browser: visit an ``authorization_url`` event's ``url``
        and follow its redirect to the OAuth callback.

        In an ``"approve"`` scenario this releases the waiting stream, which then sends its
        outcome; in ``"deny"`` the user refuses (the stream stays silent, as Letta's does).
        Safe to call from ``on_event``. Raises ``ValueError`` for a URL that is not this
        emulator's authorization page, ``RuntimeError`` if the emulator does not know the
        authorization request (already used, or from another emulator), ``OSError`` (or
        ``TimeoutError``) after ``timeout`` seconds per request.
        """
        prefix = self.base_url + AUTHORIZE_PATH + "?"
        if not isinstance(url, str) or not url.startswith(prefix):
            raise ValueError(f"not an authorization URL of this emulator ({prefix}...)")
        location = _get(self._server_port(), url[len(self.base_url) :], timeout)
        if location is None or not location.startswith(self.base_url + CALLBACK_PATH):
            raise RuntimeError("the emulator does not know this authorization request")
        _get(self._server_port(), location[len(self.base_url) :], timeout)

    def wait_closed(self, timeout: float = 5.0) -> None:
        """Wait until no client connection is open (:attr:`open_connections` is 0).

        A connection the client closed is seen closed within a fraction of a second, not at
        once; use this before asserting that nothing was left open. Raises ``TimeoutError``
        if connections are still open after ``timeout`` seconds.
        """
        server = self._server
        if server is None:
            return
        with self._cond:
            if not self._cond.wait_for(lambda: not server.connections, timeout):
                left = len(server.connections)
                raise TimeoutError(f"{left} connection(s) still open after {timeout} s")

    def _server_port(self) -> int:
        if self._server is None:
            raise RuntimeError("LettaEmulator is not started")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``; raises ``RuntimeError`` before :meth:`start`."""
        if self._server is None:
            raise RuntimeError("LettaEmulator is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- scripting ---------------------------------------------------------------------------

    def set_scenario(self, server_name: str, scenario: Scenario | None) -> None:
        """Use ``scenario`` for configs with this ``server_name``; ``None`` reverts to the
        default."""
        with self._cond:
            if scenario is None:
                self._scenarios.pop(server_name, None)
            else:
                self._scenarios[server_name] = scenario

    def add_server(self, server_id: str, config: Mapping[str, Any]) -> None:
        """Register ``config`` (wire shape, as POSTed) for ``GET /v1/mcp-servers/connect/{id}``.

        Raises ``ValueError`` if the emulator would answer 422 to it as a POST body.
        """
        if not server_id or "/" in server_id:
            raise ValueError(f"bad server id: {server_id!r}")
        config = dict(config)
        errors = _config_errors(config)
        if errors:
            raise ValueError(f"invalid config: {errors!r}")
        record = {
            "mcp_server_type": config["type"],
            "server_url": config["server_url"],
            "auth_header": config.get("auth_header"),
            "auth_token": config.get("auth_token"),
            "custom_headers": config.get("custom_headers"),
            "id": server_id,
            "server_name": config["server_name"],
        }
        self._registry.register(server_id, record)

    def forget_tokens(self) -> None:
        """Forget every approved authorization, so OAuth scenarios ask again."""
        with self._cond:
            self._tokens.clear()
        self._registry.forget_authorizations()

    @property
    def authorized(self) -> frozenset[str]:
        """The ``server_name`` values whose OAuth flow was approved (and so remembered)."""
        with self._cond:
            return frozenset(self._tokens)

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of every request received so far, in arrival order."""
        with self._cond:
            return list(self._requests)

    @property
    def open_connections(self) -> int:
        """How many client connections are open right now (0 before :meth:`start`)."""
        server = self._server
        if server is None:
            return 0
        with self._cond:
            return len(server.connections)

    # -- used by the request handler ---------------------------------------------------------

    def _record(self, request: RecordedRequest) -> None:
        with self._cond:
            self._requests.append(request)

    def _scenario_for(self, server_name: str) -> Scenario:
        with self._cond:
            return self._scenarios.get(server_name, self.scenario)

    def _server_config(self, server_id: str) -> dict[str, Any] | None:
        return self._registry.get(server_id)

    def _has_token(self, server_name: str, server_url: str = "") -> bool:
        # Letta finds a stored authorization by the exact server_url; the emulator also
        # remembers it by server_name.
        with self._cond:
            if server_name in self._tokens:
                return True
        return self._registry.is_authorized(server_url)

    def _new_session(self, server_name: str, scenario: Scenario, server_url: str = "") -> _Session:
        session = _Session(
            server_name=server_name,
            scenario=scenario,
            session_id=f"mcp-oauth-{secrets.token_hex(4)}",
            state=secrets.token_urlsafe(32),
            server_url=server_url,
            wakeup=threading.Condition(self._lock),
        )
        with self._cond:
            self._sessions[session.state] = session
        return session

    def _session(self, state: str) -> _Session | None:
        with self._cond:
            return self._sessions.get(state)

    def _release(self, session: _Session) -> None:
        with self._cond:
            session.released = True
            self._tokens.add(session.server_name)
            (session.wakeup or self._cond).notify_all()
        self._registry.authorize(session.server_url)

    def _authorization_url(self, session: _Session) -> str:
        query = urlencode(
            {
                "response_type": "code",
                "client_id": str(uuid.uuid4()),
                "redirect_uri": self.base_url + CALLBACK_PATH,
                "state": session.state,
                "code_challenge": secrets.token_urlsafe(32),
                "code_challenge_method": "S256",
                "scope": "mcp",
            }
        )
        return f"{self.base_url}{AUTHORIZE_PATH}?{query}"

    def _wait(
        self,
        done: Callable[[], bool],
        timeout: float | None,
        gone: Callable[[], bool],
        cond: threading.Condition | None = None,
    ) -> None:
        """Sleep on ``cond`` (default: the shared one) until ``done()`` or ``timeout``; raise
        ``_Hangup`` on stop or if ``gone()``."""
        cond = cond or self._cond
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            step = _WAIT_SLICE_SECONDS
            if deadline is not None:
                step = min(step, deadline - time.monotonic())
                if step <= 0:
                    return
            with cond:
                finished = cond.wait_for(lambda: self._stopping or done(), step)
                if self._stopping:
                    raise _Hangup
            if finished:
                return
            if gone():
                raise _Hangup


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # the listen backlog: bursts of a thousand connects

    def __init__(self, emulator: LettaEmulator, port: int) -> None:
        self.emulator = emulator
        self.connections: dict[socket.socket, threading.Thread] = {}
        super().__init__(("127.0.0.1", port), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        # Our own threads, tracked, so that stop() can shut their sockets down and join them.
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name=f"LettaEmulator {client_address}",
            daemon=True,
        )
        with self.emulator._cond:
            self.connections[request] = thread
        thread.start()

    def shutdown_request(self, request: Any) -> None:
        with self.emulator._cond:
            self.connections.pop(request, None)
            self.emulator._cond.notify_all()  # for wait_closed()
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up, or stop() shutting a socket down, is not worth a traceback.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server
    _events_sent = 0

    def version_string(self) -> str:
        return "uvicorn"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET

    # -- routing -----------------------------------------------------------------------------

    def _dispatch(self) -> None:
        emulator = self.server.emulator
        raw = self._read_body()
        if raw is None:
            return
        emulator._record(
            RecordedRequest(
                method=self.command,
                path=self.path,
                headers={name.lower(): value for name, value in self.headers.items()},
                body=_json_or_none(raw),
                raw_body=raw,
            )
        )
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        if url.path == AUTHORIZE_PATH and self.command == "GET":
            self._authorize(query)
        elif url.path == CALLBACK_PATH and self.command == "GET":
            self._callback(query)
        elif emulator._api_key is not None and not self._has_api_key(emulator._api_key):
            self._send_json(401, {"detail": "Unauthorized"})
        elif url.path == CONNECT_PATH:
            if self.command != "POST":
                self._send_json(405, {"detail": "Method Not Allowed"}, allow="POST")
            else:
                self._connect_posted(raw)
        elif _is_connect_by_id(url.path):
            if self.command != "GET":
                self._send_json(405, {"detail": "Method Not Allowed"}, allow="GET")
            else:
                self._connect_registered(url.path[len(CONNECT_BY_ID_PREFIX) :])
        elif _emulator_servers.route(self, raw):
            pass
        else:
            self._send_json(404, {"detail": "Not Found"})

    def _has_api_key(self, api_key: str) -> bool:
        given = self.headers.get("Authorization", "")
        return secrets.compare_digest(given.encode(), f"Bearer {api_key}".encode())

    def _connect_posted(self, raw: bytes) -> None:
        if not raw:
            body: Any = None
        else:
            try:
                body = json.loads(raw)
            except json.JSONDecodeError as exc:
                # FastAPI's own words for a body that is not JSON.
                ctx = {"error": exc.msg}
                error = {
                    "type": "json_invalid",
                    "loc": ("body", exc.pos),
                    "msg": "JSON decode error",
                    "input": {},
                    "ctx": ctx,
                }
                self._send_422([error])
                return
            except UnicodeDecodeError:
                self._send_json(400, {"detail": "There was an error parsing the body"})
                return
        errors = _config_errors(body)
        if errors:
            self._send_422(errors)
            return
        server_name = body["server_name"]
        scenario = self.server.emulator._scenario_for(server_name)
        self._stream(server_name, scenario, body["server_url"])

    def _connect_registered(self, server_id: str) -> None:
        config = self.server.emulator._server_config(server_id)
        if config is None:
            self._send_json(404, _emulator_servers.not_found_body(server_id))
            return
        server_name = config["server_name"]
        scenario = self.server.emulator._scenario_for(server_name)
        self._stream(server_name, scenario, config["server_url"])

    # -- the OAuth pages ---------------------------------------------------------------------

    def _authorize(self, query: dict[str, str]) -> None:
        emulator = self.server.emulator
        session = emulator._session(query.get("state", ""))
        if session is None:
            self._send_html(400, "Unknown or expired authorization request.")
            return
        if session.scenario.oauth == "deny":
            params = {
                "error": "access_denied",
                "error_description": "The user denied access",
                "state": session.state,
            }
        else:
            session.code = secrets.token_urlsafe(16)
            params = {"code": session.code, "state": session.state}
        self.send_response(302)
        self.send_header("location", f"{emulator.base_url}{CALLBACK_PATH}?{urlencode(params)}")
        self.send_header("content-length", "0")
        self.end_headers()

    def _callback(self, query: dict[str, str]) -> None:
        emulator = self.server.emulator
        session = emulator._session(query.get("state", ""))
        if session is None:
            self._send_html(400, "OAuth error: unknown or expired state")
        elif "error" in query:
            # Letta marks the session failed, but the waiting stream never hears of it.
            self._send_html(200, f"OAuth error: {query['error']}")
        elif session.code is None or query.get("code") != session.code:
            self._send_html(400, "OAuth error: invalid authorization code")
        else:
            if session.scenario.oauth == "approve":
                emulator._release(session)
            self._send_html(200, "Authorization successful. You can close this window.")

    # -- the event stream --------------------------------------------------------------------

    def _stream(self, server_name: str, scenario: Scenario, server_url: str = "") -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self._events_sent = 0
        try:
            self._check_drop(scenario)
            self._run_flow(server_name, scenario, server_url)
            self.wfile.write(b"0\r\n\r\n")
        except _Hangup:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

    def _run_flow(self, server_name: str, scenario: Scenario, server_url: str = "") -> None:
        emulator = self.server.emulator
        waiting = {"event": "waiting_for_auth", "message": "Waiting for user authorization..."}
        self._send_event(scenario, {"event": "connection_attempt", "server_name": server_name})
        needs_auth = scenario.oauth is not None and not (
            scenario.remember_token and emulator._has_token(server_name, server_url)
        )
        if needs_auth:
            self._send_event(
                scenario, {"event": "oauth_required", "message": "OAuth authentication required"}
            )
            if scenario.oauth == "no_url":
                self._send_event(scenario, waiting)
                self._stay_silent()
            session = emulator._new_session(server_name, scenario, server_url)
            url = emulator._authorization_url(session)
            self._send_event(
                scenario,
                {"event": "authorization_url", "url": url, "session_id": session.session_id},
            )
            self._send_event(scenario, waiting)
            emulator._wait(lambda: session.released, None, self._client_gone, session.wakeup)
        if scenario.stream_error is not None:
            data = {"error": scenario.stream_error, "code": scenario.stream_error_code}
            self._send_frame(scenario, f"event: error\ndata: {json.dumps(data)}\n\n")
        elif scenario.error is not None:
            self._send_event(scenario, {"event": "error", "message": scenario.error})
        else:
            tools = list(scenario.tools)
            self._send_event(scenario, {"event": "success", "tools": tools})

    def _send_event(self, scenario: Scenario, event: Mapping[str, Any]) -> None:
        self._send_frame(scenario, f"data: {json.dumps(event, default=dict)}\n\n")

    def _send_frame(self, scenario: Scenario, frame: str) -> None:
        if scenario.delay:
            self.server.emulator._wait(lambda: False, scenario.delay, self._client_gone)
        data = frame.encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self._events_sent += 1
        self._check_drop(scenario)

    def _check_drop(self, scenario: Scenario) -> None:
        if scenario.drop_after is not None and self._events_sent >= scenario.drop_after:
            raise _Hangup

    def _stay_silent(self) -> NoReturn:
        self.server.emulator._wait(lambda: False, None, self._client_gone)
        raise _Hangup

    def _client_gone(self) -> bool:
        """True once the client has closed its end (the socket reads EOF)."""
        try:
            # poll(), not select(): select() cannot take descriptors above 1023.
            poller = select.poll()
            poller.register(self.connection, select.POLLIN)
            readable = poller.poll(0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    # -- plumbing ----------------------------------------------------------------------------

    def _read_body(self) -> bytes | None:
        """The request body, or ``None`` after answering a body we will not read."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked()
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        if not length.isdigit():
            self.close_connection = True
            self._send_json(400, {"detail": "Invalid Content-Length"})
            return None
        if int(length) > _MAX_BODY:
            self.close_connection = True
            self._send_json(413, {"detail": "Request body too large"})
            return None
        return self.rfile.read(int(length))

    def _read_chunked(self) -> bytes | None:
        body = bytearray()
        while True:
            size_line = self.rfile.readline(1024).split(b";", 1)[0].strip()
            try:
                size = int(size_line, 16)
            except ValueError:
                size = -1
            if size < 0 or len(body) + size > _MAX_BODY:
                self.close_connection = True
                self._send_json(400, {"detail": "Bad chunked body"})
                return None
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return bytes(body)
            body += self.rfile.read(size)
            self.rfile.readline(1024)

    def _send_json(self, status: int, payload: Any, *, allow: str | None = None) -> None:
        data = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        reason = "Unprocessable Entity" if status == 422 else None
        self.send_response(status, reason)
        if allow is not None:
            self.send_header("allow", allow)
        self.send_header("content-length", str(len(data)))
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(data)

    def _send_422(self, errors: list[dict[str, Any]]) -> None:
        self._send_json(422, {"trace_id": "", "detail": repr(errors)})

    def _send_html(self, status: int, message: str) -> None:
        page = f"<!doctype html><title>Letta MCP OAuth</title><p>{html.escape(message)}</p>\n"
        data = page.encode()
        self.send_response(status)
        self.send_header("content-length", str(len(data)))
        self.send_header("content-type", "text/html; charset=utf-8")
        self.end_headers()
        self.wfile.write(data)


def _get(port: int, target: str, timeout: float) -> str | None:
    """GET ``target`` from 127.0.0.1 as a browser would; the ``Location`` of a redirect."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", target)
        response = conn.getresponse()
        response.read()
        return response.getheader("location")
    finally:
        conn.close()


def _is_connect_by_id(path: str) -> bool:
    server_id = path[len(CONNECT_BY_ID_PREFIX) :]
    return path.startswith(CONNECT_BY_ID_PREFIX) and bool(server_id) and "/" not in server_id


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


# The request body is Union[StdioServerConfig, SSEServerConfig, StreamableHTTPServerConfig];
# pydantic reports every member's errors, in field order, which is what Letta sends back.
_UNION_MEMBERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("StdioServerConfig", ("server_name", "type", "command", "args")),
    ("SSEServerConfig", ("server_name", "type", "server_url")),
    ("StreamableHTTPServerConfig", ("server_name", "type", "server_url")),
)
_ENUM_TYPES = ("sse", "stdio", "streamable_http")
_EMULATED_TYPES = ("sse", "streamable_http")


def _config_errors(body: Any) -> list[dict[str, Any]]:
    """Pydantic-style errors for a connect body; empty when the emulator accepts it."""
    if body is None:
        return [{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}]
    if not isinstance(body, dict):
        return [
            {
                "type": "model_type",
                "loc": ("body", member),
                "msg": f"Input should be a valid dictionary or instance of {member}",
                "input": body,
                "ctx": {"class_name": member},
            }
            for member, _ in _UNION_MEMBERS
        ]
    per_member = [list(_member_errors(member, fields, body)) for member, fields in _UNION_MEMBERS]
    if all(per_member):
        return [error for errors in per_member for error in errors]
    if body.get("type") not in _EMULATED_TYPES:
        # Letta would accept a missing type, or "stdio"; the emulator only does remote servers.
        expected = "'sse' or 'streamable_http'"
        return [
            {
                "type": "literal_error",
                "loc": ("body", "type"),
                "msg": f"Input should be {expected}",
                "input": body.get("type"),
                "ctx": {"expected": expected},
            }
        ]
    return []


def _member_errors(
    member: str, fields: Iterable[str], body: dict[str, Any]
) -> Iterable[dict[str, Any]]:
    for field in fields:
        loc = ("body", member, field)
        if field == "type":
            value = body.get("type", "sse")
            if value not in _ENUM_TYPES:
                expected = "'sse', 'stdio' or 'streamable_http'"
                yield {
                    "type": "enum",
                    "loc": loc,
                    "msg": f"Input should be {expected}",
                    "input": value,
                    "ctx": {"expected": expected},
                }
        elif field not in body:
            yield {"type": "missing", "loc": loc, "msg": "Field required", "input": body}
        elif field == "args" and not isinstance(body[field], list):
            yield {
                "type": "list_type",
                "loc": loc,
                "msg": "Input should be a valid list",
                "input": body[field],
            }
        elif field != "args" and not isinstance(body[field], str):
            yield {
                "type": "string_type",
                "loc": loc,
                "msg": "Input should be a valid string",
                "input": body[field],
            }
