"""Where the base URL and the API key come from: argument, environment, settings file."""

from __future__ import annotations

import json
import os
import pathlib
import threading

import pytest

import mcpconnect
from mcpconnect import ConfigError, MissingApiKeyError
from mcpconnect._settings import (
    DEFAULT_BASE_URL,
    MAX_SETTINGS_BYTES,
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
    assert str(info.value) == f"base_url must be an absolute http(s) URL, got {url!r}"


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
    assert str(info.value) == "the API key (api_key) contains a control character (U+000D)"


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
    assert str(info.value) == "base_url must be an absolute http(s) URL, got 'ftp://***@letta.example'"


# --- bad values are a ConfigError naming where they came from ---------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (5, "base_url must be a string, got int"),
        (b"http://h.example", "base_url must be a string, got bytes"),
        (pathlib.Path("/h"), f"base_url must be a string, got {type(pathlib.Path()).__name__}"),
        ("http://[::1", "base_url is not a valid URL (Invalid IPv6 URL): 'http://[::1'"),
        ("http://h:99999", "base_url is not a valid URL (Port out of range 0-65535): "
                           "'http://h:99999'"),
        ("http://h:abc", "base_url is not a valid URL (Port could not be cast to integer "
                         "value as 'abc'): 'http://h:abc'"),
        ("http://h:0", "base_url has port 0: 'http://h:0'"),
        ("http://h\x00.example", "base_url contains a space or a control character (U+0000)"),
        ("http://h .example/", "base_url contains a space or a control character (U+0020)"),
        ("http://h.example/\u0085", "base_url contains a space or a control character (U+0085)"),
        ("http://h/?t=1", "base_url must not have a query or a fragment, got 'http://h/?t=1'"),
        ("http://h/#f", "base_url must not have a query or a fragment, got 'http://h/#f'"),
        ("http://h?", "base_url must not have a query or a fragment, got 'http://h?'"),
        ("http://:80", "base_url must be an absolute http(s) URL, got 'http://:80'"),
        ("http://u:pw@[::1", "base_url is not a valid URL (Invalid IPv6 URL): 'http://***@[::1'"),
        ("http://a!b.example", "base_url has an invalid host name: 'http://a!b.example'"),
        ("http://u:pw@a,b:80", "base_url has an invalid host name: 'http://***@a,b:80'"),
        ("http://[v1.fe]/", "base_url has an invalid host name: 'http://[v1.fe]/'"),
    ],
)
def test_bad_base_urls_are_config_errors(url: object, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_base_url(url, environ={})  # type: ignore[arg-type]
    assert str(info.value) == message


def test_a_bad_base_url_names_its_source(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_base_url(None, environ={"LETTA_BASE_URL": "http://h/?x"})
    assert str(info.value) == "LETTA_BASE_URL must not have a query or a fragment, got 'http://h/?x'"
    path = write(tmp_path / "s.json", {"env": {"LETTA_BASE_URL": "http://h:99999"}})
    with pytest.raises(ConfigError) as info:
        resolve_base_url(None, environ={}, settings_path=path)
    assert str(info.value).startswith(f"env.LETTA_BASE_URL in settings file {path} is not a valid")


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (12345, "the API key (api_key) must be a string, got int"),
        (b"sk-key", "the API key (api_key) must be a string, got bytes"),
        ("sk-\u2019key", "the API key (api_key) contains a character that cannot be sent in an "
                         "HTTP header (U+2019, not ASCII; a pasted typographic quote?)"),
        ("sk-\u00a0key", "the API key (api_key) contains a character that cannot be sent in an "
                         "HTTP header (U+00A0, not ASCII; a pasted typographic quote?)"),
        ("sk-key\t", "the API key (api_key) contains a control character (U+0009)"),
        ("sk-\x7fkey", "the API key (api_key) contains a control character (U+007F)"),
        ("sk-\x9bkey", "the API key (api_key) contains a control character (U+009B)"),
    ],
)
def test_bad_api_keys_are_config_errors_without_the_key(key: object, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_api_key(key, environ={})  # type: ignore[arg-type]
    assert str(info.value) == message
    assert "sk-" not in str(info.value) and "12345" not in str(info.value)


def test_a_bad_api_key_from_the_environment_names_it() -> None:
    with pytest.raises(ConfigError) as info:
        resolve_api_key(None, environ={"LETTA_API_KEY": "sk-\u2019"})
    assert str(info.value).startswith("the API key (LETTA_API_KEY) contains a character")


@pytest.mark.parametrize("path", [5, b"/tmp/settings.json", 1.5])
def test_settings_path_must_be_a_path(path: object) -> None:
    with pytest.raises(ConfigError) as info:
        mcpconnect.connect(CONFIG, settings_path=path,  # type: ignore[arg-type]
                           transport=FakeTransport())
    assert str(info.value) == f"settings_path must be a path or None, got {type(path).__name__}"


def test_a_deeply_nested_settings_file_is_a_config_error(tmp_path: pathlib.Path) -> None:
    path = write(tmp_path / "deep.json", "[" * 200_000 + "]" * 200_000)
    with pytest.raises(ConfigError) as info:
        resolve_api_key(None, environ={}, settings_path=path)
    assert str(info.value) == f"settings file {path} is nested too deeply"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs a FIFO (POSIX)")
def test_a_fifo_is_never_opened_for_reading(tmp_path: pathlib.Path) -> None:
    fifo = tmp_path / "settings.json"
    os.mkfifo(fifo)
    outcome: list[BaseException] = []

    def resolve() -> None:
        try:
            resolve_api_key(None, environ={}, settings_path=fifo)
        except BaseException as exc:  # handed to the test thread
            outcome.append(exc)

    thread = threading.Thread(target=resolve, daemon=True)
    thread.start()
    thread.join(10)
    if thread.is_alive():  # unblock the reader, so the test process can end
        with open(fifo, "wb"):
            pass
        thread.join(5)
        pytest.fail("reading the settings file blocked on a FIFO")
    (error,) = outcome
    assert isinstance(error, ConfigError)
    assert str(error) == f"settings file {fifo} is not a regular file"


def test_a_huge_settings_file_is_refused(tmp_path: pathlib.Path) -> None:
    path = write(tmp_path / "big.json", '{"env": {}, "x": "' + "a" * MAX_SETTINGS_BYTES + '"}')
    with pytest.raises(ConfigError) as info:
        resolve_api_key(None, environ={}, settings_path=path)
    assert str(info.value) == f"settings file {path} is larger than {MAX_SETTINGS_BYTES} bytes"


def test_a_nul_in_the_settings_path_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        resolve_api_key(None, environ={}, settings_path="/tmp/a\x00b")
    assert str(info.value).startswith("cannot read settings file")


@pytest.mark.parametrize(
    "url",
    ["http://[::1]:8283", "http://[fe80::1%25eth0]", "http://127.0.0.1:8283/letta",
     "https://b\u00fccher.example", "http://my_host.local:80", "https://u:p@h.example"],
)
def test_good_base_urls_are_kept(url: str) -> None:
    assert resolve_base_url(url, environ={}) == url


@pytest.mark.parametrize("extra", [0, 1])
def test_the_settings_size_limit_is_exact(tmp_path: pathlib.Path, extra: int) -> None:
    head = '{"env": {"LETTA_API_KEY": "file-key"}, "x": "'
    text = head + "a" * (MAX_SETTINGS_BYTES - len(head) - 2 + extra) + '"}'
    path = write(tmp_path / "exact.json", text)
    assert path.stat().st_size == MAX_SETTINGS_BYTES + extra
    if extra:
        with pytest.raises(ConfigError):
            resolve_api_key(None, environ={}, settings_path=path)
    else:
        assert resolve_api_key(None, environ={}, settings_path=path) == "file-key"


@pytest.mark.parametrize("url", ["http://user:pa ss@h.example/", "http://user:pa\tss@h.example/"])
def test_a_base_url_with_a_space_in_its_password_is_not_shown(url: str) -> None:
    # The mask finds user-info up to the "@"; a space would end it early, so a URL with a
    # space is not shown at all.
    with pytest.raises(ConfigError, match="base_url contains a space or a control") as info:
        mcpconnect.Client(base_url=url, api_key="k", transport=FakeTransport([]))
    assert "user:" not in str(info.value) and "ss@" not in str(info.value)
