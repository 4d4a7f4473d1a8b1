"""LettaEmulator over loopback, checked against the recorded Letta 0.16.8 responses."""

from __future__ import annotations

import http.client
import json
import re
import socket
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from mcpconnect.testing._emulator import (
    DEFAULT_TOOLS,
    LettaEmulator,
    RecordedRequest,
    Scenario,
)

pytestmark = pytest.mark.timeout(30)

FIXTURES = Path(__file__).parent / "fixtures" / "letta-0.16.8"
CONNECT = "/v1/tools/mcp/servers/connect"
CALLBACK = "/v1/tools/mcp/oauth/callback"
VOLATILE = ("url", "session_id")
MAX_LINES = 100


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / f"{name}.txt").read_bytes()


def parse_events(body: bytes) -> list[dict[str, Any]]:
    """The JSON of every ``data:`` line, in order."""
    return [
        json.loads(line[len(b"data: ") :])
        for line in body.split(b"\n")
        if line.startswith(b"data: ")
    ]


def without_volatile(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: ("<volatile>" if k in VOLATILE else v) for k, v in e.items()} for e in events]


def config(server_name: str, **extra: Any) -> dict[str, Any]:
    return {
        "server_name": server_name,
        "type": "streamable_http",
        "server_url": "http://127.0.0.1:8401/mcp",
        **extra,
    }


@pytest.fixture
def emu() -> Iterator[LettaEmulator]:
    with LettaEmulator() as emulator:
        yield emulator


_open_connections: list[http.client.HTTPConnection] = []


@pytest.fixture(autouse=True)
def _close_connections() -> Iterator[None]:
    yield
    while _open_connections:
        _open_connections.pop().close()


def connection(emu: LettaEmulator) -> http.client.HTTPConnection:
    """A client connection, closed when the test ends."""
    port = int(emu.base_url.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    _open_connections.append(conn)
    return conn


def request(
    emu: LettaEmulator,
    method: str,
    path: str,
    body: bytes | dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> http.client.HTTPResponse:
    conn = connection(emu)
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    all_headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
    conn.request(method, path, body=data, headers={**all_headers, **(headers or {})})
    return conn.getresponse()


def post(emu: LettaEmulator, body: bytes | dict[str, Any] | None, **headers: str) -> Any:
    return request(emu, "POST", CONNECT, body, headers)


def read_events(response: http.client.HTTPResponse, count: int) -> list[dict[str, Any]]:
    """Read exactly ``count`` events from a stream that is still open."""
    events: list[dict[str, Any]] = []
    for _ in range(MAX_LINES):
        if len(events) == count:
            return events
        line = response.readline()
        assert line, f"stream ended after {events}"
        if line.startswith(b"data: "):
            events.append(json.loads(line[len(b"data: ") :]))
    raise AssertionError(f"no {count} events in {MAX_LINES} lines")


def read_rest(response: http.client.HTTPResponse) -> bytes:
    """What is left of the body once the connection is closed, ended properly or not."""
    try:
        return response.read()
    except http.client.IncompleteRead as exc:
        return exc.partial
    except ConnectionError:
        return b""


def browse(url: str) -> bytes:
    """Open ``url`` the way a browser would, following the redirect."""
    with urllib.request.urlopen(url, timeout=10) as page:
        body: bytes = page.read()
        return body


def raw_exchange(emu: LettaEmulator, body: dict[str, Any]) -> tuple[socket.socket, bytes]:
    """Send a connect request on a bare socket; return it and the response head."""
    sock = socket.create_connection(("127.0.0.1", int(emu.base_url.rsplit(":", 1)[1])), 10)
    data = json.dumps(body).encode()
    sock.sendall(
        b"POST " + CONNECT.encode() + b" HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(data), data)
    )
    received = b""
    for _ in range(MAX_LINES):
        if b"\r\n\r\n" in received:
            break
        chunk = sock.recv(65536)
        assert chunk, "closed before the headers"
        received += chunk
    head, _, rest = received.partition(b"\r\n\r\n")
    return sock, head + b"\r\n\r\n" + rest


def recv_until_closed(sock: socket.socket, received: bytes = b"") -> bytes:
    for _ in range(10_000):
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk
    raise AssertionError("the socket never closed")


def dechunk(raw_body: bytes) -> tuple[list[bytes], bool]:
    """Split a chunked body into its chunks; say whether the last chunk (size 0) came."""
    chunks: list[bytes] = []
    rest = raw_body
    for _ in range(MAX_LINES):
        if not rest:
            return chunks, False
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            assert rest == b"\r\n"
            return chunks, True
        chunks.append(rest[:size])
        assert rest[size : size + 2] == b"\r\n"
        rest = rest[size + 2 :]
    raise AssertionError("too many chunks")


# -- streams that end --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "server_name", "kind"),
    [
        ("noauth_streamable_success", "acc-noauth", "streamable_http"),
        ("noauth_sse_success", "acc-noauth-sse", "sse"),
        ("noauth_with_custom_headers", "acc-hdr", "streamable_http"),
    ],
)
def test_noauth_success_is_byte_for_byte_the_fixture(
    emu: LettaEmulator, fixture: str, server_name: str, kind: str
) -> None:
    body = config(server_name, type=kind, custom_headers={"X-Test": "1"})
    response = post(emu, body)
    assert response.status == 200
    assert response.getheader("content-type") == "text/event-stream; charset=utf-8"
    assert response.getheader("transfer-encoding") == "chunked"
    assert response.read() == fixture_bytes(fixture)


def test_each_event_is_its_own_chunk_and_the_body_ends(emu: LettaEmulator) -> None:
    sock, received = raw_exchange(emu, config("acc-noauth"))
    with sock:
        for _ in range(MAX_LINES):
            if received.endswith(b"\r\n0\r\n\r\n"):
                break
            chunk = sock.recv(65536)
            assert chunk, "closed before the body ended"
            received += chunk
    head, _, raw_body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    chunks, ended = dechunk(raw_body)
    assert ended
    events = fixture_bytes("noauth_streamable_success").split(b"\n\n")[:2]
    assert chunks == [event + b"\n\n" for event in events]


def test_error_outcome_matches_unreachable_fixture(emu: LettaEmulator) -> None:
    expected = fixture_bytes("unreachable_streamable")
    message = parse_events(expected)[1]["message"]
    emu.set_scenario("acc-down", Scenario(error=message))
    assert post(emu, config("acc-down", server_url="http://127.0.0.1:8499/mcp")).read() == expected


def test_error_outcome_matches_strict_loopback_fixture(emu: LettaEmulator) -> None:
    emu.scenario = Scenario(error="Non-public IP not allowed: 127.0.0.1")
    assert post(emu, config("acc-strict")).read() == fixture_bytes("strict_loopback_ip_rejected")


def test_stream_error_frame(emu: LettaEmulator) -> None:
    emu.scenario = Scenario(stream_error="boom", stream_error_code="E_BOOM")
    assert post(emu, config("x")).read() == (
        b'data: {"event": "connection_attempt", "server_name": "x"}\n\n'
        b'event: error\ndata: {"error": "boom", "code": "E_BOOM"}\n\n'
    )


def test_custom_tools(emu: LettaEmulator) -> None:
    tool: dict[str, Any] = {"name": "only", "title": None, "description": None, "inputSchema": {}}
    emu.scenario = Scenario(tools=[tool])
    assert parse_events(post(emu, config("x")).read())[1] == {"event": "success", "tools": [tool]}


def test_delay_changes_nothing_but_timing(emu: LettaEmulator) -> None:
    emu.scenario = Scenario(delay=0.01)
    assert post(emu, config("acc-noauth")).read() == fixture_bytes("noauth_streamable_success")


def test_keep_alive_serves_two_requests_on_one_connection(emu: LettaEmulator) -> None:
    conn = connection(emu)
    for _ in range(2):
        conn.request("POST", CONNECT, body=json.dumps(config("acc-noauth")))
        assert conn.getresponse().read() == fixture_bytes("noauth_streamable_success")
    conn.close()


def test_chunked_request_body_is_accepted(emu: LettaEmulator) -> None:
    conn = connection(emu)
    data = json.dumps(config("acc-noauth")).encode()
    conn.request("POST", CONNECT, body=iter([data[:10], data[10:]]), encode_chunked=True)
    assert conn.getresponse().read() == fixture_bytes("noauth_streamable_success")
    assert emu.requests[-1].body == config("acc-noauth")
    conn.close()


# -- dropped connections -----------------------------------------------------------------------


@pytest.mark.parametrize("drop_after", [0, 1, 2])
def test_drop_after_closes_without_ending_the_body(emu: LettaEmulator, drop_after: int) -> None:
    emu.scenario = Scenario(drop_after=drop_after)
    sock, received = raw_exchange(emu, config("acc-noauth"))
    with sock:
        received = recv_until_closed(sock, received)
    head, _, raw_body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    chunks, ended = dechunk(raw_body)
    assert not ended
    expected = fixture_bytes("noauth_streamable_success").split(b"\n\n")[:drop_after]
    assert chunks == [event + b"\n\n" for event in expected]


# -- OAuth -------------------------------------------------------------------------------------


def test_oauth_approved_matches_fixture(emu: LettaEmulator) -> None:
    emu.scenario = Scenario(oauth="approve")
    response = post(emu, config("oauth_full_flow_approved"))
    first = read_events(response, 4)
    url, session_id = first[2]["url"], first[2]["session_id"]
    assert url.startswith(emu.base_url + "/authorize?")
    assert re.fullmatch(r"mcp-oauth-[0-9a-f]{8}", session_id)
    query = parse_qs(urlsplit(url).query)
    assert query["redirect_uri"] == [emu.base_url + CALLBACK]
    assert query["state"][0]

    assert b"Authorization successful" in browse(url)
    events = first + parse_events(read_rest(response))
    expected = parse_events(fixture_bytes("oauth_full_flow_approved"))
    assert without_volatile(events) == without_volatile(expected)
    assert emu.authorized == {"oauth_full_flow_approved"}


def test_authorize_page_redirects_to_the_callback_with_a_code(emu: LettaEmulator) -> None:
    emu.scenario = Scenario(oauth="approve")
    response = post(emu, config("o"))
    url = read_events(response, 3)[2]["url"]
    page = request(emu, "GET", url[len(emu.base_url) :])
    assert page.status == 302
    page.read()
    location = page.getheader("location") or ""
    assert location.startswith(emu.base_url + CALLBACK + "?")
    query = parse_qs(urlsplit(location).query)
    assert query["state"] == parse_qs(urlsplit(url).query)["state"]
    assert query["code"][0]

    callback = request(emu, "GET", location[len(emu.base_url) :])
    assert callback.status == 200
    callback.read()
    assert [e["event"] for e in parse_events(read_rest(response))] == [
        "waiting_for_auth",
        "success",
    ]


def test_oauth_reconnect_uses_stored_token(emu: LettaEmulator) -> None:
    emu.scenario = Scenario(oauth="approve")
    response = post(emu, config("acc-oauth-again"))
    browse(read_events(response, 3)[2]["url"])
    read_rest(response)
    again = post(emu, config("acc-oauth-again"))
    assert again.read() == fixture_bytes("oauth_reconnect_uses_stored_token")


def test_forgotten_or_unremembered_tokens_ask_again(emu: LettaEmulator) -> None:
    emu.scenario = Scenario(oauth="approve")
    response = post(emu, config("o"))
    browse(read_events(response, 3)[2]["url"])
    read_rest(response)

    emu.scenario = Scenario(oauth="approve", remember_token=False)
    assert read_events(post(emu, config("o")), 2)[1]["event"] == "oauth_required"
    emu.scenario = Scenario(oauth="approve")
    emu.forget_tokens()
    assert emu.authorized == frozenset()
    assert read_events(post(emu, config("o")), 2)[1]["event"] == "oauth_required"


def test_oauth_denied_redirects_with_error_and_stays_silent() -> None:
    with LettaEmulator(Scenario(oauth="deny")) as emu:
        response = post(emu, config("oauth_denied_via_callback"))
        events = read_events(response, 4)
        url = events[2]["url"]
        page = request(emu, "GET", url[len(emu.base_url) :])
        assert page.status == 302
        location = page.getheader("location") or ""
        assert parse_qs(urlsplit(location).query)["error"] == ["access_denied"]
        assert b"access_denied" in browse(url)
    rest = read_rest(response)
    assert parse_events(rest) == []
    expected = parse_events(fixture_bytes("oauth_denied_via_callback"))
    assert without_volatile(events) == without_volatile(expected)
    assert emu.authorized == frozenset()


def test_oauth_silent_approves_but_never_releases() -> None:
    with LettaEmulator(Scenario(oauth="silent")) as emu:
        response = post(emu, config("oauth_abandoned_after_waiting"))
        events = read_events(response, 4)
        assert b"Authorization successful" in browse(events[2]["url"])
    assert parse_events(read_rest(response)) == []
    expected = parse_events(fixture_bytes("oauth_abandoned_after_waiting"))
    assert without_volatile(events) == without_volatile(expected)


def test_oauth_without_url_matches_wrong_path_fixture() -> None:
    with LettaEmulator(Scenario(oauth="no_url")) as emu:
        sock, received = raw_exchange(emu, config("acc-404"))
        for _ in range(MAX_LINES):
            if b"waiting_for_auth" in received:
                break
            received += sock.recv(65536)
    with sock:
        received = recv_until_closed(sock, received)
    chunks, ended = dechunk(received.partition(b"\r\n\r\n")[2])
    assert not ended
    # Everything the stream said before stop() closed it is the recorded body.
    assert b"".join(chunks) == fixture_bytes("wrong_path_404_hangs")


def test_oauth_pages_need_no_api_key() -> None:
    with LettaEmulator(Scenario(oauth="approve"), api_key="sekrit") as emu:
        response = post(emu, config("o"), Authorization="Bearer sekrit")
        assert b"Authorization successful" in browse(read_events(response, 3)[2]["url"])
        events = parse_events(read_rest(response))
    assert [e["event"] for e in events] == ["waiting_for_auth", "success"]


def test_a_silent_stream_ends_when_its_client_hangs_up(emu: LettaEmulator) -> None:
    emu.scenario = Scenario(oauth="no_url")
    sock, received = raw_exchange(emu, config("o"))
    with sock:
        for _ in range(MAX_LINES):
            if b"waiting_for_auth" in received:
                break
            received += sock.recv(65536)
    for _ in range(1000):
        if not [t for t in threading.enumerate() if t.name.startswith("LettaEmulator (")]:
            break
        threading.Event().wait(0.01)
    else:
        raise AssertionError("the connection thread outlived its client")


def test_callback_escapes_what_it_echoes(emu: LettaEmulator) -> None:
    emu.scenario = Scenario(oauth="deny")
    state = parse_qs(urlsplit(read_events(post(emu, config("o")), 3)[2]["url"]).query)["state"]
    page = request(emu, "GET", f"{CALLBACK}?error=%3Cb%3E&state={state[0]}")
    assert page.status == 200
    assert b"OAuth error: &lt;b&gt;" in page.read()


def test_unknown_state_is_refused(emu: LettaEmulator) -> None:
    assert request(emu, "GET", "/authorize?state=nope").status == 400
    assert request(emu, "GET", CALLBACK + "?code=a&state=nope").status == 400


# -- stop() ------------------------------------------------------------------------------------


def test_stop_closes_a_silent_stream() -> None:
    emu = LettaEmulator(Scenario(oauth="silent")).start()
    sock, received = raw_exchange(emu, config("o"))
    with sock:
        for _ in range(MAX_LINES):
            if b"waiting_for_auth" in received:
                break
            received += sock.recv(65536)
        emu.stop()
        received = recv_until_closed(sock, received)
    chunks, ended = dechunk(received.partition(b"\r\n\r\n")[2])
    assert not ended
    assert [parse_events(c)[0]["event"] for c in chunks] == [
        "connection_attempt",
        "oauth_required",
        "authorization_url",
        "waiting_for_auth",
    ]
    assert [t for t in threading.enumerate() if t.name.startswith("LettaEmulator")] == []


def test_stop_interrupts_a_delay_and_an_idle_keep_alive_connection() -> None:
    emu = LettaEmulator(Scenario(delay=3600)).start()
    idle = connection(emu)
    idle.request("GET", "/nowhere")
    idle.getresponse().read()
    sock, received = raw_exchange(emu, config("o"))
    with sock:
        emu.stop()
        received = recv_until_closed(sock, received)
    assert received.endswith(b"\r\n\r\n")  # the headers and nothing else
    assert idle.sock is not None
    assert idle.sock.recv(1) == b""
    idle.close()


def test_stop_is_idempotent_and_start_only_once() -> None:
    emu = LettaEmulator()
    emu.stop()
    with pytest.raises(RuntimeError):
        emu.base_url  # noqa: B018
    emu.start()
    with pytest.raises(RuntimeError):
        emu.start()
    emu.stop()
    emu.stop()
    with pytest.raises(OSError):
        urllib.request.urlopen(emu.base_url + "/", timeout=5)


def test_stop_from_another_thread_while_clients_wait() -> None:
    emu = LettaEmulator(Scenario(oauth="no_url")).start()
    waiting = threading.Semaphore(0)
    results: list[list[dict[str, Any]]] = []

    def client() -> None:
        response = post(emu, config("acc-404"))
        events = read_events(response, 3)
        waiting.release()
        results.append(events + parse_events(read_rest(response)))

    threads = [threading.Thread(target=client) for _ in range(3)]
    for thread in threads:
        thread.start()
    for _ in threads:
        assert waiting.acquire(timeout=10)
    emu.stop()
    for thread in threads:
        thread.join(10)
    assert results == [parse_events(fixture_bytes("wrong_path_404_hangs"))] * 3


# -- error statuses ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "headers"),
    [("secure_missing_key", {}), ("secure_wrong_key", {"Authorization": "Bearer wrong"})],
)
def test_401_without_the_right_key(fixture: str, headers: dict[str, str]) -> None:
    with LettaEmulator(api_key="sekrit") as emu:
        response = post(emu, config("x"), **headers)
        assert response.status == 401
        assert response.getheader("content-type") == "application/json"
        assert response.read() == fixture_bytes(fixture)
        ok = post(emu, config("acc-noauth"), Authorization="Bearer sekrit")
        assert ok.status == 200
        assert ok.read() == fixture_bytes("noauth_streamable_success")


@pytest.mark.parametrize(
    ("fixture", "body"),
    [
        ("req_empty_body", b""),
        ("req_malformed_json", b'{"server_name": "x", "type": }'),
        ("req_missing_server_url", {"server_name": "x", "type": "streamable_http"}),
    ],
)
def test_422_matches_fixture(emu: LettaEmulator, fixture: str, body: Any) -> None:
    response = post(emu, body)
    assert response.status == 422
    assert response.reason == "Unprocessable Entity"
    assert response.getheader("content-type") == "application/json"
    assert response.read() == fixture_bytes(fixture)


@pytest.mark.parametrize(
    "body",
    [
        [],
        "a string",
        {"type": "sse", "server_url": "http://x/sse"},
        {"server_name": 5, "type": "sse", "server_url": "http://x/sse"},
        {"server_name": "x", "type": "websocket", "server_url": "ws://x"},
        {"server_name": "x", "type": "stdio", "server_url": "http://x", "command": "c", "args": []},
        {"server_name": "x", "server_url": "http://x/mcp"},
    ],
)
def test_422_for_other_invalid_configs(emu: LettaEmulator, body: Any) -> None:
    response = post(emu, json.dumps(body).encode())
    assert response.status == 422
    payload = json.loads(response.read())
    assert payload["trace_id"] == ""
    assert isinstance(payload["detail"], str)
    assert payload["detail"].startswith("[{'type': ")


def test_405_matches_fixture(emu: LettaEmulator) -> None:
    response = request(emu, "GET", CONNECT)
    assert response.status == 405
    assert response.read() == fixture_bytes("get_method")


def test_404_for_unknown_paths(emu: LettaEmulator) -> None:
    response = request(emu, "POST", "/v1/tools/mcp/servers/connectx", config("x"))
    assert (response.status, response.read()) == (404, b'{"detail":"Not Found"}')


# -- GET /v1/mcp-servers/connect/{id} ----------------------------------------------------------


def test_connect_registered_server(emu: LettaEmulator) -> None:
    emu.add_server("mcp_server-123", config("acc-noauth"))
    response = request(emu, "GET", "/v1/mcp-servers/connect/mcp_server-123")
    assert response.status == 200
    assert response.read() == fixture_bytes("noauth_streamable_success")
    assert request(emu, "POST", "/v1/mcp-servers/connect/mcp_server-123").status == 405


def test_connect_registered_server_with_oauth(emu: LettaEmulator) -> None:
    emu.add_server("mcp_server-9", config("oauth_full_flow_approved"))
    emu.set_scenario("oauth_full_flow_approved", Scenario(oauth="approve"))
    response = request(emu, "GET", "/v1/mcp-servers/connect/mcp_server-9")
    first = read_events(response, 4)
    browse(first[2]["url"])
    events = first + parse_events(read_rest(response))
    expected = parse_events(fixture_bytes("oauth_full_flow_approved"))
    assert without_volatile(events) == without_volatile(expected)


def test_connect_unknown_server_id(emu: LettaEmulator) -> None:
    response = request(emu, "GET", "/v1/mcp-servers/connect/mcp_server-404")
    assert response.status == 404
    assert response.getheader("content-type") == "application/json"
    assert isinstance(json.loads(response.read())["detail"], str)


def test_add_server_refuses_invalid_configs(emu: LettaEmulator) -> None:
    with pytest.raises(ValueError):
        emu.add_server("a", {"server_name": "x"})
    with pytest.raises(ValueError):
        emu.add_server("a/b", config("x"))


# -- scenarios, requests ------------------------------------------------------------------------


def test_scenario_per_server_name(emu: LettaEmulator) -> None:
    emu.set_scenario("bad", Scenario(error="nope"))
    assert parse_events(post(emu, config("bad")).read())[1] == {"event": "error", "message": "nope"}
    assert parse_events(post(emu, config("good")).read())[1]["event"] == "success"
    emu.set_scenario("bad", None)
    assert parse_events(post(emu, config("bad")).read())[1]["event"] == "success"


def test_scenario_validates() -> None:
    with pytest.raises(ValueError):
        Scenario(delay=-1)
    with pytest.raises(ValueError):
        Scenario(drop_after=-1)
    with pytest.raises(ValueError):
        Scenario(oauth="maybe")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Scenario(error="a", stream_error="b")
    assert Scenario().tools == DEFAULT_TOOLS


def test_requests_are_recorded(emu: LettaEmulator) -> None:
    post(emu, config("acc-noauth"), Authorization="Bearer k1").read()
    post(emu, b"not json").read()
    first, second = emu.requests
    assert (first.method, first.path, first.body) == ("POST", CONNECT, config("acc-noauth"))
    assert first.headers["authorization"] == "Bearer k1"
    assert first.headers["accept"] == "text/event-stream"
    assert (second.body, second.raw_body) == (None, b"not json")
    assert "k1" not in repr(first)
    assert isinstance(first, RecordedRequest)


def test_requests_are_recorded_from_many_threads(emu: LettaEmulator) -> None:
    threads = [
        threading.Thread(target=lambda n=n: post(emu, config(f"s{n}")).read()) for n in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert sorted(r.body["server_name"] for r in emu.requests) == [f"s{n}" for n in range(8)]
