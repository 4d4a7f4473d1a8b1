"""Registering servers: add_server, list/get/delete, over the fake (replaying the recordings of
tests/fixtures/letta-0.16.8/servers/) and over the emulator through real HTTP."""

from __future__ import annotations

import json
import logging
import pathlib
import re
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import pytest
from conftest import FIXTURES
from test_urllib3_limits import hung_url  # noqa: F401  (a fixture)

import mcpconnect
from mcpconnect import (
    Client,
    ConfigError,
    ConnectCancelledError,
    ConnectionFailedError,
    ConnectTimeoutError,
    DuplicateServerNameError,
    McpConnectConfig,
    McpConnectError,
    McpOauthEvent,
    McpServer,
    McpTool,
    ProtocolError,
    ServerNotFoundError,
    Timeouts,
    TransportError,
)
from mcpconnect import servers as servers_module
from mcpconnect.servers import default_server_name
from mcpconnect.testing import LettaEmulator, Scenario
from mcpconnect.transports import (
    FakeResponse,
    FakeTransport,
    Hang,
    Pause,
    Request,
    Urllib3Transport,
    load_recording,
    sse_stream,
)

pytestmark = pytest.mark.timeout(60)

SERVERS = FIXTURES / "servers"
KEY = "sk-test-key-servers"
BASE = "http://letta.example:8283"
QUICK = Timeouts(connect=5, read=5, authorization=5, total=10)
JSON = {"content-type": "application/json"}
URL = "http://127.0.0.1:8401/mcp#srv-f912a378-http"
NAME = "srv-f912a378-http"
TOOL_NAMES = ["echo", "add", "server_mode"]


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("LETTA_API_KEY", raising=False)
    monkeypatch.delenv("LETTA_BASE_URL", raising=False)


def recorded(name: str) -> FakeResponse:
    return load_recording(SERVERS / f"{name}.txt")


def recorded_json(name: str) -> Any:
    return json.loads((SERVERS / f"{name}.txt").read_bytes())


def recorded_request(name: str) -> tuple[str, str, bytes]:
    """Method, path and body of ``NAME.request.txt``."""
    head, _, body = (SERVERS / f"{name}.request.txt").read_bytes().partition(b"\n\n")
    method, path = head.split(b"\n")[0].decode().split(" ", 1)
    return method, path, body


def connect_ok(server_name: str = NAME) -> FakeResponse:
    return sse_stream(
        [{"event": "connection_attempt", "server_name": server_name},
         {"event": "success", "tools": [{"name": n} for n in TOOL_NAMES]}]
    )


def created(name: str = NAME, url: str = URL, **fields: Any) -> FakeResponse:
    record = {"mcp_server_type": "streamable_http", "server_url": url, "auth_header": None,
              "auth_token": None, "custom_headers": None, "id": "mcp_server-1",
              "server_name": name, **fields}
    return FakeResponse(200, JSON, [json.dumps(record).encode()])


def config(name: str = NAME, url: str = URL, **extra: Any) -> McpConnectConfig:
    return McpConnectConfig(server_name=name, type="streamable_http", server_url=url, **extra)


def add(transport: FakeTransport, cfg: Any = None, **kwargs: Any) -> Any:
    """add_server over the fake: the server, or the McpConnectError it raised."""
    kwargs.setdefault("timeout", QUICK)
    try:
        return mcpconnect.add_server(
            config() if cfg is None else cfg, base_url=BASE, api_key=KEY, transport=transport,
            **kwargs,
        )
    except McpConnectError as exc:
        return exc


def client_call(transport: FakeTransport, call: Callable[[Client], Any]) -> Any:
    with Client(base_url=BASE, api_key=KEY, transport=transport, timeout=QUICK) as client:
        try:
            return call(client)
        except McpConnectError as exc:
            return exc


# --- add_server over the fake, replaying the recordings -------------------------------------


def test_add_server_replays_the_recorded_create() -> None:
    fake = FakeTransport([load_recording(FIXTURES / "noauth_streamable_success.txt"),
                          recorded("create_streamable_noauth")])
    events: list[McpOauthEvent] = []
    server = add(fake, on_event=events.append)
    record = recorded_json("create_streamable_noauth")
    assert server == McpServer(
        id=record["id"], server_name=NAME, type="streamable_http", server_url=URL,
        tools=tuple(events[-1].tools or ()),
    )
    assert [t.name for t in server.tools] == TOOL_NAMES
    assert [str(e.event) for e in events] == ["connection_attempt", "success"]
    connect_request, create = fake.requests
    assert connect_request.url == BASE + "/v1/tools/mcp/servers/connect"
    method, path, body = recorded_request("create_streamable_noauth")
    assert (create.method, create.url) == (method, BASE + path)
    assert create.json() == json.loads(body)
    assert create.headers["Authorization"] == f"Bearer {KEY}"
    assert create.headers["Content-Type"] == "application/json"
    assert create.headers["Accept"] == "application/json"


def test_add_server_with_oauth_replays_the_recorded_flow() -> None:
    """Section 4: connect (OAuth approved) then create with the same URL string."""
    name, url = "srv-f912a378-oauth", "http://127.0.0.1:8403/mcp#srv-f912a378-oauth"
    fake = FakeTransport([recorded("oauth_connect_approve"), recorded("oauth_create_same_url")])
    events: list[McpOauthEvent] = []
    server = add(fake, config(name, url), on_event=events.append)
    assert isinstance(server, McpServer)
    assert server.id == recorded_json("oauth_create_same_url")["id"]
    assert [str(e.event) for e in events] == [
        "connection_attempt", "oauth_required", "authorization_url", "waiting_for_auth",
        "success",
    ]
    _, _, connect_body = recorded_request("oauth_connect_approve")
    _, _, create_body = recorded_request("oauth_create_same_url")
    assert fake.requests[0].json() == json.loads(connect_body)
    assert fake.requests[1].json() == json.loads(create_body)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8403/mcp#srv-oauth",
        "http://127.0.0.1:8403/mcp/#srv-oauth",
        "http://127.0.0.1:8403/mcp/",
        "https://MCP.Example.com:443/mcp?x=1&y=%2F#f",
        "https://mcp.example.com/a%20b/../mcp",
        "https://user:pw@mcp.example.com/mcp",
    ],
)
def test_the_exact_url_is_carried_to_connect_and_create(url: str) -> None:
    fake = FakeTransport([connect_ok("x"), created("x", url)])
    server = add(fake, config("x", url))
    assert isinstance(server, McpServer)
    assert fake.requests[0].json()["server_url"] == url
    assert fake.requests[1].json()["config"]["server_url"] == url
    assert server.server_url == url


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("https://mcp.github.com/mcp", "github"),
        ("https://www.example.org/x", "example"),
        ("https://api.linear.app/mcp", "linear"),
        ("https://www.mcp.example.com", "mcp"),  # one prefix only, as letta-code
        ("https://mcp/x", "mcp"),
        ("http://localhost:3000/mcp", "localhost"),
        ("http://127.0.0.1:8401/mcp", "127"),
        ("https://My-Server_1.example.com", "my-server_1"),
        ("http://[::1]:8080/mcp", "mcp-server"),
        ("https://mcp.b\u00fccher.example/mcp", "mcp-server"),
        ("https://" + "a" * 65 + ".example.com", "mcp-server"),
        ("not a url", "mcp-server"),
        ("http://[bad/mcp", "mcp-server"),
    ],
)
def test_default_server_name(url: str, name: str) -> None:
    assert default_server_name(url) == name


def test_the_connect_limit_during_the_connect_sends_no_create(hung_url: str) -> None:  # noqa: F811
    transport = Urllib3Transport()
    try:
        with pytest.raises(ConnectTimeoutError) as info:
            mcpconnect.add_server(config(), base_url=hung_url, api_key=KEY, transport=transport,
                                  timeout=Timeouts(connect=0.2, read=0.05, total=10))
    finally:
        transport.close()
    assert (info.value.limit, info.value.state) == ("connect", "connecting")


def test_mcp_server_is_frozen_and_pickles() -> None:
    import pickle

    headers = {"X-A": "1"}
    server = McpServer.from_dict({"id": "i", "server_name": "n", "mcp_server_type": "sse",
                                  "custom_headers": headers, "more": [1]},
                                 tools=(McpTool(name="t"),))
    headers["X-A"] = "changed"
    assert server.custom_headers == {"X-A": "1"}
    with pytest.raises(TypeError):
        server.custom_headers["X-B"] = "2"  # type: ignore[index]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        server.id = "other"  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(server)) == server
    assert server.extra == {"more": [1]}


def test_a_mapping_without_server_name_gets_the_default_name() -> None:
    fake = FakeTransport([connect_ok("github"), created("github")])
    server = add(fake, {"type": "streamable_http", "server_url": "https://mcp.github.com/mcp"})
    assert isinstance(server, McpServer)
    assert fake.requests[0].json()["server_name"] == "github"
    assert fake.requests[1].json()["server_name"] == "github"


def test_name_overrides_the_configs_server_name_in_both_steps() -> None:
    fake = FakeTransport([connect_ok("other"), created("other")])
    assert isinstance(add(fake, config("bad name!"), name="other"), McpServer)
    assert fake.requests[0].json()["server_name"] == "other"
    assert fake.requests[1].json()["server_name"] == "other"


@pytest.mark.parametrize(
    "name", ["bad name", "a/b", "x" * 65, "b\u00fccher", "a\n", "a?b", "#", "%2F"]
)
def test_invalid_names_are_refused_before_any_request(name: str) -> None:
    fake = FakeTransport()
    outcome = add(fake, config(), name=name)
    assert isinstance(outcome, ConfigError)
    assert repr(name) in str(outcome)
    assert fake.requests == []
    if "\n" in name:  # McpConnectConfig itself refuses a control character
        with pytest.raises(ConfigError):
            config(name=name)
        return
    outcome = add(fake, config(name=name))  # the config's own server_name is checked too
    assert isinstance(outcome, ConfigError)
    assert fake.requests == []


def test_the_longest_name_is_accepted() -> None:
    fake = FakeTransport([connect_ok("x" * 64), created("x" * 64)])
    assert isinstance(add(fake, config("x" * 64)), McpServer)


def test_bad_configs_are_refused_before_any_request() -> None:
    fake = FakeTransport()
    for cfg, kwargs in [
        (42, {}),
        ({"type": "streamable_http"}, {}),
        ({"server_url": "https://mcp.x.com", "type": "ws"}, {}),
        (config(), {"name": 7}),
        (config(), {"on_event": "print"}),
        (config(), {"cancel": True}),
        (config(), {"timeout": -1}),
    ]:
        assert isinstance(add(fake, cfg, **kwargs), ConfigError)
    assert fake.requests == []


def test_a_duplicate_name_replays_the_recorded_409() -> None:
    fake = FakeTransport([connect_ok(), recorded("create_duplicate_name")])
    err = add(fake, config(url=URL + "-dup"))
    assert isinstance(err, DuplicateServerNameError)
    assert isinstance(err, ConnectionFailedError)
    assert str(err) == f"Letta already has an MCP server named {NAME!r} (409); pick another name"
    assert (err.status, err.body, err.server_name) == (409, "", NAME)
    assert "SQL" not in repr(err.args) and "INSERT" not in repr(err.args)


@pytest.mark.parametrize(
    ("recording", "explained"),
    [
        ("create_missing_server_url", "config.streamable_http.server_url: Field required"),
        (
            "create_unknown_type",
            "config: Input tag 'websocket' found using 'mcp_server_type' does not match any "
            "of the expected tags: <MCPServerType.STDIO: 'stdio'>, <MCPServerType.SSE: 'sse'>, "
            "<MCPServerType.STREAMABLE_HTTP: 'streamable_http'>",
        ),
        ("create_missing_config", "config: Field required"),
        (
            "create_legacy_flat_body",
            "config: Field required; type: Extra inputs are not permitted; "
            "server_url: Extra inputs are not permitted",
        ),
    ],
)
def test_422_is_explained(recording: str, explained: str) -> None:
    fake = FakeTransport([connect_ok("x"), recorded(recording)])
    err = add(fake, config("x"))
    assert type(err) is ConnectionFailedError
    assert str(err) == f"Letta refused the request to register MCP server 'x' (422): {explained}"
    assert (err.status, err.body) == (422, explained)


def test_other_statuses_fail_plainly_without_secrets() -> None:
    token = "Bearer s3cr3t-token-value"
    echo = json.dumps({"detail": f"boom {token} and {token[7:]} and v4lue-h"}).encode()
    fake = FakeTransport([connect_ok("x"), FakeResponse(500, JSON, [echo])])
    err = add(fake, config("x", auth_header="Authorization", auth_token=token,
                           custom_headers={"X-H": "v4lue-h"}))
    assert type(err) is ConnectionFailedError
    assert err.status == 500
    assert str(err) == ("Could not register MCP server 'x' (500): "
                        '{"detail": "boom *** and *** and ***"}')
    assert "s3cr3t" not in err.body and "v4lue" not in err.body


def test_422_never_repeats_the_input() -> None:
    """Letta's 422 detail holds the body we sent (a token too): only loc and msg are kept."""
    detail = repr([{"type": "missing", "loc": ("body", "config", "sse", "server_url"),
                    "msg": "Field required", "input": {"auth_token": "tok-s3cr3t"}}])
    fake = FakeTransport([connect_ok("x"), FakeResponse(
        422, JSON, [json.dumps({"trace_id": "", "detail": detail}).encode()])])
    err = add(fake, config("x", auth_header="Authorization", auth_token="Bearer tok-s3cr3t"))
    assert isinstance(err, ConnectionFailedError)
    assert "s3cr3t" not in str(err) and "s3cr3t" not in err.body
    assert err.body == "config.sse.server_url: Field required"


# --- the auth header --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("auth_header", "auth_token", "headers", "expected"),
    [
        ("Authorization", "Bearer t-1", None,
         {"auth_header": "Authorization", "auth_token": "Bearer t-1"}),
        ("authorization", "Bearer t-1", {"X-E": "1"},
         {"auth_header": "authorization", "auth_token": "Bearer t-1",
          "custom_headers": {"X-E": "1"}}),
        ("X-Api-Key", "k-123", None, {"custom_headers": {"X-Api-Key": "k-123"}}),
        ("X-Api-Key", "k-123", {"X-E": "1"},
         {"custom_headers": {"X-E": "1", "X-Api-Key": "k-123"}}),
        ("Authorization", "Basic dXNlcjpw", None,
         {"custom_headers": {"Authorization": "Basic dXNlcjpw"}}),
        ("X-Api-Key", None, None, {}),
        (None, None, {"X-E": "1"}, {"custom_headers": {"X-E": "1"}}),
    ],
)
def test_the_auth_header_is_sent_so_that_letta_keeps_it(
    auth_header: str | None, auth_token: str | None, headers: dict[str, str] | None,
    expected: dict[str, Any],
) -> None:
    """Letta keeps only the token of auth_header/auth_token and sends it as a bearer token
    (create_with_custom_auth_header_name), but keeps custom headers as they are
    (create_with_bearer_and_custom_headers)."""
    fake = FakeTransport([connect_ok("x"), created("x")])
    cfg = config("x", auth_header=auth_header, auth_token=auth_token, custom_headers=headers)
    assert isinstance(add(fake, cfg), McpServer)
    assert fake.requests[1].json()["config"] == {
        "mcp_server_type": "streamable_http", "server_url": URL, **expected,
    }
    # the connect itself posts the config as the user gave it
    assert fake.requests[0].json().get("auth_header") == auth_header


def test_auth_setups_letta_would_change_are_refused() -> None:
    fake = FakeTransport()
    with pytest.raises(ConfigError) as token_only:  # McpConnectConfig itself refuses it
        config("x", auth_token="t")
    assert "auth_header" in str(token_only.value)
    clash = add(fake, config("x", auth_header="X-Api-Key", auth_token="k",
                             custom_headers={"x-api-key": "other"}))
    assert isinstance(clash, ConfigError)
    assert fake.requests == []
    assert "other" not in str(clash) and "'k'" not in str(clash)


# --- failures after the OAuth authorization ----------------------------------------------------

NOTE = ("The OAuth authorization succeeded and Letta stored it for http://127.0.0.1:8403/mcp "
        "(by its exact server_url), so adding it again with the same URL (and another name) "
        "goes straight to success")
OAUTH = ("srv-f912a378-http", "http://127.0.0.1:8403/mcp#srv-f912a378-oauth")


def test_a_failure_after_oauth_says_the_authorization_is_stored() -> None:
    fake = FakeTransport([recorded("oauth_connect_approve"), recorded("create_duplicate_name")])
    err = add(fake, config(*OAUTH))
    assert isinstance(err, DuplicateServerNameError)
    assert str(err) == (
        f"Letta already has an MCP server named {NAME!r} (409); pick another name. {NOTE}"
    )


@pytest.mark.parametrize(
    ("create", "kind"),
    [
        (FakeResponse(500, JSON, [b'{"detail":"x"}']), ConnectionFailedError),
        (FakeResponse(200, JSON, [ConnectionResetError("reset")]), TransportError),
        (FakeResponse(200, JSON, [Hang()]), ConnectTimeoutError),
        (FakeResponse(200, JSON, [b"not json"]), ProtocolError),
    ],
)
def test_every_failure_after_oauth_says_so(create: FakeResponse, kind: type) -> None:
    fake = FakeTransport([recorded("oauth_connect_approve"), create])
    err = add(fake, config(*OAUTH), timeout=Timeouts(read=0.2, total=10))
    assert type(err) is kind
    assert str(err).endswith(NOTE)


def test_a_failure_without_oauth_has_no_note() -> None:
    fake = FakeTransport([connect_ok(), FakeResponse(500, JSON, [b"{}"])])
    err = add(fake)
    assert isinstance(err, ConnectionFailedError)
    assert "OAuth" not in str(err)


# --- cancel and the time limits, in both steps ---------------------------------------------


def set_later(event: threading.Event, when: Callable[[], bool]) -> threading.Thread:
    def run() -> None:
        deadline = time.monotonic() + 10
        while not when() and time.monotonic() < deadline:
            time.sleep(0.005)
        event.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_cancel_during_the_connect_sends_no_create() -> None:
    fake = FakeTransport([sse_stream([{"event": "connection_attempt"}], then=[Hang()])])
    cancel = threading.Event()
    set_later(cancel, lambda: len(fake.requests) == 1)
    err = add(fake, cancel=cancel)
    assert isinstance(err, ConnectCancelledError)
    assert err.state == "connection_attempt"
    assert len(fake.requests) == 1


def test_cancel_during_the_create() -> None:
    fake = FakeTransport([connect_ok(), FakeResponse(200, JSON, [Hang()])])
    cancel = threading.Event()
    set_later(cancel, lambda: len(fake.requests) == 2)
    err = add(fake, cancel=cancel)
    assert isinstance(err, ConnectCancelledError)
    assert str(err) == "Connect cancelled (in state registering)"
    assert fake.responses_sent[1].closed


def test_cancel_between_the_steps_sends_no_create() -> None:
    cancel = threading.Event()

    def on_event(event: McpOauthEvent) -> None:
        if str(event.event) == "success":
            cancel.set()

    fake = FakeTransport([connect_ok(), created()])
    err = add(fake, cancel=cancel, on_event=on_event)
    assert isinstance(err, ConnectCancelledError)
    assert len(fake.requests) == 1


@pytest.mark.parametrize(
    ("connect", "timeouts", "limit", "state"),
    [
        (sse_stream([{"event": "connection_attempt"}], then=[Hang()]),
         Timeouts(read=0.2), "read", "connection_attempt"),
        (sse_stream([{"event": "connection_attempt"}, {"event": "oauth_required"},
                     {"event": "authorization_url", "url": "http://a.example/"},
                     {"event": "waiting_for_auth"}], then=[Hang()]),
         Timeouts(read=5, authorization=0.2), "authorization", "waiting_for_auth"),
        (sse_stream([{"event": "connection_attempt"}], then=[Hang()]),
         Timeouts(read=5, total=0.3), "total", "connection_attempt"),
    ],
)
def test_limits_during_the_connect_send_no_create(
    connect: FakeResponse, timeouts: Timeouts, limit: str, state: str
) -> None:
    fake = FakeTransport([connect])
    err = add(fake, timeout=timeouts)
    assert isinstance(err, ConnectTimeoutError)
    assert (err.limit, err.state) == (limit, state)
    assert len(fake.requests) == 1


def test_the_read_limit_during_the_create() -> None:
    fake = FakeTransport([connect_ok(), FakeResponse(200, JSON, [b'{"id"', Hang()])])
    err = add(fake, timeout=Timeouts(read=0.2, total=10))
    assert isinstance(err, ConnectTimeoutError)
    assert (err.limit, err.seconds, err.state) == ("read", 0.2, "registering")


def test_the_total_limit_covers_both_steps() -> None:
    """A connect of about 0.5 s (never silent for 0.25 s), then a create that never answers.
    The total (0.7 s) counts from the start of add_server, so it runs out in the create
    before the read limit (0.4 s) does; were it restarted for the create, read would."""
    ping = b'data: {"event": "still_here"}\n\n'  # an unknown event: passed on, not fatal
    slow = FakeResponse(200, {"content-type": "text/event-stream"}, [
        b'data: {"event": "connection_attempt"}\n\n', Pause(0.25), ping, Pause(0.25),
        b'data: {"event": "success", "tools": []}\n\n'])
    fake = FakeTransport([slow, FakeResponse(200, JSON, [Hang()])])
    err = add(fake, timeout=Timeouts(read=0.4, total=0.7))
    assert isinstance(err, ConnectTimeoutError)
    assert (err.limit, err.seconds, err.state) == ("total", 0.7, "registering")
    assert len(fake.requests) == 2


class _Routed:
    """Connect through the fake, create through a real transport to another URL."""

    def __init__(self, fake: FakeTransport, create_base: str) -> None:
        self.fake, self.real, self.create_base = fake, Urllib3Transport(), create_base

    def send(self, request: Request, timeouts: Timeouts) -> Any:
        if request.method == "POST" and request.url.endswith("/v1/mcp-servers/"):
            moved = attrs.evolve(request, url=self.create_base + "/v1/mcp-servers/")
            return self.real.send(moved, timeouts)
        return self.fake.send(request, timeouts)

    def close(self) -> None:
        self.real.close()


def test_the_connect_limit_during_the_create(hung_url: str) -> None:  # noqa: F811
    routed = _Routed(FakeTransport([connect_ok()]), hung_url)
    try:
        with pytest.raises(ConnectTimeoutError) as info:
            mcpconnect.add_server(config(), base_url=BASE, api_key=KEY, transport=routed,
                                  timeout=Timeouts(connect=0.2, read=0.05, total=10))
    finally:
        routed.close()
    assert info.value.limit == "connect"


# --- list, get, delete over the fake ------------------------------------------------------


def test_list_replays_the_recording() -> None:
    fake = FakeTransport([recorded("list")])
    listed = client_call(fake, lambda c: c.list_servers())
    expected = recorded_json("list")
    assert [(s.id, s.server_name, s.type, s.server_url) for s in listed] == [
        (r["id"], r["server_name"], r["mcp_server_type"], r.get("server_url")) for r in expected
    ]
    assert all(s.tools is None for s in listed)
    method, path, _ = recorded_request("list")
    assert (fake.last_request.method, fake.last_request.url) == (method, BASE + path)


def test_get_replays_the_recording() -> None:
    record = recorded_json("get_by_id")
    fake = FakeTransport([recorded("get_by_id")])
    server = client_call(fake, lambda c: c.get_server(record["id"]))
    assert server == McpServer(id=record["id"], server_name=NAME, type="streamable_http",
                               server_url=URL)
    method, path, _ = recorded_request("get_by_id")
    assert (fake.last_request.method, fake.last_request.url) == (method, BASE + path)


def test_get_with_secrets_keeps_them_out_of_the_repr() -> None:
    record = recorded_json("get_by_id_with_bearer_and_custom_headers")
    fake = FakeTransport([recorded("get_by_id_with_bearer_and_custom_headers")])
    server = client_call(fake, lambda c: c.get_server(record["id"]))
    assert (server.auth_header, server.auth_token, server.custom_headers) == (
        "Authorization", "Bearer static-token", {"X-Extra": "1"})
    assert "static-token" not in repr(server)
    assert "['X-Extra']" in repr(server) and "'1'" not in repr(server)


@pytest.mark.parametrize("recording", ["get_unknown_id", "get_wrong_format_id",
                                       "get_other_prefix_id"])
def test_get_of_an_unknown_id(recording: str) -> None:
    server_id = recorded_request(recording)[1].rsplit("/", 1)[1]
    fake = FakeTransport([recorded(recording)])
    err = client_call(fake, lambda c: c.get_server(server_id))
    assert isinstance(err, ServerNotFoundError)
    assert str(err) == f"Letta has no MCP server with id {server_id!r} (404)"
    assert (err.status, err.server_id) == (404, server_id)


def test_delete_replays_the_recording() -> None:
    server_id = recorded_request("delete_server")[1].rsplit("/", 1)[1]
    fake = FakeTransport([recorded("delete_server")])
    assert client_call(fake, lambda c: c.delete_server(server_id)) is None
    assert (fake.last_request.method, fake.last_request.url) == (
        "DELETE", f"{BASE}/v1/mcp-servers/{server_id}")


@pytest.mark.parametrize("recording", ["delete_unknown_id", "delete_wrong_format_id",
                                       "delete_deleted_id"])
def test_delete_of_an_unknown_id_is_the_400(recording: str) -> None:
    server_id = recorded_request(recording)[1].rsplit("/", 1)[1]
    fake = FakeTransport([recorded(recording)])
    err = client_call(fake, lambda c: c.delete_server(server_id))
    assert isinstance(err, ServerNotFoundError)
    assert str(err) == f"Letta has no MCP server with id {server_id!r} (400)"


def test_the_routers_404_is_not_an_unknown_id() -> None:
    """A wrong base URL answers 404 "Not Found" for every path: that is no unknown id."""
    fake = FakeTransport([FakeResponse(404, JSON, [b'{"detail":"Not Found"}'])] * 2)
    assert type(client_call(fake, lambda c: c.get_server("x"))) is ConnectionFailedError
    assert type(client_call(fake, lambda c: c.delete_server("x"))) is ConnectionFailedError


def test_ids_are_quoted_into_the_path() -> None:
    fake = FakeTransport([created()])
    client_call(fake, lambda c: c.get_server("a/b ?#"))
    assert fake.last_request.url == BASE + "/v1/mcp-servers/a%2Fb%20%3F%23"
    for bad in ("", None, 3):
        assert isinstance(client_call(fake, lambda c, b=bad: c.get_server(b)), ConfigError)
        assert isinstance(client_call(fake, lambda c, b=bad: c.delete_server(b)), ConfigError)
    assert len(fake.requests) == 1


def test_connect_server_replays_the_recordings() -> None:
    server_id = recorded_request("connect_by_id_streamable")[1].rsplit("/", 1)[1]
    fake = FakeTransport([recorded("connect_by_id_streamable"), recorded("connect_by_id_unknown")])
    tools = client_call(fake, lambda c: c.connect_server(server_id))
    assert [t.name for t in tools] == TOOL_NAMES
    assert fake.last_request.url == f"{BASE}/v1/mcp-servers/connect/{server_id}"
    err = client_call(fake, lambda c: c.connect_server("mcp_server-0"))
    assert isinstance(err, ServerNotFoundError)
    assert str(err) == "Letta has no MCP server with id 'mcp_server-0' (404)"
    router = FakeResponse(404, JSON, [b'{"detail":"Not Found"}'])
    err = client_call(FakeTransport([router]), lambda c: c.connect_server("mcp_server-0"))
    assert type(err) is ConnectionFailedError
    fake = FakeTransport([recorded("connect_by_id_unknown")])
    with Client(base_url=BASE, api_key=KEY, timeout=QUICK, transport=fake) as c, \
            pytest.raises(ServerNotFoundError), c.stream_server_events("mcp_server-0") as events:
        next(events)


def test_stream_server_events_closes_the_connection_when_stopped_early() -> None:
    fake = FakeTransport([recorded("connect_by_id_streamable")])
    with Client(base_url=BASE, api_key=KEY, timeout=QUICK, transport=fake) as c:
        events = c.stream_server_events("mcp_server-1")
        assert str(next(events).event) == "connection_attempt"
        events.close()
    assert fake.responses_sent[0].closed
    fake = FakeTransport([recorded("connect_by_id_streamable")])
    with Client(base_url=BASE, api_key=KEY, timeout=QUICK, transport=fake) as c, \
            c.stream_server_events("mcp_server-1") as events:
        assert [str(e.event) for e in events] == ["connection_attempt", "success"]
    assert [t.name for t in events.tools or ()] == TOOL_NAMES


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (FakeResponse(200, JSON, [b"[1]"]),
         "MCP server 0 of the list is not a JSON object but int"),
        (FakeResponse(200, JSON, [b'{"a": 1}']),
         "the list of MCP servers is not a JSON array but dict"),
        (FakeResponse(200, JSON, [b'[{"id": "i", "server_name": "n"}]']),
         "MCP server 0 of the list: 'mcp_server_type' must be a string, got null"),
        (FakeResponse(200, JSON, [b'[{"id": 5, "server_name": "n", "mcp_server_type": "s"}]']),
         "MCP server 0 of the list: 'id' must be a string, got int"),
        (FakeResponse(200, JSON, [b'[{"id": "i", "server_name": "n", "mcp_server_type": "s", '
                                  b'"custom_headers": {"a": 1}}]']),
         "MCP server 0 of the list: 'custom_headers' must be an object of strings"),
        (FakeResponse(200, JSON, [b"[{"]),
         "the answer to list the MCP servers is not JSON (2 bytes)"),
        (FakeResponse(200, {"content-type": "text/html"}, [b"<html>"]),
         "expected JSON in the answer to list the MCP servers, got 'text/html'"),
    ],
)
def test_answers_that_do_not_fit_are_protocol_errors(
    response: FakeResponse, message: str
) -> None:
    err = client_call(FakeTransport([response]), lambda c: c.list_servers())
    assert isinstance(err, ProtocolError)
    assert str(err) == message


def test_an_error_status_stays_the_error_when_its_body_breaks_off() -> None:
    broken = FakeResponse(409, JSON, [b'{"detail": "A unique', ConnectionResetError("reset")])
    err = add(FakeTransport([connect_ok(), broken]))
    assert isinstance(err, DuplicateServerNameError)
    broken = FakeResponse(404, JSON, [b'{"detail": "MCPServer not', ConnectionResetError("x")])
    err = client_call(FakeTransport([broken]), lambda c: c.get_server("i"))
    assert isinstance(err, ServerNotFoundError)


def test_a_compressed_answer_is_refused() -> None:
    gz = FakeResponse(200, {**JSON, "content-encoding": "gzip"}, [b"\x1f\x8b"])
    err = client_call(FakeTransport([gz]), lambda c: c.list_servers())
    assert isinstance(err, ProtocolError)
    assert "Content-Encoding 'gzip'" in str(err)


def test_unknown_keys_and_types_pass_through() -> None:
    body = [{"id": "i", "server_name": "n", "mcp_server_type": "stdio", "command": "npx",
             "env": {"TOKEN": "s3cr3t"}}]
    listed = client_call(FakeTransport([FakeResponse(200, JSON, [json.dumps(body).encode()])]),
                         lambda c: c.list_servers())
    assert listed == [McpServer(id="i", server_name="n", type="stdio",
                                extra={"command": "npx", "env": {"TOKEN": "s3cr3t"}})]
    assert "s3cr3t" not in repr(listed)


def test_an_answer_over_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(servers_module, "MAX_BODY", 10)
    ok = FakeResponse(200, JSON, [b"[", b" " * 8, b"]"])  # exactly 10 bytes
    big = FakeResponse(200, JSON, [b"[", b" " * 9, b"]"])
    assert client_call(FakeTransport([ok]), lambda c: c.list_servers()) == []
    err = client_call(FakeTransport([big]), lambda c: c.list_servers())
    assert isinstance(err, ProtocolError)
    assert str(err) == "the answer to list the MCP servers is over 10 bytes"


def test_list_get_delete_honour_cancel_and_limits() -> None:
    cancel = threading.Event()
    cancel.set()
    fake = FakeTransport()
    for call in (lambda c: c.list_servers(cancel=cancel),
                 lambda c: c.get_server("i", cancel=cancel),
                 lambda c: c.delete_server("i", cancel=cancel)):
        err = client_call(fake, call)
        assert isinstance(err, ConnectCancelledError)
        assert err.state == "requesting"
    assert fake.requests == []
    fake = FakeTransport([FakeResponse(200, JSON, [Hang()])])
    err = client_call(fake, lambda c: c.get_server("i", timeout=Timeouts(read=0.2)))
    assert isinstance(err, ConnectTimeoutError)
    assert (err.limit, err.state) == ("read", "requesting")
    assert fake.responses_sent[0].closed


def test_a_transport_failure_is_a_transport_error() -> None:
    def refuse(request: Request) -> FakeResponse:
        raise ConnectionRefusedError("refused")

    err = client_call(FakeTransport(refuse), lambda c: c.list_servers())
    assert isinstance(err, TransportError)
    assert str(err) == f"cannot reach {BASE}/v1/mcp-servers/: refused"


# --- secrets ------------------------------------------------------------------------------------


def test_no_secret_in_logs_reprs_or_messages(caplog: pytest.LogCaptureFixture) -> None:
    token, header_value = "Bearer tok-s3cr3t-1", "hv-s3cr3t-2"
    cfg = config("x", "https://user:pw-s3cr3t-3@mcp.example.com/mcp",
                 auth_header="Authorization", auth_token=token,
                 custom_headers={"X-Key": header_value})
    record = {"auth_header": "Authorization", "auth_token": token,
              "custom_headers": {"X-Key": header_value}}
    fake = FakeTransport([connect_ok("x"), created("x", cfg.server_url, **record),
                          connect_ok("x"), FakeResponse(500, JSON, [json.dumps(record).encode()])])
    with caplog.at_level(logging.DEBUG, logger="mcpconnect"):
        server = add(fake, cfg)
        err = add(fake, cfg)
    assert isinstance(server, McpServer) and isinstance(err, ConnectionFailedError)
    shown = "\n".join([caplog.text, repr(server), str(err), err.body, repr(fake.requests)])
    assert "s3cr3t" not in shown
    assert KEY not in shown


# --- over the emulator, through real HTTP ----------------------------------------------------


@pytest.fixture
def emu() -> Iterator[LettaEmulator]:
    with LettaEmulator() as emulator:
        yield emulator


@pytest.fixture
def client(emu: LettaEmulator) -> Iterator[Client]:
    transport = Urllib3Transport(trust_env=False)
    with Client(base_url=emu.base_url, api_key=KEY, transport=transport, timeout=QUICK) as c:
        yield c
    transport.close()


def http(emu: LettaEmulator, method: str, path: str, body: bytes | None = None
         ) -> tuple[int, dict[str, str], bytes]:
    headers = {"Content-Type": "application/json"} if body else {}
    request = urllib.request.Request(emu.base_url + path, body, headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, dict(exc.headers), exc.read()


def replay(emu: LettaEmulator, name: str) -> tuple[int, dict[str, str], bytes]:
    method, path, body = recorded_request(name)
    return http(emu, method, path, body or None)


def recorded_status(name: str) -> int:
    return int((SERVERS / f"{name}.headers.txt").read_text().split()[1])


IDS = re.compile(rb"mcp_server-[0-9a-f-]{36}")


@pytest.mark.parametrize(
    "name",
    ["create_streamable_noauth", "create_sse_noauth", "create_with_bearer_and_custom_headers",
     "create_with_custom_auth_header_name", "create_odd_name", "create_name_with_spaces",
     "create_unreachable_url"],
)
def test_emulator_create_answers_as_recorded(emu: LettaEmulator, name: str) -> None:
    status, headers, body = replay(emu, name)
    assert status == 200
    assert headers["content-type"] == "application/json"
    expected = recorded_json(name)
    got = json.loads(body)
    assert got == {**expected, "id": got["id"]}
    assert IDS.fullmatch(got["id"].encode())


@pytest.mark.parametrize(
    "name",
    ["create_missing_server_url", "create_unknown_type", "create_missing_config",
     "create_legacy_flat_body"],
)
def test_emulator_422_matches_the_recording_byte_for_byte(emu: LettaEmulator, name: str) -> None:
    status, _, body = replay(emu, name)
    assert (status, body) == (422, (SERVERS / f"{name}.txt").read_bytes())


def test_emulator_409_matches_the_recording(emu: LettaEmulator) -> None:
    assert replay(emu, "create_streamable_noauth")[0] == 200
    status, _, body = replay(emu, "create_duplicate_name")
    expected = (SERVERS / "create_duplicate_name.txt").read_bytes()
    assert status == 409
    assert IDS.sub(b"<id>", body) == IDS.sub(b"<id>", expected)


@pytest.mark.parametrize(
    "name",
    ["get_unknown_id", "get_wrong_format_id", "get_other_prefix_id", "delete_unknown_id",
     "delete_wrong_format_id", "tools_unknown_id", "connect_by_id_unknown"],
)
def test_emulator_unknown_ids_match_the_recording_byte_for_byte(
    emu: LettaEmulator, name: str
) -> None:
    status, _, body = replay(emu, name)
    assert (status, body) == (recorded_status(name), (SERVERS / f"{name}.txt").read_bytes())


def test_emulator_get_list_tools_connect_delete(emu: LettaEmulator) -> None:
    record = json.loads(replay(emu, "create_streamable_noauth")[2])
    other = json.loads(replay(emu, "create_sse_noauth")[2])
    path = f"/v1/mcp-servers/{record['id']}"
    assert json.loads(http(emu, "GET", path)[2]) == record
    assert json.loads(http(emu, "GET", "/v1/mcp-servers/")[2]) == [record, other]

    tools = json.loads(http(emu, "GET", path + "/tools")[2])
    recorded_tools = recorded_json("tools_streamable")
    assert sorted(t["name"] for t in tools) == sorted(t["name"] for t in recorded_tools)
    assert [sorted(t) for t in tools] == [sorted(recorded_tools[0])] * 3
    schema_keys = sorted(recorded_tools[0]["json_schema"])
    assert [sorted(t["json_schema"]) for t in tools] == [schema_keys] * 3
    assert {t["metadata_"]["mcp"]["server_id"] for t in tools} == {record["id"]}

    status, headers, body = http(emu, "GET", "/v1/mcp-servers/connect/" + record["id"])
    assert (status, body) == (200, (SERVERS / "connect_by_id_streamable.txt").read_bytes())

    status, headers, body = http(emu, "DELETE", path)
    assert (status, body, headers["content-type"]) == (204, b"", "application/json")
    assert http(emu, "GET", path)[0] == 404
    assert http(emu, "GET", path + "/tools")[2] == b"[]"
    assert http(emu, "DELETE", path)[0] == 400


def browse(url: str) -> None:
    with urllib.request.urlopen(url, timeout=10) as page:
        page.read()


def authorize_in_a_thread(event: McpOauthEvent) -> None:
    if str(event.event) == "authorization_url" and event.url:
        threading.Thread(target=browse, args=(event.url,), daemon=True).start()


def test_emulator_links_the_authorization_by_the_exact_url(emu: LettaEmulator) -> None:
    """Section 4 of the recordings: tools for the same URL string only."""
    emu.scenario = Scenario(oauth="approve")
    a = "http://127.0.0.1:8403/mcp#srv-oauth"
    transport = Urllib3Transport(trust_env=False)
    with Client(base_url=emu.base_url, api_key=KEY, timeout=QUICK, transport=transport) as c:
        c.connect(config("o", a), on_event=authorize_in_a_thread)
    transport.close()
    for name, url, count in [("same", a, 3), ("frag", a + "-other", 0),
                             ("slash", "http://127.0.0.1:8403/mcp/#srv-oauth", 0)]:
        create = {"server_name": name,
                  "config": {"mcp_server_type": "streamable_http", "server_url": url}}
        record = json.loads(http(emu, "POST", "/v1/mcp-servers/", json.dumps(create).encode())[2])
        tools = json.loads(http(emu, "GET", f"/v1/mcp-servers/{record['id']}/tools")[2])
        assert len(tools) == count, name


def test_add_server_without_oauth(emu: LettaEmulator, client: Client) -> None:
    server = client.add_server({"type": "sse", "server_url": "https://mcp.deepwiki.com/sse"})
    assert (server.server_name, server.type, server.server_url) == (
        "deepwiki", "sse", "https://mcp.deepwiki.com/sse")
    assert [t.name for t in server.tools or ()] == TOOL_NAMES
    assert client.get_server(server.id) == attrs_evolve(server, tools=None)
    assert client.list_servers() == [attrs_evolve(server, tools=None)]
    create = next(r for r in emu.requests if r.path == "/v1/mcp-servers/")
    assert create.body == {"server_name": "deepwiki", "config": {
        "mcp_server_type": "sse", "server_url": "https://mcp.deepwiki.com/sse"}}
    client.delete_server(server.id)
    assert client.list_servers() == []
    with pytest.raises(ServerNotFoundError):
        client.get_server(server.id)
    with pytest.raises(ServerNotFoundError) as info:
        client.delete_server(server.id)
    assert info.value.status == 400


def attrs_evolve(server: McpServer, **changes: Any) -> McpServer:
    return attrs.evolve(server, **changes)


def test_add_server_with_oauth_then_a_retry_goes_straight_to_success(
    emu: LettaEmulator, client: Client
) -> None:
    emu.scenario = Scenario(oauth="approve")
    url = "http://127.0.0.1:8403/mcp#srv-oauth"
    taken = {"server_name": "taken", "config": {"mcp_server_type": "sse", "server_url": url}}
    assert http(emu, "POST", "/v1/mcp-servers/", json.dumps(taken).encode())[0] == 200
    events: list[McpOauthEvent] = []

    def on_event(event: McpOauthEvent) -> None:
        events.append(event)
        authorize_in_a_thread(event)

    with pytest.raises(DuplicateServerNameError) as info:
        client.add_server(config("other", url), name="taken", on_event=on_event)
    assert "oauth_required" in [str(e.event) for e in events]
    assert str(info.value) == (
        "Letta already has an MCP server named 'taken' (409); pick another name. The OAuth "
        "authorization succeeded and Letta stored it for http://127.0.0.1:8403/mcp (by its "
        "exact server_url), so adding it again with the same URL (and another name) goes "
        "straight to success"
    )
    assert info.value.body == ""

    events.clear()
    server = client.add_server(config("fresh", url), on_event=events.append)
    assert [str(e.event) for e in events] == ["connection_attempt", "success"]
    assert [t.name for t in server.tools or ()] == TOOL_NAMES
    _, _, body = http(emu, "GET", f"/v1/mcp-servers/{server.id}/tools")
    assert len(json.loads(body)) == 3  # Letta linked the authorization by the exact URL


def test_add_server_keeps_a_custom_auth_header(emu: LettaEmulator, client: Client) -> None:
    """What Letta does with X-Api-Key sent naively (create_with_custom_auth_header_name), and
    what add_server does instead."""
    naive = json.loads(replay(emu, "create_with_custom_auth_header_name")[2])
    assert (naive["auth_header"], naive["auth_token"]) == ("Authorization", "Bearer k-123")
    server = client.add_server(config("apikey", auth_header="X-Api-Key", auth_token="k-123"))
    assert (server.auth_header, server.auth_token, server.custom_headers) == (
        None, None, {"X-Api-Key": "k-123"})
    assert client.get_server(server.id).custom_headers == {"X-Api-Key": "k-123"}


def test_duplicate_over_the_emulator_keeps_the_sql_and_token_out(
    emu: LettaEmulator, client: Client
) -> None:
    cfg = config("dup", auth_header="Authorization", auth_token="Bearer tok-s3cr3t")
    client.add_server(cfg)
    with pytest.raises(DuplicateServerNameError) as info:
        client.add_server(cfg)
    err = info.value
    raw = [r for r in emu.requests if r.path == "/v1/mcp-servers/"]
    assert len(raw) == 2
    assert "s3cr3t" not in f"{err} {err.body} {err.args!r}"
    assert str(err) == "Letta already has an MCP server named 'dup' (409); pick another name"


def test_add_server_honours_the_emulators_api_key() -> None:
    with LettaEmulator(api_key="right") as emu, Client(
        base_url=emu.base_url, api_key="wrong", transport=Urllib3Transport(trust_env=False),
        timeout=QUICK,
    ) as c, pytest.raises(ConnectionFailedError) as info:
        c.list_servers()
    assert info.value.status == 401


def test_module_level_add_server_over_the_emulator(emu: LettaEmulator) -> None:
    transport = Urllib3Transport(trust_env=False)
    server = mcpconnect.add_server(config("mod"), base_url=emu.base_url, api_key=KEY,
                                   transport=transport, timeout=QUICK)
    transport.close()
    assert server.server_name == "mod"
    assert isinstance(server.tools, tuple) and all(isinstance(t, McpTool) for t in server.tools)
