"""Urllib3Transport through connect(): time limits, cancel, Ctrl-C, many threads, no leaks.

Every test is bounded by short limits (0.3 s) and Event handshakes; none asserts how long
something took. "Blocked in a read" is proven by finding the read on the thread's stack.
"""

from __future__ import annotations

import _thread
import contextlib
import logging
import random
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from loopback import (
    End,
    HoldOpen,
    LoopbackCA,
    Pause,
    RecordedRequest,
    Script,
    ScriptedServer,
    Status,
    WaitFor,
    loopback_ca,
    scripted_server,
    socket_baseline,
    sse_chunk,
    sse_script,
    tls_server,
    wait_for_socket_count,
)
from test_urllib3_transport import (
    API_KEY,
    AUTHORIZATION_URL,
    CONFIG,
    CONNECTION_ATTEMPT,
    OAUTH_REQUIRED,
    SUCCESS,
    WAITING_FOR_AUTH,
    Recorder,
    _no_proxy_env,
    client_for,
    wait_until_reading,
)

import mcpconnect
from mcpconnect import (
    ConnectCancelledError,
    ConnectionFailedError,
    ConnectTimeoutError,
    McpConnectError,
    McpOauthEvent,
    ServerError,
    StreamEndedError,
    Timeouts,
)
from mcpconnect.transports import Request, Urllib3Transport

_FIXTURES = (loopback_ca, scripted_server, tls_server, _no_proxy_env)

SHORT = 0.3
OAUTH_THEN_SILENCE: Script = [
    Status(200),
    sse_chunk(CONNECTION_ATTEMPT),
    sse_chunk(OAUTH_REQUIRED),
    sse_chunk(AUTHORIZATION_URL),
    sse_chunk(WAITING_FOR_AUTH),
    HoldOpen(timeout=30),
]
ATTEMPT_THEN_SILENCE: Script = [Status(200), sse_chunk(CONNECTION_ATTEMPT), HoldOpen(timeout=30)]
NO_HEADERS: Script = [HoldOpen(timeout=30)]  # reads the request, never answers


def assert_client_closed(server: ScriptedServer, index: int = 0) -> None:
    conn = server.wait_for_connection(index)
    # A generous deadline: the test asserts that the client closes, not how fast (on a loaded
    # machine the server once took longer than 5 s to see it).
    assert conn.client_closed.wait(20), "the client did not close the connection"
    assert not conn.closed_by_server


@contextlib.contextmanager
def in_thread(target: Callable[[], object]) -> Iterator[threading.Thread]:
    thread = threading.Thread(target=target, name="helper", daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        thread.join(10)
        assert not thread.is_alive()


# --------------------------------------------------------------------------------------------
# Time limits
# --------------------------------------------------------------------------------------------


def test_defaults_bound_every_state() -> None:
    limits = Timeouts()
    assert None not in (limits.connect, limits.read, limits.authorization, limits.total)
    assert limits.authorization is not None and limits.authorization > 300  # Letta's own 300 s


def test_read_limit_on_a_silent_stream(scripted_server: ScriptedServer) -> None:
    scripted_server.script = ATTEMPT_THEN_SILENCE
    record = Recorder()
    with (
        client_for(scripted_server, timeout=Timeouts(read=SHORT)) as client,
        pytest.raises(ConnectTimeoutError) as info,
    ):
        client.connect(CONFIG, on_event=record)
    assert (info.value.limit, info.value.state, info.value.seconds) == (
        "read",
        "connection_attempt",
        SHORT,
    )
    assert isinstance(info.value, TimeoutError)
    assert "connection_attempt" in str(info.value)
    assert record.kinds == ["connection_attempt"]
    assert_client_closed(scripted_server)


def test_authorization_limit_after_waiting_for_auth(scripted_server: ScriptedServer) -> None:
    """While waiting_for_auth the read limit does not apply (it is 60 s here), the
    authorization limit does."""
    scripted_server.script = OAUTH_THEN_SILENCE
    with (
        client_for(scripted_server) as client,
        pytest.raises(ConnectTimeoutError) as info,
    ):
        client.connect(CONFIG, timeout=Timeouts(read=60, authorization=SHORT))
    assert (info.value.limit, info.value.state) == ("authorization", "waiting_for_auth")
    assert str(info.value) == f"no authorization after {SHORT:g} s while waiting_for_auth"
    assert_client_closed(scripted_server)


def test_read_limit_does_not_apply_while_waiting_for_auth(
    scripted_server: ScriptedServer,
) -> None:
    """A read limit shorter than the authorization limit: the total runs out first."""
    scripted_server.script = OAUTH_THEN_SILENCE
    with client_for(scripted_server) as client, pytest.raises(ConnectTimeoutError) as info:
        client.connect(CONFIG, timeout=Timeouts(read=0.05, authorization=60, total=2 * SHORT))
    assert (info.value.limit, info.value.state) == ("total", "waiting_for_auth")


def test_total_limit_on_a_silent_stream(scripted_server: ScriptedServer) -> None:
    scripted_server.script = ATTEMPT_THEN_SILENCE
    with client_for(scripted_server) as client, pytest.raises(ConnectTimeoutError) as info:
        client.connect(CONFIG, timeout=Timeouts(read=60, total=SHORT))
    assert (info.value.limit, info.value.state) == ("total", "connection_attempt")
    assert_client_closed(scripted_server)


def test_total_limit_on_a_stream_that_trickles(scripted_server: ScriptedServer) -> None:
    """Unknown events keep coming, so the read limit never runs out; the total does."""
    steps: list[Any] = [Status(200), sse_chunk(CONNECTION_ATTEMPT)]
    for n in range(2000):
        steps += [sse_chunk({"event": "progress", "n": n}), Pause(SHORT / 6)]
    scripted_server.script = steps
    with client_for(scripted_server) as client, pytest.raises(ConnectTimeoutError) as info:
        client.connect(CONFIG, timeout=Timeouts(read=SHORT, total=3 * SHORT))
    assert (info.value.limit, info.value.state) == ("total", "connection_attempt")
    assert_client_closed(scripted_server)


def test_read_limit_while_waiting_for_the_headers(scripted_server: ScriptedServer) -> None:
    scripted_server.script = NO_HEADERS
    with client_for(scripted_server) as client, pytest.raises(ConnectTimeoutError) as info:
        client.connect(CONFIG, timeout=Timeouts(read=SHORT))
    assert (info.value.limit, info.value.state) == ("read", "started")
    assert_client_closed(scripted_server)


def test_total_limit_while_waiting_for_the_headers(scripted_server: ScriptedServer) -> None:
    scripted_server.script = NO_HEADERS
    with client_for(scripted_server) as client, pytest.raises(ConnectTimeoutError) as info:
        client.connect(CONFIG, timeout=Timeouts(read=60, total=SHORT))
    assert (info.value.limit, info.value.state) == ("total", "started")
    assert_client_closed(scripted_server)


def test_a_number_is_the_total_limit(scripted_server: ScriptedServer) -> None:
    scripted_server.script = OAUTH_THEN_SILENCE
    with client_for(scripted_server, timeout=SHORT) as client:
        with pytest.raises(ConnectTimeoutError) as info:
            client.connect(CONFIG)
        assert info.value.limit == "total"


def test_a_slow_on_event_is_not_the_servers_silence(scripted_server: ScriptedServer) -> None:
    """on_event takes longer than the read limit; nobody reads meanwhile, so it is not the
    server's silence and must not end the connect."""
    go = threading.Event()
    scripted_server.script = [
        Status(200),
        sse_chunk(CONNECTION_ATTEMPT),
        WaitFor(go),
        sse_chunk(SUCCESS),
        End(),
    ]

    def on_event(event: McpOauthEvent) -> None:
        if event.event == "connection_attempt":
            threading.Event().wait(3 * SHORT)  # the caller is busy, not the server
            go.set()

    with client_for(scripted_server, timeout=Timeouts(read=SHORT)) as client:
        assert client.connect(CONFIG, on_event=on_event)[0].name == "echo"


# --------------------------------------------------------------------------------------------
# Cancel
# --------------------------------------------------------------------------------------------


def test_cancel_before_the_request_sends_nothing(scripted_server: ScriptedServer) -> None:
    scripted_server.script = sse_script(SUCCESS)
    cancel = threading.Event()
    cancel.set()
    with client_for(scripted_server) as client, pytest.raises(ConnectCancelledError) as info:
        client.connect(CONFIG, cancel=cancel)
    assert info.value.state == "started"
    assert scripted_server.requests == []


@pytest.mark.parametrize(
    "script", [ATTEMPT_THEN_SILENCE, OAUTH_THEN_SILENCE], ids=["read", "oauth"]
)
def test_cancel_from_another_thread_during_a_blocked_read(
    scripted_server: ScriptedServer, script: Script
) -> None:
    scripted_server.script = script
    cancel = threading.Event()
    first = threading.Event()
    me = threading.current_thread()

    def canceller() -> None:
        assert first.wait(5)
        wait_until_reading(me)
        cancel.set()

    record = Recorder()

    def on_event(event: McpOauthEvent) -> None:
        record(event)
        first.set()

    with (
        client_for(scripted_server) as client,
        in_thread(canceller),
        pytest.raises(ConnectCancelledError) as info,
    ):
        client.connect(CONFIG, on_event=on_event, cancel=cancel)
    assert info.value.state == record.kinds[-1]
    assert_client_closed(scripted_server)


def test_cancel_while_waiting_for_the_headers(scripted_server: ScriptedServer) -> None:
    """The server read the request and never answers: cancel still stops the connect."""
    scripted_server.script = NO_HEADERS
    cancel = threading.Event()
    me = threading.current_thread()

    def canceller() -> None:
        scripted_server.wait_for_requests(1)
        wait_until_reading(me)
        cancel.set()

    with (
        client_for(scripted_server) as client,
        in_thread(canceller),
        pytest.raises(ConnectCancelledError) as info,
    ):
        client.connect(CONFIG, cancel=cancel, timeout=Timeouts(read=60))
    assert info.value.state == "started"
    assert_client_closed(scripted_server)


def test_cancel_set_inside_on_event(scripted_server: ScriptedServer) -> None:
    scripted_server.script = ATTEMPT_THEN_SILENCE
    cancel = threading.Event()
    with client_for(scripted_server) as client, pytest.raises(ConnectCancelledError):
        client.connect(CONFIG, on_event=lambda event: cancel.set(), cancel=cancel)
    assert_client_closed(scripted_server)


def test_cancel_over_tls(tls_server: ScriptedServer, loopback_ca: LoopbackCA) -> None:
    tls_server.script = ATTEMPT_THEN_SILENCE
    cancel = threading.Event()
    first = threading.Event()
    me = threading.current_thread()

    def canceller() -> None:
        assert first.wait(5)
        wait_until_reading(me)
        cancel.set()

    with (
        client_for(tls_server, ca_certs=str(loopback_ca.ca_pem_path)) as client,
        in_thread(canceller),
        pytest.raises(ConnectCancelledError),
    ):
        client.connect(CONFIG, on_event=lambda event: first.set(), cancel=cancel)
    assert_client_closed(tls_server)


def test_the_client_still_works_after_a_cancel(scripted_server: ScriptedServer) -> None:
    scripted_server.enqueue(NO_HEADERS)
    scripted_server.script = sse_script(SUCCESS)
    cancel = threading.Event()
    me = threading.current_thread()

    def canceller() -> None:
        scripted_server.wait_for_requests(1)
        wait_until_reading(me)
        cancel.set()

    with client_for(scripted_server) as client:
        with in_thread(canceller), pytest.raises(ConnectCancelledError):
            client.connect(CONFIG, cancel=cancel)
        assert client.connect(CONFIG)[0].name == "echo"


# --------------------------------------------------------------------------------------------
# Ctrl-C
# --------------------------------------------------------------------------------------------


def test_keyboard_interrupt_from_on_event_closes_the_connection(
    scripted_server: ScriptedServer,
) -> None:
    scripted_server.script = ATTEMPT_THEN_SILENCE

    def on_event(event: McpOauthEvent) -> None:
        raise KeyboardInterrupt

    with client_for(scripted_server) as client, pytest.raises(KeyboardInterrupt):
        client.connect(CONFIG, on_event=on_event)
    assert_client_closed(scripted_server)


@pytest.fixture
def sigint_raises() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals reach the main thread only")
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("script", [ATTEMPT_THEN_SILENCE, NO_HEADERS], ids=["body", "headers"])
def test_sigint_while_blocked_closes_the_connection(
    scripted_server: ScriptedServer, sigint_raises: None, script: Script
) -> None:
    scripted_server.script = script
    main = threading.main_thread()

    def interrupter() -> None:
        scripted_server.wait_for_requests(1)
        wait_until_reading(main)
        signal.pthread_kill(main.ident or 0, signal.SIGINT)

    with (
        client_for(scripted_server) as client,
        pytest.raises(KeyboardInterrupt),
        in_thread(interrupter),
    ):
        client.connect(CONFIG, timeout=Timeouts(read=60))
    assert_client_closed(scripted_server)


def test_interrupt_main_is_seen_after_the_next_event(
    scripted_server: ScriptedServer, sigint_raises: None
) -> None:
    """_thread.interrupt_main() only sets a flag: it cannot wake a blocked read, but it is
    raised as soon as the main thread runs Python code again, and the connection closes."""
    scripted_server.script = ATTEMPT_THEN_SILENCE

    def on_event(event: McpOauthEvent) -> None:
        _thread.interrupt_main()

    with client_for(scripted_server) as client, pytest.raises(KeyboardInterrupt):
        client.connect(CONFIG, on_event=on_event, timeout=Timeouts(read=60))
    assert_client_closed(scripted_server)


# --------------------------------------------------------------------------------------------
# Threads and leaks
# --------------------------------------------------------------------------------------------


def test_32_threads_share_one_client(scripted_server: ScriptedServer) -> None:
    scripted_server.script = sse_script(CONNECTION_ATTEMPT, SUCCESS)
    threads = 32
    start = threading.Barrier(threads)
    results: list[object] = [None] * threads

    with client_for(scripted_server, timeout=Timeouts(read=10, total=30)) as client:

        def work(i: int) -> None:
            start.wait(10)
            try:
                results[i] = [t.name for t in client.connect(CONFIG)]
            except BaseException as exc:
                results[i] = exc

        workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(60)
    assert results == [["echo"]] * threads
    assert len(scripted_server.requests) == threads


def _mixed_script(request: RecordedRequest) -> Script:
    kind = request.json()["server_name"]
    if kind == "ok":
        return [*sse_script(CONNECTION_ATTEMPT, SUCCESS, end=False), HoldOpen(timeout=30)]
    if kind == "server-error":
        return sse_script(CONNECTION_ATTEMPT, {"event": "error", "message": "nope"})
    if kind == "http-401":
        return [Status.json(401, {"detail": "Unauthorized"})]
    if kind == "http-500":
        return [Status(500), End()]
    if kind == "early-end":
        return sse_script(CONNECTION_ATTEMPT)
    return ATTEMPT_THEN_SILENCE  # cancel, timeout


EXPECTED: dict[str, type[BaseException] | None] = {
    "ok": None,
    "server-error": ServerError,
    "http-401": ConnectionFailedError,
    "http-500": ConnectionFailedError,
    "early-end": StreamEndedError,
    "cancel": ConnectCancelledError,
    "timeout": ConnectTimeoutError,
}


def cancel_on_event(cancel: threading.Event) -> Callable[[McpOauthEvent], None]:
    return lambda event: cancel.set()


def test_no_socket_leaks_after_500_mixed_connects() -> None:
    with ScriptedServer(_mixed_script) as server:
        baseline = socket_baseline()
        kinds = [kind for kind in EXPECTED for _ in range(72)][:500]
        random.Random(4).shuffle(kinds)
        outcomes: list[tuple[str, object]] = []
        with client_for(server) as client:

            def run(chunk: list[str]) -> None:
                for kind in chunk:
                    cancel = threading.Event()
                    on_event = cancel_on_event(cancel) if kind == "cancel" else None
                    # Only "timeout" gets a short read limit: a busy machine may pause a
                    # thread for longer than that anywhere.
                    timeout = Timeouts(read=0.05 if kind == "timeout" else 10, total=30)
                    try:
                        client.connect(
                            {**CONFIG, "server_name": kind},
                            on_event=on_event,
                            cancel=cancel,
                            timeout=timeout,
                        )
                        outcomes.append((kind, None))
                    except McpConnectError as exc:
                        outcomes.append((kind, type(exc)))

            workers = [
                threading.Thread(target=run, args=(kinds[i::4],), daemon=True) for i in range(4)
            ]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join(100)
            assert len(outcomes) == 500
            for kind, outcome in outcomes:
                expected = EXPECTED[kind]
                assert outcome is expected or (
                    expected is not None
                    and isinstance(outcome, type)
                    and issubclass(outcome, expected)
                ), (kind, outcome)
            # Idle keep-alive connections may stay pooled (both ends are in this process).
            assert wait_for_socket_count(baseline + 2 * 10, timeout=5) <= baseline + 2 * 10
        assert wait_for_socket_count(baseline, timeout=5) <= baseline
        assert len(server.requests) == 500


# --------------------------------------------------------------------------------------------
# A TCP connect that hangs
# --------------------------------------------------------------------------------------------


@pytest.fixture
def hung_url() -> Iterator[str]:
    """A loopback URL whose TCP connects hang: a listener with a full backlog that never
    accepts (Linux drops the SYNs, so connect() waits for its timeout)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    probe = socket.socket()
    probe.settimeout(0.2)
    try:
        probe.connect(("127.0.0.1", port))
        pytest.skip("this system accepts connections beyond the backlog")
    except TimeoutError:
        pass
    finally:
        probe.close()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for sock in [*fillers, listener]:
            sock.close()


def test_transport_connect_limit(hung_url: str) -> None:
    transport = Urllib3Transport()
    try:
        with pytest.raises(ConnectTimeoutError) as info:
            transport.send(Request("GET", hung_url + "/"), Timeouts(connect=SHORT))
    finally:
        transport.close()
    assert (info.value.limit, info.value.seconds) == ("connect", SHORT)
    assert hung_url in str(info.value)


def test_connect_limit_and_not_read_while_connecting(hung_url: str) -> None:
    """The read limit (shorter here) does not count while the TCP connect is in progress."""
    transport = Urllib3Transport()
    try:
        with pytest.raises(ConnectTimeoutError) as info:
            mcpconnect.connect(
                CONFIG,
                base_url=hung_url,
                api_key=API_KEY,
                transport=transport,
                timeout=Timeouts(connect=SHORT, read=0.05),
            )
    finally:
        transport.close()
    assert (info.value.limit, info.value.state) == ("connect", "connecting")


def wait_until_connecting(thread: threading.Thread, timeout: float = 5.0) -> None:
    """Wait until ``thread`` is inside urllib3's create_connection (found on its stack)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        frame = sys._current_frames().get(thread.ident or -1)
        while frame is not None:
            if frame.f_code.co_name in ("create_connection", "_open_socket"):
                return
            frame = frame.f_back
        time.sleep(0.005)
    raise AssertionError(f"{thread.name} never blocked in a TCP connect")


def run_in_thread(target: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    """Start ``target`` in a thread; the list gets its result or exception."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(target())
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, name="connector", daemon=True)
    thread.start()
    return thread, outcome


def test_cancel_interrupts_a_hung_tcp_connect(hung_url: str) -> None:
    """The connect limit is a minute; cancel ends the TCP connect at once (the connect's
    thread is done long before the limit)."""
    cancel = threading.Event()
    transport = Urllib3Transport()
    try:
        thread, outcome = run_in_thread(
            lambda: mcpconnect.connect(
                CONFIG, base_url=hung_url, api_key=API_KEY, transport=transport,
                cancel=cancel, timeout=Timeouts(connect=60),
            )
        )
        wait_until_connecting(thread)
        cancel.set()
        thread.join(10)
        assert not thread.is_alive(), "cancel did not interrupt the TCP connect"
    finally:
        transport.close()
    [error] = outcome
    assert isinstance(error, ConnectCancelledError)
    assert error.state == "started"


@pytest.fixture
def stalled_tls_url() -> Iterator[str]:
    """An https URL whose server accepts the TCP connection and never answers the TLS
    handshake."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.05)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                accepted.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        for sock in [*accepted, listener]:
            sock.close()


def wait_until_in_tls(thread: threading.Thread, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        frame = sys._current_frames().get(thread.ident or -1)
        while frame is not None:
            if frame.f_code.co_name == "do_handshake":
                return
            frame = frame.f_back
        time.sleep(0.005)
    raise AssertionError(f"{thread.name} never blocked in a TLS handshake")


def test_a_stalled_tls_handshake_is_the_connect_limit(stalled_tls_url: str) -> None:
    transport = Urllib3Transport()
    try:
        with pytest.raises(ConnectTimeoutError) as info:
            mcpconnect.connect(
                CONFIG, base_url=stalled_tls_url, api_key=API_KEY, transport=transport,
                timeout=Timeouts(connect=SHORT, read=60),
            )
        with pytest.raises(ConnectTimeoutError) as direct:  # the transport on its own
            transport.send(Request("GET", stalled_tls_url + "/"), Timeouts(connect=SHORT))
    finally:
        transport.close()
    assert (info.value.limit, info.value.seconds, info.value.state) == (
        "connect", SHORT, "connecting",
    )
    assert (direct.value.limit, direct.value.seconds) == ("connect", SHORT)


def test_cancel_interrupts_a_stalled_tls_handshake(stalled_tls_url: str) -> None:
    cancel = threading.Event()
    transport = Urllib3Transport()
    try:
        thread, outcome = run_in_thread(
            lambda: mcpconnect.connect(
                CONFIG, base_url=stalled_tls_url, api_key=API_KEY, transport=transport,
                cancel=cancel, timeout=Timeouts(connect=60),
            )
        )
        wait_until_in_tls(thread)
        cancel.set()
        thread.join(10)
        assert not thread.is_alive(), "cancel did not interrupt the TLS handshake"
    finally:
        transport.close()
    [error] = outcome
    assert isinstance(error, ConnectCancelledError)


# --------------------------------------------------------------------------------------------
# Many users waiting on one Client
# --------------------------------------------------------------------------------------------


def test_200_users_waiting_for_authorization_on_one_client(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """200 connects wait in waiting_for_auth on one shared Client; half the users authorize,
    the other half cancel. Every connect ends as it should, and nothing logs a warning (no
    "Connection pool is full"); the emulator takes the burst (its listen backlog)."""
    import urllib.request

    from mcpconnect.testing import DEFAULT_TOOLS, LettaEmulator, Scenario

    users = 200
    caplog.set_level(logging.WARNING)
    waiting = [threading.Event() for _ in range(users)]
    cancels = [threading.Event() for _ in range(users)]
    urls: list[str | None] = [None] * users
    outcomes: list[object] = [None] * users
    with (
        LettaEmulator(Scenario(oauth="approve", remember_token=False), api_key=API_KEY) as emu,
        mcpconnect.Client(base_url=emu.base_url, api_key=API_KEY) as client,
    ):

        def user(i: int) -> None:
            def on_event(event: McpOauthEvent) -> None:
                if event.url:
                    urls[i] = event.url
                if event.event == "waiting_for_auth":
                    waiting[i].set()

            config = {**CONFIG, "server_name": f"user-{i}"}
            try:
                outcomes[i] = [t.name for t in client.connect(
                    config, on_event=on_event, cancel=cancels[i])]
            except BaseException as exc:
                outcomes[i] = exc
            waiting[i].set()

        threads = [threading.Thread(target=user, args=(i,), daemon=True)
                   for i in range(users)]
        for thread in threads:
            thread.start()
        for event in waiting:
            assert event.wait(30)
        assert outcomes == [None] * users, "a connect ended before its user acted"
        for i in range(0, users, 2):
            url = urls[i]
            assert url is not None
            urllib.request.urlopen(url, timeout=10).close()
        for i in range(1, users, 2):
            cancels[i].set()
        for thread in threads:
            thread.join(30)
    authorized = outcomes[0::2]
    cancelled = outcomes[1::2]
    names = [tool["name"] for tool in DEFAULT_TOOLS]
    assert authorized == [names] * (users // 2), authorized[:3]
    assert all(isinstance(o, ConnectCancelledError) for o in cancelled), cancelled[:3]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "10"])
def test_the_pool_size_is_checked(bad: Any) -> None:
    with pytest.raises(mcpconnect.ConfigError, match="maxsize"):
        Urllib3Transport(maxsize=bad)
