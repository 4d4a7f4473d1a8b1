"""The connect flow: every cell of the transition table, the error frame, the skips."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from mcpconnect import (
    ConnectFlow,
    ConnectState,
    McpOauthEvent,
    McpTool,
    MissingAuthorizationUrlError,
    OauthStreamEvent,
    ProtocolError,
    ServerError,
)
from mcpconnect.flow import NO_AUTHORIZATION_URL, TRANSITIONS
from mcpconnect.sse import ServerSentEvent

CA, OR, AU, WFA, OK, ERR = (
    "connection_attempt",
    "oauth_required",
    "authorization_url",
    "waiting_for_auth",
    "success",
    "error",
)
PROTO = "ProtocolError"
NO_URL = "MissingAuthorizationUrlError"

# The protocol, written out independently of flow.TRANSITIONS: what each (state, event)
# leads to. The real server's paths: CA → OK|ERR; CA → OR → AU → WFA → OK|ERR; and the
# skips (no connection_attempt, no authorization_url, straight to success).
EXPECTED: dict[str, dict[str, str]] = {
    "started": {CA: CA, OR: OR, AU: AU, WFA: NO_URL, OK: OK, ERR: ERR},
    CA: {CA: PROTO, OR: OR, AU: AU, WFA: NO_URL, OK: OK, ERR: ERR},
    OR: {CA: PROTO, OR: PROTO, AU: AU, WFA: NO_URL, OK: OK, ERR: ERR},
    AU: {CA: PROTO, OR: PROTO, AU: AU, WFA: WFA, OK: OK, ERR: ERR},
    WFA: {CA: PROTO, OR: PROTO, AU: PROTO, WFA: PROTO, OK: OK, ERR: ERR},
}

# How to reach each state from the start.
PATHS: dict[str, list[str]] = {
    "started": [],
    CA: [CA],
    OR: [CA, OR],
    AU: [CA, OR, AU],
    WFA: [CA, OR, AU, WFA],
    OK: [CA, OK],
    ERR: [CA, ERR],
}

PAYLOAD: dict[str, dict[str, Any]] = {
    CA: {"event": CA, "server_name": "s"},
    OR: {"event": OR, "message": "OAuth authentication required"},
    AU: {"event": AU, "url": "https://auth.example/authorize", "session_id": "sess-1"},
    WFA: {"event": WFA, "message": "Waiting for user authorization..."},
    OK: {"event": OK, "tools": [{"name": "echo"}]},
    ERR: {"event": ERR, "message": "it broke"},
}


def sse(data: Any, event: str = "message") -> ServerSentEvent:
    return ServerSentEvent(event=event, data=data if isinstance(data, str) else json.dumps(data))


def flow_in(state: str) -> ConnectFlow:
    flow = ConnectFlow()
    for name in PATHS[state]:
        flow.receive(sse(PAYLOAD[name]))
    assert flow.state.value == state
    return flow


CELLS = [(state, event) for state in EXPECTED for event in EXPECTED[state]]


def test_the_expected_table_covers_every_pair() -> None:
    non_terminal = [s.value for s in ConnectState if s.value not in (OK, ERR)]
    assert sorted(EXPECTED) == sorted(non_terminal)
    for row in EXPECTED.values():
        assert sorted(row) == sorted(e.value for e in OauthStreamEvent)


def test_the_table_is_what_the_flow_uses() -> None:
    table = {
        state.value: {event.value: nxt.value for event, nxt in row.items()}
        for state, row in TRANSITIONS.items()
    }
    expected = {
        state: {
            event: (ERR if outcome == NO_URL else outcome)
            for event, outcome in row.items()
            if outcome != PROTO
        }
        for state, row in EXPECTED.items()
    }
    assert table == {**expected, OK: {}, ERR: {}}


@pytest.mark.parametrize(("state", "event"), CELLS)
def test_every_cell(state: str, event: str) -> None:
    flow = flow_in(state)
    outcome = EXPECTED[state][event]
    if outcome == PROTO:
        with pytest.raises(ProtocolError) as info:
            flow.receive(sse(PAYLOAD[event]))
        assert str(info.value) == f"unexpected event {event!r} in state {state}"
        assert flow.state.value == state
        return
    got = flow.receive(sse(PAYLOAD[event]))
    assert got is not None
    assert got.event is OauthStreamEvent(event)
    if outcome == NO_URL:
        assert (flow.state, flow.done) == (ConnectState.ERROR, True)
        with pytest.raises(MissingAuthorizationUrlError) as missing:
            flow.result()
        assert str(missing.value) == NO_AUTHORIZATION_URL
        assert missing.value.event == got
    elif outcome == OK:
        assert (flow.state, flow.done) == (ConnectState.SUCCESS, True)
        assert flow.result() == [McpTool(name="echo")]
    elif outcome == ERR:
        assert (flow.state, flow.done) == (ConnectState.ERROR, True)
        with pytest.raises(ServerError) as error:
            flow.result()
        assert type(error.value) is ServerError
        assert (str(error.value), error.value.message) == ("it broke", "it broke")
        assert error.value.event == got
    else:
        assert (flow.state.value, flow.done) == (outcome, False)
        with pytest.raises(RuntimeError):
            flow.result()


@pytest.mark.parametrize("state", list(EXPECTED))
def test_unknown_event_type_is_handed_on_and_changes_nothing(state: str) -> None:
    flow = flow_in(state)
    got = flow.receive(sse({"event": "tool_progress", "message": "half", "pct": 50}))
    assert got == McpOauthEvent(event="tool_progress", message="half", extra={"pct": 50})
    assert (flow.state.value, flow.done) == (state, False)


@pytest.mark.parametrize("state", [OK, ERR])
@pytest.mark.parametrize("event", [*list(PAYLOAD), "tool_progress"])
def test_terminal_states_read_no_more(state: str, event: str) -> None:
    flow = flow_in(state)
    with pytest.raises(RuntimeError) as info:
        flow.receive(sse(PAYLOAD.get(event, {"event": event})))
    assert str(info.value) == f"the flow is over (state {state})"


def test_missing_authorization_url_message() -> None:
    assert "asked for OAuth but sent no authorization URL" in NO_AUTHORIZATION_URL
    assert "server_url" in NO_AUTHORIZATION_URL
    assert issubclass(MissingAuthorizationUrlError, ServerError)


def test_whole_oauth_flow() -> None:
    flow = ConnectFlow()
    got = [flow.receive(sse(PAYLOAD[name])) for name in (CA, OR, AU, WFA, OK)]
    assert got == [
        McpOauthEvent(event=OauthStreamEvent.CONNECTION_ATTEMPT, server_name="s"),
        McpOauthEvent(
            event=OauthStreamEvent.OAUTH_REQUIRED, message="OAuth authentication required"
        ),
        McpOauthEvent(
            event=OauthStreamEvent.AUTHORIZATION_URL,
            url="https://auth.example/authorize",
            session_id="sess-1",
        ),
        McpOauthEvent(
            event=OauthStreamEvent.WAITING_FOR_AUTH, message="Waiting for user authorization..."
        ),
        McpOauthEvent(event=OauthStreamEvent.SUCCESS, tools=[McpTool(name="echo")]),
    ]
    assert flow.result() == [McpTool(name="echo")]


def test_success_without_tools_is_an_empty_list() -> None:
    for payload in ({"event": OK}, {"event": OK, "tools": None}, {"event": OK, "tools": []}):
        flow = ConnectFlow()
        flow.receive(sse(payload))
        assert flow.result() == []


def test_error_event_without_message() -> None:
    flow = ConnectFlow()
    flow.receive(sse({"event": ERR}))
    with pytest.raises(ServerError) as info:
        flow.result()
    assert str(info.value) == "Connection failed"


# --- the server's own failure frame: "event: error" -------------------------------------


@pytest.mark.parametrize(
    ("data", "message", "extra"),
    [
        ('{"error": "Internal error: boom", "code": "INTERNAL_SERVER_ERROR"}',
         "Internal error: boom", {"code": "INTERNAL_SERVER_ERROR"}),
        ('{"message": "bad", "code": 3}', "bad", {"code": 3}),
        ('{"code": 3}', "Connection failed", {"code": 3}),
        ("plain text failure", "plain text failure", {}),
        ("", "Connection failed", {}),
        ("[1, 2]", "[1, 2]", {}),
    ],
)
@pytest.mark.parametrize("state", list(EXPECTED))
def test_error_frame_raises_server_error(
    state: str, data: str, message: str, extra: dict[str, Any]
) -> None:
    flow = flow_in(state)
    got = flow.receive(sse(data, event="error"))
    assert got == McpOauthEvent(event=OauthStreamEvent.ERROR, message=message, extra=extra)
    assert flow.state is ConnectState.ERROR
    with pytest.raises(ServerError) as info:
        flow.result()
    assert type(info.value) is ServerError
    assert (str(info.value), info.value.event) == (message, got)


# --- what is skipped --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "log_message"),
    [
        ("[DONE]", None),
        (" [DONE] ", None),
        ("not json", "skipped a frame whose data is not a JSON object (8 chars)"),
        ('{"event": "success"', "skipped a frame whose data is not a JSON object (19 chars)"),
        ("null", "skipped a frame whose data is not a JSON object (4 chars)"),
        ("42", "skipped a frame whose data is not a JSON object (2 chars)"),
        ('"success"', "skipped a frame whose data is not a JSON object (9 chars)"),
        ('[{"event": "success"}]', "skipped a frame whose data is not a JSON object (22 chars)"),
        ("", "skipped a frame whose data is not a JSON object (0 chars)"),
        (
            '{"type": "ping", "ts": 1}',
            "skipped a JSON object with no 'event' key: keys ['ts', 'type']",
        ),
    ],
)
@pytest.mark.parametrize("state", list(EXPECTED))
def test_frames_that_carry_no_event_are_skipped_and_logged(
    state: str, data: str, log_message: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    flow = flow_in(state)
    with caplog.at_level(logging.DEBUG, logger="mcpconnect"):
        assert flow.receive(sse(data)) is None
    assert flow.state.value == state
    messages = [(r.name, r.levelno, r.getMessage()) for r in caplog.records]
    assert messages == ([] if log_message is None else [("mcpconnect", logging.DEBUG, log_message)])


def test_each_event_is_logged_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    flow = ConnectFlow()
    with caplog.at_level(logging.DEBUG, logger="mcpconnect"):
        for name in (CA, OK):
            flow.receive(sse(PAYLOAD[name]))
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.DEBUG, "event connection_attempt in state started"),
        (logging.DEBUG, "event success in state connection_attempt"),
    ]


def test_success_whose_tools_do_not_structure_is_a_protocol_error() -> None:
    flow = flow_in(CA)
    with pytest.raises(ProtocolError) as info:
        flow.receive(sse({"event": OK, "tools": [{"name": "a"}, {"name": "b", "title": 5}]}))
    assert str(info.value) == (
        "event does not fit the schema: invalid type (expected a string or null, got int)"
        " @ $.tools[1].title"
    )


def test_deeply_nested_json_is_a_protocol_error_not_a_recursion_error() -> None:
    flow = ConnectFlow()
    with pytest.raises(ProtocolError) as info:
        flow.receive(sse('{"event": "success", "x": ' + "[" * 200_000 + "]" * 200_000 + "}"))
    assert str(info.value) == "event data is JSON nested too deeply to read"


def test_result_before_the_end_is_a_runtime_error() -> None:
    with pytest.raises(RuntimeError) as info:
        ConnectFlow().result()
    assert str(info.value) == "the flow is not over (state started)"
