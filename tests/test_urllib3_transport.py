"""Urllib3Transport through connect(), against real servers on 127.0.0.1: streaming, closing,
HTTP errors, broken connections, TLS, proxies and redirects.

Time limits, cancel, Ctrl-C, threads and leaks are in ``test_urllib3_limits.py``, which
imports the helpers defined here. Order is proven with the server's send records and Event
handshakes, never with a duration.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from typing import Any

import pytest
from loopback import (
    Chunk,
    Close,
    End,
    ForwardProxy,
    HoldOpen,
    LoopbackCA,
    Pause,
    Raw,
    ScriptedServer,
    Status,
    Step,
    WaitFor,
    forward_proxy,
    loopback_ca,
    redirect_script,
    scripted_server,
    server_factory,
    sse_chunk,
    sse_script,
    tls_server,
)

import mcpconnect
from mcpconnect import (
    Client,
    ConnectionFailedError,
    McpOauthEvent,
    ServerError,
    StreamEndedError,
    Timeouts,
    TransportError,
)
from mcpconnect.transports import Urllib3Transport

# The fixtures are imported so that this module works with or without tests/conftest.py.
_FIXTURES = (forward_proxy, loopback_ca, scripted_server, server_factory, tls_server)

API_KEY = "sk-let-test-0123456789-secret"
CONFIG = {
    "server_name": "github",
    "type": "streamable_http",
    "server_url": "https://mcp.example.com/mcp",
}
TOOL = {
    "name": "echo",
    "title": None,
    "description": "Echo the given text back unchanged.",
    "inputSchema": {"type": "object"},
    "outputSchema": None,
    "annotations": None,
    "meta": None,
}
CONNECTION_ATTEMPT = {"event": "connection_attempt", "server_name": "github"}
SUCCESS = {"event": "success", "tools": [TOOL]}
OAUTH_REQUIRED = {"event": "oauth_required"}
AUTHORIZATION_URL = {
    "event": "authorization_url",
    "url": "https://auth.example.com/authorize?x=1",
    "session_id": "s-1",
}
WAITING_FOR_AUTH = {"event": "waiting_for_auth"}
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "REQUEST_METHOD")


@pytest.fixture(autouse=True)
def _no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests decide about proxies; the machine's environment does not."""
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@contextlib.contextmanager
def client_for(
    server: ScriptedServer, *, timeout: Any = None, **transport_options: Any
) -> Iterator[Client]:
    """A Client on ``server`` with its own Urllib3Transport; both closed afterwards."""
    transport = Urllib3Transport(**transport_options)
    try:
        with Client(
            base_url=server.url, api_key=API_KEY, transport=transport, timeout=timeout
        ) as client:
            yield client
    finally:
        transport.close()


class Recorder:
    """An on_event that records each event with the time.monotonic() of its arrival."""

    def __init__(self) -> None:
        self.events: list[McpOauthEvent] = []
        self.times: list[float] = []

    def __call__(self, event: McpOauthEvent) -> None:
        self.times.append(time.monotonic())
        self.events.append(event)

    @property
    def kinds(self) -> list[str]:
        return [str(e.event) for e in self.events]


def assert_no_secret(exc: BaseException) -> None:
    assert API_KEY not in str(exc)
    assert API_KEY not in repr(exc)


def wait_until_reading(thread: threading.Thread, timeout: float = 5.0) -> None:
    """Wait until ``thread`` is blocked in a socket read (found on its stack)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        frame = sys._current_frames().get(thread.ident or -1)
        while frame is not None:
            code = frame.f_code
            if code.co_name in ("readinto", "recv_into", "read") and code.co_filename.endswith(
                ("socket.py", "ssl.py")
            ):
                return
            frame = frame.f_back
        time.sleep(0.005)
    raise AssertionError(f"{thread.name} never blocked in a socket read")


# --------------------------------------------------------------------------------------------
# Streaming
# --------------------------------------------------------------------------------------------


def test_success_returns_tools_and_sends_the_request_letta_expects(
    scripted_server: ScriptedServer,
) -> None:
    scripted_server.script = sse_script(CONNECTION_ATTEMPT, SUCCESS)
    record = Recorder()
    with client_for(scripted_server) as client:
        tools = client.connect(CONFIG, on_event=record)
    assert [t.name for t in tools] == ["echo"]
    assert record.kinds == ["connection_attempt", "success"]
    (request,) = scripted_server.requests
    assert request.method == "POST"
    assert request.path == "/v1/tools/mcp/servers/connect"
    assert request.header("authorization") == f"Bearer {API_KEY}"
    assert request.header("accept") == "text/event-stream"
    assert request.header("content-type") == "application/json"
    assert request.header("x-letta-source") == "letta-code"
    assert request.json()["server_name"] == "github"


def test_each_event_arrives_before_the_server_sends_the_next(
    scripted_server: ScriptedServer,
) -> None:
    go = threading.Event()
    success = sse_chunk(SUCCESS)
    scripted_server.script = [
        Status(200),
        sse_chunk(CONNECTION_ATTEMPT),
        WaitFor(go),
        success,
        End(),
    ]
    seen_before_success: list[bool] = []

    def on_event(event: McpOauthEvent) -> None:
        if event.event == "connection_attempt":
            seen_before_success.append(scripted_server.record_of(success) is None)
            go.set()  # only now may the server send the rest

    with client_for(scripted_server) as client:
        assert client.connect(CONFIG, on_event=on_event)[0].name == "echo"
    assert seen_before_success == [True]


def test_pauses_between_events_do_not_delay_earlier_events(
    scripted_server: ScriptedServer,
) -> None:
    """The server pauses after each event; each event must reach on_event before the server
    starts sending the next one (order of arrival against the sends, not a duration)."""
    chunks = [sse_chunk(e) for e in (CONNECTION_ATTEMPT, OAUTH_REQUIRED, AUTHORIZATION_URL)]
    last = sse_chunk(SUCCESS)
    script: list[Step] = [Status(200)]
    for chunk in chunks:
        script += [chunk, Pause(0.3)]
    scripted_server.script = [*script, last, End()]
    record = Recorder()
    with client_for(scripted_server) as client:
        client.connect(CONFIG, on_event=record)
    assert record.kinds == ["connection_attempt", "oauth_required", "authorization_url", "success"]
    following = [*chunks[1:], last]
    for arrived, chunk, after in zip(record.times[:-1], chunks, following, strict=True):
        sent = scripted_server.wait_for_step(chunk)
        assert sent.started_at < arrived < scripted_server.wait_for_step(after).started_at


def test_one_byte_at_a_time(scripted_server: ScriptedServer) -> None:
    """Every byte of the body (chunk framing included) is its own write."""
    body = (
        b"".join(sse_chunk(e).render() for e in (CONNECTION_ATTEMPT, AUTHORIZATION_URL, SUCCESS))
        + End().render()
    )
    scripted_server.script = [Status(200), *(Raw(body[i : i + 1]) for i in range(len(body)))]
    record = Recorder()
    with client_for(scripted_server) as client:
        tools = client.connect(CONFIG, on_event=record)
    assert [t.name for t in tools] == ["echo"]
    assert record.kinds == ["connection_attempt", "authorization_url", "success"]
    assert record.events[1].url == AUTHORIZATION_URL["url"]


def test_one_chunk_many_events_and_events_split_across_chunks(
    scripted_server: ScriptedServer,
) -> None:
    data = b"".join(
        sse_chunk(e).data
        for e in (CONNECTION_ATTEMPT, OAUTH_REQUIRED, AUTHORIZATION_URL, WAITING_FOR_AUTH)
    )
    success = sse_chunk(SUCCESS).data
    scripted_server.script = [
        Status(200),
        Chunk(data),
        Chunk(success[:7]),
        Chunk(success[7:20]),
        Chunk(success[20:]),
        End(),
    ]
    record = Recorder()
    with client_for(scripted_server) as client:
        client.connect(CONFIG, on_event=record)
    assert record.kinds == [
        "connection_attempt",
        "oauth_required",
        "authorization_url",
        "waiting_for_auth",
        "success",
    ]


def test_stream_events_yields_as_events_arrive(scripted_server: ScriptedServer) -> None:
    go = threading.Event()
    scripted_server.script = [
        Status(200),
        sse_chunk(CONNECTION_ATTEMPT),
        WaitFor(go),
        sse_chunk(SUCCESS),
        End(),
    ]
    with client_for(scripted_server) as client, client.stream_events(CONFIG) as events:
        first = next(events)
        assert first.event == "connection_attempt"
        go.set()
        assert [e.event for e in events] == ["success"]
        assert events.tools is not None and events.tools[0].name == "echo"


def test_stream_events_closed_early_closes_the_connection(
    scripted_server: ScriptedServer,
) -> None:
    scripted_server.script = [Status(200), sse_chunk(CONNECTION_ATTEMPT), HoldOpen(timeout=30)]
    with client_for(scripted_server) as client:
        events = client.stream_events(CONFIG)
        assert next(events).event == "connection_attempt"
        conn = scripted_server.wait_for_connection(0)
        assert not conn.client_closed.is_set()
        events.close()
        assert conn.client_closed.wait(5)
        assert not conn.closed_by_server


# --------------------------------------------------------------------------------------------
# Closing at once
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "final", [SUCCESS, {"event": "error", "message": "MCP server down"}], ids=["success", "error"]
)
def test_response_is_closed_at_once_while_the_server_holds_the_stream(
    scripted_server: ScriptedServer, final: dict[str, Any]
) -> None:
    hold = HoldOpen(timeout=30)
    scripted_server.script = [Status(200), sse_chunk(CONNECTION_ATTEMPT), sse_chunk(final), hold]
    with client_for(scripted_server) as client:
        if final is SUCCESS:
            assert client.connect(CONFIG)[0].name == "echo"
        else:
            with pytest.raises(ServerError, match="MCP server down"):
                client.connect(CONFIG)
        conn = scripted_server.wait_for_connection(0)
        # The client closed its side while the server still held the stream open.
        assert conn.client_closed.wait(5)
        assert scripted_server.wait_for_step(hold).step is hold
        assert not conn.closed_by_server


def test_error_frame_without_event_key(scripted_server: ScriptedServer) -> None:
    scripted_server.script = [
        Status(200),
        sse_chunk(CONNECTION_ATTEMPT),
        sse_chunk({"error": "boom", "code": "INTERNAL"}, event_name="error"),
        HoldOpen(timeout=30),
    ]
    with client_for(scripted_server) as client, pytest.raises(ServerError, match="boom"):
        client.connect(CONFIG)
    assert scripted_server.wait_for_connection(0).client_closed.wait(5)


# --------------------------------------------------------------------------------------------
# HTTP errors
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "body"),
    [
        (401, {"detail": "Unauthorized"}),
        (422, {"trace_id": "", "detail": "[{'type': 'missing', 'loc': ('body', 'type')}]"}),
        (500, {"detail": "Internal Server Error"}),
    ],
)
def test_http_error_status_is_connection_failed_with_body(
    scripted_server: ScriptedServer, code: int, body: dict[str, str]
) -> None:
    scripted_server.script = [Status.json(code, body)]
    with client_for(scripted_server) as client:
        with pytest.raises(ConnectionFailedError) as info:
            client.connect(CONFIG)
        assert info.value.status == code
        assert body["detail"] in info.value.body
        assert str(info.value).startswith(f"Connection failed ({code}): ")
        assert_no_secret(info.value)
        # The error body was read to its end: the connection is reused.
        scripted_server.script = sse_script(SUCCESS)
        client.connect(CONFIG)
    assert [r.connection_id for r in scripted_server.requests] == [0, 0]


def test_plain_text_500_before_the_stream(scripted_server: ScriptedServer) -> None:
    scripted_server.script = [
        Status(500, headers=[("content-type", "text/plain")], body=b"Internal Server Error")
    ]
    with client_for(scripted_server) as client, pytest.raises(ConnectionFailedError) as info:
        client.connect(CONFIG)
    assert (info.value.status, info.value.body) == (500, "Internal Server Error")


def test_huge_error_body_is_bounded(scripted_server: ScriptedServer) -> None:
    scripted_server.script = [Status(500), *[Chunk(b"x" * 65536)] * 40, End()]
    with client_for(scripted_server) as client, pytest.raises(ConnectionFailedError) as info:
        client.connect(CONFIG)
    assert len(info.value.body) <= 64 * 1024


# --------------------------------------------------------------------------------------------
# Broken connections
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
def test_close_mid_stream_is_a_transport_error(
    scripted_server: ScriptedServer, reset: bool
) -> None:
    scripted_server.script = [Status(200), sse_chunk(CONNECTION_ATTEMPT), Close(reset=reset)]
    record = Recorder()
    with client_for(scripted_server) as client, pytest.raises(TransportError) as info:
        client.connect(CONFIG, on_event=record)
    assert record.kinds == ["connection_attempt"]
    assert f"127.0.0.1:{scripted_server.port}" in str(info.value)
    assert_no_secret(info.value)


def test_truncated_chunk_is_a_transport_error(scripted_server: ScriptedServer) -> None:
    scripted_server.script = [Status(200), Raw(b'40\r\ndata: {"event": "succ'), Close()]
    with client_for(scripted_server) as client, pytest.raises(TransportError):
        client.connect(CONFIG)


def test_broken_chunk_framing_is_a_transport_error(scripted_server: ScriptedServer) -> None:
    scripted_server.script = [Status(200), Raw(b"zz\r\nnot a chunk\r\n"), Close()]
    with client_for(scripted_server) as client, pytest.raises(TransportError):
        client.connect(CONFIG)


def test_clean_end_before_success_is_stream_ended(scripted_server: ScriptedServer) -> None:
    scripted_server.script = sse_script(CONNECTION_ATTEMPT, OAUTH_REQUIRED)
    with client_for(scripted_server) as client, pytest.raises(StreamEndedError) as info:
        client.connect(CONFIG)
    assert info.value.state == "oauth_required"


def test_close_before_the_status_line_is_a_transport_error(
    scripted_server: ScriptedServer,
) -> None:
    scripted_server.script = [Close()]
    with client_for(scripted_server) as client, pytest.raises(TransportError) as info:
        client.connect(CONFIG)
    assert f"http://127.0.0.1:{scripted_server.port}/v1/tools/mcp/servers/connect" in str(
        info.value
    )


def test_refused_connection_is_a_transport_error_naming_the_url() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    transport = Urllib3Transport()
    try:
        with pytest.raises(TransportError) as info:
            mcpconnect.connect(CONFIG, base_url=url, api_key=API_KEY, transport=transport)
    finally:
        transport.close()
    assert not isinstance(info.value, TimeoutError)
    assert f"cannot reach {url}/v1/tools/mcp/servers/connect" in str(info.value)
    assert "refused" in str(info.value).lower()
    assert_no_secret(info.value)


# --------------------------------------------------------------------------------------------
# TLS
# --------------------------------------------------------------------------------------------


def test_tls_with_ca_certs(tls_server: ScriptedServer, loopback_ca: LoopbackCA) -> None:
    tls_server.script = sse_script(CONNECTION_ATTEMPT, SUCCESS)
    with client_for(tls_server, ca_certs=str(loopback_ca.ca_pem_path)) as client:
        assert client.connect(CONFIG)[0].name == "echo"
    assert tls_server.requests[0].header("authorization") == f"Bearer {API_KEY}"


def test_tls_with_ssl_context_streams(tls_server: ScriptedServer, loopback_ca: LoopbackCA) -> None:
    go = threading.Event()
    success = sse_chunk(SUCCESS)
    tls_server.script = [
        Status(200),
        sse_chunk(CONNECTION_ATTEMPT),
        WaitFor(go),
        success,
        HoldOpen(timeout=30),
    ]
    early: list[bool] = []

    def on_event(event: McpOauthEvent) -> None:
        if event.event == "connection_attempt":
            early.append(tls_server.record_of(success) is None)
            go.set()

    with client_for(tls_server, ssl_context=loopback_ca.client_context()) as client:
        client.connect(CONFIG, on_event=on_event)
    assert early == [True]
    assert tls_server.wait_for_connection(0).client_closed.wait(5)


def test_tls_verification_is_on_by_default(tls_server: ScriptedServer) -> None:
    tls_server.script = sse_script(SUCCESS)
    with client_for(tls_server) as client, pytest.raises(TransportError) as info:
        client.connect(CONFIG)
    assert "certificate" in str(info.value).lower()
    assert tls_server.requests == []


def test_tls_fails_with_another_ca(tls_server: ScriptedServer, tmp_path: Any) -> None:
    tls_server.script = sse_script(SUCCESS)
    other = LoopbackCA(tmp_path)
    with (
        client_for(tls_server, ca_certs=str(other.ca_pem_path)) as client,
        pytest.raises(TransportError),
    ):
        client.connect(CONFIG)
    assert tls_server.requests == []


# --------------------------------------------------------------------------------------------
# Proxies
# --------------------------------------------------------------------------------------------


def test_http_proxy_from_the_environment(
    scripted_server: ScriptedServer, forward_proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", forward_proxy.url)
    scripted_server.script = sse_script(CONNECTION_ATTEMPT, SUCCESS)
    with client_for(scripted_server) as client:
        assert client.connect(CONFIG)[0].name == "echo"
    assert forward_proxy.requests == [
        f"POST {scripted_server.url}/v1/tools/mcp/servers/connect HTTP/1.1"
    ]
    assert scripted_server.requests[0].header("authorization") == f"Bearer {API_KEY}"


def test_https_proxy_from_the_environment_tunnels(
    tls_server: ScriptedServer,
    loopback_ca: LoopbackCA,
    forward_proxy: ForwardProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("https_proxy", forward_proxy.url)
    tls_server.script = sse_script(CONNECTION_ATTEMPT, SUCCESS)
    with client_for(tls_server, ca_certs=str(loopback_ca.ca_pem_path)) as client:
        assert client.connect(CONFIG)[0].name == "echo"
    (line,) = forward_proxy.requests
    assert line.startswith(f"CONNECT 127.0.0.1:{tls_server.port} HTTP/1.")


def test_explicit_proxy_url_streams_through(
    scripted_server: ScriptedServer, forward_proxy: ForwardProxy
) -> None:
    go = threading.Event()
    success = sse_chunk(SUCCESS)
    scripted_server.script = [
        Status(200),
        sse_chunk(CONNECTION_ATTEMPT),
        WaitFor(go),
        success,
        End(),
    ]
    early: list[bool] = []

    def on_event(event: McpOauthEvent) -> None:
        if event.event == "connection_attempt":
            early.append(scripted_server.record_of(success) is None)
            go.set()

    with client_for(scripted_server, proxy_url=forward_proxy.url, trust_env=False) as client:
        client.connect(CONFIG, on_event=on_event)
    assert early == [True]
    assert len(forward_proxy.requests) == 1


def test_no_proxy_bypasses_the_proxy(
    scripted_server: ScriptedServer, forward_proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", forward_proxy.url)
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    scripted_server.script = sse_script(SUCCESS)
    with client_for(scripted_server) as client:
        client.connect(CONFIG)
    assert forward_proxy.requests == []
    assert len(scripted_server.requests) == 1


def test_trust_env_false_ignores_proxy_variables(
    scripted_server: ScriptedServer, forward_proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", forward_proxy.url)
    scripted_server.script = sse_script(SUCCESS)
    with client_for(scripted_server, trust_env=False) as client:
        client.connect(CONFIG)
    assert forward_proxy.requests == []
    assert len(scripted_server.requests) == 1


def test_proxy_credentials_go_to_the_proxy_only(
    scripted_server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A proxy URL with user:password sends Proxy-Authorization (this scripted server plays
    the proxy, so it sees the absolute-form request line)."""
    proxy = scripted_server.url.replace("http://", "http://user:pa%20ss@")
    scripted_server.script = sse_script(SUCCESS)
    with client_for(scripted_server, proxy_url=proxy) as client:
        client.connect(CONFIG)
    (request,) = scripted_server.requests
    assert request.target.startswith("http://")
    assert request.header("proxy-authorization") == "Basic dXNlcjpwYSBzcw=="  # user:pa ss


# --------------------------------------------------------------------------------------------
# Redirects
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [302, 307, 308])
def test_redirect_is_not_followed(server_factory: Any, code: int) -> None:
    elsewhere: ScriptedServer = server_factory(sse_script(SUCCESS))
    origin: ScriptedServer = server_factory(
        redirect_script(elsewhere.url + "/v1/tools/mcp/servers/connect", code)
    )
    with client_for(origin) as client, pytest.raises(ConnectionFailedError) as info:
        client.connect(CONFIG)
    assert info.value.status == code
    assert elsewhere.url in str(info.value)
    assert "not followed" in str(info.value)
    assert elsewhere.requests == []  # the API key never left for the other host
    assert_no_secret(info.value)


def test_transport_repr_hides_proxy_credentials() -> None:
    transport = Urllib3Transport(proxy_url="http://user:hunter2@proxy.example:3128")
    try:
        assert "hunter2" not in repr(transport)
    finally:
        transport.close()


def test_timeouts_are_passed_per_call(scripted_server: ScriptedServer) -> None:
    """A per-call Timeouts replaces the client's (the limits themselves are tested in
    test_urllib3_limits.py)."""
    scripted_server.script = sse_script(SUCCESS)
    with client_for(scripted_server, timeout=Timeouts(read=0.001)) as client:
        assert client.connect(CONFIG, timeout=Timeouts(read=30))[0].name == "echo"


# --------------------------------------------------------------------------------------------
# Error bodies that trickle or break; compressed bodies
# --------------------------------------------------------------------------------------------

UNAUTHORIZED = b'{"detail":"Unauthorized"}'


def _head_401(length: int) -> Status:
    return Status(401, headers=[("content-type", "application/json"),
                                ("Content-Length", str(length))], defaults=False)


def test_a_401_whose_body_trickles_in_keeps_its_status(scripted_server: ScriptedServer) -> None:
    # One byte every 100 ms: never silent for the read limit's 1 s, never done either.
    trickle: list[Step] = []
    for byte in UNAUTHORIZED:
        trickle += [Raw(bytes([byte])), Pause(0.1)]
    scripted_server.script = [_head_401(10_000), *trickle, HoldOpen()]
    with client_for(scripted_server, timeout=Timeouts(read=1.0, total=30)) as client, \
            pytest.raises(ConnectionFailedError) as info:
        client.connect(CONFIG)
    assert info.value.status == 401
    assert UNAUTHORIZED.decode().startswith(info.value.body)
    assert info.value.body.startswith('{"')


def test_an_error_body_is_read_for_a_bounded_time(
    scripted_server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("mcpconnect.client.ERROR_BODY_SECONDS", 0.2)
    trickle: list[Step] = [step for _ in range(2000) for step in (Raw(b"x"), Pause(0.01))]
    scripted_server.script = [_head_401(100_000), *trickle]
    with client_for(scripted_server, timeout=Timeouts(read=60, total=60)) as client, \
            pytest.raises(ConnectionFailedError) as info:
        client.connect(CONFIG)
    assert info.value.status == 401
    assert set(info.value.body) == {"x"}
    assert len(info.value.body) < 2000  # it did not wait for the whole body


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
def test_a_401_whose_body_is_cut_short_keeps_its_status(
    scripted_server: ScriptedServer, reset: bool
) -> None:
    scripted_server.script = [_head_401(100), Raw(UNAUTHORIZED[:12]), Close(reset=reset)]
    with client_for(scripted_server) as client, pytest.raises(ConnectionFailedError) as info:
        client.connect(CONFIG)
    assert info.value.status == 401
    assert UNAUTHORIZED.decode().startswith(info.value.body)
    if not reset:
        assert info.value.body == UNAUTHORIZED[:12].decode()


def test_a_stalled_error_body_ends_at_the_read_limit_with_its_status(
    scripted_server: ScriptedServer,
) -> None:
    scripted_server.script = [_head_401(100), Raw(UNAUTHORIZED[:5]), HoldOpen()]
    with client_for(scripted_server, timeout=Timeouts(read=0.2, total=30)) as client, \
            pytest.raises(ConnectionFailedError) as info:
        client.connect(CONFIG)
    assert (info.value.status, info.value.body) == (401, UNAUTHORIZED[:5].decode())


def _gzip_sse(*events: Any) -> bytes:
    import gzip
    import json

    return gzip.compress(b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events))


@pytest.mark.parametrize("encoding", ["gzip", "GZIP", "deflate, gzip", "br", "x-unknown"])
def test_a_compressed_body_is_refused(scripted_server: ScriptedServer, encoding: str) -> None:
    scripted_server.script = [
        Status(200, headers=[("Content-Encoding", encoding)]),
        Chunk(_gzip_sse(CONNECTION_ATTEMPT, SUCCESS)), End(),
    ]
    with client_for(scripted_server) as client, pytest.raises(mcpconnect.ProtocolError) as info:
        client.connect(CONFIG)
    assert f"Content-Encoding {encoding!r}" in str(info.value)
    (request,) = scripted_server.requests
    assert request.header("accept-encoding") == "identity"


def test_identity_encoding_is_read(scripted_server: ScriptedServer) -> None:
    scripted_server.script = [
        Status(200, headers=[("Content-Encoding", "identity")]), sse_chunk(SUCCESS), End(),
    ]
    with client_for(scripted_server) as client:
        assert [t.name for t in client.connect(CONFIG)] == ["echo"]


def test_the_transport_never_inflates_a_body(scripted_server: ScriptedServer) -> None:
    from mcpconnect.transports import Request

    compressed = _gzip_sse(SUCCESS)
    scripted_server.script = [
        Status(200, headers=[("Content-Encoding", "gzip")]), Chunk(compressed), End(),
    ]
    transport = Urllib3Transport()
    try:
        response = transport.send(Request("GET", scripted_server.url + "/x"), Timeouts())
        try:
            assert b"".join(response.iter_chunks()) == compressed
        finally:
            response.close()
    finally:
        transport.close()


@pytest.mark.parametrize(
    "content_type", ["text/html; x=text/event-stream", "text/event-streams", "application/json"]
)
def test_the_media_type_must_be_an_event_stream(
    scripted_server: ScriptedServer, content_type: str
) -> None:
    scripted_server.script = [
        Status(200, headers=[("content-type", content_type)]), sse_chunk(SUCCESS), End(),
    ]
    with client_for(scripted_server) as client, pytest.raises(mcpconnect.ProtocolError) as info:
        client.connect(CONFIG)
    assert str(info.value).startswith(f"expected an event stream, got {content_type!r}")


# --------------------------------------------------------------------------------------------
# Closing from another thread: EventStream.close() and Client.close()
# --------------------------------------------------------------------------------------------


class Outcome:
    """Runs ``work`` on a daemon thread; ``result()`` gives what it returned or raised."""

    def __init__(self, work: Any) -> None:
        self._box: list[Any] = []
        self.thread = threading.Thread(target=self._run, args=(work,), daemon=True)
        self.thread.start()

    def _run(self, work: Any) -> None:
        try:
            self._box.append(work())
        except BaseException as exc:  # handed to the test thread
            self._box.append(exc)

    def result(self, timeout: float = 5.0) -> Any:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the connect did not end"
        return self._box[0]


def test_event_stream_close_from_another_thread_ends_a_blocked_next(
    scripted_server: ScriptedServer,
) -> None:
    scripted_server.script = [Status(200), sse_chunk(CONNECTION_ATTEMPT), HoldOpen(timeout=30)]
    with client_for(scripted_server, timeout=Timeouts(read=20, total=30)) as client:
        events = client.stream_events(CONFIG)
        assert next(events).event == "connection_attempt"
        blocked = Outcome(lambda: next(events))
        wait_until_reading(blocked.thread)
        events.close()  # from this thread, while the other is inside next()
        error = blocked.result()
        assert isinstance(error, mcpconnect.ConnectCancelledError)
        assert scripted_server.wait_for_connection(0).client_closed.wait(5)
        with pytest.raises(StopIteration):
            next(events)
        events.close()  # idempotent
        # The client still works.
        scripted_server.script = sse_script(SUCCESS)
        assert [t.name for t in client.connect(CONFIG)] == ["echo"]


def test_client_close_ends_connects_in_flight(scripted_server: ScriptedServer) -> None:
    scripted_server.script = [Status(200), sse_chunk(CONNECTION_ATTEMPT), HoldOpen(timeout=30)]
    transport = Urllib3Transport()
    client = Client(base_url=scripted_server.url, api_key=API_KEY, transport=transport,
                    timeout=Timeouts(read=20, total=30))
    try:
        record = Recorder()
        running = Outcome(lambda: client.connect(CONFIG, on_event=record))
        reading = Outcome(lambda: list(client.stream_events(CONFIG)))
        scripted_server.wait_for_requests(2)
        deadline = time.monotonic() + 5
        while not record.events and time.monotonic() < deadline:
            time.sleep(0.005)
        wait_until_reading(running.thread)
        wait_until_reading(reading.thread)
        client.close()
        for outcome in (running, reading):
            assert isinstance(outcome.result(), mcpconnect.ConnectCancelledError)
        assert running.result().state == "connection_attempt"
        for index in (0, 1):
            assert scripted_server.wait_for_connection(index).client_closed.wait(5)
    finally:
        transport.close()


def test_client_close_ends_a_connect_waiting_for_the_headers(
    scripted_server: ScriptedServer,
) -> None:
    scripted_server.script = [HoldOpen(timeout=30)]
    transport = Urllib3Transport()
    client = Client(base_url=scripted_server.url, api_key=API_KEY, transport=transport,
                    timeout=Timeouts(read=20, total=30))
    try:
        running = Outcome(lambda: client.connect(CONFIG))
        scripted_server.wait_for_requests(1)
        wait_until_reading(running.thread)
        client.close()
        assert isinstance(running.result(), mcpconnect.ConnectCancelledError)
    finally:
        transport.close()


def test_a_closed_client_refuses_new_connects(scripted_server: ScriptedServer) -> None:
    scripted_server.script = sse_script(SUCCESS)
    with client_for(scripted_server) as client:
        unread = client.stream_events(CONFIG)  # made before the close, read after it
    calls = [
        lambda: client.connect(CONFIG),
        lambda: client.stream_events(CONFIG),
        lambda: client.connect_server("mcp_server-1"),
        lambda: client.stream_server_events("mcp_server-1"),
    ]
    for call in calls:
        with pytest.raises(mcpconnect.ConfigError) as info:
            call()
        assert str(info.value) == "this Client is closed: make a new one to connect"
    with pytest.raises(mcpconnect.ConnectCancelledError):
        next(unread)
    assert scripted_server.requests == []


def test_client_close_ends_server_requests_and_refuses_new_ones(
    scripted_server: ScriptedServer,
) -> None:
    scripted_server.script = [HoldOpen(timeout=30)]
    transport = Urllib3Transport()
    client = Client(base_url=scripted_server.url, api_key=API_KEY, transport=transport,
                    timeout=Timeouts(read=20, total=30))
    try:
        running = Outcome(client.list_servers)
        scripted_server.wait_for_requests(1)
        wait_until_reading(running.thread)
        client.close()
        assert isinstance(running.result(), mcpconnect.ConnectCancelledError)
        for call in (client.list_servers, lambda: client.get_server("s-1"),
                     lambda: client.delete_server("s-1")):
            with pytest.raises(mcpconnect.ConfigError) as info:
                call()
            assert str(info.value) == "this Client is closed: make a new one to connect"
        assert len(scripted_server.requests) == 1
    finally:
        transport.close()


@pytest.mark.parametrize(
    ("url", "headers"),
    [
        ("http://u:PASS-WORD-1@127.0.0.1:99999/x", {}),
        ("http://u:PASS-WORD-1@[::1/x", {}),
        ("http://127.0.0.1:9/x", {"Authorization": "Bearer PASS-WORD-1\r\nX: 1"}),
        ("http://127.0.0.1:9/x", {"Authorization": "Bearer PASS-WORD-1\u2019"}),
    ],
    ids=["bad port", "bad ipv6", "crlf in a header", "non-latin-1 header"],
)
def test_a_transport_used_alone_never_shows_a_secret_in_its_errors(
    url: str, headers: dict[str, str]
) -> None:
    from mcpconnect.transports import Request

    transport = Urllib3Transport()
    try:
        with pytest.raises(TransportError) as info:
            transport.send(Request("GET", url, headers), Timeouts(connect=2, read=2))
    finally:
        transport.close()
    assert "PASS-WORD-1" not in "".join(traceback.format_exception(info.value))


def test_a_stalled_error_body_ends_also_without_a_read_limit(
    scripted_server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("mcpconnect.client.ERROR_BODY_SECONDS", 0.2)
    scripted_server.script = [_head_401(100), Raw(UNAUTHORIZED[:5]), HoldOpen(timeout=30)]
    limits = Timeouts(read=None, authorization=None, total=None)
    with client_for(scripted_server, timeout=limits) as client, \
            pytest.raises(ConnectionFailedError) as info:
        client.connect(CONFIG)
    assert (info.value.status, info.value.body) == (401, UNAUTHORIZED[:5].decode())
    assert scripted_server.wait_for_connection(0).client_closed.wait(5)
