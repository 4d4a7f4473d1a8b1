"""connect(), stream_events() and Client end to end over the fake transport."""

from __future__ import annotations

import gc
import json
import pathlib
import threading
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mcpconnect
from mcpconnect import (
    Client,
    ConfigError,
    ConnectCancelledError,
    ConnectionFailedError,
    ConnectTimeoutError,
    McpConnectConfig,
    McpConnectError,
    McpOauthEvent,
    McpTool,
    MissingAuthorizationUrlError,
    OauthStreamEvent,
    ProtocolError,
    ServerError,
    StreamEndedError,
    Timeouts,
    TransportError,
)
from mcpconnect.transports import FakeResponse, FakeTransport, Hang, Pause, Request, sse_stream

KEY = "sk-test-key"
BASE = "http://letta.example:8283"
CONFIG = {"server_name": "github", "type": "streamable_http",
          "server_url": "https://mcp.example.com/mcp"}
TOOLS_WIRE = [{"name": "echo", "description": "Echo."}, {"name": "add", "inputSchema": {}}]
TOOLS = [McpTool(name="echo", description="Echo."), McpTool(name="add", input_schema={})]
QUICK = Timeouts(connect=5, read=5, authorization=5, total=10)
ES = {"content-type": "text/event-stream; charset=utf-8"}


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("LETTA_API_KEY", raising=False)
    monkeypatch.delenv("LETTA_BASE_URL", raising=False)


def run(
    response: FakeResponse | FakeTransport, **kwargs: Any
) -> tuple[Any, list[Any], FakeTransport]:
    """connect() over the fake; the outcome (tools or the exception), the events, the fake."""
    transport = response if isinstance(response, FakeTransport) else FakeTransport(response)
    events: list[McpOauthEvent] = []
    kwargs.setdefault("timeout", QUICK)
    try:
        outcome: Any = mcpconnect.connect(
            kwargs.pop("config", CONFIG), on_event=events.append, base_url=BASE, api_key=KEY,
            transport=transport, **kwargs,
        )
    except McpConnectError as exc:
        outcome = exc
    return outcome, events, transport


def body(*events: dict[str, Any]) -> bytes:
    return b"".join(f"data: {json.dumps(e)}\n\n".encode() for e in events)


CA = {"event": "connection_attempt", "server_name": "github"}
OK = {"event": "success", "tools": TOOLS_WIRE}
EV_CA = McpOauthEvent(event=OauthStreamEvent.CONNECTION_ATTEMPT, server_name="github")
EV_OK = McpOauthEvent(event=OauthStreamEvent.SUCCESS, tools=TOOLS)


# --- the request ------------------------------------------------------------------------


def test_the_request_is_exactly_right() -> None:
    config = McpConnectConfig(
        server_name="github", type="sse", server_url="https://mcp.example.com/sse",
        auth_header="Authorization", auth_token="Bearer t", custom_headers={"X-A": "1"},
    )
    outcome, events, transport = run(sse_stream([CA, OK]), config=config)
    assert (outcome, events) == (TOOLS, [EV_CA, EV_OK])
    (request,) = transport.requests
    assert (request.method, request.url) == ("POST", f"{BASE}/v1/tools/mcp/servers/connect")
    assert dict(request.headers) == {
        "Accept": "text/event-stream",
        "Accept-Encoding": "identity",
        "Authorization": f"Bearer {KEY}",
        "User-Agent": f"mcpconnect/{mcpconnect.__version__}",
        "X-Letta-Source": "letta-code",
        "Content-Type": "application/json",
    }
    assert request.json() == {
        "server_name": "github", "type": "sse", "server_url": "https://mcp.example.com/sse",
        "auth_header": "Authorization", "auth_token": "Bearer t", "custom_headers": {"X-A": "1"},
    }


@pytest.mark.parametrize("base", [BASE + "/", BASE + "//", BASE])
def test_trailing_slash_on_the_base_url_does_not_double(base: str) -> None:
    transport = FakeTransport(sse_stream([OK]))
    mcpconnect.connect(CONFIG, base_url=base, api_key=KEY, transport=transport)
    assert transport.last_request.url == f"{BASE}/v1/tools/mcp/servers/connect"


def test_source_and_user_agent_are_configurable() -> None:
    transport = FakeTransport([sse_stream([OK]), sse_stream([OK]), sse_stream([OK])])
    with Client(base_url=BASE, api_key=KEY, transport=transport, source="my-app",
                user_agent="app/1") as client:
        client.connect(CONFIG)
    with Client(base_url=BASE, api_key=KEY, transport=transport, source=None) as client:
        client.connect(CONFIG)
    mcpconnect.connect(CONFIG, base_url=BASE, api_key=KEY, transport=transport, source="cli")
    first, second, third = (dict(r.headers) for r in transport.requests)
    assert (first["X-Letta-Source"], first["User-Agent"]) == ("my-app", "app/1")
    assert "X-Letta-Source" not in second
    assert third["X-Letta-Source"] == "cli"


@pytest.mark.parametrize(
    ("server_id", "path"),
    [
        ("mcp_server-123", "mcp_server-123"),
        ("a/b c?d#e%", "a%2Fb%20c%3Fd%23e%25"),
        ("ünï", "%C3%BCn%C3%AF"),
    ],
)
def test_connect_server_quotes_the_id(server_id: str, path: str) -> None:
    transport = FakeTransport(sse_stream([CA, OK]))
    events: list[McpOauthEvent] = []
    with Client(base_url=BASE + "/", api_key=KEY, transport=transport) as client:
        assert client.connect_server(server_id, on_event=events.append) == TOOLS
    assert events == [EV_CA, EV_OK]
    (request,) = transport.requests
    assert (request.method, request.url, request.body) == (
        "GET", f"{BASE}/v1/mcp-servers/connect/{path}", None,
    )
    assert dict(request.headers) == {
        "Accept": "text/event-stream",
        "Accept-Encoding": "identity",
        "Authorization": f"Bearer {KEY}",
        "User-Agent": f"mcpconnect/{mcpconnect.__version__}",
        "X-Letta-Source": "letta-code",
    }


@pytest.mark.parametrize("bad", ["", None, 5])
def test_connect_server_refuses_a_bad_id(bad: Any) -> None:
    transport = FakeTransport()
    with Client(base_url=BASE, api_key=KEY, transport=transport) as client, pytest.raises(
        ConfigError
    ):
        client.connect_server(bad)
    assert transport.requests == []


def test_mapping_configs_in_the_wire_shape_are_accepted() -> None:
    wire = {**CONFIG, "auth_header": "X-Key", "auth_token": "t", "custom_headers": {"A": "b"}}
    outcome, _, transport = run(sse_stream([OK]), config=wire)
    assert outcome == TOOLS
    assert transport.last_request.json() == wire


@pytest.mark.parametrize(
    "config",
    [
        {**CONFIG, "type": "stdio"},
        {**CONFIG, "server_url": "mcp.example.com"},
        {"server_name": "x", "type": "sse"},
        {**CONFIG, "extra": 1},
        {**CONFIG, "custom_headers": ["a"]},
        ["not", "a", "mapping"],
        None,
    ],
)
def test_invalid_configs_raise_config_error_before_any_request(config: Any) -> None:
    transport = FakeTransport(sse_stream([OK]))
    with pytest.raises(ConfigError):
        mcpconnect.connect(config, base_url=BASE, api_key=KEY, transport=transport)
    with pytest.raises(ConfigError):
        mcpconnect.stream_events(config, base_url=BASE, api_key=KEY, transport=transport)
    assert transport.requests == []


# --- the response -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "text"),
    [(401, '{"detail":"Unauthorized"}'), (500, "Internal Server Error"), (404, "")],
)
def test_status_not_2xx(status: int, text: str) -> None:
    outcome, events, transport = run(
        FakeResponse(status, {"content-type": "application/json"}, [text.encode()])
    )
    assert type(outcome) is ConnectionFailedError
    assert (outcome.status, outcome.body, str(outcome)) == (
        status, text, f"Connection failed ({status}): {text}",
    )
    assert events == []
    assert transport.responses_sent[0].closed


def test_error_body_is_capped_at_64_kib() -> None:
    chunks = [b"x" * 10_000] * 10 + [Hang()]  # 100 KB, then the server holds on
    outcome, _, _ = run(FakeResponse(502, {"content-type": "text/plain"}, chunks))
    assert type(outcome) is ConnectionFailedError
    assert outcome.body == "x" * 65536
    assert str(outcome) == f"Connection failed (502): {'x' * 65536}"


def test_redirect_names_the_location() -> None:
    outcome, _, _ = run(FakeResponse(307, {"Location": "https://other.example/v1/x"}, []))
    assert type(outcome) is ConnectionFailedError
    assert (outcome.status, str(outcome)) == (
        307,
        "Connection failed (307): redirected to https://other.example/v1/x; "
        "redirects are not followed, so that the API key stays with the server",
    )


def test_html_200_is_a_protocol_error_not_a_wait() -> None:
    page = b"<html><body>Sign in to the proxy</body></html>"
    outcome, _, transport = run(FakeResponse(200, {"Content-Type": "text/html"}, [page, Hang()]))
    assert type(outcome) is ProtocolError
    assert str(outcome) == f"expected an event stream, got 'text/html': {page.decode()!r}"
    assert transport.responses_sent[0].closed


def test_missing_content_type_is_read_as_a_stream() -> None:
    outcome, _, _ = run(FakeResponse(200, {}, [body(CA, OK)]))
    assert outcome == TOOLS


@pytest.mark.parametrize(
    "content_type",
    ["text/event-stream", "TEXT/Event-Stream", " text/event-stream ; charset=utf-8",
     "text/event-stream;charset=latin-1;x=y"],
)
def test_the_media_type_is_parsed_and_parameters_ignored(content_type: str) -> None:
    outcome, _, _ = run(FakeResponse(200, {"Content-Type": content_type}, [body(CA, OK)]))
    assert outcome == TOOLS


@pytest.mark.parametrize(
    "content_type",
    ["text/html; x=text/event-stream", "text/html;text/event-stream", "text/event-stream2",
     "application/text/event-stream", "", "multipart/mixed, text/event-stream"],
)
def test_a_media_type_that_only_contains_event_stream_is_refused(content_type: str) -> None:
    outcome, _, _ = run(FakeResponse(200, {"Content-Type": content_type}, [body(CA, OK)]))
    assert type(outcome) is ProtocolError
    assert str(outcome).startswith(f"expected an event stream, got {content_type!r}")


@pytest.mark.parametrize("encoding", ["gzip", "br", "deflate", "Identity2"])
def test_a_content_encoding_other_than_identity_is_refused(encoding: str) -> None:
    outcome, _, transport = run(FakeResponse(200, {**ES, "Content-Encoding": encoding},
                                             [body(CA, OK)]))
    assert type(outcome) is ProtocolError
    assert str(outcome) == (
        f"the server sent a body with Content-Encoding {encoding!r}; only an uncompressed "
        "event stream is read (the request says Accept-Encoding: identity)"
    )
    assert transport.responses_sent[0].closed


@pytest.mark.parametrize(
    "chunks",
    [[b'{"detail": "Unauth', ConnectionResetError("reset")],
     [b'{"detail": "Unauth', TransportError("the connection broke")]],
)
def test_a_non_2xx_status_stays_the_error_when_its_body_breaks(chunks: list[Any]) -> None:
    outcome, _, _ = run(FakeResponse(401, {"content-type": "application/json"}, chunks))
    assert type(outcome) is ConnectionFailedError
    assert (outcome.status, outcome.body) == (401, '{"detail": "Unauth')


def test_a_non_2xx_status_stays_the_error_when_the_read_limit_runs_out() -> None:
    outcome, _, _ = run(FakeResponse(503, {}, [b"busy", Hang()]),
                        timeout=Timeouts(read=0.1, total=30))
    assert type(outcome) is ConnectionFailedError
    assert (outcome.status, outcome.body) == (503, "busy")


def test_end_of_body_before_the_end_names_the_state() -> None:
    outcome, events, _ = run(FakeResponse(chunks=[body(CA, {"event": "oauth_required"})]))
    assert type(outcome) is StreamEndedError
    assert (str(outcome), outcome.state) == (
        "Stream ended unexpectedly without success or error (in state oauth_required)",
        "oauth_required",
    )
    assert len(events) == 2
    outcome, events, _ = run(FakeResponse(chunks=[]))
    assert (type(outcome), outcome.state, events) == (StreamEndedError, "started", [])


def test_an_unterminated_last_event_is_not_dispatched() -> None:
    outcome, _, _ = run(FakeResponse(chunks=[body(CA) + b'data: {"event": "success"}\n']))
    assert (type(outcome), outcome.state) == (StreamEndedError, "connection_attempt")


def test_events_after_the_end_are_not_read() -> None:
    chunks = [body(CA, OK), b"data: not even read\n\n", Hang()]
    outcome, events, transport = run(FakeResponse(chunks=chunks))
    assert (outcome, events) == (TOOLS, [EV_CA, EV_OK])
    assert transport.responses_sent[0].closed


def test_error_event() -> None:
    outcome, events, _ = run(sse_stream([CA, {"event": "error", "message": "no"}]))
    assert type(outcome) is ServerError
    assert (str(outcome), outcome.message) == ("no", "no")
    assert outcome.event == events[-1]


def test_error_frame_from_the_server() -> None:
    frame = b'event: error\ndata: {"error": "Internal error", "code": "INTERNAL_SERVER_ERROR"}\n\n'
    outcome, events, _ = run(FakeResponse(chunks=[body(CA), frame]))
    assert type(outcome) is ServerError
    assert str(outcome) == "Internal error"
    assert events[-1] == McpOauthEvent(
        event=OauthStreamEvent.ERROR, message="Internal error",
        extra={"code": "INTERNAL_SERVER_ERROR"},
    )


def test_wrong_path_oauth_without_url_fails_at_once() -> None:
    stream = sse_stream([CA, {"event": "oauth_required"}, {"event": "waiting_for_auth"}],
                        then=[Hang()])
    outcome, events, _ = run(stream, timeout=Timeouts(read=None, authorization=None, total=60))
    assert type(outcome) is MissingAuthorizationUrlError
    assert len(events) == 3


def test_success_with_tools_that_do_not_structure() -> None:
    outcome, _, _ = run(sse_stream([CA, {"event": "success", "tools": [{"name": 1}]}]))
    assert type(outcome) is ProtocolError
    assert str(outcome) == (
        "event does not fit the schema: invalid type (expected a string, got int)"
        " @ $.tools[0].name"
    )


def test_unknown_event_types_are_passed_on_and_the_flow_goes_on() -> None:
    outcome, events, _ = run(sse_stream([CA, {"event": "progress", "pct": 5}, OK]))
    assert outcome == TOOLS
    assert events == [EV_CA, McpOauthEvent(event="progress", extra={"pct": 5}), EV_OK]


def test_a_repeated_status_event_is_passed_on_and_the_flow_goes_on() -> None:
    outcome, events, _ = run(sse_stream([CA, CA, OK]))
    assert (outcome, events) == (TOOLS, [EV_CA, EV_CA, EV_OK])


def test_network_failure_mid_stream_is_a_transport_error() -> None:
    outcome, _, _ = run(FakeResponse(chunks=[body(CA), ConnectionResetError("peer reset")]))
    assert type(outcome) is TransportError
    assert str(outcome) == "the connection broke: peer reset"
    assert isinstance(outcome.__cause__, ConnectionResetError)


def test_send_failure_is_a_transport_error() -> None:
    def refuse(request: Request) -> FakeResponse:
        raise ConnectionRefusedError("refused")

    outcome, _, _ = run(FakeTransport(refuse))
    assert type(outcome) is TransportError
    assert str(outcome) == f"cannot reach {BASE}/v1/tools/mcp/servers/connect: refused"


# --- what the original gets wrong, and the forms it tolerates ---------------------------


WIRE_FORMS = {
    "bare JSON lines": b'{"event": "connection_attempt", "server_name": "github"}\n'
                       + json.dumps(OK).encode() + b"\n",
    "[DONE] lines": b"[DONE]\ndata: [DONE]\n\n" + body(CA) + b"data: [DONE]\n\n" + body(OK),
    "CR-only line endings": body(CA, OK).replace(b"\n", b"\r"),
    "CRLF line endings": body(CA, OK).replace(b"\n", b"\r\n"),
    "JSON over two data lines": b'data: {"event": "connection_attempt",\ndata: '
                                b'"server_name": "github"}\n\n' + body(OK),
    "data: without the space": body(CA, OK).replace(b"data: ", b"data:"),
    "comments and ids": b": keep-alive\nid: 1\n" + body(CA) + b": ping\n\n" + body(OK),
    "a BOM": b"\xef\xbb\xbf" + body(CA, OK),
}


@pytest.mark.parametrize("form", list(WIRE_FORMS))
def test_wire_forms(form: str) -> None:
    data = WIRE_FORMS[form]
    tail: list[Any] = [Hang()]  # a server that holds the stream: the events must come anyway
    for chunks in ([data], [data[i : i + 1] for i in range(len(data))]):
        outcome, events, _ = run(FakeResponse(chunks=[*chunks, *tail]))
        assert (outcome, events) == (TOOLS, [EV_CA, EV_OK])


# --- on_event ---------------------------------------------------------------------------


def test_on_event_sees_each_event_as_it_arrives() -> None:
    seen: list[tuple[str, int]] = []
    transport = FakeTransport(FakeResponse(chunks=[body(CA), body(OK)]))

    def on_event(event: McpOauthEvent) -> None:
        # When the first event arrives, the second chunk has not been read yet.
        seen.append((str(event.event), len(transport.responses_sent)))

    mcpconnect.connect(CONFIG, on_event=on_event, base_url=BASE, api_key=KEY,
                       transport=transport)
    assert seen == [("connection_attempt", 1), ("success", 1)]


class Boom(Exception):
    pass


@pytest.mark.parametrize("exc", [Boom("mine"), SyntaxError("json-ish"), KeyboardInterrupt(),
                                 ServerError("raised by the callback")])
def test_on_event_exceptions_propagate_unchanged(exc: BaseException) -> None:
    def on_event(event: McpOauthEvent) -> None:
        raise exc

    transport = FakeTransport(sse_stream([CA, OK], then=[Hang()]))
    with pytest.raises(type(exc)) as info:
        mcpconnect.connect(CONFIG, on_event=on_event, base_url=BASE, api_key=KEY,
                           transport=transport)
    assert info.value is exc
    assert transport.responses_sent[0].closed


# --- stream_events ----------------------------------------------------------------------


def test_stream_events_yields_then_holds_the_tools() -> None:
    transport = FakeTransport(sse_stream([CA, OK]))
    stream = mcpconnect.stream_events(CONFIG, base_url=BASE, api_key=KEY, transport=transport)
    assert transport.requests == []  # nothing is sent until iteration starts
    assert list(stream) == [EV_CA, EV_OK]
    assert stream.tools == TOOLS
    assert list(stream) == []
    assert stream.tools == TOOLS
    assert transport.responses_sent[0].closed


def test_stream_events_closes_when_the_caller_breaks() -> None:
    transport = FakeTransport(sse_stream([CA, OK], then=[Hang()]))
    with Client(base_url=BASE, api_key=KEY, transport=transport) as client:
        for event in client.stream_events(CONFIG):
            assert event == EV_CA
            break
    assert transport.responses_sent[0].closed


def test_stream_events_closes_on_an_exception_in_the_loop() -> None:
    transport = FakeTransport(sse_stream([CA, OK], then=[Hang()]))
    with pytest.raises(Boom), mcpconnect.stream_events(
        CONFIG, base_url=BASE, api_key=KEY, transport=transport
    ) as stream:
        for _ in stream:
            raise Boom
    assert transport.responses_sent[0].closed


def test_stream_events_closes_on_garbage_collection() -> None:
    transport = FakeTransport(sse_stream([CA, OK], then=[Hang()]))
    stream = mcpconnect.stream_events(CONFIG, base_url=BASE, api_key=KEY, transport=transport)
    assert next(stream) == EV_CA
    assert not transport.responses_sent[0].closed
    del stream
    gc.collect()
    assert transport.responses_sent[0].closed


def test_stream_events_raises_like_connect() -> None:
    transport = FakeTransport(sse_stream([CA, {"event": "error", "message": "x"}]))
    stream = mcpconnect.stream_events(CONFIG, base_url=BASE, api_key=KEY, transport=transport)
    assert next(stream) == EV_CA
    assert next(stream) == McpOauthEvent(event=OauthStreamEvent.ERROR, message="x")
    with pytest.raises(ServerError) as info:
        next(stream)
    assert str(info.value) == "x"
    assert transport.responses_sent[0].closed
    assert stream.tools is None


# --- cancel and time limits -------------------------------------------------------------


def test_cancel_set_before_the_call_sends_nothing() -> None:
    cancel = threading.Event()
    cancel.set()
    outcome, events, transport = run(sse_stream([OK]), cancel=cancel)
    assert type(outcome) is ConnectCancelledError
    assert (str(outcome), outcome.state) == ("Connect cancelled (in state started)", "started")
    assert (events, transport.requests) == ([], [])


def test_cancel_from_another_thread_stops_a_hang() -> None:
    cancel = threading.Event()
    stream = sse_stream([CA, {"event": "oauth_required"},
                         {"event": "authorization_url", "url": "https://a.example/x"},
                         {"event": "waiting_for_auth"}], then=[Hang()])

    def on_event(event: McpOauthEvent) -> None:
        if event.event is OauthStreamEvent.WAITING_FOR_AUTH:
            threading.Timer(0.05, cancel.set).start()

    transport = FakeTransport(stream)
    with pytest.raises(ConnectCancelledError) as info:
        mcpconnect.connect(CONFIG, on_event=on_event, cancel=cancel, base_url=BASE,
                           api_key=KEY, transport=transport,
                           timeout=Timeouts(read=None, authorization=None, total=60))
    assert info.value.state == "waiting_for_auth"
    assert transport.responses_sent[0].closed


def test_read_limit_on_a_silent_server() -> None:
    outcome, _, transport = run(
        FakeResponse(chunks=[body(CA), Hang()]),
        timeout=Timeouts(read=0.1, authorization=None, total=60),
    )
    assert type(outcome) is ConnectTimeoutError
    assert (outcome.limit, outcome.seconds, outcome.state) == ("read", 0.1, "connection_attempt")
    assert isinstance(outcome, TimeoutError)
    assert transport.responses_sent[0].closed


def test_pauses_shorter_than_the_limits_are_fine() -> None:
    outcome, _, _ = run(FakeResponse(chunks=[body(CA), Pause(0.01), body(OK)]))
    assert outcome == TOOLS


# --- properties -------------------------------------------------------------------------

EVENT_NAMES = [e.value for e in OauthStreamEvent] + ["mystery"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                 max_size=3),
    max_leaves=6,
)
events_strategy = st.fixed_dictionaries(
    {"event": st.sampled_from(EVENT_NAMES)},
    optional={
        "message": st.none() | st.text(max_size=8) | st.integers(),
        "url": st.none() | st.text(max_size=8),
        "tools": st.none() | st.lists(
            st.fixed_dictionaries({"name": st.text(max_size=4)},
                                  optional={"inputSchema": json_values,
                                            "title": st.none() | st.text(max_size=3)}),
            max_size=3,
        ) | json_values,
        "other": json_values,
    },
)
frames = st.one_of(
    events_strategy.map(lambda e: f"data: {json.dumps(e)}\n\n".encode()),
    events_strategy.map(lambda e: json.dumps(e).encode() + b"\n"),
    st.sampled_from([b"data: [DONE]\n\n", b": c\n\n", b"data: nope\n\n", b"data: null\n\n",
                     b'event: error\ndata: {"error": "e"}\n\n', b"\r\n", b"data: {\n\n"]),
    st.binary(max_size=20),
)


def outcome_of(chunks: list[bytes]) -> tuple[Any, ...]:
    outcome, events, _ = run(FakeResponse(chunks=chunks))
    if isinstance(outcome, McpConnectError):
        return (type(outcome), str(outcome), events)
    return (outcome, events)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(frames, max_size=8), st.data())
def test_any_stream_gives_tools_or_an_mcpconnect_error_however_chunked(
    parts: list[bytes], data: st.DataObject
) -> None:
    raw = b"".join(parts)
    whole = outcome_of([raw])
    cuts = sorted(data.draw(st.sets(st.integers(0, len(raw)), max_size=10)))
    pieces = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    assert outcome_of(pieces) == whole
    assert outcome_of([raw[i : i + 1] for i in range(len(raw))]) == whole
    if not isinstance(whole[0], list):
        assert issubclass(whole[0], McpConnectError)
        assert whole[0] is not ConnectTimeoutError  # the body ended: nothing waited


# --- bad arguments: a ConfigError naming them, before any request -----------------------


class NoSend:
    def close(self) -> None:
        pass


class SendNotCallable:
    send = "POST"

    def close(self) -> None:
        pass


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"base_url": 8283}, "base_url must be a string, got int"),
        ({"base_url": b"http://h"}, "base_url must be a string, got bytes"),
        ({"base_url": pathlib.Path("h")},
         f"base_url must be a string, got {type(pathlib.Path('h')).__name__}"),
        ({"base_url": "http://[::1"}, "base_url is not a valid URL (Invalid IPv6 URL): "
                                      "'http://[::1'"),
        ({"base_url": "http://h/?t=1"}, "base_url must not have a query or a fragment, "
                                        "got 'http://h/?t=1'"),
        ({"api_key": 5}, "the API key (api_key) must be a string, got int"),
        ({"api_key": b"k"}, "the API key (api_key) must be a string, got bytes"),
        ({"source": "a\r\nX-Evil: 1"}, "source contains a control character (U+000D): "
                                       "'a\\r\\nX-Evil: 1'"),
        ({"source": 5}, "source must be a string, got int"),
        ({"user_agent": "ua\n"}, "user_agent contains a control character (U+000A): 'ua\\n'"),
        ({"user_agent": "ua \u2603"}, "user_agent contains a character that cannot be sent in "
                                      "an HTTP header (U+2603, not Latin-1; a pasted "
                                      "typographic quote?): 'ua \u2603'"),
        ({"transport": NoSend()}, "transport must have callable send() and close() methods, "
                                  "got NoSend without send()"),
        ({"transport": SendNotCallable()}, "transport must have callable send() and close() "
                                           "methods, got SendNotCallable without send()"),
        ({"transport": object()}, "transport must have callable send() and close() methods, "
                                  "got object without send()"),
        ({"settings_path": 3}, "settings_path must be a path or None, got int"),
    ],
)
def test_bad_client_arguments_are_config_errors(kwargs: dict[str, Any], message: str) -> None:
    transport = FakeTransport(sse_stream([OK]))
    arguments: dict[str, Any] = {"base_url": BASE, "api_key": KEY, "transport": transport}
    arguments.update(kwargs)
    with pytest.raises(ConfigError) as info:
        Client(**arguments)
    assert str(info.value) == message
    if "user_agent" not in kwargs:  # connect() has no user_agent
        with pytest.raises(ConfigError):
            mcpconnect.connect(CONFIG, **arguments)
    assert transport.requests == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cancel": True}, "cancel must be a threading.Event (anything with is_set()) or None, "
                           "got bool"),
        ({"cancel": object()}, "cancel must be a threading.Event (anything with is_set()) or "
                               "None, got object"),
        ({"on_event": "print"}, "on_event must be callable or None, got str"),
        ({"on_event": 5}, "on_event must be callable or None, got int"),
    ],
)
def test_bad_call_arguments_are_config_errors_before_any_request(
    kwargs: dict[str, Any], message: str
) -> None:
    transport = FakeTransport([sse_stream([CA, OK])] * 6)
    with Client(base_url=BASE, api_key=KEY, transport=transport) as client:
        with pytest.raises(ConfigError) as info:
            client.connect(CONFIG, **kwargs)
        assert str(info.value) == message
        with pytest.raises(ConfigError):
            client.connect_server("id", **kwargs)
        if "cancel" in kwargs:
            with pytest.raises(ConfigError):
                client.stream_events(CONFIG, **kwargs)
            with pytest.raises(ConfigError):
                client.stream_server_events("id", **kwargs)
            with pytest.raises(ConfigError):
                mcpconnect.stream_events(CONFIG, base_url=BASE, api_key=KEY,
                                         transport=transport, **kwargs)
    with pytest.raises(ConfigError):
        mcpconnect.connect(CONFIG, base_url=BASE, api_key=KEY, transport=transport, **kwargs)
    assert transport.requests == []


def test_a_duck_typed_cancel_works() -> None:
    class Flag:
        def __init__(self) -> None:
            self.flag = False

        def is_set(self) -> bool:
            return self.flag

    cancel = Flag()
    transport = FakeTransport(sse_stream([CA], then=[Hang()]))
    with Client(base_url=BASE, api_key=KEY, transport=transport, timeout=QUICK) as client:
        stream = client.stream_events(CONFIG, cancel=cancel)  # type: ignore[arg-type]
        assert next(stream) == EV_CA
        cancel.flag = True
        with pytest.raises(ConnectCancelledError):
            next(stream)


@pytest.mark.parametrize(
    "value", [float("inf"), float("nan"), -1, 0, 1e300, 10**12, 30 * 24 * 3600 + 1, "5", True]
)
@pytest.mark.parametrize("limit", ["connect", "read", "authorization", "total"])
def test_bad_limits_are_config_errors(limit: str, value: Any) -> None:
    with pytest.raises(ConfigError) as info:
        Timeouts(**{limit: value})
    assert str(info.value) == (
        f"{limit} must be a number of seconds above 0 and at most 2.592e+06 (30 days), "
        f"or None for no limit, got {value!r}"
    )


@pytest.mark.parametrize(("value", "digits"), [(10**400, 400), (-(10**5000), 5000)],
                         ids=["1e400", "-1e5000"])
def test_a_limit_too_big_to_print_is_a_config_error(value: int, digits: int) -> None:
    with pytest.raises(ConfigError) as info:
        Timeouts(total=value)
    assert str(info.value).endswith(f"got an integer of about {digits} digits")


@pytest.mark.parametrize("value", [float("inf"), float("nan"), -1.0, 1e300])
def test_a_bad_timeout_number_is_refused_before_any_request(value: float) -> None:
    transport = FakeTransport(sse_stream([CA, OK]))
    with Client(base_url=BASE, api_key=KEY, transport=transport) as client, \
            pytest.raises(ConfigError):
        client.connect(CONFIG, timeout=value)
    with pytest.raises(ConfigError):
        mcpconnect.connect(CONFIG, base_url=BASE, api_key=KEY, transport=transport,
                           timeout=value)
    assert transport.requests == []


def test_the_longest_limit_is_accepted() -> None:
    limits = Timeouts(connect=30 * 24 * 3600, read=2_592_000.0, authorization=None, total=1e-3)
    assert limits.connect == 2_592_000


# --- closing from another thread --------------------------------------------------------


def test_event_stream_close_from_another_thread_while_next_is_blocked() -> None:
    transport = FakeTransport(sse_stream([CA], then=[Hang()]))
    client = Client(base_url=BASE, api_key=KEY, transport=transport, timeout=QUICK)
    stream = client.stream_events(CONFIG)
    assert next(stream) == EV_CA
    entered = threading.Event()
    outcome: list[BaseException] = []

    def read() -> None:
        entered.set()
        try:
            next(stream)
        except BaseException as exc:  # handed to the test thread
            outcome.append(exc)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    entered.wait(5)
    while not stream._running:  # inside next(): the generator is executing
        thread.join(0.001)
    stream.close()
    thread.join(5)
    assert not thread.is_alive()
    (error,) = outcome
    assert type(error) is ConnectCancelledError
    assert transport.responses_sent[0].closed
    assert client._running == set()  # the client forgot the connect


@pytest.mark.parametrize("delay", [0.0, 0.0005, 0.002, 0.01])
def test_closing_at_any_moment_never_raises_a_different_error(delay: float) -> None:
    for _ in range(10):
        steps: list[Any] = [body(CA), Pause(0.001), body({"event": "oauth_required"}), Hang()]
        transport = FakeTransport(FakeResponse(200, ES, steps))
        stream = mcpconnect.stream_events(CONFIG, base_url=BASE, api_key=KEY,
                                          transport=transport, timeout=QUICK)
        seen: list[Any] = []

        def read(stream: Any = stream, seen: list[Any] = seen) -> None:
            try:
                seen.extend(stream)
            except BaseException as exc:  # handed to the test thread
                seen.append(exc)

        thread = threading.Thread(target=read, daemon=True)
        thread.start()
        thread.join(delay)
        stream.close()
        thread.join(5)
        assert not thread.is_alive()
        assert all(isinstance(x, (McpOauthEvent, ConnectCancelledError)) for x in seen), seen
        assert transport.responses_sent == [] or transport.responses_sent[0].closed
        assert transport.closed is False  # a transport the caller gave is not closed


def test_client_close_cancels_streams_not_yet_read_and_refuses_new_connects() -> None:
    transport = FakeTransport([sse_stream([CA, OK])] * 3)
    client = Client(base_url=BASE, api_key=KEY, transport=transport)
    unread = client.stream_events(CONFIG)
    client.close()
    with pytest.raises(ConnectCancelledError):
        next(unread)
    with pytest.raises(ConfigError) as info:
        client.connect(CONFIG)
    assert str(info.value) == "this Client is closed: make a new one to connect"
    assert transport.requests == []
    client.close()  # idempotent


@pytest.mark.parametrize(
    "chunks", [[ConnectionResetError("reset")], [TransportError("broke")], [Hang()]],
    ids=["reset", "transport error", "stall"],
)
def test_a_wrong_content_type_stays_the_error_whatever_its_body_does(chunks: list[Any]) -> None:
    outcome, _, _ = run(FakeResponse(200, {"content-type": "text/html"}, chunks),
                        timeout=Timeouts(read=0.1, total=30))
    assert type(outcome) is ProtocolError
    assert str(outcome) == "expected an event stream, got 'text/html': ''"


@pytest.mark.parametrize("status", [200, 500])
def test_a_server_answer_nested_too_deeply_is_no_recursion_error(status: int) -> None:
    deep = b"[" * 200_000 + b"]" * 200_000
    transport = FakeTransport(FakeResponse(status, {"content-type": "application/json"}, [deep]))
    with Client(base_url=BASE, api_key=KEY, transport=transport) as client, \
            pytest.raises(McpConnectError) as info:
        client.list_servers()
    expected = ProtocolError if status == 200 else ConnectionFailedError
    assert type(info.value) is expected
