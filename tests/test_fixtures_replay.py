"""Every recording of the real Letta 0.16.8 server, replayed through connect() over the fake.

Each is replayed whole, in 7-byte chunks and byte by byte. The recordings where the server
held the stream open in silence end in a Hang(), so these also show that nothing hangs.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pytest

import mcpconnect
from mcpconnect import (
    ConnectionFailedError,
    ConnectTimeoutError,
    McpConnectError,
    McpOauthEvent,
    McpTool,
    MissingAuthorizationUrlError,
    OauthStreamEvent,
    ServerError,
    Timeouts,
)
from mcpconnect.flow import NO_AUTHORIZATION_URL
from mcpconnect.transports import FakeTransport, load_recording

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "letta-0.16.8"
CONFIG = {"server_name": "s", "type": "streamable_http", "server_url": "https://mcp.example/mcp"}
# Short limits, so a silent recording ends quickly; total stays far above them.
SHORT = Timeouts(connect=5, read=0.2, authorization=0.2, total=30)


def _schema(props: dict[str, Any], required: list[str], title: str) -> dict[str, Any]:
    return {"properties": props, "required": required, "title": title, "type": "object"}


def _result(kind: str, title: str) -> dict[str, Any]:
    return _schema({"result": {"title": "Result", "type": kind}}, ["result"], title)


THREE_TOOLS = [
    McpTool(
        name="echo",
        description="Echo the given text back unchanged.",
        input_schema=_schema({"text": {"title": "Text", "type": "string"}}, ["text"],
                             "echoArguments"),
        output_schema=_result("string", "echoOutput"),
    ),
    McpTool(
        name="add",
        description="Add two integers and return the sum.",
        input_schema=_schema(
            {"a": {"title": "A", "type": "integer"}, "b": {"title": "B", "type": "integer"}},
            ["a", "b"], "addArguments",
        ),
        output_schema=_result("integer", "addOutput"),
    ),
    McpTool(
        name="server_mode",
        description="Say which acceptance server answered (noauth or oauth).",
        input_schema={"properties": {}, "title": "server_modeArguments", "type": "object"},
        output_schema=_result("string", "server_modeOutput"),
    ),
]


def ca(name: str) -> McpOauthEvent:
    return McpOauthEvent(event=OauthStreamEvent.CONNECTION_ATTEMPT, server_name=name)


OAUTH_REQUIRED = McpOauthEvent(
    event=OauthStreamEvent.OAUTH_REQUIRED, message="OAuth authentication required"
)
WAITING = McpOauthEvent(
    event=OauthStreamEvent.WAITING_FOR_AUTH, message="Waiting for user authorization..."
)
SUCCESS = McpOauthEvent(event=OauthStreamEvent.SUCCESS, tools=THREE_TOOLS)


def auth_url(case: str) -> McpOauthEvent:
    # The URL and session as recorded: read from the body, checked for shape below.
    line = (FIXTURES / f"{case}.txt").read_text().split("\n\n")[2]
    data = json.loads(line.removeprefix("data: "))
    assert data["url"].startswith("http://127.0.0.1:8403/authorize?response_type=code&")
    assert data["session_id"].startswith("mcp-oauth-")
    return McpOauthEvent(
        event=OauthStreamEvent.AUTHORIZATION_URL, url=data["url"], session_id=data["session_id"]
    )


def unreachable_message() -> str:
    return (
        "Connection failed: INTERNAL_SERVER_ERROR: Failed to connect to MCP server at "
        "'http://127.0.0.1:8499/mcp'. Please check your configuration and ensure the server is "
        "accessible. Error: Client failed to connect: All connection attempts failed"
    )


def detail(case: str) -> str:
    return (FIXTURES / f"{case}.txt").read_text()


# case -> (outcome, events): outcome is the tools, or (exception class, message, attributes)
EXPECTED: dict[str, tuple[Any, list[McpOauthEvent]]] = {
    "noauth_streamable_success": (THREE_TOOLS, [ca("acc-noauth"), SUCCESS]),
    "noauth_sse_success": (THREE_TOOLS, [ca("acc-noauth-sse"), SUCCESS]),
    "noauth_with_custom_headers": (THREE_TOOLS, [ca("acc-hdr"), SUCCESS]),
    "oauth_full_flow_approved": (
        THREE_TOOLS,
        [ca("oauth_full_flow_approved"), OAUTH_REQUIRED, auth_url("oauth_full_flow_approved"),
         WAITING, SUCCESS],
    ),
    "oauth_reconnect_uses_stored_token": (THREE_TOOLS, [ca("acc-oauth-again"), SUCCESS]),
    "oauth_abandoned_after_waiting": (
        (ConnectTimeoutError, "no authorization after 0.2 s while waiting_for_auth",
         {"limit": "authorization", "seconds": 0.2, "state": "waiting_for_auth"}),
        [ca("oauth_abandoned_after_waiting"), OAUTH_REQUIRED,
         auth_url("oauth_abandoned_after_waiting"), WAITING],
    ),
    "oauth_denied_via_callback": (
        (ConnectTimeoutError, "no authorization after 0.2 s while waiting_for_auth",
         {"limit": "authorization", "seconds": 0.2, "state": "waiting_for_auth"}),
        [ca("oauth_denied_via_callback"), OAUTH_REQUIRED,
         auth_url("oauth_denied_via_callback"), WAITING],
    ),
    "wrong_path_404_hangs": (
        (MissingAuthorizationUrlError, NO_AUTHORIZATION_URL, {"event": WAITING}),
        [ca("acc-404"), OAUTH_REQUIRED, WAITING],
    ),
    "unreachable_streamable": (
        (ServerError, unreachable_message(), {"message": unreachable_message()}),
        [ca("acc-down"), McpOauthEvent(event=OauthStreamEvent.ERROR,
                                      message=unreachable_message())],
    ),
    "strict_loopback_ip_rejected": (
        (ServerError, "Non-public IP not allowed: 127.0.0.1",
         {"message": "Non-public IP not allowed: 127.0.0.1"}),
        [ca("acc-strict"), McpOauthEvent(event=OauthStreamEvent.ERROR,
                                        message="Non-public IP not allowed: 127.0.0.1")],
    ),
    **{
        case: (
            (ConnectionFailedError, f"Connection failed ({status}): {detail(case)}",
             {"status": status, "body": detail(case)}),
            [],
        )
        for case, status in [
            ("req_malformed_json", 422),
            ("req_missing_server_url", 422),
            ("req_empty_body", 422),
            ("secure_wrong_key", 401),
            ("secure_missing_key", 401),
            ("get_method", 405),
        ]
    },
}


def test_every_recording_has_an_expectation() -> None:
    recorded = sorted(
        p.name.removesuffix(".txt")
        for p in FIXTURES.glob("*.txt")
        if p.name.count(".") == 1
    )
    assert recorded == sorted(EXPECTED)


@pytest.mark.parametrize("chunk_size", [None, 7, 1])
@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_replay(case: str, chunk_size: int | None) -> None:
    expected_outcome, expected_events = EXPECTED[case]
    transport = FakeTransport(load_recording(FIXTURES / f"{case}.txt", chunk_size=chunk_size))
    events: list[McpOauthEvent] = []
    try:
        outcome: Any = mcpconnect.connect(
            CONFIG, on_event=events.append, base_url="http://127.0.0.1:8283", api_key="k",
            transport=transport, timeout=SHORT,
        )
    except McpConnectError as exc:
        outcome = exc
    assert events == expected_events
    if isinstance(expected_outcome, list):
        assert outcome == expected_outcome
    else:
        cls, message, attributes = expected_outcome
        assert type(outcome) is cls
        assert str(outcome) == message
        assert {name: getattr(outcome, name) for name in attributes} == attributes
    assert transport.responses_sent[0].closed
