"""The connect flow: every cell of the transition table, the error frame, the skips."""

from __future__ import annotations

import inspect
import json
import logging
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import mcpconnect
from mcpconnect import (
    ConfigError,
    ConnectFlow,
    ConnectState,
    ConnectTimeoutError,
    McpOauthEvent,
    McpTool,
    MissingAuthorizationUrlError,
    OauthStreamEvent,
    ProtocolError,
    ServerError,
    Timeouts,
)
from mcpconnect import flow as flow_module
from mcpconnect.flow import MAX_TOOLS, NO_AUTHORIZATION_URL, TRANSITIONS
from mcpconnect.sse import ServerSentEvent
from mcpconnect.transports import FakeTransport, Hang, sse_stream

CA, OR, AU, WFA, OK, ERR = (
    "connection_attempt",
    "oauth_required",
    "authorization_url",
    "waiting_for_auth",
    "success",
    "error",
)
NO_URL = "MissingAuthorizationUrlError"

# The protocol, written out independently of flow.TRANSITIONS: what each (state, event)
# leads to. The real server's paths: CA → OK|ERR; CA → OR → AU → WFA → OK|ERR; and the
# skips (no connection_attempt, straight to success). A known event that repeats or comes out
# of order leaves the state as it is; waiting_for_auth before any URL fails at once.
EXPECTED: dict[str, dict[str, str]] = {
    "started": {CA: CA, OR: OR, AU: AU, WFA: NO_URL, OK: OK, ERR: ERR},
    CA: {CA: CA, OR: OR, AU: AU, WFA: NO_URL, OK: OK, ERR: ERR},
    OR: {CA: OR, OR: OR, AU: AU, WFA: NO_URL, OK: OK, ERR: ERR},
    AU: {CA: AU, OR: AU, AU: AU, WFA: WFA, OK: OK, ERR: ERR},
    WFA: {CA: WFA, OR: WFA, AU: WFA, WFA: WFA, OK: OK, ERR: ERR},
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
        state: {event: (ERR if outcome == NO_URL else outcome) for event, outcome in row.items()}
        for state, row in EXPECTED.items()
    }
    assert table == {**expected, OK: {}, ERR: {}}


def test_the_table_fits_on_one_screen() -> None:
    source = inspect.getsource(flow_module)
    table = source[source.index("TRANSITIONS: dict"):source.index("TERMINAL = ")]
    assert len(table.strip().splitlines()) <= 50


@pytest.mark.parametrize(("state", "event"), CELLS)
def test_every_cell(state: str, event: str) -> None:
    flow = flow_in(state)
    outcome = EXPECTED[state][event]
    got = flow.receive(sse(PAYLOAD[event]))
    assert got is not None
    assert got.event is OauthStreamEvent(event)
    if outcome == NO_URL:
        assert (flow.state, flow.done, flow.limit) == (ConnectState.ERROR, True, None)
        with pytest.raises(MissingAuthorizationUrlError) as missing:
            flow.result()
        assert str(missing.value) == NO_AUTHORIZATION_URL
        assert missing.value.event == got
        assert flow.error is missing.value
    elif outcome == OK:
        assert (flow.state, flow.done, flow.limit) == (ConnectState.SUCCESS, True, None)
        assert flow.result() == [McpTool(name="echo")]
        assert flow.error is None
    elif outcome == ERR:
        assert (flow.state, flow.done, flow.limit) == (ConnectState.ERROR, True, None)
        with pytest.raises(ServerError) as error:
            flow.result()
        assert type(error.value) is ServerError
        assert (str(error.value), error.value.message) == ("it broke", "it broke")
        assert error.value.event == got
        assert flow.error is error.value
    else:
        assert (flow.state.value, flow.done, flow.error) == (outcome, False, None)
        assert flow.limit == ("authorization" if outcome == WFA else "read")
        with pytest.raises(RuntimeError):
            flow.result()


@pytest.mark.parametrize(("state", "event"), CELLS)
def test_no_status_event_fails_a_connect_that_would_succeed(state: str, event: str) -> None:
    if EXPECTED[state][event] in (NO_URL, OK, ERR):
        return  # the cells that end the flow, checked above
    flow = flow_in(state)
    flow.receive(sse(PAYLOAD[event]))
    flow.receive(sse(PAYLOAD[OK]))
    assert flow.result() == [McpTool(name="echo")]


@pytest.mark.parametrize(
    ("state", "limit"),
    [("started", "read"), (CA, "read"), (OR, "read"), (AU, "read"), (WFA, "authorization"),
     (OK, None), (ERR, None)],
)
def test_the_flow_says_which_time_limit_applies(state: str, limit: str | None) -> None:
    assert flow_in(state).limit == limit


def test_repeats_and_events_out_of_order_are_logged_at_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    flow = flow_in(WFA)
    with caplog.at_level(logging.DEBUG, logger="mcpconnect"):
        flow.receive(sse(PAYLOAD[WFA]))
        flow.receive(sse(PAYLOAD[OR]))
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.DEBUG, "event waiting_for_auth in state waiting_for_auth"),
        (logging.DEBUG, "waiting_for_auth repeated or out of order: handed on, still "
                        "waiting_for_auth"),
        (logging.DEBUG, "event oauth_required in state waiting_for_auth"),
        (logging.DEBUG, "oauth_required repeated or out of order: handed on, still "
                        "waiting_for_auth"),
    ]


STATUS_EVENTS = [CA, OR, AU, WFA, "tool_progress"]


@given(st.lists(st.sampled_from(STATUS_EVENTS), max_size=12), st.sampled_from([OK, ERR]))
def test_any_order_of_status_events_against_a_reference(names: list[str], last: str) -> None:
    # The reference: the flow fails at the first waiting_for_auth before any URL; otherwise
    # it ends as the last event says, whatever the order of the status events before it.
    flow = ConnectFlow()
    url_seen = waiting = False
    for name in names:
        flow.receive(sse(PAYLOAD.get(name, {"event": name})))
        url_seen = url_seen or name == AU
        if name == WFA and not url_seen:
            assert isinstance(flow.error, MissingAuthorizationUrlError)
            assert flow.done
            return
        waiting = waiting or name == WFA
        assert (flow.done, flow.error) == (False, None)
        assert flow.limit == ("authorization" if waiting else "read")
    flow.receive(sse(PAYLOAD[last]))
    if last == OK:
        assert flow.result() == [McpTool(name="echo")]
    else:
        with pytest.raises(ServerError):
            flow.result()


# --- authorization URLs that are none --------------------------------------------------


@pytest.mark.parametrize("url", [None, "", "   ", "MISSING"])
@pytest.mark.parametrize("state", ["started", CA, OR])
def test_an_authorization_url_without_a_url_counts_as_none(state: str, url: str | None) -> None:
    flow = flow_in(state)
    payload: dict[str, Any] = {"event": AU, "session_id": "s"}
    if url != "MISSING":
        payload["url"] = url
    got = flow.receive(sse(payload))
    assert got is not None and got.event is OauthStreamEvent.AUTHORIZATION_URL
    assert (flow.state.value, flow.done) == (state, False)
    flow.receive(sse(PAYLOAD[WFA]))
    with pytest.raises(MissingAuthorizationUrlError):
        flow.result()


def test_an_empty_url_after_a_real_one_changes_nothing() -> None:
    flow = flow_in(AU)
    flow.receive(sse({"event": AU, "url": ""}))
    flow.receive(sse(PAYLOAD[WFA]))
    assert (flow.state, flow.limit) == (ConnectState.WAITING_FOR_AUTH, "authorization")


# --- the end ----------------------------------------------------------------------------


@pytest.mark.parametrize("state", [OK, ERR])
@pytest.mark.parametrize("event", [*list(PAYLOAD), "tool_progress"])
def test_terminal_states_read_no_more(state: str, event: str) -> None:
    flow = flow_in(state)
    with pytest.raises(RuntimeError) as info:
        flow.receive(sse(PAYLOAD.get(event, {"event": event})))
    assert str(info.value) == f"the flow is over (state {state})"


BAD_EVENTS: list[Any] = [
    {"event": OK, "tools": [{"name": 1}]},
    {"event": OK},
    {"event": OK, "tools": None},
    {"event": AU, "url": 5},
    '{"event": "success", "x": ' + "[" * 100_000 + "]" * 100_000 + "}",
]


@pytest.mark.parametrize("bad", BAD_EVENTS, ids=range(len(BAD_EVENTS)))
@pytest.mark.parametrize("state", list(EXPECTED))
def test_after_it_raises_the_flow_is_over(state: str, bad: Any) -> None:
    flow = flow_in(state)
    with pytest.raises(ProtocolError) as info:
        flow.receive(sse(bad))
    assert (flow.state, flow.done, flow.limit, flow.error) == (
        ConnectState.ERROR, True, None, info.value
    )
    with pytest.raises(RuntimeError) as again:
        flow.receive(sse(PAYLOAD[OK]))
    assert str(again.value) == "the flow is over (state error)"
    with pytest.raises(ProtocolError) as result:
        flow.result()
    assert result.value is info.value


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


def test_success_with_an_empty_list_has_no_tools() -> None:
    flow = ConnectFlow()
    flow.receive(sse({"event": OK, "tools": []}))
    assert flow.result() == []


@pytest.mark.parametrize("payload", [{"event": OK}, {"event": OK, "tools": None}])
def test_success_without_tools_is_a_protocol_error(payload: dict[str, Any]) -> None:
    flow = flow_in(CA)
    with pytest.raises(ProtocolError) as info:
        flow.receive(sse(payload))
    assert str(info.value) == "the success event has no tools"


def test_the_result_is_a_copy() -> None:
    flow = flow_in(OK)
    flow.result().clear()
    assert flow.result() == [McpTool(name="echo")]


def test_error_event_without_message() -> None:
    flow = ConnectFlow()
    flow.receive(sse({"event": ERR}))
    with pytest.raises(ServerError) as info:
        flow.result()
    assert str(info.value) == "Connection failed"


# --- the cap on tools -------------------------------------------------------------------


@pytest.mark.parametrize("cap", [0, 1, 5])
def test_max_tools_is_the_most_a_success_may_list(cap: int) -> None:
    tools = [{"name": f"t{i}"} for i in range(cap)]
    flow = ConnectFlow(max_tools=cap)
    flow.receive(sse({"event": OK, "tools": tools}))
    assert [t.name for t in flow.result()] == [t["name"] for t in tools]
    over = ConnectFlow(max_tools=cap)
    with pytest.raises(ProtocolError) as info:
        over.receive(sse({"event": OK, "tools": [*tools, {"name": "one more"}]}))
    assert str(info.value) == (
        f"the event lists {cap + 1:,} tools, more than max_tools ({cap:,})"
    )
    assert over.error is info.value


def test_the_default_cap_is_100000_tools() -> None:
    assert MAX_TOOLS == 100_000
    assert ConnectFlow().max_tools == MAX_TOOLS
    flow = ConnectFlow()
    with pytest.raises(ProtocolError) as info:
        flow.receive(sse('{"event": "success", "tools": [' + "{},\n" * 100_000 + "{}]}"))
    assert str(info.value) == "the event lists 100,001 tools, more than max_tools (100,000)"


@pytest.mark.parametrize("cap", [-1, 1.5, "10", None, True])
def test_max_tools_must_be_a_count(cap: Any) -> None:
    with pytest.raises(ConfigError) as info:
        ConnectFlow(max_tools=cap)
    assert str(info.value) == f"max_tools must be a non-negative int, got {cap!r}"


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


# --- through connect(): the read loop hands the flow's limit to the watch ---------------


def _connect(events: list[dict[str, Any]], timeout: Timeouts) -> tuple[object, list[Any]]:
    seen: list[Any] = []
    transport = FakeTransport(sse_stream(events, then=[Hang()]))
    try:
        return mcpconnect.connect(
            {"server_name": "s", "type": "streamable_http", "server_url": "https://m.example/"},
            on_event=seen.append, base_url="http://letta.invalid", api_key="k",
            transport=transport, timeout=timeout,
        ), seen
    except mcpconnect.McpConnectError as exc:
        return exc, seen


@pytest.mark.parametrize("url", [None, ""])
def test_connect_fails_at_once_after_an_authorization_url_without_a_url(url: str | None) -> None:
    events = [PAYLOAD[CA], PAYLOAD[OR], {"event": AU, "url": url}, PAYLOAD[WFA]]
    outcome, seen = _connect(events, Timeouts(read=None, authorization=None, total=10))
    assert type(outcome) is MissingAuthorizationUrlError
    assert [e.event.value for e in seen] == [CA, OR, AU, WFA]


def test_connect_passes_repeats_on_and_keeps_the_authorization_limit() -> None:
    events = [PAYLOAD[CA], PAYLOAD[CA], PAYLOAD[OR], PAYLOAD[AU], PAYLOAD[WFA], PAYLOAD[OR],
              PAYLOAD[WFA]]
    outcome, seen = _connect(events, Timeouts(read=0.05, authorization=0.3, total=10))
    assert isinstance(outcome, ConnectTimeoutError)
    assert (outcome.limit, outcome.state) == ("authorization", "waiting_for_auth")
    assert [e.event.value for e in seen] == [CA, CA, OR, AU, WFA, OR, WFA]


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json(constant: str) -> None:
    # Python's json reads them; a tool list holding one could not be written back as JSON.
    flow = flow_in(CA)
    text = '{"event": "success", "tools": [{"name": "t", "inputSchema": {"max": %s}}]}'
    with pytest.raises(ProtocolError, match=f"holds {constant}, which is not JSON"):
        flow.receive(sse(text % constant))
