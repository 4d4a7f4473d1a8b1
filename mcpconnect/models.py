"""The typed values of mcpconnect: the config it posts, the events and tools it reads.

Wire JSON is turned into these classes by one private :class:`cattrs.Converter` whose hooks are
registered once, at import (see :func:`structure_event`). Unknown keys are kept in ``extra``,
never dropped, and unknown event types stay plain strings: the server may grow.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal, TypeVar, cast

import attrs
import cattrs
from cattrs.errors import (
    AttributeValidationNote,
    IterableValidationError,
    IterableValidationNote,
)
from cattrs.gen import make_dict_structure_fn, override
from cattrs.v import format_exception

from ._checks import check_header_text, check_http_url, control_char
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

    def __hash__(self) -> int:  # Mapping sets __hash__ to None; a frozen mapping can have one
        return hash(frozenset(self._data.items()))

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


# An HTTP field name (RFC 9110 "token").
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TOKEN_RULE = "a non-empty token of letters, digits and !#$%&'*+-.^_`|~"


def _check_name(instance: object, attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"server_name must be a non-empty string, got {value!r}")
    bad = control_char(value)
    if bad:
        raise ConfigError(f"server_name contains a control character ({bad}): {value!r}")


def _check_type(instance: object, attribute: attrs.Attribute[str], value: object) -> None:
    if value not in ("sse", "streamable_http"):
        raise ConfigError(f"type must be 'sse' or 'streamable_http', got {value!r}")


def _check_url(instance: object, attribute: attrs.Attribute[str], value: object) -> None:
    check_http_url(value, "server_url")


def _check_auth_header(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise ConfigError(f"auth_header must be a string or None, got {type(value).__name__}")
    if not _TOKEN.fullmatch(value):  # not shown: a token put here by mistake stays hidden
        raise ConfigError(f"auth_header is not a valid HTTP header name ({_TOKEN_RULE})")


def _check_auth_token(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    check_header_text(value, "auth_token", show=False)
    if getattr(instance, "auth_header", None) is None:
        raise ConfigError(
            "auth_token is set without auth_header: name the header it is sent in "
            "(for example auth_header='Authorization'); Letta sends no token without one"
        )


def _check_headers(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if not isinstance(value, Mapping):
        raise ConfigError(f"custom_headers must be a mapping of str to str, got "
                          f"{type(value).__name__}")
    for index, (name, text) in enumerate(value.items()):
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise ConfigError(  # the name is not shown: it may hold a value put there by mistake
                f"custom_headers: the name of header {index + 1} is not a valid HTTP header "
                f"name ({_TOKEN_RULE})"
            )
        check_header_text(text, f"custom_headers[{name!r}]", show=False)


def _frozen_headers(value: Any) -> Any:
    # A read-only copy, so that neither the caller's dict nor anyone holding the config can
    # change the headers after they were checked; anything else is left for _check_headers to
    # reject with a ConfigError.
    return _FrozenMap(value) if isinstance(value, Mapping) else value


def _masked_headers(value: Mapping[str, str] | None) -> str:
    return "None" if value is None else repr(dict.fromkeys(value, "***"))


@attrs.frozen(kw_only=True)
class McpConnectConfig:
    """The MCP server to connect: what is posted to ``/v1/tools/mcp/servers/connect``.

    Invalid values raise :class:`~mcpconnect.ConfigError` (a ``ValueError``) here, at
    construction, naming the field and never showing a token or header value:

    - ``server_name``: a non-empty string without control characters;
    - ``type``: ``"sse"`` or ``"streamable_http"``;
    - ``server_url``: an absolute http(s) URL with a host and a valid port, without spaces
      or control characters;
    - ``auth_header`` and the names of ``custom_headers``: HTTP header names (tokens);
    - ``auth_token`` and the values of ``custom_headers``: Latin-1 text without control
      characters (CR, LF, NUL, ...); ``auth_token`` needs ``auth_header``.

    ``custom_headers`` is kept as a read-only copy. ``repr`` masks the ``user:password@`` of
    ``server_url``, ``auth_token`` and the values of ``custom_headers``.
    """

    server_name: str = attrs.field(validator=_check_name)
    type: Literal["sse", "streamable_http"] = attrs.field(validator=_check_type)
    server_url: str = attrs.field(validator=_check_url, repr=lambda v: repr(without_userinfo(v)))
    auth_header: str | None = attrs.field(default=None, validator=_check_auth_header)
    auth_token: str | None = attrs.field(
        default=None, validator=_check_auth_token, repr=lambda v: "None" if v is None else "'***'"
    )
    custom_headers: Mapping[str, str] | None = attrs.field(
        default=None, converter=_frozen_headers, validator=_check_headers, repr=_masked_headers
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


# --- the private converters -------------------------------------------------------------
#
# The attrs classes above are the wire schema; cattrs structures from them. Every rule a field
# has is one hook, keyed by the field's type (plus one for a tool's name, which must not be
# empty). The same hooks make two converters: a fast one without detailed validation, for
# every event of a well-formed stream, and a detailed one, run only when the fast one fails, to
# say which field did not fit (``invalid type (...) @ $.tools[3].name``).

_TOOL_WIRE_NAMES = {"input_schema": "inputSchema", "output_schema": "outputSchema"}


def _structure_name(value: Any, _: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    if not value:
        raise ValueError("expected a non-empty string")
    return value


def _structure_optional_str(value: Any, _: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"expected a string or null, got {type(value).__name__}")
    return value


def _structure_optional_object(value: Any, _: Any) -> JsonObject | None:
    # Schemas stay the JSON the server sent: checked to be an object, never walked.
    if value is not None and not isinstance(value, dict):
        raise TypeError(f"expected an object or null, got {type(value).__name__}")
    return value


def _structure_event_type(value: Any, _: Any) -> OauthStreamEvent | str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return _EVENT_TYPES.get(value, value)


_EVENT_TYPES: dict[str, OauthStreamEvent] = {e.value: e for e in OauthStreamEvent}


def _make_converter(detailed: bool) -> cattrs.Converter:
    converter = cattrs.Converter(detailed_validation=detailed)
    converter.register_structure_hook_func(_is(str | None), _structure_optional_str)
    converter.register_structure_hook_func(_is(JsonObject | None), _structure_optional_object)
    converter.register_structure_hook_func(_is(OauthStreamEvent | str), _structure_event_type)
    tool = _with_extra(
        converter, McpTool, name=override(struct_hook=_structure_name),
        **{name: override(rename=wire) for name, wire in _TOOL_WIRE_NAMES.items()},
    )
    converter.register_structure_hook(McpTool, tool)
    converter.register_structure_hook_func(_is(list[McpTool] | None), _tools_hook(tool, detailed))
    converter.register_structure_hook(McpOauthEvent, _with_extra(converter, McpOauthEvent))
    return converter


def _is(type_: Any) -> Callable[[Any], bool]:
    return lambda t: bool(t == type_)


def _with_extra(converter: cattrs.Converter, cls: type[Any], **overrides: Any) -> Any:
    """A structure hook for ``cls`` (per ``overrides``) that keeps unknown keys in ``extra``."""
    base = make_dict_structure_fn(cls, converter, extra=override(omit=True), **overrides)
    known = frozenset(
        overrides[a.name].rename or a.name if a.name in overrides else a.name
        for a in attrs.fields(cls)
        if a.name != "extra"
    )

    def structure(value: Any, _: Any) -> Any:
        if not isinstance(value, dict):
            raise TypeError(f"expected an object, got {type(value).__name__}")
        obj = base(value, cls)
        if not known.issuperset(value):
            obj = attrs.evolve(obj, extra={k: v for k, v in value.items() if k not in known})
        return obj

    return structure


def _tools_hook(tool: Any, detailed: bool) -> Any:
    """The hook for ``tools``: null or a list (cattrs would take any iterable, a dict too)."""

    def structure(value: Any, _: Any) -> list[McpTool] | None:
        if value is None:
            return None
        if not isinstance(value, list):
            raise TypeError(f"expected a list, got {type(value).__name__}")
        if not detailed:
            return [tool(item, McpTool) for item in value]
        errors: list[Exception] = []
        for index, item in enumerate(value):
            try:
                tool(item, McpTool)
            except Exception as exc:
                note = IterableValidationNote(f"Structuring tools @ index {index}", index, McpTool)
                setattr(exc, "__notes__", [*getattr(exc, "__notes__", ()), note])  # noqa: B010
                errors.append(exc)
        if errors:
            raise IterableValidationError("While structuring tools", errors, list[McpTool])
        return [tool(item, McpTool) for item in value]

    return structure


_fast = _make_converter(detailed=False)
_detailed = _make_converter(detailed=True)


def _format_error(exc: BaseException, type_: Any) -> str:
    # Our hooks' errors say what they expected and what came: keep their words.
    if isinstance(exc, (TypeError, ValueError)) and str(exc).startswith("expected "):
        return f"invalid {'type' if isinstance(exc, TypeError) else 'value'} ({exc})"
    return format_exception(exc, type_)


def _wire_names(exc: BaseException) -> None:
    """Name a tool's fields in errors as the wire does (``inputSchema``), in place."""
    notes = getattr(exc, "__notes__", None)
    if notes:
        cast(Any, exc).__notes__ = [  # (3.10's stubs have no __notes__)
            AttributeValidationNote(note, _TOOL_WIRE_NAMES[note.name], note.type)
            if isinstance(note, AttributeValidationNote) and note.name in _TOOL_WIRE_NAMES
            else note
            for note in notes
        ]
    for inner in getattr(exc, "exceptions", ()):
        _wire_names(inner)


def _unstructure_tool(tool: McpTool) -> JsonObject:
    out: JsonObject = {}
    for a in attrs.fields(McpTool):
        if a.name != "extra":
            out[_TOOL_WIRE_NAMES.get(a.name, a.name)] = getattr(tool, a.name)
    out.update(tool.extra)
    return out


def structure_event(data: JsonObject) -> McpOauthEvent:
    """Turn one event's JSON object into an :class:`McpOauthEvent`.

    Raises :class:`~mcpconnect.ProtocolError` naming every field that does not fit,
    e.g. ``invalid type (expected a string, got int) @ $.tools[3].name``.
    """
    try:
        event: McpOauthEvent = _fast.structure(data, McpOauthEvent)
    except Exception:
        pass  # the detailed converter says why
    else:
        return event
    try:
        event = _detailed.structure(data, McpOauthEvent)
    except Exception as exc:
        _wire_names(exc)
        try:
            lines = cattrs.transform_error(exc, path="$", format_exception=_format_error)
        except Exception:  # not a cattrs error: report what it says
            lines = [repr(exc)]
        raise ProtocolError("event does not fit the schema: " + "; ".join(lines)) from exc
    return event
