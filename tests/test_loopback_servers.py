"""The loopback test servers, driven by plain urllib3 and http.client.

Order is always proven with an Event handshake and the servers' send records, never with a
duration.
"""

from __future__ import annotations

import functools
import http.client
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import urllib3
from loopback import (
    Chunk,
    Close,
    End,
    ForwardProxy,
    HoldOpen,
    LoopbackCA,
    Pause,
    Raw,
    RecordedRequest,
    Script,
    ScriptedServer,
    ServerFactory,
    Status,
    Step,
    WaitFor,
    forward_proxy,
    loopback_ca,
    open_socket_count,
    redirect_script,
    scripted_server,
    server_factory,
    socket_baseline,
    sse_chunk,
    sse_script,
    tls_server,
    wait_for_socket_count,
)

# The fixtures are imported so that this module works with or without tests/conftest.py.
_FIXTURES = (forward_proxy, loopback_ca, scripted_server, server_factory, tls_server)

TIMEOUT = urllib3.Timeout(connect=5.0, read=5.0)


@pytest.fixture
def pool() -> Iterator[urllib3.PoolManager]:
    with urllib3.PoolManager(timeout=TIMEOUT, retries=False) as manager:
        yield manager


def read_exactly(read1: Callable[[], bytes], size: int) -> bytes:
    """Call ``read1`` until ``size`` bytes came; fail on a premature end."""
    data = b""
    while len(data) < size:
        got = read1()
        assert got, f"stream ended after {data!r}"
        data += got
    return data


def read_to_end(read1: Callable[[], bytes], limit: int = 1 << 20) -> bytes:
    data = b""
    while got := read1():
        data += got
        assert len(data) <= limit
    return data


# --------------------------------------------------------------------------------------------
# Streaming and records
# --------------------------------------------------------------------------------------------


def test_urllib3_sees_each_chunk_before_the_next_is_sent(
    scripted_server: ScriptedServer, pool: urllib3.PoolManager
) -> None:
    go = threading.Event()
    first = sse_chunk({"event": "connection_attempt"})
    second = sse_chunk({"event": "success", "tools": []})
    scripted_server.script = [Status(200), first, WaitFor(go), second, End()]

    resp = pool.request("GET", scripted_server.url + "/stream", preload_content=False)
    assert resp.status == 200
    assert resp.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert resp.headers["transfer-encoding"] == "chunked"

    got = read_exactly(resp.read1, len(first.data))
    seen_first_at = time.monotonic()
    assert got == b'data: {"event": "connection_attempt"}\n\n'
    assert scripted_server.record_of(second) is None  # the client did not wait for it

    go.set()
    assert read_to_end(resp.read1) == second.data
    second_record = scripted_server.record_of(second)
    assert second_record is not None
    assert second_record.started_at > seen_first_at
    resp.release_conn()


def test_http_client_reads_chunk_by_chunk(scripted_server: ScriptedServer) -> None:
    gates = [threading.Event() for _ in range(3)]
    chunks = [Chunk(b"data: %d\n\n" % i) for i in range(3)]
    script: list[Step] = [Status(200)]
    for gate, chunk in zip(gates, chunks, strict=True):
        script += [chunk, WaitFor(gate)]
    scripted_server.script = [*script, End()]

    conn = http.client.HTTPConnection("127.0.0.1", scripted_server.port, timeout=5)
    try:
        conn.request("GET", "/")
        resp = conn.getresponse()
        for i, (gate, chunk) in enumerate(zip(gates, chunks, strict=True)):
            assert read_exactly(resp.read1, len(chunk.data)) == b"data: %d\n\n" % i
            if i + 1 < len(chunks):
                assert scripted_server.record_of(chunks[i + 1]) is None
            gate.set()
        assert resp.read1() == b""
    finally:
        conn.close()


def test_sends_are_recorded_in_order(
    scripted_server: ScriptedServer, pool: urllib3.PoolManager
) -> None:
    script: list[Step] = [Status(200), Chunk(b"a"), Pause(0.01), Chunk(b"b"), End()]
    scripted_server.script = script
    resp = pool.request("GET", scripted_server.url)
    assert resp.data == b"ab"

    scripted_server.wait_for_step(script[-1])  # recorded just after its bytes went out
    records = scripted_server.sends
    assert [r.step for r in records] == script
    assert [r.index for r in records] == [0, 1, 2, 3, 4]
    assert [r.seq for r in records] == sorted(r.seq for r in records)
    assert [r.at for r in records] == sorted(r.at for r in records)
    assert all(r.started_at <= r.at for r in records)
    assert {(r.connection_id, r.request_index) for r in records} == {(0, 0)}


def test_recorded_request_holds_what_was_sent(
    scripted_server: ScriptedServer, pool: urllib3.PoolManager
) -> None:
    scripted_server.script = sse_script({"event": "success", "tools": []})
    resp = pool.request(
        "POST",
        scripted_server.url + "/v1/tools/mcp/servers/connect?x=1",
        body=json.dumps({"server_name": "github"}).encode(),
        headers={
            "Content-Type": "application/json",
            "Authorization": "Bearer sk-test",
            "X-Letta-Source": "letta-code",
        },
    )
    assert resp.status == 200

    (request,) = scripted_server.requests
    assert request.method == "POST"
    assert request.path == "/v1/tools/mcp/servers/connect?x=1"
    assert request.target == request.path
    assert request.version == "HTTP/1.1"
    assert request.header("authorization") == "Bearer sk-test"
    assert request.header("X-LETTA-SOURCE") == "letta-code"
    assert request.header_map["content-type"] == "application/json"
    assert ("X-Letta-Source", "letta-code") in request.headers
    assert request.body == b'{"server_name": "github"}'
    assert request.json() == {"server_name": "github"}


def test_chunked_request_body_is_decoded(
    scripted_server: ScriptedServer, pool: urllib3.PoolManager
) -> None:
    scripted_server.script = [Status.json(200, {})]
    pool.request("PUT", scripted_server.url + "/up", body=iter([b"one,", b"two"]), chunked=True)
    (request,) = scripted_server.requests
    assert request.header("transfer-encoding") == "chunked"
    assert request.body == b"one,two"


def test_script_can_depend_on_the_request_and_queue_comes_first(
    scripted_server: ScriptedServer, pool: urllib3.PoolManager
) -> None:
    def route(request: RecordedRequest) -> Script:
        return [Status.json(200, {"path": request.path})]

    scripted_server.script = route
    scripted_server.enqueue([Status.json(401, {"detail": "Unauthorized"})])

    first = pool.request("GET", scripted_server.url + "/a")
    second = pool.request("GET", scripted_server.url + "/b")
    assert (first.status, first.json()) == (401, {"detail": "Unauthorized"})
    assert (second.status, second.json()) == (200, {"path": "/b"})
    assert first.headers["content-length"] == str(len(first.data))
    # Both answers were complete, so the client reused its connection.
    assert [r.connection_id for r in scripted_server.requests] == [0, 0]


def test_no_script_is_an_explicit_500(
    scripted_server: ScriptedServer, pool: urllib3.PoolManager
) -> None:
    resp = pool.request("GET", scripted_server.url)
    assert resp.status == 500
    assert "no script" in resp.json()["detail"]


# --------------------------------------------------------------------------------------------
# Broken connections
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("reset", [True, False], ids=["rst", "fin"])
def test_abrupt_close_mid_stream_is_an_error(
    scripted_server: ScriptedServer, pool: urllib3.PoolManager, reset: bool
) -> None:
    go = threading.Event()
    first = sse_chunk({"event": "connection_attempt"})
    scripted_server.script = [Status(200), first, WaitFor(go), Close(reset=reset)]

    resp = pool.request("GET", scripted_server.url, preload_content=False)
    assert read_exactly(resp.read1, len(first.data)) == first.data
    go.set()
    with pytest.raises(urllib3.exceptions.ProtocolError):
        read_to_end(resp.read1)
    resp.close()
    conn = scripted_server.wait_for_connection(0)
    assert conn.done.wait(5)
    assert conn.closed_by_server
    assert conn.reset_by_server is reset


def test_broken_chunk_framing_is_an_error(
    scripted_server: ScriptedServer, pool: urllib3.PoolManager
) -> None:
    scripted_server.script = [Status(200), Raw(b"zz\r\nnot a chunk\r\n"), Close()]
    resp = pool.request("GET", scripted_server.url, preload_content=False)
    with pytest.raises(urllib3.exceptions.ProtocolError):
        read_to_end(resp.read1)
    resp.close()


def test_waitfor_timeout_resets_and_is_recorded(
    scripted_server: ScriptedServer, pool: urllib3.PoolManager
) -> None:
    scripted_server.script = [Status(200), WaitFor(threading.Event(), timeout=0.01)]
    # The reset may come before or after the client has read the status line.
    with pytest.raises(urllib3.exceptions.ProtocolError):
        resp = pool.request("GET", scripted_server.url, preload_content=False)
        read_to_end(resp.read1)
    assert scripted_server.wait_for_connection(0).done.wait(5)
    assert any("WaitFor timed out" in e for e in scripted_server.errors)


def test_client_close_is_seen_while_holding_open(
    scripted_server: ScriptedServer, pool: urllib3.PoolManager
) -> None:
    success = sse_chunk({"event": "success", "tools": []})
    hold = HoldOpen()
    scripted_server.script = [Status(200), success, hold]

    resp = pool.request("GET", scripted_server.url, preload_content=False)
    assert read_exactly(resp.read1, len(success.data)) == success.data
    conn = scripted_server.wait_for_connection(0)
    assert not conn.client_closed.is_set()  # the server is still holding it open

    resp.close()
    assert conn.client_closed.wait(5)
    assert scripted_server.wait_for_step(hold).step is hold
    assert not conn.closed_by_server


def test_client_close_is_seen_during_waitfor(scripted_server: ScriptedServer) -> None:
    never = threading.Event()
    after = Chunk(b"never sent")
    scripted_server.script = [Status(200), WaitFor(never), after]
    with socket.create_connection(("127.0.0.1", scripted_server.port), timeout=5) as client:
        client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        scripted_server.wait_for_requests(1)
    conn = scripted_server.wait_for_connection(0)
    assert conn.client_closed.wait(5)
    assert conn.done.wait(5)
    assert scripted_server.record_of(after) is None


def test_stop_ends_held_and_waiting_connections(server_factory: ServerFactory) -> None:
    server: ScriptedServer = server_factory()
    never = threading.Event()
    statuses = [Status(200), Status(200)]
    server.enqueue([statuses[0], HoldOpen()], [statuses[1], WaitFor(never)])
    clients = []
    try:
        for _ in range(2):
            client = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            clients.append(client)
            client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        for status in statuses:
            server.wait_for_step(status)  # both connections are now in their waiting step
        server.stop()
        for conn in server.connections:
            assert conn.done.is_set()
        for client in clients:
            assert read_to_end(functools.partial(client.recv, 4096)).startswith(b"HTTP/1.1 200")
    finally:
        for client in clients:
            client.close()


# --------------------------------------------------------------------------------------------
# TLS
# --------------------------------------------------------------------------------------------


def test_tls_with_ca_file(tls_server: ScriptedServer, loopback_ca: LoopbackCA) -> None:
    tls_server.script = sse_script({"event": "success"})
    assert tls_server.url.startswith("https://127.0.0.1:")
    with urllib3.PoolManager(
        ca_certs=str(loopback_ca.ca_pem_path), timeout=TIMEOUT, retries=False
    ) as manager:
        resp = manager.request("GET", tls_server.url + "/secure")
        assert resp.status == 200
        assert resp.data == b'data: {"event": "success"}\n\n'
        # The certificate also names localhost.
        resp = manager.request("GET", f"https://localhost:{tls_server.port}/")
        assert resp.status == 200
    assert [r.path for r in tls_server.requests] == ["/secure", "/"]


def test_tls_with_ssl_context(tls_server: ScriptedServer, loopback_ca: LoopbackCA) -> None:
    tls_server.script = [Status.json(200, {"ok": True})]
    with urllib3.PoolManager(
        ssl_context=loopback_ca.client_context(), timeout=TIMEOUT, retries=False
    ) as manager:
        assert manager.request("GET", tls_server.url).json() == {"ok": True}


def test_tls_fails_without_the_ca(tls_server: ScriptedServer, tmp_path: Path) -> None:
    tls_server.script = [Status.json(200, {"ok": True})]
    other = LoopbackCA(tmp_path)  # a CA that did not sign the server's certificate
    with (
        urllib3.PoolManager(
            ssl_context=other.client_context(), timeout=TIMEOUT, retries=False
        ) as manager,
        pytest.raises(urllib3.exceptions.SSLError),
    ):
        manager.request("GET", tls_server.url)
    assert tls_server.requests == []


# --------------------------------------------------------------------------------------------
# Proxy
# --------------------------------------------------------------------------------------------


def test_proxy_forwards_http_and_streams(
    scripted_server: ScriptedServer, forward_proxy: ForwardProxy
) -> None:
    go = threading.Event()
    first, second = sse_chunk({"n": 1}), sse_chunk({"n": 2})
    scripted_server.script = [Status(200), first, WaitFor(go), second, End()]

    with urllib3.ProxyManager(forward_proxy.url, timeout=TIMEOUT, retries=False) as manager:
        resp = manager.request(
            "GET",
            scripted_server.url + "/via?proxy=1",
            preload_content=False,
            headers={"X-Test": "yes"},
        )
        assert resp.status == 200
        assert read_exactly(resp.read1, len(first.data)) == first.data
        assert scripted_server.record_of(second) is None  # not buffered by the proxy
        go.set()
        assert read_to_end(resp.read1) == second.data
        resp.release_conn()

    assert forward_proxy.requests == [f"GET {scripted_server.url}/via?proxy=1 HTTP/1.1"]
    (request,) = scripted_server.requests
    assert request.target == "/via?proxy=1"
    assert request.header("x-test") == "yes"
    assert request.header("proxy-connection") is None


def test_proxy_tunnels_https_with_connect(
    tls_server: ScriptedServer, loopback_ca: LoopbackCA, forward_proxy: ForwardProxy
) -> None:
    tls_server.script = sse_script({"event": "success"})
    with urllib3.ProxyManager(
        forward_proxy.url,
        ca_certs=str(loopback_ca.ca_pem_path),
        timeout=TIMEOUT,
        retries=False,
    ) as manager:
        resp = manager.request("GET", tls_server.url + "/tunnel")
        assert resp.status == 200
        assert resp.data == b'data: {"event": "success"}\n\n'

    (line,) = forward_proxy.requests
    assert line.startswith(f"CONNECT 127.0.0.1:{tls_server.port} HTTP/1.")
    assert [r.path for r in tls_server.requests] == ["/tunnel"]


def test_proxy_passes_a_reset_on(
    scripted_server: ScriptedServer, forward_proxy: ForwardProxy
) -> None:
    go = threading.Event()
    first = Chunk(b"data: 1\n\n")
    scripted_server.script = [Status(200), first, WaitFor(go), Close(reset=True)]
    with urllib3.ProxyManager(forward_proxy.url, timeout=TIMEOUT, retries=False) as manager:
        resp = manager.request("GET", scripted_server.url, preload_content=False)
        assert read_exactly(resp.read1, len(first.data)) == first.data
        go.set()
        with pytest.raises(urllib3.exceptions.ProtocolError):
            read_to_end(resp.read1)
        resp.close()


@pytest.mark.parametrize(
    ("method", "target"),
    [("GET", "http://example.com/x"), ("CONNECT", "example.com:443"), ("GET", "/origin")],
)
def test_proxy_refuses_non_loopback_targets(
    forward_proxy: ForwardProxy, method: str, target: str
) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", forward_proxy.port, timeout=5)
    try:
        conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        conn.endheaders()
        resp = conn.getresponse()
        assert resp.status in (400, 403)
        resp.read()
    finally:
        conn.close()
    assert forward_proxy.requests == []
    assert forward_proxy.refused == [f"{method} {target} HTTP/1.1"]


# --------------------------------------------------------------------------------------------
# Redirects
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [302, 307])
def test_redirect_comes_back_unfollowed(
    server_factory: ServerFactory, pool: urllib3.PoolManager, code: int
) -> None:
    target: ScriptedServer = server_factory([Status.json(200, {"here": True})])
    origin: ScriptedServer = server_factory(redirect_script(target.url + "/dest", code))

    resp = pool.request("POST", origin.url + "/start", body=b"{}", redirect=False)
    assert resp.status == code
    assert resp.headers["location"] == target.url + "/dest"
    assert resp.data == b""
    assert target.requests == []


def test_redirect_can_be_followed(server_factory: ServerFactory) -> None:
    target: ScriptedServer = server_factory([Status.json(200, {"here": True})])
    origin: ScriptedServer = server_factory()
    origin.enqueue(redirect_script(target.url + "/dest", 307))
    with urllib3.PoolManager(timeout=TIMEOUT, retries=urllib3.Retry(redirect=1)) as manager:
        resp = manager.request("POST", origin.url + "/start", body=b"{}")
    assert resp.json() == {"here": True}
    (followed,) = target.requests
    assert (followed.method, followed.path, followed.body) == ("POST", "/dest", b"{}")


# --------------------------------------------------------------------------------------------
# Socket counting
# --------------------------------------------------------------------------------------------


def test_socket_count_sees_a_socketpair() -> None:
    baseline = socket_baseline()
    a, b = socket.socketpair()
    try:
        assert open_socket_count() == baseline + 2
    finally:
        a.close()
        b.close()
    assert wait_for_socket_count(baseline) <= baseline


def test_socket_count_returns_to_baseline_after_closing(
    scripted_server: ScriptedServer,
) -> None:
    scripted_server.script = [Status(200), sse_chunk({"event": "success"}), HoldOpen()]
    baseline = socket_baseline()
    manager = urllib3.PoolManager(timeout=TIMEOUT, retries=False)
    try:
        resp = manager.request("GET", scripted_server.url, preload_content=False)
        assert resp.read1()
        # The client's socket and the server's end of it.
        assert open_socket_count() >= baseline + 2
        resp.close()
    finally:
        manager.clear()
    assert wait_for_socket_count(baseline) <= baseline
    assert scripted_server.wait_for_connection(0).client_closed.is_set()


def test_socket_count_after_keep_alive_needs_the_pool_cleared(
    scripted_server: ScriptedServer,
) -> None:
    scripted_server.script = [Status.json(200, {})]
    baseline = socket_baseline()
    manager = urllib3.PoolManager(timeout=TIMEOUT, retries=False)
    try:
        assert manager.request("GET", scripted_server.url).status == 200
        # A finished response goes back to the pool: its socket stays open.
        assert wait_for_socket_count(baseline, timeout=0.1) >= baseline + 2
    finally:
        manager.clear()
    assert wait_for_socket_count(baseline) <= baseline


def test_sse_chunk_framing() -> None:
    assert sse_chunk({"event": "success"}).render() == b'1c\r\ndata: {"event": "success"}\n\n\r\n'
    named = sse_chunk({"error": "boom", "code": 500}, event_name="error")
    assert named.data == b'event: error\ndata: {"error": "boom", "code": 500}\n\n'
    assert End().render() == b"0\r\n\r\n"
