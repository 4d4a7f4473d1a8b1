"""The typed values of mcpconnect: the config it posts, the events and tools it reads.

Wire JSON is turned into these classes by one private :class:`cattrs.Converter` whose hooks are
registered once, at import (see :func:`structure_event`). Unknown keys are kept in ``extra``,
never dropped, and unknown event types stay plain strings: the server may grow.
"""

from __future__ import annotations

import enum
import urllib.parse
from collections.abc import Iterator, Mapping
from typing import Any, Literal, TypeVar

import attrs
import cattrs
from cattrs.errors import (
    AttributeValidationNote,
    ClassValidationError,
    IterableValidationError,
    IterableValidationNote,
)
from cattrs.gen import make_dict_structure_fn, override
from cattrs.v import format_exception

from .errors import ConfigError, ProtocolError, without_userinfo

__all__ = [
    "ConnectState",
    "McpConnectConfig",
    "McpOauthEvent",
    "McpTool",
    "OauthStreamEvent",
    "structure_event",
]

JsonObject = dict[str, Any]

_V = TypeVar("_V")


class _FrozenMap(Mapping[str, _V]):
    """A read-only mapping that pickles (a ``MappingProxyType`` does not)."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, _V]) -> None:
        self._data = dict(data)

    def __getitem__(self, key: str) -> _V:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return repr(self._data)

    def __reduce__(self) -> tuple[object, ...]:
        return _FrozenMap, (self._data,)


#: The ``extra`` of a value with no unknown keys: one shared, read-only empty mapping.
NO_EXTRA: Mapping[str, Any] = _FrozenMap({})


class OauthStreamEvent(str, enum.Enum):
    """The ``event`` values Letta sends on the connect stream."""

    CONNECTION_ATTEMPT = "connection_attempt"
    SUCCESS = "success"
    ERROR = "error"
    OAUTH_REQUIRED = "oauth_required"
    AUTHORIZATION_URL = "authorization_url"
    WAITING_FOR_AUTH = "waiting_for_auth"

    def __str__(self) -> str:
        return self.value


class ConnectState(str, enum.Enum):
    """Where a connect flow is. ``SUCCESS`` and ``ERROR`` are terminal."""

    STARTED = "started"
    CONNECTION_ATTEMPT = "connection_attempt"
    OAUTH_REQUIRED = "oauth_required"
    AUTHORIZATION_URL = "authorization_url"
    WAITING_FOR_AUTH = "waiting_for_auth"
    SUCCESS = "success"
    ERROR = "error"

    def __str__(self) -> str:
        return self.value


def _check_name(instance: object, attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{attribute.name} must be a non-empty string, got {value!r}")


def _check_type(instance: object, attribute: attrs.Attribute[str], value: object) -> None:
    if value not in ("sse", "streamable_http"):
        raise ConfigError(f"type must be 'sse' or 'streamable_http', got {value!r}")


def _check_url(instance: object, attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str):
        raise ConfigError(f"server_url must be a string, got {type(value).__name__}")
    try:
        parts = urllib.parse.urlsplit(value)
    except ValueError as exc:
        raise ConfigError(f"server_url is not a valid URL: {exc}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"server_url must be an absolute http(s) URL, got {without_userinfo(value)!r}"
        )



def _check_optional_str(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{attribute.name} must be a string or None")


def _check_headers(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ConfigError("custom_headers must be a mapping of str to str")
    for k, v in value.items():
        if not k or any(c in k + v for c in "\r\n\x00"):
            raise ConfigError(f"custom_headers has an invalid header {k!r}")


def _frozen_headers(value: Any) -> Any:
    # A read-only copy, so that neither the caller's dict nor anyone holding the config can
    # change the headers after they were checked; anything else is left for _check_headers to
    # reject with a ConfigError.
    return _FrozenMap(value) if isinstance(value, Mapping) else value


@attrs.frozen(kw_only=True)
class McpConnectConfig:
    """The MCP server to connect: what is posted to ``/v1/tools/mcp/servers/connect``.

    Invalid values raise :class:`~mcpconnect.ConfigError` (a ``ValueError``) here, at
    construction. ``auth_token`` never shows in ``repr``.
    """

    server_name: str = attrs.field(validator=_check_name)
    type: Literal["sse", "streamable_http"] = attrs.field(validator=_check_type)
    server_url: str = attrs.field(validator=_check_url)
    auth_header: str | None = attrs.field(default=None, validator=_check_optional_str)
    auth_token: str | None = attrs.field(
        default=None, validator=_check_optional_str, repr=lambda v: "None" if v is None else "'***'"
    )
    custom_headers: Mapping[str, str] | None = attrs.field(
        default=None,
        converter=_frozen_headers,
        validator=_check_headers,
        repr=lambda v: "None" if v is None else repr(sorted(v)),
    )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> McpConnectConfig:
        """Build a config from a mapping in the wire's shape (what the original posts).

        Unknown keys and wrong types raise :class:`~mcpconnect.ConfigError`.
        """
        if not isinstance(data, Mapping):
            raise ConfigError(f"config must be a mapping, got {type(data).__name__}")
        known = {a.name for a in attrs.fields(cls)}
        unknown = sorted(str(k) for k in data if k not in known)
        if unknown:
            raise ConfigError(f"config has unknown keys: {', '.join(unknown)}")
        missing = sorted(
            a.name for a in attrs.fields(cls) if a.default is attrs.NOTHING and a.name not in data
        )
        if missing:
            raise ConfigError(f"config is missing: {', '.join(missing)}")
        return cls(**data)

    def to_dict(self) -> JsonObject:
        """The wire form: no key for a value that is ``None``."""
        out: JsonObject = {}
        for a in attrs.fields(type(self)):
            value = getattr(self, a.name)
            if value is not None:
                out[a.name] = dict(value) if a.name == "custom_headers" else value
        return out


@attrs.frozen(kw_only=True)
class McpTool:
    """One tool of the MCP server. ``input_schema``/``output_schema`` are ``inputSchema``/
    ``outputSchema`` on the wire; keys this version does not know are kept in ``extra``."""

    name: str
    title: str | None = None
    description: str | None = None
    input_schema: JsonObject | None = None
    output_schema: JsonObject | None = None
    annotations: JsonObject | None = None
    meta: JsonObject | None = None
    extra: Mapping[str, Any] = attrs.field(default=NO_EXTRA, repr=False)

    def to_dict(self) -> JsonObject:
        """The wire form, with the wire's key names, ``extra`` keys included."""
        return _unstructure_tool(self)


@attrs.frozen(kw_only=True)
class McpOauthEvent:
    """One event of the connect stream.

    ``event`` is an :class:`OauthStreamEvent`, or the raw string for a type this version
    does not know. ``tools`` is set on ``success``; ``url`` and ``session_id`` on
    ``authorization_url``; ``message`` on informational and ``error`` events. Keys this version
    does not know are kept in ``extra``.
    """

    event: OauthStreamEvent | str
    url: str | None = None
    session_id: str | None = None
    tools: list[McpTool] | None = None
    message: str | None = None
    server_name: str | None = None
    extra: Mapping[str, Any] = attrs.field(default=NO_EXTRA, repr=False)


# --- the private converter --------------------------------------------------------------

_converter = cattrs.Converter(detailed_validation=True)


def _structure_str(value: Any, _: type) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _structure_object(value: Any, _: type) -> JsonObject:
    # Schemas stay the JSON the server sent: checked to be an object, never walked.
    if not isinstance(value, dict):
        raise TypeError(f"expected an object, got {type(value).__name__}")
    return value


def _structure_event_type(value: Any, _: type) -> OauthStreamEvent | str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    try:
        return OauthStreamEvent(value)
    except ValueError:
        return value


_converter.register_structure_hook(str, _structure_str)
_converter.register_structure_hook_func(lambda t: t == JsonObject, _structure_object)
_converter.register_structure_hook_func(
    lambda t: t == (OauthStreamEvent | str), _structure_event_type
)



_TOOL_WIRE_NAMES = {"input_schema": "inputSchema", "output_schema": "outputSchema"}


def _with_extra(cls: type[Any], **renames: str) -> Any:
    """A structure hook for ``cls`` that renames fields and keeps unknown keys in ``extra``."""
    overrides: dict[str, Any] = {name: override(rename=wire) for name, wire in renames.items()}
    overrides["extra"] = override(omit=True)
    base = make_dict_structure_fn(cls, _converter, **overrides)
    known = frozenset(renames.get(a.name, a.name) for a in attrs.fields(cls) if a.name != "extra")

    def structure(value: Any, _: type) -> Any:
        if not isinstance(value, dict):
            raise TypeError(f"expected an object, got {type(value).__name__}")
        obj = base(value, cls)
        if len(value) > len(known) or not known.issuperset(value):
            unknown = {k: v for k, v in value.items() if k not in known}
            if unknown:
                obj = attrs.evolve(obj, extra=unknown)
        return obj

    return structure


# Tools are most of a success event's bytes (thousands of them), so they get hand-written
# hooks: one pass of plain checks per tool, and only when one fails, a second pass that
# builds the same cattrs exceptions (with wire names: ``$.tools[3].inputSchema``).

_TOOL_KEYS = frozenset(_TOOL_WIRE_NAMES.get(a.name, a.name) for a in attrs.fields(McpTool)) - {
    "extra"
}


def _tool_errors(value: JsonObject) -> list[Exception]:
    errors: list[Exception] = []

    def fail(exc: Exception, wire: str) -> None:
        note = AttributeValidationNote(f"Structuring McpTool @ {wire}", wire, None)
        setattr(exc, "__notes__", [note])  # noqa: B010 (no add_note() before 3.11)
        errors.append(exc)

    if "name" not in value:
        fail(KeyError("name"), "name")
    elif not isinstance(value["name"], str):
        fail(TypeError(f"expected a string, got {type(value['name']).__name__}"), "name")
    for wire in ("title", "description"):
        v = value.get(wire)
        if v is not None and not isinstance(v, str):
            fail(TypeError(f"expected a string or null, got {type(v).__name__}"), wire)
    for wire in ("inputSchema", "outputSchema", "annotations", "meta"):
        v = value.get(wire)
        if v is not None and not isinstance(v, dict):
            fail(TypeError(f"expected an object or null, got {type(v).__name__}"), wire)
    return errors


def _structure_tool(value: Any, _: type = McpTool) -> McpTool:
    if not isinstance(value, dict):
        raise TypeError(f"expected an object, got {type(value).__name__}")
    get = value.get
    name = get("name")
    title = get("title")
    description = get("description")
    input_schema = get("inputSchema")
    output_schema = get("outputSchema")
    annotations = get("annotations")
    meta = get("meta")
    if not (
        isinstance(name, str)
        and (title is None or isinstance(title, str))
        and (description is None or isinstance(description, str))
        and (input_schema is None or isinstance(input_schema, dict))
        and (output_schema is None or isinstance(output_schema, dict))
        and (annotations is None or isinstance(annotations, dict))
        and (meta is None or isinstance(meta, dict))
    ):
        raise ClassValidationError("While structuring McpTool", _tool_errors(value), McpTool)
    extra: Mapping[str, Any] = NO_EXTRA
    if not _TOOL_KEYS.issuperset(value):
        extra = {k: v for k, v in value.items() if k not in _TOOL_KEYS}
    return McpTool(
        name=name,
        title=title,
        description=description,
        input_schema=input_schema,
        output_schema=output_schema,
        annotations=annotations,
        meta=meta,
        extra=extra,
    )


def _structure_tools(value: Any, _: Any) -> list[McpTool]:
    if not isinstance(value, list):  # cattrs would take any iterable, a dict's keys too
        raise TypeError(f"expected a list, got {type(value).__name__}")
    try:
        return [_structure_tool(item) for item in value]
    except (TypeError, ClassValidationError):
        pass
    errors: list[Exception] = []
    for index, item in enumerate(value):
        try:
            _structure_tool(item)
        except (TypeError, ClassValidationError) as exc:
            note = IterableValidationNote(f"Structuring tools @ index {index}", index, None)
            setattr(exc, "__notes__", [*getattr(exc, "__notes__", ()), note])  # noqa: B010
            errors.append(exc)
    raise IterableValidationError("While structuring list[McpTool]", errors, list[McpTool])


_converter.register_structure_hook(McpTool, _structure_tool)
_converter.register_structure_hook_func(lambda t: t == list[McpTool], _structure_tools)
_converter.register_structure_hook(McpOauthEvent, _with_extra(McpOauthEvent))


def _format_error(exc: BaseException, type_: Any) -> str:
    # Our hooks' TypeErrors say what they expected and what came: keep their words.
    if isinstance(exc, TypeError) and str(exc).startswith("expected "):
        return f"invalid type ({exc})"
    return format_exception(exc, type_)


def _unstructure_tool(tool: McpTool) -> JsonObject:
    out: JsonObject = {}
    for a in attrs.fields(McpTool):
        if a.name != "extra":
            out[_TOOL_WIRE_NAMES.get(a.name, a.name)] = getattr(tool, a.name)
    out.update(tool.extra)
    return out


_EVENT_TYPES: dict[str, OauthStreamEvent] = {e.value: e for e in OauthStreamEvent}
_EVENT_KEYS = frozenset(a.name for a in attrs.fields(McpOauthEvent)) - {"extra"}


def structure_event(data: JsonObject) -> McpOauthEvent:
    """Turn one event's JSON object into an :class:`McpOauthEvent`.

    Raises :class:`~mcpconnect.ProtocolError` naming every field that does not fit,
    e.g. ``invalid type (expected a string, got int) @ $.tools[3].name``.
    """
    # The fast path, for every event of a well-formed stream: plain checks of the same
    # rules the converter applies. Anything that fails them goes to the converter, which
    # rejects it with its detailed messages.
    get = data.get
    kind = get("event")
    url = get("url")
    session_id = get("session_id")
    message = get("message")
    server_name = get("server_name")
    tools = get("tools")
    if (
        isinstance(kind, str)
        and (url is None or isinstance(url, str))
        and (session_id is None or isinstance(session_id, str))
        and (message is None or isinstance(message, str))
        and (server_name is None or isinstance(server_name, str))
        and (tools is None or isinstance(tools, list))
    ):
        try:
            tool_list = None if tools is None else _structure_tools(tools, None)
        except (TypeError, IterableValidationError):
            pass  # the converter explains
        else:
            extra: Mapping[str, Any] = NO_EXTRA
            if not _EVENT_KEYS.issuperset(data):
                extra = {k: v for k, v in data.items() if k not in _EVENT_KEYS}
            return McpOauthEvent(
                event=_EVENT_TYPES.get(kind, kind),
                url=url,
                session_id=session_id,
                tools=tool_list,
                message=message,
                server_name=server_name,
                extra=extra,
            )
    try:
        event: McpOauthEvent = _converter.structure(data, McpOauthEvent)
    except Exception as exc:
        try:
            lines = cattrs.transform_error(exc, path="$", format_exception=_format_error)
        except Exception:  # not a cattrs error: report what it says
            lines = [repr(exc)]
        raise ProtocolError("event does not fit the schema: " + "; ".join(lines)) from exc
    return event
