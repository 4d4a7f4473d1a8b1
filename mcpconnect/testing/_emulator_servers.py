"""The MCP server-management routes of :class:`~mcpconnect.testing.LettaEmulator`.

They answer as Letta 0.16.8 did in the recordings (``tests/fixtures/letta-0.16.8/servers/``):

- ``POST /v1/mcp-servers/`` creates a server (200, the record); 409 on a name that exists,
  with Letta's SQL-bearing body; 422 on a bad body. Like Letta, it accepts any name and never
  contacts the MCP server: the server gets the scenario's tools at once when the scenario has
  no OAuth, and when it has, only if an OAuth flow was approved for this **exact**
  ``server_url`` string (a trailing slash or another fragment is another URL). An
  ``auth_token`` is kept as Letta keeps it: the header name is dropped, and it comes back as
  ``Authorization: Bearer <token>``.
- ``GET /v1/mcp-servers/`` lists every server; ``GET /v1/mcp-servers/{id}`` gets one (404 when
  unknown); ``DELETE`` answers 204, or **400** for an unknown id; ``GET …/{id}/tools`` lists
  Letta tool objects (200 ``[]`` for an unknown id).
- ``PATCH`` (update, refresh) is not emulated: 501.

The connect stream of a registered server (``GET /v1/mcp-servers/connect/{id}``) is served by
the emulator itself, from the same :class:`Registry`.
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._emulator import _Handler

__all__ = ["SERVERS_PREFIX", "Registry", "not_found_body", "route"]

SERVERS_PREFIX = "/v1/mcp-servers/"
_USER = "user-00000000-0000-4000-8000-000000000000"
_ORG = "org-00000000-0000-4000-8000-000000000000"
_ACTOR = (
    f"id='{_USER}' organization_id='{_ORG}' name='default_user' "
    "created_at=datetime.datetime(2026, 12, 1, 21, 0, 32, 117231, tzinfo=datetime.timezone.utc) "
    "updated_at=datetime.datetime(2026, 12, 1, 21, 0, 32, 117231, tzinfo=datetime.timezone.utc) "
    "is_deleted=False"
)
_TYPES = ("sse", "streamable_http")
_TAGS = (
    "<MCPServerType.STDIO: 'stdio'>, <MCPServerType.SSE: 'sse'>, "
    "<MCPServerType.STREAMABLE_HTTP: 'streamable_http'>"
)
_HEARTBEAT = {
    "type": "boolean",
    "description": "Request an immediate heartbeat after function execution. You MUST set this "
    "value to `True` if you want to send a follow-up message or run a follow-up tool call "
    "(chain multiple tools together). If set to `False` (the default), then the chain of "
    "execution will end immediately after this function call.",
}


class Registry:
    """The registered servers, their tools, and the URLs with an approved OAuth flow."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._servers: dict[str, dict[str, Any]] = {}
        self._tools: dict[str, list[dict[str, Any]]] = {}
        self._authorized_urls: set[str] = set()

    def register(self, server_id: str, record: dict[str, Any], tools: Iterable[Any] = ()) -> None:
        with self._lock:
            self._servers[server_id] = record
            self._tools[server_id] = [
                _letta_tool(t, record["server_name"], server_id) for t in tools
            ]

    def get(self, server_id: str) -> dict[str, Any] | None:
        with self._lock:
            record = self._servers.get(server_id)
            return None if record is None else dict(record)

    def authorize(self, server_url: str) -> None:
        with self._lock:
            self._authorized_urls.add(server_url)

    def is_authorized(self, server_url: str) -> bool:
        with self._lock:
            return server_url in self._authorized_urls

    def forget_authorizations(self) -> None:
        with self._lock:
            self._authorized_urls.clear()

    # -- the routes' side ------------------------------------------------------------------

    def _create(self, body: dict[str, Any], tools: Iterable[Any]) -> dict[str, Any] | None:
        """The new record, or ``None`` when the name is taken."""
        config = body["config"]
        token = config.get("auth_token")
        if token is not None:
            token = token.removeprefix("Bearer ")
        record = {
            "mcp_server_type": config["mcp_server_type"],
            "server_url": config["server_url"],
            "auth_header": None if token is None else "Authorization",
            "auth_token": None if token is None else f"Bearer {token}",
            "custom_headers": config.get("custom_headers"),
            "id": f"mcp_server-{uuid.uuid4()}",
            "server_name": body["server_name"],
        }
        letta_tools = [_letta_tool(t, record["server_name"], record["id"]) for t in tools]
        with self._lock:
            if any(r["server_name"] == record["server_name"] for r in self._servers.values()):
                return None
            self._servers[record["id"]] = record
            self._tools[record["id"]] = letta_tools
        return record

    def _list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self._servers.values()]

    def _delete(self, server_id: str) -> bool:
        with self._lock:
            self._tools.pop(server_id, None)
            return self._servers.pop(server_id, None) is not None

    def _tools_of(self, server_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._tools.get(server_id, ()))


def not_found_body(server_id: str) -> dict[str, str]:
    """Letta's 404 body for an unknown server id."""
    return {
        "detail": f"MCPServer not found with id='['{server_id}']', access level in ['read'] "
        f"for actor='{_ACTOR}'"
    }


def route(handler: _Handler, raw: bytes) -> bool:
    """Answer a request under ``/v1/mcp-servers/`` (but not ``connect/``); ``False`` when the
    path is not one of these routes."""
    path = handler.path.split("?", 1)[0]
    if not path.startswith(SERVERS_PREFIX):
        return False
    parts = path[len(SERVERS_PREFIX) :].split("/")
    method = handler.command
    emulator = handler.server.emulator
    registry: Registry = emulator._registry
    if parts == [""]:
        if method == "GET":
            handler._send_json(200, registry._list())
        elif method == "POST":
            _create(handler, registry, raw)
        else:
            handler._send_json(405, {"detail": "Method Not Allowed"}, allow="GET, POST")
    elif len(parts) == 1:
        server_id = parts[0]
        if method == "GET":
            record = registry.get(server_id)
            if record is None:
                handler._send_json(404, not_found_body(server_id))
            else:
                handler._send_json(200, record)
        elif method == "DELETE":
            if registry._delete(server_id):
                _send_no_content(handler)
            else:
                handler._send_json(400, {"detail": f"MCP server with id {server_id} not found."})
        elif method == "PATCH":
            handler._send_json(501, {"detail": "PATCH is not emulated"})
        else:
            handler._send_json(405, {"detail": "Method Not Allowed"}, allow="GET, PATCH, DELETE")
    elif len(parts) == 2 and parts[1] == "tools" and method == "GET":
        handler._send_json(200, registry._tools_of(parts[0]))
    elif len(parts) == 2 and parts[1] == "refresh" and method == "PATCH":
        handler._send_json(501, {"detail": "refresh is not emulated"})
    else:
        return False
    return True


def _create(handler: _Handler, registry: Registry, raw: bytes) -> None:
    body: Any
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        handler._send_422(
            [{"type": "json_invalid", "loc": ("body", 0), "msg": "JSON decode error",
              "input": {}, "ctx": {"error": "Expecting value"}}]
        )
        return
    errors = _create_errors(body)
    if errors:
        handler._send_422(errors)
        return
    emulator = handler.server.emulator
    scenario = emulator._scenario_for(body["server_name"])
    url = body["config"]["server_url"]
    reachable = scenario.error is None and scenario.stream_error is None
    linked = scenario.oauth is None or registry.is_authorized(url)
    record = registry._create(body, scenario.tools if reachable and linked else ())
    if record is None:
        handler._send_json(409, _duplicate_body(body))
    else:
        handler._send_json(200, record)


def _create_errors(body: Any) -> list[dict[str, Any]]:
    """Pydantic-style errors for a create body, as Letta words them; empty when accepted."""
    if not isinstance(body, dict):
        return [{"type": "model_attributes_type", "loc": ("body",),
                 "msg": "Input should be a valid dictionary or object to extract fields from",
                 "input": body}]
    errors: list[dict[str, Any]] = []
    for field in ("server_name", "config"):
        if field not in body:
            errors.append({"type": "missing", "loc": ("body", field), "msg": "Field required",
                           "input": body})
    if "server_name" in body and not isinstance(body["server_name"], str):
        errors.append({"type": "string_type", "loc": ("body", "server_name"),
                       "msg": "Input should be a valid string", "input": body["server_name"]})
    config = body.get("config")
    if "config" in body:
        errors.extend(_config_errors(config))
    for key in body:
        if key not in ("server_name", "config"):
            errors.append({"type": "extra_forbidden", "loc": ("body", key),
                           "msg": "Extra inputs are not permitted", "input": body[key]})
    return errors


def _config_errors(config: Any) -> list[dict[str, Any]]:
    if not isinstance(config, dict) or "mcp_server_type" not in config:
        return [{"type": "union_tag_not_found", "loc": ("body", "config"),
                 "msg": "Unable to extract tag using discriminator 'mcp_server_type'",
                 "input": config, "ctx": {"discriminator": "'mcp_server_type'"}}]
    tag = config["mcp_server_type"]
    if tag not in _TYPES:
        message = (
            f"Input tag {tag!r} found using 'mcp_server_type' does not match any of the "
            f"expected tags: {_TAGS}"
            if tag != "stdio"
            else "stdio servers are not emulated"
        )
        return [{"type": "union_tag_invalid", "loc": ("body", "config"), "msg": message,
                 "input": config,
                 "ctx": {"discriminator": "'mcp_server_type'", "tag": tag,
                         "expected_tags": _TAGS}}]
    errors = []
    loc = ("body", "config", tag)
    if not isinstance(config.get("server_url"), str):
        kind = "missing" if "server_url" not in config else "string_type"
        msg = "Field required" if kind == "missing" else "Input should be a valid string"
        errors.append({"type": kind, "loc": (*loc, "server_url"), "msg": msg, "input": config})
    for key in ("auth_header", "auth_token"):
        if config.get(key) is not None and not isinstance(config[key], str):
            errors.append({"type": "string_type", "loc": (*loc, key),
                           "msg": "Input should be a valid string", "input": config[key]})
    headers = config.get("custom_headers")
    if headers is not None and not (
        isinstance(headers, dict) and all(isinstance(v, str) for v in headers.values())
    ):
        errors.append({"type": "dict_type", "loc": (*loc, "custom_headers"),
                       "msg": "Input should be a valid dictionary", "input": headers})
    return errors


def _duplicate_body(body: Mapping[str, Any]) -> dict[str, str]:
    """Letta's 409: the asyncpg error, with the SQL statement and its parameters."""
    config = body["config"]
    name, kind = body["server_name"], config["mcp_server_type"].upper()
    headers = config.get("custom_headers")
    params = ", ".join(
        (
            repr(name),
            f"<MCPServerType.{kind}: {config['mcp_server_type']!r}>",
            repr(config["server_url"]),
            repr(config.get("auth_token")),
            "None",
            repr(None if headers is None else json.dumps(headers)),
            "'null'",
            "'{}'",
            repr(f"mcp_server-{uuid.uuid4()}"),
            repr(_USER),
            repr(_USER),
            repr(_ORG),
        )
    )
    return {
        "detail": "A unique constraint was violated for MCPServer. Check your input for "
        "duplicates: (sqlalchemy.dialects.postgresql.asyncpg.IntegrityError) <class "
        "'asyncpg.exceptions.UniqueViolationError'>: duplicate key value violates unique "
        "constraint \"uix_name_organization_mcp_server\"\nDETAIL:  Key (server_name, "
        f"organization_id)=({name}, {_ORG}) already exists.\n[SQL: INSERT INTO mcp_server "
        "(server_name, server_type, server_url, token, token_enc, custom_headers_enc, "
        "stdio_config, metadata_, id, _created_by_id, _last_updated_by_id, organization_id) "
        "VALUES ($1::VARCHAR, $2::VARCHAR, $3::VARCHAR, $4::VARCHAR, $5::VARCHAR, $6::VARCHAR, "
        "$7::JSON, $8::JSON, $9::VARCHAR, $10::VARCHAR, $11::VARCHAR, $12::VARCHAR) RETURNING "
        "mcp_server.created_at, mcp_server.updated_at, mcp_server.is_deleted]\n"
        f"[parameters: ({params})]\n(Background on this error at: https://sqlalche.me/e/20/gkpj)"
    }


def _letta_tool(tool: Mapping[str, Any], server_name: str, server_id: str) -> dict[str, Any]:
    """An MCP tool as Letta stores it (``GET /v1/mcp-servers/{id}/tools``)."""
    schema = dict(tool.get("inputSchema") or {"type": "object", "properties": {}})
    parameters = {
        **schema,
        "properties": {**schema.get("properties", {}), "request_heartbeat": _HEARTBEAT},
        "additionalProperties": False,
        "required": [*schema.get("required", []), "request_heartbeat"],
    }
    name = tool.get("name")
    source = (
        f"def {name}(**kwargs):\n    raise RuntimeError(\"Something went wrong - we should "
        "never be using the persisted source code for MCP. Please reach out to Letta team\")"
    )
    digest = hashlib.sha256(json.dumps(tool, sort_keys=True, default=str).encode()).hexdigest()
    return {
        "id": f"tool-{uuid.uuid4()}",
        "tool_type": "external_mcp",
        "description": tool.get("description"),
        "source_type": "python",
        "name": name,
        "tags": [f"mcp:{server_name}"],
        "source_code": source,
        "json_schema": {
            "name": name,
            "description": tool.get("description"),
            "parameters": parameters,
            "mcp:SCHEMA_STATUS": "STRICT_COMPLIANT",
            "mcp:SCHEMA_WARNINGS": [],
        },
        "args_json_schema": {},
        "return_char_limit": 50000,
        "pip_requirements": None,
        "npm_requirements": None,
        "default_requires_approval": None,
        "enable_parallel_execution": False,
        "created_by_id": _USER,
        "last_updated_by_id": _USER,
        "metadata_": {
            "mcp": {"server_name": server_name, "server_id": server_id},
            "tool_hash": digest[:12],
        },
        "project_id": None,
    }


def _send_no_content(handler: _Handler) -> None:
    handler.send_response(204)
    handler.send_header("content-type", "application/json")
    handler.end_headers()
