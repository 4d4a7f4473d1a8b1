"""The typed values: config validation and wire form, events and tools from wire JSON."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcpconnect import (
    ConfigError,
    ConnectState,
    McpConnectConfig,
    McpConnectError,
    McpOauthEvent,
    McpTool,
    OauthStreamEvent,
    ProtocolError,
)
from mcpconnect.models import structure_event

ECHO_WIRE: dict[str, Any] = {
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
}

ECHO = McpTool(
    name="echo",
    description="Echo the given text back unchanged.",
    input_schema=ECHO_WIRE["inputSchema"],
    output_schema=ECHO_WIRE["outputSchema"],
)


# --- enums ------------------------------------------------------------------------------


def test_stream_event_values_are_the_wire_values() -> None:
    assert [e.value for e in OauthStreamEvent] == [
        "connection_attempt",
        "success",
        "error",
        "oauth_required",
        "authorization_url",
        "waiting_for_auth",
    ]
    assert OauthStreamEvent("success") is OauthStreamEvent.SUCCESS
    assert OauthStreamEvent.SUCCESS == "success"
    assert str(OauthStreamEvent.WAITING_FOR_AUTH) == "waiting_for_auth"


def test_connect_states() -> None:
    assert [s.value for s in ConnectState] == [
        "started",
        "connection_attempt",
        "oauth_required",
        "authorization_url",
        "waiting_for_auth",
        "success",
        "error",
    ]
    assert str(ConnectState.STARTED) == "started"


# --- events -----------------------------------------------------------------------------


def test_event_with_every_field() -> None:
    event = structure_event(
        {
            "event": "authorization_url",
            "url": "https://auth.example/authorize?x=1",
            "session_id": "mcp-oauth-1",
            "message": "go",
            "server_name": "github",
        }
    )
    assert event == McpOauthEvent(
        event=OauthStreamEvent.AUTHORIZATION_URL,
        url="https://auth.example/authorize?x=1",
        session_id="mcp-oauth-1",
        message="go",
        server_name="github",
    )


def test_success_event_tools() -> None:
    event = structure_event({"event": "success", "tools": [ECHO_WIRE, {"name": "bare"}]})
    assert event == McpOauthEvent(
        event=OauthStreamEvent.SUCCESS, tools=[ECHO, McpTool(name="bare")]
    )


def test_null_fields_are_none() -> None:
    event = structure_event(
        {"event": "error", "url": None, "session_id": None, "tools": None, "message": None,
         "server_name": None}
    )
    assert event == McpOauthEvent(event=OauthStreamEvent.ERROR)


def test_unknown_keys_are_kept_not_dropped() -> None:
    event = structure_event(
        {"event": "connection_attempt", "server_name": "s", "attempt": 2, "hint": {"a": [1]}}
    )
    assert event == McpOauthEvent(
        event=OauthStreamEvent.CONNECTION_ATTEMPT,
        server_name="s",
        extra={"attempt": 2, "hint": {"a": [1]}},
    )


def test_unknown_event_type_stays_a_plain_string() -> None:
    event = structure_event({"event": "tool_progress", "message": "50%"})
    assert event == McpOauthEvent(event="tool_progress", message="50%")
    assert type(event.event) is str


def test_tool_unknown_keys_kept_and_wire_names_come_back() -> None:
    wire = {**ECHO_WIRE, "icons": [{"src": "x.png"}], "_meta": {"k": 1}}
    event = structure_event({"event": "success", "tools": [wire]})
    assert event.tools is not None
    (tool,) = event.tools
    assert tool == McpTool(
        name="echo",
        description="Echo the given text back unchanged.",
        input_schema=ECHO_WIRE["inputSchema"],
        output_schema=ECHO_WIRE["outputSchema"],
        extra={"icons": [{"src": "x.png"}], "_meta": {"k": 1}},
    )
    assert tool.to_dict() == wire


def test_tool_to_dict_has_every_wire_key() -> None:
    assert McpTool(name="t").to_dict() == {
        "name": "t",
        "title": None,
        "description": None,
        "inputSchema": None,
        "outputSchema": None,
        "annotations": None,
        "meta": None,
    }
    assert ECHO.to_dict() == ECHO_WIRE


def test_tool_round_trip_through_structure() -> None:
    tool = McpTool(
        name="n", title="T", description="d", input_schema={"type": "object"},
        output_schema={}, annotations={"readOnlyHint": True}, meta={"m": 1},
    )
    again = structure_event({"event": "success", "tools": [tool.to_dict()]})
    assert again.tools == [tool]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"event": "success", "tools": [ECHO_WIRE, ECHO_WIRE, ECHO_WIRE, {"name": 3}]},
            "event does not fit the schema: invalid type (expected a string, got int)"
            " @ $.tools[3].name",
        ),
        (
            {"event": "success", "tools": [{"description": "no name"}]},
            "event does not fit the schema: required field missing @ $.tools[0].name",
        ),
        (
            {"event": "success", "tools": [{"name": "a", "inputSchema": []}]},
            "event does not fit the schema: invalid type (expected an object or null, got list)"
            " @ $.tools[0].inputSchema",
        ),
        (
            {"event": "success", "tools": [{"name": "a", "outputSchema": "x"}]},
            "event does not fit the schema: invalid type (expected an object or null, got str)"
            " @ $.tools[0].outputSchema",
        ),
        (
            {"event": "success", "tools": [{"name": "a", "title": 1, "meta": 2}]},
            "event does not fit the schema: invalid type (expected a string or null, got int)"
            " @ $.tools[0].title; invalid type (expected an object or null, got int)"
            " @ $.tools[0].meta",
        ),
        (
            {"event": "success", "tools": [{"name": "a"}, "b", {"name": None}]},
            "event does not fit the schema: invalid type (expected an object, got str)"
            " @ $.tools[1]; invalid type (expected a string, got NoneType) @ $.tools[2].name",
        ),
        (
            {"event": "success", "tools": {"name": "a"}},
            "event does not fit the schema: invalid type (expected a list, got dict) @ $.tools",
        ),
        (
            {"event": "authorization_url", "url": 5},
            "event does not fit the schema: invalid type (expected a string or null, got int)"
            " @ $.url",
        ),
        (
            {"event": 7},
            "event does not fit the schema: invalid type (expected a string, got int) @ $.event",
        ),
        (
            {"event": None},
            "event does not fit the schema: invalid type (expected a string, got NoneType)"
            " @ $.event",
        ),
    ],
)
def test_fields_that_do_not_fit_are_a_protocol_error_naming_them(
    data: dict[str, Any], message: str
) -> None:
    with pytest.raises(ProtocolError) as info:
        structure_event(data)
    assert str(info.value) == message


@pytest.mark.parametrize("name", ["", None])
def test_a_tool_needs_a_name(name: Any) -> None:
    with pytest.raises(ProtocolError) as info:
        structure_event({"event": "success", "tools": [{"name": "a"}, {"name": name}]})
    assert str(info.value) == (
        "event does not fit the schema: invalid value (expected a non-empty string)"
        " @ $.tools[1].name" if name == "" else
        "event does not fit the schema: invalid type (expected a string, got NoneType)"
        " @ $.tools[1].name"
    )


# An independent, literal reading of the schema in the README, to compare the converters with.
EVENT_STR_KEYS = ("url", "session_id", "message", "server_name")
TOOL_STR_KEYS = ("title", "description")
TOOL_OBJECT_KEYS = {"inputSchema": "input_schema", "outputSchema": "output_schema",
                    "annotations": "annotations", "meta": "meta"}


def reference_tool(data: Any) -> McpTool | None:
    if not isinstance(data, dict) or not isinstance(data.get("name"), str) or not data["name"]:
        return None
    fields: dict[str, Any] = {"name": data["name"]}
    for key in TOOL_STR_KEYS:
        if data.get(key) is not None and not isinstance(data[key], str):
            return None
        fields[key] = data.get(key)
    for wire, attr in TOOL_OBJECT_KEYS.items():
        if data.get(wire) is not None and not isinstance(data[wire], dict):
            return None
        fields[attr] = data.get(wire)
    known = {"name", *TOOL_STR_KEYS, *TOOL_OBJECT_KEYS}
    return McpTool(**fields, extra={k: v for k, v in data.items() if k not in known})


def reference_event(data: dict[str, Any]) -> McpOauthEvent | None:
    kind = data.get("event")
    if not isinstance(kind, str):
        return None
    fields: dict[str, Any] = {}
    for key in EVENT_STR_KEYS:
        if data.get(key) is not None and not isinstance(data[key], str):
            return None
        fields[key] = data.get(key)
    tools = data.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            return None
        fields["tools"] = [reference_tool(t) for t in tools]
        if None in fields["tools"]:
            return None
    known = {"event", "tools", *EVENT_STR_KEYS}
    event_type = OauthStreamEvent(kind) if kind in {e.value for e in OauthStreamEvent} else kind
    return McpOauthEvent(event=event_type, **fields,
                         extra={k: v for k, v in data.items() if k not in known})


SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.sampled_from(["", "x", "success"]))
VALUES = st.one_of(SCALARS, st.just({}), st.just({"type": "object"}), st.just([]), st.just([1]))
TOOLS = st.lists(
    st.dictionaries(
        st.sampled_from(["name", *TOOL_STR_KEYS, *TOOL_OBJECT_KEYS, "icons"]),
        st.one_of(VALUES, st.sampled_from(["echo", "a b"])),
    ) | VALUES,
    max_size=4,
)
EVENTS = st.dictionaries(
    st.sampled_from(["event", *EVENT_STR_KEYS, "tools", "pct"]),
    st.one_of(VALUES, st.sampled_from([e.value for e in OauthStreamEvent]), TOOLS),
)


@given(EVENTS)
def test_the_converters_agree_with_a_literal_reading_of_the_schema(data: dict[str, Any]) -> None:
    expected = reference_event(data)
    if expected is None:
        with pytest.raises(ProtocolError) as info:
            structure_event(data)
        assert str(info.value).startswith("event does not fit the schema: ")
        assert " @ $" in str(info.value)
    else:
        assert structure_event(data) == expected


# --- the config -------------------------------------------------------------------------


TOK = "(a non-empty token of letters, digits and !#$%&'*+-.^_`|~)"


def _config(**changes: Any) -> McpConnectConfig:
    fields: dict[str, Any] = {
        "server_name": "github",
        "type": "streamable_http",
        "server_url": "https://mcp.example.com/mcp",
    }
    fields.update(changes)
    return McpConnectConfig(**fields)


def test_config_wire_form_has_no_key_for_none() -> None:
    assert _config().to_dict() == {
        "server_name": "github",
        "type": "streamable_http",
        "server_url": "https://mcp.example.com/mcp",
    }
    full = _config(
        type="sse", auth_header="Authorization", auth_token="Bearer t0k3n",
        custom_headers={"X-A": "1"},
    )
    assert full.to_dict() == {
        "server_name": "github",
        "type": "sse",
        "server_url": "https://mcp.example.com/mcp",
        "auth_header": "Authorization",
        "auth_token": "Bearer t0k3n",
        "custom_headers": {"X-A": "1"},
    }


def test_config_repr_hides_the_token() -> None:
    config = _config(auth_header="Authorization", auth_token="Bearer s3cr3t-token",
                     custom_headers={"X-Key": "hdr-s3cr3t"})
    text = repr(config)
    assert "s3cr3t" not in text
    assert text == (
        "McpConnectConfig(server_name='github', type='streamable_http', "
        "server_url='https://mcp.example.com/mcp', auth_header='Authorization', "
        "auth_token='***', custom_headers={'X-Key': '***'})"
    )
    assert "auth_token=None" in repr(_config())


def test_config_repr_masks_the_user_info_of_server_url() -> None:
    config = _config(server_url="https://me:s3cr3t@mcp.example.com/mcp?x=1#f")
    assert config.server_url == "https://me:s3cr3t@mcp.example.com/mcp?x=1#f"
    assert "server_url='https://***@mcp.example.com/mcp?x=1#f'" in repr(config)
    assert "s3cr3t" not in repr(config)


@pytest.mark.parametrize(
    "changes",
    [
        {"server_url": "http://127.0.0.1:8401/mcp#srv-f912a378-hdr"},  # Letta's recordings
        {"server_url": "https://mcp.example.com:443/mcp?team=core"},
        {"server_url": "http://[::1]:8080/sse"},
        {"server_url": "https://bücher.example/mcp"},
        {"server_name": "srv-f912a378 odd/name ü?#&%"},
        {"auth_header": "Authorization", "auth_token": "Bearer k-123"},
        {"auth_header": "X-Api-Key", "auth_token": "caf\u00e9 \u00ff"},
        {"auth_header": "Authorization"},
        {"custom_headers": {"X-Extra": "1", "x_b.c~!": "a b\u00e9", "E": ""}},
    ],
)
def test_valid_configs_are_accepted(changes: dict[str, Any]) -> None:
    config = _config(**changes)
    assert config.to_dict() == {**_config().to_dict(), **changes}


def test_config_copies_custom_headers() -> None:
    headers = {"X-A": "1"}
    config = _config(custom_headers=headers)
    headers["X-B"] = "2"
    assert config.custom_headers == {"X-A": "1"}


def test_config_custom_headers_are_read_only() -> None:
    config = _config(custom_headers={"X-A": "1"})
    assert config.custom_headers is not None
    with pytest.raises(TypeError):
        config.custom_headers["X-B"] = "a\r\nInjected: 1"  # type: ignore[index]
    with pytest.raises(AttributeError):
        config.custom_headers.update({"X-B": "2"})  # type: ignore[attr-defined]
    assert dict(config.custom_headers) == {"X-A": "1"}
    assert hash(config) == hash(_config(custom_headers={"X-A": "1"}))
    assert {config, _config(custom_headers={"X-A": "1"})} == {config}
    assert config.to_dict()["custom_headers"] == {"X-A": "1"}
    assert type(config.to_dict()["custom_headers"]) is dict


def test_config_and_values_survive_pickle() -> None:
    config = _config(auth_header="Authorization", auth_token="Bearer t", custom_headers={"X": "1"})
    again = pickle.loads(pickle.dumps(config))
    assert again == config
    assert again.to_dict() == config.to_dict()
    event = structure_event({"event": "success", "tools": [ECHO_WIRE, {"name": "b", "k": 1}]})
    assert pickle.loads(pickle.dumps(event)) == event


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"server_name": ""}, "server_name must be a non-empty string, got ''"),
        ({"server_name": "  "}, "server_name must be a non-empty string, got '  '"),
        ({"server_name": 3}, "server_name must be a non-empty string, got 3"),
        ({"type": "stdio"}, "type must be 'sse' or 'streamable_http', got 'stdio'"),
        ({"type": None}, "type must be 'sse' or 'streamable_http', got None"),
        ({"server_url": "mcp.example.com/mcp"},
         "server_url must be an absolute http(s) URL, got 'mcp.example.com/mcp'"),
        ({"server_url": "/mcp"}, "server_url must be an absolute http(s) URL, got '/mcp'"),
        ({"server_url": "ftp://h/x"}, "server_url must be an absolute http(s) URL, got 'ftp://h/x'"),
        ({"server_url": "http://"}, "server_url must be an absolute http(s) URL, got 'http://'"),
        ({"server_url": "http://[::1"},
         "server_url is not a valid URL (Invalid IPv6 URL): 'http://[::1'"),
        ({"server_url": 5}, "server_url must be a string, got int"),
        ({"server_url": "http://h:99999/mcp"},
         "server_url is not a valid URL (Port out of range 0-65535): 'http://h:99999/mcp'"),
        ({"server_url": "http://h:abc/mcp"},
         "server_url is not a valid URL (Port could not be cast to integer value as 'abc'):"
         " 'http://h:abc/mcp'"),
        ({"server_url": "http://h:0/mcp"}, "server_url has port 0: 'http://h:0/mcp'"),
        ({"server_url": "http://me:pw@h:x/"},
         "server_url is not a valid URL (Port could not be cast to integer value as 'x'):"
         " 'http://***@h:x/'"),
        ({"server_url": "http://h/a b"},
         "server_url contains a space or a control character (U+0020)"),
        ({"server_url": " http://h/"},
         "server_url contains a space or a control character (U+0020)"),
        ({"server_url": "http://h/\tx"},
         "server_url contains a space or a control character (U+0009)"),
        ({"server_url": "http://h/x\r\nHost: evil"},
         "server_url contains a space or a control character (U+000D)"),
        ({"server_url": "http://h\x00/"},
         "server_url contains a space or a control character (U+0000)"),
        ({"server_url": "http://h/\x9b31m"},
         "server_url contains a space or a control character (U+009B)"),
        ({"server_url": "http://h/\u3000"},
         "server_url contains a space or a control character (U+3000)"),
        ({"server_name": "gh\x1b[31m"},
         "server_name contains a control character (U+001B): 'gh\\x1b[31m'"),
        ({"server_name": "gh\nConnected: evil"},
         "server_name contains a control character (U+000A): 'gh\\nConnected: evil'"),
        ({"server_name": "a\x7f"}, "server_name contains a control character (U+007F): 'a\\x7f'"),
        ({"auth_header": 5}, "auth_header must be a string or None, got int"),
        ({"auth_header": ""}, "auth_header is not a valid HTTP header name " + TOK),
        ({"auth_header": "Bearer s3cr3t"}, "auth_header is not a valid HTTP header name " + TOK),
        ({"auth_header": "X-Key:"}, "auth_header is not a valid HTTP header name " + TOK),
        ({"auth_header": "Authorization\r\nX: 1"},
         "auth_header is not a valid HTTP header name " + TOK),
        ({"auth_header": "Authorizätion"}, "auth_header is not a valid HTTP header name " + TOK),
        ({"auth_header": "A", "auth_token": b"x"}, "auth_token must be a string, got bytes"),
        ({"auth_header": "A", "auth_token": "Bearer s3cr3t\r\nX-Injected: 1"},
         "auth_token contains a control character (U+000D)"),
        ({"auth_header": "A", "auth_token": "s3cr3t\n"},
         "auth_token contains a control character (U+000A)"),
        ({"auth_header": "A", "auth_token": "s3cr3t\x00"},
         "auth_token contains a control character (U+0000)"),
        ({"auth_header": "A", "auth_token": "s3cr3t\x85"},
         "auth_token contains a control character (U+0085)"),
        ({"auth_header": "A", "auth_token": "s3cr3t\u2019"},
         "auth_token contains a character that cannot be sent in an HTTP header "
         "(U+2019, not Latin-1; a pasted typographic quote?)"),
        ({"auth_token": "Bearer s3cr3t"},
         "auth_token is set without auth_header: name the header it is sent in "
         "(for example auth_header='Authorization'); Letta sends no token without one"),
        ({"custom_headers": "abc"}, "custom_headers must be a mapping of str to str, got str"),
        ({"custom_headers": 5}, "custom_headers must be a mapping of str to str, got int"),
        ({"custom_headers": {"X": 1}}, "custom_headers['X'] must be a string, got int"),
        ({"custom_headers": {"X": "a\r\nInjected: 1"}},
         "custom_headers['X'] contains a control character (U+000D)"),
        ({"custom_headers": {"X": "ok", "Y": "s3cr3t\x00"}},
         "custom_headers['Y'] contains a control character (U+0000)"),
        ({"custom_headers": {"": "v"}},
         "custom_headers: the name of header 1 is not a valid HTTP header name " + TOK),
        ({"custom_headers": {"X-A": "1", "X-Key: s3cr3t": ""}},
         "custom_headers: the name of header 2 is not a valid HTTP header name " + TOK),
        ({"custom_headers": {"X B": "v"}},
         "custom_headers: the name of header 1 is not a valid HTTP header name " + TOK),
        ({"custom_headers": {"X\nB": "v"}},
         "custom_headers: the name of header 1 is not a valid HTTP header name " + TOK),
        ({"custom_headers": {1: "v"}},
         "custom_headers: the name of header 1 is not a valid HTTP header name " + TOK),
    ],
)
def test_invalid_config_values_raise_config_error(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        _config(**changes)
    assert str(info.value) == message
    assert "s3cr3t" not in str(info.value)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, McpConnectError)


def test_config_accepts_both_types_and_http() -> None:
    assert _config(type="sse", server_url="http://10.0.0.1:8080/sse").type == "sse"


def test_from_dict_wire_shape() -> None:
    wire = {
        "server_name": "github",
        "type": "sse",
        "server_url": "https://mcp.example.com/sse",
        "auth_header": "Authorization",
        "auth_token": "Bearer t",
        "custom_headers": {"X-A": "1"},
    }
    config = McpConnectConfig.from_dict(wire)
    assert config.to_dict() == wire


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"server_name": "a", "type": "sse"}, "config is missing: server_url"),
        ({}, "config is missing: server_name, server_url, type"),
        ({"server_name": "a", "type": "sse", "server_url": "http://h", "command": "x"},
         "config has unknown keys: command"),
        ({"server_name": "a", "type": "sse", "server_url": "http://h", 1: "x"},
         "config has unknown keys: 1"),
        (["server_name"], "config must be a mapping, got list"),
    ],
)
def test_from_dict_rejects(data: Any, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        McpConnectConfig.from_dict(data)
    assert str(info.value) == message


def test_config_is_frozen() -> None:
    config = _config()
    with pytest.raises(AttributeError):
        config.server_name = "other"  # type: ignore[misc]


def test_a_bad_server_url_never_shows_its_credentials() -> None:
    with pytest.raises(ConfigError) as info:
        McpConnectConfig(server_name="s", type="sse", server_url="htps://me:s3cret@mcp.example/x")
    assert str(info.value) == (
        "server_url must be an absolute http(s) URL, got 'htps://***@mcp.example/x'"
    )
