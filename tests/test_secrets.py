"""No secret (API key, auth token) in any log record, repr or exception text."""

from __future__ import annotations

import json
import logging
import pathlib
import threading
import traceback
from typing import Any
from urllib.parse import urlsplit

import pytest

import mcpconnect
from mcpconnect import Client, McpConnectConfig, McpConnectError, Timeouts
from mcpconnect.transports import FakeResponse, FakeTransport, Hang, sse_stream

API_KEY = "sk-let-API-SECRET-7f3a9"
TOKEN = "Bearer MCP-TOKEN-SECRET-c41d"
HEADER_SECRET = "HDR-SECRET-99e2"
URL_SECRET = "URL-SECRET-0b7c"
SECRETS = (API_KEY, TOKEN, "API-SECRET", "TOKEN-SECRET", HEADER_SECRET, URL_SECRET)

CONFIG = McpConnectConfig(
    server_name="github", type="streamable_http", server_url="https://mcp.example.com/mcp",
    auth_header="Authorization", auth_token=TOKEN, custom_headers={"X-Key": HEADER_SECRET},
)
FAST = Timeouts(connect=5, read=0.1, authorization=0.1, total=30)
CA = {"event": "connection_attempt", "server_name": "github"}


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("LETTA_API_KEY", raising=False)
    monkeypatch.delenv("LETTA_BASE_URL", raising=False)


def echo_request(status: int) -> Any:
    """A server that puts the request line back in the error body, but not the headers."""
    def respond(request: Any) -> FakeResponse:
        return FakeResponse(status, {"content-type": "text/plain"},
                            [f"{request.method} {urlsplit(request.url).path}".encode()])
    return respond


SCENARIOS: dict[str, Any] = {
    "success": sse_stream([CA, {"event": "success", "tools": [{"name": "t"}]}]),
    "oauth": sse_stream([
        CA, {"event": "oauth_required"},
        {"event": "authorization_url", "url": "https://a.example/authorize", "session_id": "s"},
        {"event": "waiting_for_auth"}, {"event": "success", "tools": []},
    ]),
    "error event": sse_stream([CA, {"event": "error", "message": "nope"}]),
    "error frame": FakeResponse(chunks=[b'event: error\ndata: {"error": "x", "code": 1}\n\n']),
    "no authorization url": sse_stream([CA, {"event": "oauth_required"},
                                        {"event": "waiting_for_auth"}], then=[Hang()]),
    "silent": sse_stream([CA], then=[Hang()]),
    "waiting": sse_stream([CA, {"event": "authorization_url", "url": "https://a.example/x"},
                           {"event": "waiting_for_auth"}], then=[Hang()]),
    "401": echo_request(401),
    "302": FakeResponse(302, {"Location": "https://elsewhere.example/"}, []),
    "html": FakeResponse(200, {"content-type": "text/html"}, [b"<html>"]),
    "bad tools": sse_stream([{"event": "success", "tools": [{"name": 5}]}]),
    "garbage": FakeResponse(chunks=[b"data: not json\n\n", b'data: {"x": 1}\n\n',
                                    b"data: [DONE]\n\n"]),
    "ended": sse_stream([CA]),
    "broken": FakeResponse(chunks=[ConnectionResetError("reset by peer")]),
    "table": sse_stream([CA, CA]),
}


def check(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


@pytest.mark.parametrize("name", list(SCENARIOS))
@pytest.mark.parametrize(
    "base", ["https://letta.example", f"https://me:{URL_SECRET}@letta.example"],
    ids=["plain", "password in the base URL"],
)
def test_no_secret_in_logs_reprs_or_errors(
    name: str, base: str, caplog: pytest.LogCaptureFixture
) -> None:
    transport = FakeTransport(SCENARIOS[name])
    events: list[Any] = []
    caplog.set_level(logging.DEBUG)  # every logger, not only mcpconnect
    error: McpConnectError | None = None
    try:
        mcpconnect.connect(CONFIG, on_event=events.append, base_url=base,
                           api_key=API_KEY, transport=transport, timeout=FAST)
    except McpConnectError as exc:
        error = exc
    assert (error is None) == (name in ("success", "oauth"))
    assert caplog.records, "the scenario logged nothing at debug level"
    for record in caplog.records:
        check(record.getMessage())
        check(repr(record.args))
        if record.exc_info:
            check("".join(traceback.format_exception(*record.exc_info)))
    if error is not None:
        check(str(error))
        check(repr(error))
        check("".join(traceback.format_exception(error)))
        check(repr(vars(error)))
    for event in events:
        check(repr(event))
    for request in transport.requests:
        check(repr(request))
    # The secrets did go where they belong.
    request = transport.last_request
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    assert json.loads(request.body or b"")["auth_token"] == TOKEN


def test_cancel_and_missing_key_errors(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(mcpconnect.ConnectCancelledError) as cancelled:
        mcpconnect.connect(CONFIG, cancel=cancel, base_url="https://l.example",
                           api_key=API_KEY, transport=FakeTransport())
    check(str(cancelled.value))
    with pytest.raises(mcpconnect.ConfigError) as bad:
        mcpconnect.connect({**CONFIG.to_dict(), "type": "stdio"}, api_key=API_KEY,
                           transport=FakeTransport())
    check(str(bad.value))
    with pytest.raises(mcpconnect.ConfigError) as bad_key:
        mcpconnect.connect(CONFIG, api_key=API_KEY + "\n", transport=FakeTransport())
    check(str(bad_key.value))
    for record in caplog.records:
        check(record.getMessage())


def test_settings_file_errors_do_not_show_the_key(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text('{"env": {"LETTA_API_KEY": "' + API_KEY + '", }}')  # trailing comma
    with pytest.raises(mcpconnect.ConfigError) as info:
        mcpconnect.connect(CONFIG, settings_path=path, transport=FakeTransport())
    check(str(info.value))


def test_reprs() -> None:
    with Client(base_url="https://l.example", api_key=API_KEY, transport=FakeTransport()) as c:
        check(repr(c))
        check(str(c))
    check(repr(CONFIG))
    check(str(CONFIG))
    invalid_token = {**CONFIG.to_dict(), "auth_token": 5}
    with pytest.raises(mcpconnect.ConfigError) as info:
        McpConnectConfig.from_dict(invalid_token)
    check(str(info.value))


# --- user-info in URLs, keys that cannot be sent, the emulator's records ------------------

PASSWORD = "URL-PASSWORD-5d1e"


def test_a_password_in_the_base_url_is_masked_everywhere(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    transport = FakeTransport(SCENARIOS["success"])
    base = f"https://me:{PASSWORD}@letta.example:8443/api"
    with Client(base_url=base, api_key=API_KEY, transport=transport) as client:
        assert repr(client) == "Client(base_url='https://***@letta.example:8443/api', " \
                               "transport=FakeTransport)"
        client.connect(CONFIG)
    (request,) = transport.requests
    assert request.url.startswith(base)  # the request itself goes where it was told
    assert PASSWORD not in repr(request)
    assert "'https://***@letta.example:8443/api/v1/tools/mcp/servers/connect'" in repr(request)
    assert any("***@letta.example" in r.getMessage() for r in caplog.records)
    for record in caplog.records:
        assert PASSWORD not in record.getMessage()


def test_a_request_repr_hides_user_info_and_secret_headers() -> None:
    from mcpconnect.transports import Request

    request = Request("GET", f"http://u:{PASSWORD}@h/x", {"Authorization": f"Bearer {API_KEY}",
                                                       "Proxy-Authorization": "Basic PXY"})
    assert repr(request) == (
        "Request(method='GET', url='http://***@h/x', headers={'Authorization': '***', "
        "'Proxy-Authorization': '***'}, body=<0 bytes>)"
    )


def test_where_never_raises_and_never_shows_user_info() -> None:
    from mcpconnect.transports._base import where

    assert where(f"http://u:{PASSWORD}@[::1") == "http://[::1"
    assert where(f"http://u:{PASSWORD}@h:99999/p?q=1#f") == "http://h:99999/p"
    assert where("http://h:abc/x") == "http://h:abc/x"
    assert where("no scheme") == "no scheme"


@pytest.mark.parametrize("key", ["sk-let-\u2019API-SECRET", "sk-let-API-SECRET\u00a0\u200b"])
def test_an_api_key_that_cannot_be_sent_is_a_config_error_without_the_key(key: str) -> None:
    transport = FakeTransport(SCENARIOS["success"])
    with pytest.raises(mcpconnect.ConfigError) as info:
        mcpconnect.connect(CONFIG, base_url="https://l.example", api_key=key,
                           transport=transport)
    check("".join(traceback.format_exception(info.value)))
    check(repr(info.value.args))
    assert transport.requests == []


def test_a_proxy_password_never_shows_in_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    from mcpconnect.transports import Urllib3Transport

    with pytest.raises(mcpconnect.ConfigError) as bad:
        Urllib3Transport(proxy_url=f"http://u:{PASSWORD}@proxy.example:99999")
    assert str(bad.value) == ("proxy_url is not a valid proxy URL (LocationParseError): "
                              "'http://***@proxy.example:99999'")
    assert PASSWORD not in "".join(traceback.format_exception(bad.value))
    # The same URL from the environment is only read at the request: a TransportError then.
    monkeypatch.setenv("HTTPS_PROXY", f"http://u:{PASSWORD}@[proxy.example")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    transport = Urllib3Transport()
    try:
        with pytest.raises(mcpconnect.TransportError) as broken:
            mcpconnect.connect(CONFIG, base_url="https://l.example", api_key=API_KEY,
                               transport=transport)
    finally:
        transport.close()
    text = "".join(traceback.format_exception(broken.value))
    assert PASSWORD not in text
    assert "the proxy URL from the environment is not a valid proxy URL" in str(broken.value)


def test_urllib3_error_texts_lose_their_user_info() -> None:
    from urllib3.exceptions import LocationParseError

    from mcpconnect.transports._urllib3 import _describe

    text = _describe(LocationParseError(f"http://u:{PASSWORD}@h:99999"))
    assert text == "LocationParseError: Failed to parse: http://***@h:99999"


def test_recorded_requests_hide_their_secrets() -> None:
    from mcpconnect.testing import LettaEmulator

    with LettaEmulator() as emulator:
        mcpconnect.connect(CONFIG, base_url=emulator.base_url, api_key=API_KEY)
        (recorded,) = emulator.requests
    assert recorded.body["auth_token"] == TOKEN  # the value itself is kept
    text = repr(recorded)
    check(text)
    assert "'auth_token': '<redacted>'" in text
    assert "'custom_headers': {'X-Key': '<redacted>'}" in text


def test_no_message_shows_a_password_of_the_base_url() -> None:
    base = f"http://me:{PASSWORD}@127.0.0.1:9"
    outcomes: list[BaseException] = []
    for transport in (FakeTransport(), None):  # no response left; connection refused
        try:
            mcpconnect.connect(CONFIG, base_url=base, api_key=API_KEY, transport=transport,
                               timeout=Timeouts(connect=5, total=10))
        except McpConnectError as exc:
            outcomes.append(exc)
    assert [type(e) for e in outcomes] == [mcpconnect.TransportError] * 2
    for error in outcomes:
        text = "".join(traceback.format_exception(error))
        assert PASSWORD not in text
        assert "127.0.0.1" in str(error)
