"""The examples in examples/ work: the httpx transport passes the contract kit, and the
asyncio client gives what connect() gives, on the emulator and on Letta's recordings."""

from __future__ import annotations

import asyncio
import pathlib
import sys
import threading
import urllib.request
from collections.abc import AsyncIterator, Callable
from typing import Any

import attrs
import httpx
import pytest

import mcpconnect
from mcpconnect import ConnectTimeoutError, McpConnectError, McpOauthEvent, Timeouts, TransportError
from mcpconnect.testing import LettaEmulator, Scenario, TransportContract
from mcpconnect.transports import FakeTransport, Hang, Transport, load_recording

sys.path.insert(0, str(pathlib.Path(__file__).parent.parent / "examples"))

from async_client import connect as async_connect
from httpx_transport import HttpxTransport


class TestHttpxTransport(TransportContract):
    def make_transport(self) -> Transport:
        return HttpxTransport()


# --- the asyncio client gives what connect() gives -----------------------------------------

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "letta-0.16.8"
RECORDINGS = sorted(
    path for path in FIXTURES.glob("*.txt")
    if not path.name.endswith((".headers.txt", ".status.txt", ".timeline.txt"))
)
CONFIG = {"server_name": "s", "type": "streamable_http", "server_url": "https://mcp.example/mcp"}
SHORT = Timeouts(connect=5, read=0.2, authorization=0.2, total=30)
KEY = "sk-example"


def summary(outcome: Any) -> Any:
    """What must be the same: the tools, or the error's type and text (and a timeout's
    limit and state). A network failure's text names the library, so only its type."""
    if isinstance(outcome, TransportError):
        return type(outcome)
    if isinstance(outcome, ConnectTimeoutError):
        return type(outcome), outcome.limit, outcome.state, str(outcome)
    if isinstance(outcome, McpConnectError):
        return type(outcome), str(outcome)
    return outcome


def sync_run(**kwargs: Any) -> tuple[list[McpOauthEvent], Any]:
    events: list[McpOauthEvent] = []
    on_event = kwargs.pop("on_event", None)

    def record(event: McpOauthEvent) -> None:
        events.append(event)
        if on_event is not None:
            on_event(event)

    try:
        outcome: Any = mcpconnect.connect(on_event=record, **kwargs)
    except McpConnectError as exc:
        outcome = exc
    return events, summary(outcome)


def async_run(transport: httpx.AsyncBaseTransport | None = None, **kwargs: Any) -> tuple[
    list[McpOauthEvent], Any
]:
    events: list[McpOauthEvent] = []
    on_event = kwargs.pop("on_event", None)

    def record(event: McpOauthEvent) -> None:
        events.append(event)
        if on_event is not None:
            on_event(event)

    async def main() -> Any:
        async with httpx.AsyncClient(transport=transport, trust_env=False) as http:
            try:
                return await async_connect(http=http, on_event=record, **kwargs)
            except McpConnectError as exc:
                return exc

    return events, summary(asyncio.run(main()))


def same_flow(run: tuple[list[McpOauthEvent], Any]) -> tuple[list[McpOauthEvent], Any]:
    """The run with what the emulator makes new for every flow (the authorization URL's
    state and the session id) blanked."""
    events, outcome = run
    blank = [
        attrs.evolve(e, url=e.url and e.url.partition("?")[0], session_id=None) for e in events
    ]
    return blank, outcome


class _Replay(httpx.AsyncByteStream):
    def __init__(self, steps: Any) -> None:
        self._steps = steps

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for step in self._steps:
            if isinstance(step, Hang):
                await asyncio.Event().wait()  # silent until the client gives up
            elif isinstance(step, bytes):
                yield step


@pytest.mark.parametrize("path", RECORDINGS, ids=[path.stem for path in RECORDINGS])
def test_the_async_client_replays_each_recording_as_connect_does(path: pathlib.Path) -> None:
    script = load_recording(path)
    expected = sync_run(
        config=CONFIG, transport=FakeTransport(script), base_url="http://letta.example",
        api_key=KEY, timeout=SHORT,
    )

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(script.status, headers=dict(script.headers),
                              stream=_Replay(script.chunks))

    got = async_run(
        httpx.MockTransport(handler), config=CONFIG, base_url="http://letta.example",
        api_key=KEY, timeout=SHORT,
    )
    assert got == expected


def authorize(event: McpOauthEvent) -> None:
    """Play the user: open the authorization URL (the emulator redirects to its callback)."""
    if event.url:
        url = event.url
        threading.Thread(
            target=lambda: urllib.request.urlopen(url, timeout=10).close(), daemon=True
        ).start()


EMULATED: dict[str, tuple[Scenario, Callable[[McpOauthEvent], None] | None]] = {
    "plain": (Scenario(), None),
    "oauth": (Scenario(oauth="approve", remember_token=False), authorize),
    "error": (Scenario(error="the MCP server is down"), None),
    "stream-error": (Scenario(stream_error="boom"), None),
    "dropped": (Scenario(drop_after=1), None),
    "silent": (Scenario(oauth="silent"), None),
    "no-url": (Scenario(oauth="no_url"), None),
}


@pytest.mark.parametrize("name", list(EMULATED))
def test_the_async_client_gives_what_connect_gives_on_the_emulator(name: str) -> None:
    scenario, on_event = EMULATED[name]
    with LettaEmulator(api_key=KEY) as emulator:
        emulator.set_scenario(name, scenario)
        kwargs: dict[str, Any] = {
            "config": {**CONFIG, "server_name": name}, "base_url": emulator.base_url,
            "api_key": KEY, "timeout": SHORT, "on_event": on_event,
        }
        expected = sync_run(**kwargs)
        got = async_run(**kwargs)
    assert same_flow(got) == same_flow(expected)
    assert expected[0], "the scenario sent events"


def test_the_async_client_gives_what_connect_gives_for_a_wrong_key() -> None:
    with LettaEmulator(api_key=KEY) as emulator:
        kwargs: dict[str, Any] = {
            "config": CONFIG, "base_url": emulator.base_url, "api_key": "sk-wrong",
            "timeout": SHORT,
        }
        expected = sync_run(**kwargs)
        got = async_run(**kwargs)
    assert got == expected
    assert expected[1][0] is mcpconnect.ConnectionFailedError


def test_connect_request_is_the_request_connect_sends() -> None:
    transport = FakeTransport(load_recording(FIXTURES / "noauth_streamable_success.txt"))
    mcpconnect.connect(CONFIG, base_url="http://letta.example/", api_key=KEY, transport=transport)
    built = mcpconnect.connect_request(CONFIG, base_url="http://letta.example/", api_key=KEY)
    assert built == transport.last_request
    assert built.url == "http://letta.example/v1/tools/mcp/servers/connect"
    assert built.json() == CONFIG
    assert built.headers["Authorization"] == f"Bearer {KEY}"
