"""Where the base URL and the API key come from: argument, environment, settings file."""

from __future__ import annotations

import json
import pathlib

import pytest

import mcpconnect
from mcpconnect import ConfigError, MissingApiKeyError
from mcpconnect._settings import (
    DEFAULT_BASE_URL,
    default_settings_path,
    resolve_api_key,
    resolve_base_url,
)
from mcpconnect.transports import FakeTransport, sse_stream

CONFIG = {"server_name": "s", "type": "sse", "server_url": "https://mcp.example.com/sse"}


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LETTA_API_KEY", raising=False)
    monkeypatch.delenv("LETTA_BASE_URL", raising=False)


def write(path: pathlib.Path, data: object) -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


@pytest.fixture
def settings(tmp_path: pathlib.Path) -> pathlib.Path:
    return write(
        tmp_path / "settings.json",
        {"env": {"LETTA_BASE_URL": "https://file.example", "LETTA_API_KEY": "file-key"},
         "other": 1},
    )


def test_default_settings_path_is_in_home(tmp_path: pathlib.Path) -> None:
    assert default_settings_path() == tmp_path / "home" / ".letta" / "settings.json"


def test_defaults_with_nothing_set(tmp_path: pathlib.Path) -> None:
    assert resolve_base_url(None, environ={}) == DEFAULT_BASE_URL == "https://api.letta.com"
    with pytest.raises(MissingApiKeyError) as info:
        resolve_api_key(None, environ={})
    assert str(info.value) == "Missing LETTA_API_KEY"


def test_argument_wins_over_environment_and_file(settings: pathlib.Path) -> None:
    env = {"LETTA_BASE_URL": "https://env.example", "LETTA_API_KEY": "env-key"}
    assert resolve_base_url("https://arg.example", environ=env, settings_path=settings) == (
        "https://arg.example"
    )
    assert resolve_api_key("arg-key", environ=env, settings_path=settings) == "arg-key"


def test_environment_wins_over_file(settings: pathlib.Path) -> None:
    env = {"LETTA_BASE_URL": "https://env.example", "LETTA_API_KEY": "env-key"}
    assert resolve_base_url(None, environ=env, settings_path=settings) == "https://env.example"
    assert resolve_api_key(None, environ=env, settings_path=settings) == "env-key"


def test_empty_environment_values_fall_through(settings: pathlib.Path) -> None:
    env = {"LETTA_BASE_URL": "", "LETTA_API_KEY": ""}
    assert resolve_base_url(None, environ=env, settings_path=settings) == "https://file.example"
    assert resolve_api_key(None, environ=env, settings_path=settings) == "file-key"


def test_file_at_the_default_path(tmp_path: pathlib.Path) -> None:
    write(default_settings_path(), {"env": {"LETTA_API_KEY": "home-key"}})
    assert resolve_api_key(None, environ={}) == "home-key"
    assert resolve_base_url(None, environ={}) == DEFAULT_BASE_URL


def test_trailing_slashes_are_dropped() -> None:
    assert resolve_base_url("http://localhost:8283/", environ={}) == "http://localhost:8283"
    assert resolve_base_url("https://h.example/letta//", environ={}) == "https://h.example/letta"


@pytest.mark.parametrize("url", ["localhost:8283", "ftp://h.example", "/v1", "https://"])
def test_base_url_must_be_absolute_http(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_base_url(url, environ={})
    assert str(info.value).startswith("base URL must be an absolute http(s) URL, got ")


def test_the_file_is_not_read_when_not_needed(tmp_path: pathlib.Path) -> None:
    broken = write(tmp_path / "broken.json", "{not json")
    assert resolve_api_key("k", environ={}, settings_path=broken) == "k"
    assert resolve_base_url(None, environ={"LETTA_BASE_URL": "http://h"},
                            settings_path=broken) == "http://h"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not valid JSON: Expecting property name enclosed in double quotes: "
                      "line 1 column 2 (char 1)"),
        ("[1, 2]", ": expected an object with an 'env' object"),
        ('{"env": [1]}', ": expected an object with an 'env' object"),
        ('{"env": {"LETTA_API_KEY": 5}}', ": env.LETTA_API_KEY must be a string"),
    ],
)
def test_malformed_settings_file_is_a_clear_config_error(
    tmp_path: pathlib.Path, content: str, message: str
) -> None:
    path = write(tmp_path / "settings.json", content)
    with pytest.raises(ConfigError) as info:
        resolve_api_key(None, environ={}, settings_path=path)
    assert str(info.value) == f"settings file {path}{'' if message[0] == ':' else ' '}{message}"


def test_unreadable_settings_file_is_a_config_error(tmp_path: pathlib.Path) -> None:
    directory = tmp_path / "settings.json"
    directory.mkdir()
    with pytest.raises(ConfigError) as info:
        resolve_api_key(None, environ={}, settings_path=directory)
    assert str(info.value) == f"cannot read settings file {directory}: IsADirectoryError"
    bad_utf8 = write(tmp_path / "latin.json", "")
    bad_utf8.write_bytes(b'{"env": {"LETTA_API_KEY": "\xff"}}')
    with pytest.raises(ConfigError) as info:
        resolve_api_key(None, environ={}, settings_path=bad_utf8)
    assert str(info.value) == f"cannot read settings file {bad_utf8}: UnicodeDecodeError"


def test_missing_default_file_is_no_error() -> None:
    assert not default_settings_path().exists()
    assert resolve_api_key("k", environ={}) == "k"
    assert resolve_base_url(None, environ={}) == DEFAULT_BASE_URL
    with pytest.raises(MissingApiKeyError):
        resolve_api_key(None, environ={})


def test_missing_file_that_was_named_is_an_error_when_needed(tmp_path: pathlib.Path) -> None:
    absent = tmp_path / "absent.json"
    assert resolve_api_key("k", environ={}, settings_path=absent) == "k"  # not read
    with pytest.raises(ConfigError) as info:
        resolve_api_key(None, environ={}, settings_path=absent)
    assert str(info.value) == f"settings file {absent} does not exist"


def test_api_key_with_a_line_break_is_refused() -> None:
    with pytest.raises(ConfigError) as info:
        resolve_api_key("abc\r\nX-Evil: 1", environ={})
    assert str(info.value) == "the API key contains a line break or NUL"


# --- through connect() ------------------------------------------------------------------


def test_missing_key_raises_before_any_request() -> None:
    transport = FakeTransport(sse_stream([{"event": "success", "tools": []}]))
    with pytest.raises(MissingApiKeyError):
        mcpconnect.connect(CONFIG, transport=transport)
    assert transport.requests == []


def test_connect_reads_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LETTA_API_KEY", "env-key")
    monkeypatch.setenv("LETTA_BASE_URL", "http://env.example:8283/")
    transport = FakeTransport(sse_stream([{"event": "success", "tools": []}]))
    assert mcpconnect.connect(CONFIG, transport=transport) == []
    request = transport.last_request
    assert request.url == "http://env.example:8283/v1/tools/mcp/servers/connect"
    assert request.headers["Authorization"] == "Bearer env-key"


def test_connect_reads_the_settings_file(settings: pathlib.Path) -> None:
    transport = FakeTransport(sse_stream([{"event": "success", "tools": []}]))
    assert mcpconnect.connect(CONFIG, transport=transport, settings_path=settings) == []
    request = transport.last_request
    assert request.url == "https://file.example/v1/tools/mcp/servers/connect"
    assert request.headers["Authorization"] == "Bearer file-key"


def test_connect_with_a_malformed_settings_file(tmp_path: pathlib.Path) -> None:
    path = write(tmp_path / "s.json", "{")
    transport = FakeTransport(sse_stream([{"event": "success", "tools": []}]))
    with pytest.raises(ConfigError):
        mcpconnect.connect(CONFIG, transport=transport, settings_path=path)
    assert transport.requests == []


def test_a_bad_base_url_never_shows_its_credentials() -> None:
    with pytest.raises(ConfigError) as info:
        resolve_base_url("ftp://me:s3cret@letta.example", environ={})
    assert str(info.value) == "base URL must be an absolute http(s) URL, got 'ftp://***@letta.example'"
