"""Registering MCP servers in Letta: :class:`McpServer` and the ``/v1/mcp-servers/`` routes.

:meth:`Client.add_server <mcpconnect.Client.add_server>` does the user's whole job: the connect
flow (OAuth included, exactly as :func:`~mcpconnect.connect`), then ``POST /v1/mcp-servers/``.
Letta links the OAuth authorization it stored during the connect to the new server by the
**exact** ``server_url`` string (a trailing slash or a fragment makes another URL), so the URL
is carried over untouched. The other calls here (list, get, delete) are plain JSON requests,
through the same transport, time limits and ``cancel`` as a connect.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
import urllib.parse
from collections.abc import Generator, Mapping
from typing import Any

import attrs

from ._timeouts import Timeouts
from .client import (
    Client,
    ConfigLike,
    OnEvent,
    TimeoutLike,
    _check_call,
    _error_body,
    _media_type,
    _open,
    _Stopper,
)
from .errors import (
    ConfigError,
    ConnectionFailedError,
    DuplicateServerNameError,
    McpConnectError,
    ProtocolError,
    ServerNotFoundError,
    without_userinfo,
)
from .models import (
    NO_EXTRA,
    McpConnectConfig,
    McpOauthEvent,
    McpTool,
    OauthStreamEvent,
    _FrozenMap,
)
from .transports._base import Request, Transport, header, where

__all__ = ["NAME_PATTERN", "McpServer", "add_server", "default_server_name"]

log = logging.getLogger("mcpconnect")

SERVERS_PATH = "/v1/mcp-servers/"
#: The names :meth:`Client.add_server` accepts. Letta itself accepts any name, but a name with
#: ``/`` (and others) then breaks its by-name routes.
NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
DEFAULT_NAME = "mcp-server"
MAX_BODY = 16 * 1024 * 1024  # a JSON answer (the list of every server of the organization)

_OAUTH_EVENTS = frozenset(
    {
        OauthStreamEvent.OAUTH_REQUIRED,
        OauthStreamEvent.AUTHORIZATION_URL,
        OauthStreamEvent.WAITING_FOR_AUTH,
    }
)
_KNOWN_KEYS = frozenset(
    {"id", "server_name", "mcp_server_type", "server_url", "auth_header", "auth_token",
     "custom_headers"}
)


def _hidden(value: object) -> str:
    return "None" if value is None else "'***'"


def _header_names(value: Mapping[str, str] | None) -> str:
    return "None" if value is None else repr(sorted(value))


def _masked_url(value: str | None) -> str:
    return repr(value if value is None else without_userinfo(value))


def _tool_names(value: tuple[McpTool, ...] | None) -> str:
    return "None" if value is None else repr([tool.name for tool in value])


@attrs.frozen(kw_only=True)
class McpServer:
    """An MCP server registered in Letta, as Letta returns it.

    ``type`` is ``mcp_server_type`` on the wire (``"sse"``, ``"streamable_http"``, or what else
    Letta lists, such as ``"stdio"``); ``server_url`` is ``None`` for servers without one.
    ``tools`` are the tools the connect of :meth:`Client.add_server
    <mcpconnect.Client.add_server>` returned; ``None`` for a server read back from Letta
    (list or get), which does not say. ``auth_header``, ``auth_token`` and ``custom_headers``
    are what Letta stored (it shows a token as ``Bearer …``). Keys this version does not know
    are kept in ``extra``. Mappings are read-only copies. The ``repr`` hides the token, the
    header values, ``extra`` and any ``user:password@`` in the URL.
    """

    id: str
    server_name: str
    type: str
    server_url: str | None = attrs.field(default=None, repr=_masked_url)
    tools: tuple[McpTool, ...] | None = attrs.field(default=None, repr=_tool_names)
    auth_header: str | None = None
    auth_token: str | None = attrs.field(default=None, repr=_hidden)
    custom_headers: Mapping[str, str] | None = attrs.field(
        default=None, converter=attrs.converters.optional(_FrozenMap), repr=_header_names
    )
    extra: Mapping[str, Any] = attrs.field(default=NO_EXTRA, converter=_FrozenMap, repr=False)

    @classmethod
    def from_dict(
        cls, data: Any, *, tools: tuple[McpTool, ...] | None = None, what: str = "the server"
    ) -> McpServer:
        """Build one from Letta's JSON object; raises :class:`~mcpconnect.ProtocolError`
        naming the field that does not fit (never its value). ``what`` names the object in
        that message."""
        if not isinstance(data, dict):
            raise ProtocolError(f"{what} is not a JSON object but {_kind(data)}")

        def text(key: str, required: bool = False) -> Any:
            value = data.get(key)
            if (value is None and not required) or isinstance(value, str):
                return value
            raise ProtocolError(f"{what}: {key!r} must be a string, got {_kind(value)}")

        headers = data.get("custom_headers")
        if headers is not None and not (
            isinstance(headers, dict)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items())
        ):
            raise ProtocolError(f"{what}: 'custom_headers' must be an object of strings")
        extra = {k: v for k, v in data.items() if k not in _KNOWN_KEYS}
        return cls(
            id=text("id", True),
            server_name=text("server_name", True),
            type=text("mcp_server_type", True),
            server_url=text("server_url"),
            tools=tools,
            auth_header=text("auth_header"),
            auth_token=text("auth_token"),
            custom_headers=headers,
            extra=extra or NO_EXTRA,
        )


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


# --- names and the create body -------------------------------------------------------------


def default_server_name(server_url: str) -> str:
    """The name letta-code gives a server at ``server_url``: the host without a leading
    ``www.``, ``mcp.`` or ``api.``, up to its first dot (``https://mcp.github.com/mcp`` gives
    ``github``); ``"mcp-server"`` when that is empty or not a valid name."""
    try:
        host = urllib.parse.urlsplit(server_url).hostname or ""
    except ValueError:
        host = ""
    for prefix in ("www.", "mcp.", "api."):
        if host.startswith(prefix):
            host = host[len(prefix) :]
            break
    label = host.split(".")[0]
    return label if NAME_PATTERN.fullmatch(label) else DEFAULT_NAME


def _check_name(name: str) -> None:
    if not NAME_PATTERN.fullmatch(name):
        raise ConfigError(
            f"server name {name!r} is not 1 to 64 letters, digits, '_' or '-' (Letta takes "
            "other names, but they break its by-name routes)"
        )


def _resolve(config: ConfigLike, name: str | None) -> McpConnectConfig:
    """The config to connect with: ``server_name`` is ``name``, else the config's, else the
    default from the URL. Raises :class:`~mcpconnect.ConfigError`."""
    if name is not None and not isinstance(name, str):
        raise ConfigError(f"name must be a string or None, got {type(name).__name__}")
    if isinstance(config, McpConnectConfig):
        resolved = config if name is None else attrs.evolve(config, server_name=name)
    elif isinstance(config, Mapping):
        data = dict(config)
        url = data.get("server_url")
        if name is not None:
            data["server_name"] = name
        elif "server_name" not in data and isinstance(url, str):
            data["server_name"] = default_server_name(url)
        resolved = McpConnectConfig.from_dict(data)
    else:
        raise ConfigError(
            f"config must be a McpConnectConfig or a mapping, got {type(config).__name__}"
        )
    _check_name(resolved.server_name)
    _create_body(resolved)  # refuse an auth setup Letta would change, before any request
    return resolved


def _create_body(config: McpConnectConfig) -> dict[str, Any]:
    """The body of ``POST /v1/mcp-servers/``, with ``config.server_url`` exactly as given.

    Letta keeps only the token of ``auth_header``/``auth_token`` and sends it as
    ``Authorization: Bearer <token>``, so any other header (``X-Api-Key: k``), or an
    ``Authorization`` value that is not ``Bearer …``, goes in ``custom_headers``, which Letta
    keeps as they are.
    """
    server: dict[str, Any] = {"mcp_server_type": config.type, "server_url": config.server_url}
    headers = dict(config.custom_headers or {})
    auth_header, token = config.auth_header, config.auth_token
    if token is not None and not auth_header:
        raise ConfigError(
            "auth_token is set but auth_header is not; set auth_header (for example "
            "'Authorization', with the token as 'Bearer <token>')"
        )
    if auth_header and token is not None:
        if auth_header.lower() == "authorization" and token.startswith("Bearer "):
            server["auth_header"], server["auth_token"] = auth_header, token
        elif any(k.lower() == auth_header.lower() for k in headers):
            raise ConfigError(f"auth_header {auth_header!r} is also in custom_headers")
        else:
            headers[auth_header] = token
    if headers:
        server["custom_headers"] = headers
    return {"server_name": config.server_name, "config": server}


def _secrets(config: McpConnectConfig) -> list[str]:
    values = [config.auth_token or "", *(config.custom_headers or {}).values()]
    found = set()
    for value in values:
        for variant in (value, value.removeprefix("Bearer "), json.dumps(value)[1:-1]):
            if variant.strip():
                found.add(variant)
    return sorted(found, key=len, reverse=True)


def _scrub(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


# --- the JSON requests ---------------------------------------------------------------------


def _exchange(
    client: Client,
    method: str,
    path: str,
    payload: Any,
    *,
    cancel: threading.Event | None,
    timeouts: Timeouts,
    doing: str,
    started: float | None = None,
) -> tuple[int, bytes]:
    """One JSON request: its status and body (at most :data:`MAX_BODY` bytes; of an error,
    what the client's ``_error_body`` reads), with the limits and ``cancel`` of a connect;
    the ``total`` counts from ``started`` when given. ``doing`` names the step in messages.
    Refused once ``client`` is closed; ``client.close()`` stops it."""
    _check_call(None, cancel)
    with client._in_flight() as stopper:
        return _send_json(client, stopper, method, path, payload, cancel, timeouts, doing, started)


def _send_json(
    client: Client,
    stopper: _Stopper,
    method: str,
    path: str,
    payload: Any,
    cancel: threading.Event | None,
    timeouts: Timeouts,
    doing: str,
    started: float | None,
) -> tuple[int, bytes]:
    headers = {**client._headers, "Accept": "application/json"}
    body = None
    if payload is not None:
        headers["Content-Type"] = "application/json"
        body = json.dumps(payload).encode()
    request = Request(method, client.base_url + path, headers, body)
    watch, response = _open(
        client._transport, request, timeouts, cancel, stopper,
        state="registering" if method == "POST" else "requesting",  # for the messages
        started=started,
    )
    try:
        if not 200 <= response.status < 300:  # the status is the error, whatever the body does
            return response.status, _error_body(response, watch).encode()
        encoding = header(response.headers, "content-encoding")
        if encoding is not None and encoding.strip().lower() not in ("", "identity"):
            raise ProtocolError(
                f"the answer to {doing} has Content-Encoding {encoding!r}; only an "
                "uncompressed body is read"
            )
        content_type = header(response.headers, "content-type")
        if content_type is not None and "json" not in _media_type(content_type):
            raise ProtocolError(f"expected JSON in the answer to {doing}, got {content_type!r}")
        data = bytearray()
        try:
            for chunk in response.iter_chunks():
                watch.activity()
                data += chunk
                if len(data) > MAX_BODY:
                    raise ProtocolError(f"the answer to {doing} is over {MAX_BODY} bytes")
        except (McpConnectError, OSError) as exc:
            raise watch.failure(exc, "the connection broke") from exc
        if watch.reason is not None:
            raise watch.reason
        return response.status, bytes(data)
    finally:
        watch.detach()
        response.close()


def _json(data: bytes, doing: str) -> Any:
    try:
        return json.loads(data)
    except ValueError as exc:  # also UnicodeDecodeError
        raise ProtocolError(f"the answer to {doing} is not JSON ({len(data)} bytes)") from exc
    except RecursionError:  # json nests by recursion: a hostile answer nests deep
        raise ProtocolError(f"the answer to {doing} is JSON nested too deeply") from None


def _detail(data: bytes) -> Any:
    try:
        body = json.loads(data)
    except (ValueError, RecursionError):
        return None
    return body.get("detail") if isinstance(body, dict) else None


_LOC_MSG = re.compile(r"'loc': \(([^)]*)\), 'msg': (?:'([^']*)'|\"([^\"]*)\")")


def _explain_422(data: bytes) -> str:
    """Letta's 422 ``detail`` is the repr of pydantic's errors, ``input`` (the body we sent,
    secrets included) and all: keep only where and what."""
    detail = _detail(data)
    if not isinstance(detail, str):
        return "the request body was not accepted"
    found = []
    for loc, single, double in _LOC_MSG.findall(detail):
        place = ".".join(p.strip().strip("'\"") for p in loc.split(",") if p.strip())
        found.append(f"{place.removeprefix('body.') or 'body'}: {single or double}")
    return "; ".join(found) or "the request body was not accepted"


def _failure(
    status: int,
    data: bytes,
    *,
    doing: str,
    secrets: list[str],
    server_name: str | None = None,
    server_id: str | None = None,
) -> ConnectionFailedError:
    """The typed error of a status that is not 2xx."""
    text = _scrub(data.decode("utf-8", "replace"), secrets)
    detail = _detail(data)
    if status == 409 and server_name is not None:
        return DuplicateServerNameError(server_name)
    if server_id is not None and (
        (status == 404 and detail != "Not Found")  # not the router's 404 for a wrong base URL
        or (status == 400 and isinstance(detail, str) and "not found" in detail.lower())
    ):
        return ServerNotFoundError(server_id, status, text)
    if status == 422:
        explained = _explain_422(data)
        return ConnectionFailedError(
            422, explained, f"Letta refused the request to {doing} (422): {explained}"
        )
    return ConnectionFailedError(status, text, f"Could not {doing} ({status}): {text}")


def _unknown_id(
    events: Generator[McpOauthEvent, None, list[McpTool]], server_id: str
) -> Generator[McpOauthEvent, None, list[McpTool]]:
    """The stream of ``GET /v1/mcp-servers/connect/{id}``, with Letta's 404 for an unknown id
    raised as :class:`~mcpconnect.ServerNotFoundError`."""
    try:
        return (yield from events)
    except ConnectionFailedError as exc:
        if type(exc) is ConnectionFailedError and exc.status == 404 and (
            _detail(exc.body.encode()) != "Not Found"  # not the router's, for a wrong base URL
        ):
            raise ServerNotFoundError(server_id, 404, exc.body) from exc
        raise


# --- the calls -----------------------------------------------------------------------------


def _add(
    client: Client,
    config: ConfigLike,
    *,
    name: str | None,
    on_event: OnEvent | None,
    cancel: threading.Event | None,
    timeout: TimeoutLike,
) -> McpServer:
    _check_call(on_event, cancel)
    resolved = _resolve(config, name)
    timeouts = Timeouts.coerce(timeout, client.timeouts)
    started = time.monotonic()
    oauth = False

    def seen(event: McpOauthEvent) -> None:
        nonlocal oauth
        if event.event in _OAUTH_EVENTS:
            oauth = True
        if on_event is not None:
            on_event(event)

    tools = client.connect(resolved, on_event=seen, cancel=cancel, timeout=timeouts)
    doing = f"register MCP server {resolved.server_name!r}"
    try:
        status, data = _exchange(
            client, "POST", SERVERS_PATH, _create_body(resolved),
            cancel=cancel, timeouts=timeouts, doing=doing, started=started,
        )
        if not 200 <= status < 300:
            raise _failure(
                status, data, doing=doing, secrets=_secrets(resolved),
                server_name=resolved.server_name,
            )
        return McpServer.from_dict(
            _json(data, doing), tools=tuple(tools), what="the created server"
        )
    except McpConnectError as exc:
        if oauth:
            exc.args = (
                f"{exc}. The OAuth authorization succeeded and Letta stored it for "
                f"{where(resolved.server_url)} (by its exact server_url), so adding it again "
                "with the same URL (and another name) goes straight to success",
            )
        raise


def _list(
    client: Client, *, cancel: threading.Event | None, timeout: TimeoutLike
) -> list[McpServer]:
    doing = "list the MCP servers"
    status, data = _exchange(
        client, "GET", SERVERS_PATH, None, cancel=cancel,
        timeouts=Timeouts.coerce(timeout, client.timeouts), doing=doing,
    )
    if not 200 <= status < 300:
        raise _failure(status, data, doing=doing, secrets=[])
    items = _json(data, doing)
    if not isinstance(items, list):
        raise ProtocolError(f"the list of MCP servers is not a JSON array but {_kind(items)}")
    return [McpServer.from_dict(item, what=f"MCP server {i} of the list")
            for i, item in enumerate(items)]


def _server_path(mcp_server_id: str) -> str:
    if not isinstance(mcp_server_id, str) or not mcp_server_id:
        raise ConfigError(f"mcp_server_id must be a non-empty string, got {mcp_server_id!r}")
    return SERVERS_PATH + urllib.parse.quote(mcp_server_id, safe="")


def _get(
    client: Client,
    mcp_server_id: str,
    *,
    cancel: threading.Event | None,
    timeout: TimeoutLike,
) -> McpServer:
    path = _server_path(mcp_server_id)
    doing = f"get MCP server {mcp_server_id!r}"
    status, data = _exchange(
        client, "GET", path, None, cancel=cancel,
        timeouts=Timeouts.coerce(timeout, client.timeouts), doing=doing,
    )
    if not 200 <= status < 300:
        raise _failure(status, data, doing=doing, secrets=[], server_id=mcp_server_id)
    return McpServer.from_dict(_json(data, doing), what=f"MCP server {mcp_server_id!r}")


def _delete(
    client: Client,
    mcp_server_id: str,
    *,
    cancel: threading.Event | None,
    timeout: TimeoutLike,
) -> None:
    path = _server_path(mcp_server_id)
    doing = f"delete MCP server {mcp_server_id!r}"
    status, data = _exchange(
        client, "DELETE", path, None, cancel=cancel,
        timeouts=Timeouts.coerce(timeout, client.timeouts), doing=doing,
    )
    if not 200 <= status < 300:
        raise _failure(status, data, doing=doing, secrets=[], server_id=mcp_server_id)


def add_server(
    config: ConfigLike,
    *,
    name: str | None = None,
    on_event: OnEvent | None = None,
    cancel: threading.Event | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    transport: Transport | None = None,
    timeout: TimeoutLike = None,
    settings_path: str | os.PathLike[str] | None = None,
    source: str | None = "letta-code",
) -> McpServer:
    """Connect the MCP server ``config`` (OAuth included) and register it in Letta.

    A one-shot :meth:`Client.add_server <mcpconnect.Client.add_server>`: see there for
    ``name``, ``on_event``, ``cancel``, ``timeout`` and what it raises, and
    :class:`~mcpconnect.Client` for ``base_url``, ``api_key``, ``transport``,
    ``settings_path`` and ``source``.
    """
    with Client(
        base_url=base_url,
        api_key=api_key,
        transport=transport,
        timeout=timeout,
        settings_path=settings_path,
        source=source,
    ) as client:
        return client.add_server(config, name=name, on_event=on_event, cancel=cancel)
