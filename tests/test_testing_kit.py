"""The testing kit's conveniences: the emulator's api_key, client(), authorize() and
wait_closed(), the fake's assert_all_used, and public module names for help()."""

from __future__ import annotations

import pickle
import pydoc
import socket
import threading

import pytest

import mcpconnect
from mcpconnect.testing import (
    FakeResponse,
    FakeTransport,
    LettaEmulator,
    Scenario,
    sse_stream,
)

CONFIG = {"server_name": "gh", "type": "sse", "server_url": "https://mcp.example.com/sse"}


def approve_with(emulator: LettaEmulator, seen: list[str]) -> mcpconnect.client.OnEvent:
    def on_event(event: mcpconnect.McpOauthEvent) -> None:
        seen.append(str(event.event))
        if event.event is mcpconnect.OauthStreamEvent.AUTHORIZATION_URL:
            emulator.authorize(event.url)

    return on_event


def test_api_key_is_what_the_client_must_send() -> None:
    with LettaEmulator(api_key="sekrit") as emulator:
        assert emulator.api_key == "sekrit"
        with pytest.raises(mcpconnect.ConnectionFailedError) as info:
            mcpconnect.connect(CONFIG, base_url=emulator.base_url, api_key="wrong")
        assert info.value.status == 401
        tools = mcpconnect.connect(CONFIG, base_url=emulator.base_url, api_key=emulator.api_key)
        assert [t.name for t in tools] == ["echo", "add", "server_mode"]
    assert LettaEmulator().api_key is None


def test_client_and_authorize_finish_an_oauth_flow() -> None:
    seen: list[str] = []
    with LettaEmulator(Scenario(oauth="approve"), api_key="k") as emulator:
        with emulator.client() as client:
            assert client.base_url == emulator.base_url
            tools = client.connect(CONFIG, on_event=approve_with(emulator, seen), timeout=10)
        assert [t.name for t in tools] == ["echo", "add", "server_mode"]
        assert emulator.authorized == frozenset({"gh"})
        assert emulator.requests[0].headers["authorization"] == "Bearer k"
    assert seen == [
        "connection_attempt",
        "oauth_required",
        "authorization_url",
        "waiting_for_auth",
        "success",
    ]


def test_client_without_an_emulator_key_and_with_overrides() -> None:
    with LettaEmulator() as emulator, emulator.client(source="my-app") as client:
        client.connect(CONFIG)
        assert emulator.requests[0].headers["x-letta-source"] == "my-app"
        assert emulator.requests[0].headers["authorization"].startswith("Bearer ")


def test_authorize_in_a_deny_scenario_leaves_the_stream_silent() -> None:
    seen: list[str] = []
    with LettaEmulator(Scenario(oauth="deny")) as emulator, emulator.client() as client:
        with pytest.raises(mcpconnect.ConnectTimeoutError):
            client.connect(
                CONFIG,
                on_event=approve_with(emulator, seen),
                timeout=mcpconnect.Timeouts(authorization=0.3),
            )
        assert emulator.authorized == frozenset()
        paths = [r.path.split("?")[0] for r in emulator.requests]
        assert paths[1:] == ["/authorize", "/v1/tools/mcp/oauth/callback"]


def test_authorize_refuses_what_is_not_its_own_authorization_url() -> None:
    with LettaEmulator() as emulator, LettaEmulator() as other:
        for url in (None, "https://evil.example/authorize?state=x", other.base_url + "/authorize?"):
            with pytest.raises(ValueError, match="not an authorization URL of this emulator"):
                emulator.authorize(url)
        with pytest.raises(RuntimeError, match="does not know"):
            emulator.authorize(emulator.base_url + "/authorize?state=unknown")
    with pytest.raises(RuntimeError, match="not started"):
        LettaEmulator().authorize("http://127.0.0.1:1/authorize?state=x")


def test_wait_closed_waits_for_the_last_connection() -> None:
    with LettaEmulator() as emulator:
        emulator.wait_closed(timeout=0.01)  # nothing open: at once
        sock = socket.create_connection(("127.0.0.1", int(emulator.base_url.rsplit(":", 1)[1])))
        try:
            deadline = threading.Event()
            while emulator.open_connections == 0 and not deadline.wait(0.01):
                pass
            with pytest.raises(TimeoutError, match="1 connection"):
                emulator.wait_closed(timeout=0.1)
        finally:
            sock.close()
        emulator.wait_closed(timeout=5)
        assert emulator.open_connections == 0


def test_wait_closed_after_a_client_left_a_silent_stream() -> None:
    with LettaEmulator(Scenario(oauth="silent")) as emulator:
        with emulator.client() as client, client.stream_events(CONFIG) as events:
            for event in events:
                if event.event is mcpconnect.OauthStreamEvent.WAITING_FOR_AUTH:
                    assert emulator.open_connections == 1
                    break
        emulator.wait_closed()
        assert emulator.open_connections == 0
    LettaEmulator().wait_closed()  # not started: nothing to wait for


def test_assert_all_used_fails_close_when_a_response_was_never_requested() -> None:
    fake = FakeTransport(
        [sse_stream([{"event": "success", "tools": []}]), FakeResponse(401)],
        assert_all_used=True,
    )
    mcpconnect.connect(CONFIG, api_key="k", transport=fake)
    assert fake.unused == [FakeResponse(401)]
    with pytest.raises(AssertionError, match=r"1 scripted response\(s\) never requested"):
        fake.close()
    fake.close()  # reported once


def test_assert_all_used_is_quiet_when_everything_was_used_or_when_off() -> None:
    used = FakeTransport(sse_stream([{"event": "success", "tools": []}]), assert_all_used=True)
    mcpconnect.connect(CONFIG, api_key="k", transport=used)
    assert used.unused == []
    used.close()
    FakeTransport([FakeResponse(500)]).close()


def test_help_names_the_public_module() -> None:
    for obj in (LettaEmulator, Scenario, FakeTransport, FakeResponse, sse_stream):
        assert obj.__module__ == "mcpconnect.testing"
    text = pydoc.render_doc(LettaEmulator, renderer=pydoc.plaintext)
    assert "in module mcpconnect.testing\n" in text
    assert pickle.loads(pickle.dumps(Scenario(oauth="deny"))) == Scenario(oauth="deny")
