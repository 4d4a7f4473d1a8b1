"""The command line, run as a user runs it: a subprocess against a LettaEmulator."""

from __future__ import annotations

import io
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import urllib3

import mcpconnect
from mcpconnect import cli
from mcpconnect.models import McpOauthEvent, OauthStreamEvent
from mcpconnect.testing import DEFAULT_TOOLS, LettaEmulator, Scenario

KEY = "sk-cli-test-secret-0123"
URL = "https://mcp.example.com/mcp"


@pytest.fixture
def emulator() -> Iterator[LettaEmulator]:
    with LettaEmulator(api_key=KEY) as emu:
        yield emu


@pytest.fixture
def env(tmp_path: pathlib.Path) -> dict[str, str]:
    """A clean environment: the test's key, an empty home, no proxies, no browser."""
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "SYSTEMROOT", "LANG")}
    return {**keep, "HOME": str(tmp_path), "LETTA_API_KEY": KEY, "PYTHONUNBUFFERED": "1"}


def run(
    args: list[str], env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mcpconnect", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def connect_args(emulator: LettaEmulator, *extra: str, name: str = "github") -> list[str]:
    return ["connect", name, URL, "--base-url", emulator.base_url, "--no-browser", *extra]


def assert_one_error_line(stderr: str, text: str) -> None:
    errors = [line for line in stderr.splitlines() if line.startswith("mcpconnect: error:")]
    assert len(errors) == 1, stderr
    assert text in errors[0]
    assert "Traceback" not in stderr
    assert KEY not in stderr


def test_success_prints_an_aligned_table(emulator: LettaEmulator, env: dict[str, str]) -> None:
    done = run(connect_args(emulator), env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["NAME", "DESCRIPTION"]
    assert [line.split()[0] for line in lines[1:]] == ["echo", "add", "server_mode"]
    column = lines[0].index("DESCRIPTION")
    assert all(line[column - 2 : column] == "  " for line in lines[1:])
    assert lines[1][column:] == "Echo the given text back unchanged."
    assert "Connecting to github..." in done.stderr
    assert "Connected: 3 tools." in done.stderr
    assert KEY not in done.stdout + done.stderr
    [request] = emulator.requests
    assert request.body == {"server_name": "github", "type": "streamable_http", "server_url": URL}


def test_json_output_parses_back_to_the_wire_tools(
    emulator: LettaEmulator, env: dict[str, str]
) -> None:
    done = run(connect_args(emulator, "--json"), env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [dict(tool) for tool in DEFAULT_TOOLS]


def test_headers_type_and_token_from_the_environment(
    emulator: LettaEmulator, env: dict[str, str]
) -> None:
    env["MCP_TOKEN"] = "tok-very-secret"
    args = connect_args(
        emulator, "--type", "sse", "--auth-header", "Authorization",
        "--auth-token-env", "MCP_TOKEN", "-H", "X-Team: core", "-H", "X-Env:prod",
    )
    done = run(args, env)
    assert done.returncode == 0, done.stderr
    [request] = emulator.requests
    assert request.body == {
        "server_name": "github",
        "type": "sse",
        "server_url": URL,
        "auth_header": "Authorization",
        "auth_token": "tok-very-secret",
        "custom_headers": {"X-Team": "core", "X-Env": "prod"},
    }
    assert "tok-very-secret" not in done.stdout + done.stderr


def test_oauth_flow_prints_the_url_and_finishes_after_authorization(
    emulator: LettaEmulator, env: dict[str, str]
) -> None:
    emulator.scenario = Scenario(oauth="approve")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mcpconnect", *connect_args(emulator, "--json")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stderr is not None
        seen = []
        for line in proc.stderr:  # ends when the process closes stderr
            seen.append(line)
            if line.startswith("Authorize in your browser: "):
                url = line.split(": ", 1)[1].strip()
                break
        else:
            pytest.fail("no authorization URL: " + "".join(seen))
        assert url.startswith(emulator.base_url + "/authorize?")
        with urllib3.PoolManager() as pool:
            assert pool.request("GET", url, timeout=10).status == 200
        out, rest = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, rest
    assert json.loads(out) == [dict(tool) for tool in DEFAULT_TOOLS]
    assert "Connected: 3 tools." in rest


def test_server_error_exits_1(emulator: LettaEmulator, env: dict[str, str]) -> None:
    emulator.scenario = Scenario(error="Non-public IP not allowed: 127.0.0.1")
    done = run(connect_args(emulator), env)
    assert done.returncode == 1
    assert_one_error_line(done.stderr, "Non-public IP not allowed: 127.0.0.1")
    assert done.stdout == ""


def test_wrong_key_exits_1_with_the_status(emulator: LettaEmulator, env: dict[str, str]) -> None:
    env["LETTA_API_KEY"] = "sk-wrong-key-4567"
    done = run(connect_args(emulator), env)
    assert done.returncode == 1
    assert_one_error_line(done.stderr, 'Connection failed (401): {"detail":"Unauthorized"}')
    assert "sk-wrong-key-4567" not in done.stderr


def test_missing_key_exits_2(emulator: LettaEmulator, env: dict[str, str]) -> None:
    del env["LETTA_API_KEY"]
    done = run(connect_args(emulator), env)
    assert done.returncode == 2
    assert_one_error_line(done.stderr, "Missing LETTA_API_KEY")
    assert emulator.requests == []


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["-H", "no colon"], "-H wants 'Name: value'"),
        (["--auth-token-env", "NOT_SET_ANYWHERE"], "NOT_SET_ANYWHERE is not set"),
        (["--timeout", "0"], "--timeout must be a positive number"),
    ],
)
def test_bad_usage_exits_2(
    emulator: LettaEmulator, env: dict[str, str], extra: list[str], message: str
) -> None:
    done = run(connect_args(emulator, *extra), env)
    assert done.returncode == 2
    assert_one_error_line(done.stderr, message)
    assert emulator.requests == []


def test_bad_server_url_exits_2(emulator: LettaEmulator, env: dict[str, str]) -> None:
    done = run(["connect", "x", "ftp://example.com/mcp", "--base-url", emulator.base_url], env)
    assert done.returncode == 2
    assert_one_error_line(done.stderr, "server_url must be an absolute http(s) URL")


def test_silent_server_times_out_with_3(emulator: LettaEmulator, env: dict[str, str]) -> None:
    emulator.scenario = Scenario(oauth="silent")
    done = run(connect_args(emulator, "--timeout", "1"), env)
    assert done.returncode == 3
    assert_one_error_line(done.stderr, "total limit of 1 s (in state waiting_for_auth)")


def test_nothing_listening_exits_4(env: dict[str, str]) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago, now closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    done = run(["connect", "x", URL, "--base-url", f"http://127.0.0.1:{port}"], env)
    assert done.returncode == 4
    assert_one_error_line(done.stderr, f"cannot reach http://127.0.0.1:{port}")


def test_ctrl_c_exits_130_and_closes_the_connection(
    emulator: LettaEmulator, env: dict[str, str]
) -> None:
    emulator.scenario = Scenario(oauth="silent")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mcpconnect", *connect_args(emulator)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if line.startswith("Waiting for authorization"):
                break
        assert emulator.open_connections == 1
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 130
    assert "interrupted; the connection was closed" in err
    assert "Traceback" not in err
    deadline = time.monotonic() + 10
    while emulator.open_connections and time.monotonic() < deadline:
        time.sleep(0.05)
    assert emulator.open_connections == 0


def test_demo_runs_the_whole_flow(env: dict[str, str]) -> None:
    del env["LETTA_API_KEY"]
    done = run(["demo", "--json"], env)
    assert done.returncode == 0, done.stderr
    assert [tool["name"] for tool in json.loads(done.stdout)] == ["echo", "add", "server_mode"]
    assert "Demo: visiting the authorization URL" in done.stderr
    assert "Connected: 3 tools." in done.stderr


def test_version_and_help(env: dict[str, str]) -> None:
    done = run(["--version"], env)
    assert (done.returncode, done.stdout.strip()) == (0, f"mcpconnect {mcpconnect.__version__}")
    for command in ("connect", "demo"):
        done = run([command, "--help"], env)
        assert done.returncode == 0
        assert "example:" in done.stdout
    done = run([], env)
    assert done.returncode == 2


# --- the progress display, in-process --------------------------------------------------


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _event(kind: OauthStreamEvent, **fields: Any) -> McpOauthEvent:
    return McpOauthEvent(event=kind, **fields)


def test_only_http_urls_are_opened_in_the_browser(monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[str] = []
    monkeypatch.setattr(cli.webbrowser, "open", lambda url: opened.append(url) or True)
    err = io.StringIO()
    progress = cli._Progress(err, open_browser=True)
    progress(_event(OauthStreamEvent.AUTHORIZATION_URL, url="javascript:alert(1)"))
    progress(_event(OauthStreamEvent.AUTHORIZATION_URL, url="file:///etc/passwd"))
    progress(_event(OauthStreamEvent.AUTHORIZATION_URL, url="https://auth.example.com/a?x=1"))
    assert opened == ["https://auth.example.com/a?x=1"]
    assert err.getvalue().splitlines() == [
        "Authorize in your browser: javascript:alert(1)",
        "Not opening it: only http and https URLs are opened.",
        "Authorize in your browser: file:///etc/passwd",
        "Not opening it: only http and https URLs are opened.",
        "Authorize in your browser: https://auth.example.com/a?x=1",
    ]


def test_a_terminal_gets_a_spinner_while_waiting() -> None:
    err = _Terminal()
    progress = cli._Progress(err, open_browser=False)
    progress(_event(OauthStreamEvent.WAITING_FOR_AUTH))
    deadline = time.monotonic() + 10
    while "Waiting for authorization... 0s" not in err.getvalue() and time.monotonic() < deadline:
        time.sleep(0.01)
    progress(_event(OauthStreamEvent.SUCCESS, tools=[]))
    text = err.getvalue()
    assert "\r| Waiting for authorization... 0s" in text
    assert text.endswith("Connected: 0 tools.\n")
    assert "Waiting for authorization...\n" not in text  # no plain line on a terminal


def test_tools_table_truncates_long_descriptions() -> None:
    tools = [mcpconnect.McpTool(name="t", description="word " * 50), mcpconnect.McpTool(name="x")]
    table = cli._tools_table(tools, width=40)
    assert table.splitlines() == [
        "NAME  DESCRIPTION",
        "t     " + ("word " * 7)[:31] + "...",
        "x",
    ]
    assert cli._tools_table([], 80) == "(no tools)"
