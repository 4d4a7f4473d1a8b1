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
import unicodedata
from collections.abc import Iterator
from typing import Any

import pytest
import urllib3
from loopback import Chunk, Close, End, HoldOpen, Raw, ScriptedServer, Status, sse_script

import mcpconnect
from mcpconnect import cli
from mcpconnect._terminal import safe, table
from mcpconnect.models import McpOauthEvent, OauthStreamEvent
from mcpconnect.testing import DEFAULT_TOOLS, LettaEmulator, Scenario

KEY = "sk-cli-test-secret-0123"
URL = "https://mcp.example.com/mcp"


@pytest.fixture
def emulator() -> Iterator[LettaEmulator]:
    with LettaEmulator(api_key=KEY) as emu:
        yield emu


@pytest.fixture
def browser_log(tmp_path: pathlib.Path) -> pathlib.Path:
    """Where the stand-in browser (see ``env``) writes each URL it was asked to open."""
    return tmp_path / "opened.txt"


@pytest.fixture
def env(tmp_path: pathlib.Path, browser_log: pathlib.Path) -> dict[str, str]:
    """A clean environment: the test's key, an empty home, no proxies, and as the browser
    (``BROWSER``, which :mod:`webbrowser` obeys) a script that only notes the URL."""
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "SYSTEMROOT", "LANG")}
    browser = tmp_path / "browser"
    browser.write_text("#!/bin/sh\nprintf '%s\\n' \"$1\" >> \"$OPENED_LOG\"\n")
    browser.chmod(0o755)
    return {
        **keep, "HOME": str(tmp_path), "LETTA_API_KEY": KEY, "PYTHONUNBUFFERED": "1",
        "BROWSER": str(browser), "OPENED_LOG": str(browser_log),
    }


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
    server = json.loads(done.stdout)
    assert [tool["name"] for tool in server["tools"]] == ["echo", "add", "server_mode"]
    assert (server["server_name"], server["server_url"]) == ("demo", "https://mcp.example.com/mcp")
    assert "Demo: visiting the authorization URL" in done.stderr
    assert "Connected: 3 tools." in done.stderr
    assert f"Registered in Letta as demo ({server['id']})." in done.stderr


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


# --- untrusted text never reaches the terminal raw ----------------------------------------

HOSTILE = (
    "\x1b]52;c;ZXZpbA==\x07"  # OSC 52: write the clipboard
    "\x1b]8;;https://evil.example/\x1b\\link\x1b]8;;\x1b\\"  # OSC 8: a fake link
    "\x1b[2J\x1b[H"  # CSI: clear the screen, cursor home
    "\x9b31m"  # 8-bit CSI
    "\r\b\x00\x7f"  # overwrite the line, back up, NUL, DEL
    "\u202egnp.exe\u2066"  # right-to-left override, isolate
    "\nConnected: 99 tools."  # a fake line
)
#: How HOSTILE must show, written out by hand.
SHOWN = (
    "\\x1b]52;c;ZXZpbA==\\x07"
    "\\x1b]8;;https://evil.example/\\x1b\\link\\x1b]8;;\\x1b\\"
    "\\x1b[2J\\x1b[H"
    "\\x9b31m"
    "\\r\\x08\\x00\\x7f"
    "\\u202egnp.exe\\u2066"
    "\\nConnected: 99 tools."
)
_BIDI = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def assert_inert(*texts: str) -> None:
    """No control (but the line ends), bidi or surrogate character, and no fake line."""
    for text in texts:
        bad = {c for c in text if c in _BIDI or unicodedata.category(c) in ("Cc", "Cs")}
        assert bad <= {"\n"}, sorted(bad)
        assert not any(line.startswith("Connected: 99") for line in text.split("\n"))
        assert "Traceback" not in text


def run_against(server: ScriptedServer, env: dict[str, str], *extra: str) -> Any:
    args = ["connect", "github", URL, "--base-url", server.url, *extra]
    return run(args, env)


def test_server_text_in_progress_lines_table_and_log_is_escaped(
    env: dict[str, str], browser_log: pathlib.Path
) -> None:
    env["COLUMNS"] = "1000"
    events = [
        {"event": "connection_attempt", "server_name": HOSTILE},
        {"event": HOSTILE, "message": HOSTILE},  # a type this version does not know
        {"event": "oauth_required", "message": HOSTILE},
        {"event": "authorization_url", "url": "https://auth.example/" + HOSTILE},
        {"event": "waiting_for_auth", "message": HOSTILE},
        {"event": "success", "tools": [
            {"name": HOSTILE, "description": HOSTILE}, {"name": "ok", "description": "fine"},
        ]},
    ]
    with ScriptedServer(sse_script(*events)) as server:
        done = run_against(server, env, "-v")  # the browser is allowed: it must stay shut
    assert done.returncode == 0, done.stderr
    assert_inert(done.stdout, done.stderr)
    err = done.stderr.splitlines()
    assert f"Connecting to {SHOWN}..." in err
    assert f"Event: {SHOWN} ({SHOWN})" in err
    assert f"Authorize in your browser: https://auth.example/{SHOWN}" in err
    assert "Not opening it: it holds control or space characters." in err
    assert not browser_log.exists()
    assert any(line.startswith("DEBUG mcpconnect: event ") and SHOWN in line for line in err)
    # The table: names escaped exactly; descriptions with their whitespace runs made one space.
    described = SHOWN.replace("\\r", " ").replace("\\nConnected", " Connected")
    assert len(SHOWN) > 40  # wider than a column is padded to
    assert done.stdout.splitlines() == [
        "NAME" + " " * 38 + "DESCRIPTION",
        f"{SHOWN}  {described}",
        "ok" + " " * 40 + "fine",
    ]


LOCATION = "https://evil.example/\x1b]52;c;ZXZpbA==\x07\x1b[2J\x9b31m\b\x7f"
LOCATION_SHOWN = "https://evil.example/\\x1b]52;c;ZXZpbA==\\x07\\x1b[2J\\x9b31m\\x08\\x7f"


@pytest.mark.parametrize(
    ("script", "status", "shown"),
    [
        pytest.param(sse_script({"event": "error", "message": HOSTILE}), 1, SHOWN, id="error"),
        pytest.param(
            [Status(200), Chunk(b"event: error\ndata: " + json.dumps(
                {"error": HOSTILE, "code": "INTERNAL_SERVER_ERROR"}).encode() + b"\n\n"), End()],
            1, SHOWN, id="event-error-frame",
        ),
        pytest.param([Status(401, body=HOSTILE.encode())], 1, SHOWN, id="401-body"),
        pytest.param([Status(500, body=HOSTILE.encode())], 1, SHOWN, id="500-body"),
        pytest.param([Status.redirect(LOCATION)], 1, LOCATION_SHOWN, id="3xx-location"),
        pytest.param(
            [Status(200, headers=[("content-type", "text/html")], body=HOSTILE.encode())],
            4, None, id="not-an-event-stream",
        ),
    ],
)
def test_server_text_in_error_messages_is_escaped(
    env: dict[str, str], script: list[Any], status: int, shown: str | None
) -> None:
    with ScriptedServer(script) as server:
        done = run_against(server, env, "--no-browser")
    assert done.returncode == status, done.stderr
    assert_inert(done.stdout, done.stderr)
    [error] = [line for line in done.stderr.splitlines() if line.startswith("mcpconnect: error:")]
    if shown is not None:
        assert shown in error


def test_json_output_is_exact_ascii_json(env: dict[str, str]) -> None:
    tools = [{"name": HOSTILE, "description": HOSTILE + "caf\u00e9 \ud800", "inputSchema": {}}]
    with ScriptedServer(sse_script({"event": "success", "tools": tools})) as server:
        done = run_against(server, env, "--json")
    assert done.returncode == 0, done.stderr
    assert all(" " <= c <= "~" or c == "\n" for c in done.stdout)
    [tool] = json.loads(done.stdout)
    assert (tool["name"], tool["description"]) == (tools[0]["name"], tools[0]["description"])


def test_text_the_terminal_cannot_encode_is_escaped(
    emulator: LettaEmulator, env: dict[str, str]
) -> None:
    env["PYTHONIOENCODING"] = "ascii"
    emulator.scenario = Scenario(tools=[
        {"name": "caf\u00e9", "description": "\u65e5\u672c\u8a9e"}, {"name": "ok"},
    ])
    done = run(connect_args(emulator), env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "NAME     DESCRIPTION", "caf\\xe9  \\u65e5\\u672c\\u8a9e", "ok",
    ]
    assert "Traceback" not in done.stderr


def test_safe_escapes_exactly_the_unsafe_characters() -> None:
    for code in range(0x3000):
        c = chr(code)
        unsafe = unicodedata.category(c) in ("Cc", "Cs") or c in _BIDI or c in "\u2028\u2029"
        expected = (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}") if unsafe else c
        expected = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}.get(c, expected)
        assert safe(c) == expected
    assert safe("\ud800x\udfff") == "\\ud800x\\udfff"
    assert safe(HOSTILE) == SHOWN
    assert safe(42) == "42"
    assert safe("caf\u00e9 \u202e", "ascii") == "caf\\xe9 \\u202e"
    assert safe("caf\u00e9", "utf-8") == safe("caf\u00e9", "no-such-codec") == "caf\u00e9"


def test_table_escapes_cells_and_fits_the_last_column() -> None:
    text = table(("A", "B"), [("x\x1b", "y" * 30), ("long-name", "z")], width=32)
    assert text.splitlines() == [
        "A          B",
        "x\\x1b      " + "y" * 18 + "...",  # 32 characters
        "long-name  z",
    ]
    huge = "n" * 10_000  # padding every row to it would make the table rows x 10 kB
    text = table(("NAME", "D"), [(huge, "d"), ("a", "b")], width=80)
    assert text.splitlines() == ["NAME" + " " * 38 + "D", huge + "  d", "a" + " " * 41 + "b"]


# --- the browser -------------------------------------------------------------------------


def _url_events(*urls: str) -> list[Any]:
    return [
        {"event": "connection_attempt", "server_name": "github"},
        {"event": "oauth_required", "message": "OAuth authentication required"},
        *({"event": "authorization_url", "url": url, "session_id": "s"} for url in urls),
        {"event": "waiting_for_auth", "message": "Waiting for user authorization..."},
        {"event": "success", "tools": []},
    ]


def test_the_browser_is_opened_once_per_connect(
    env: dict[str, str], browser_log: pathlib.Path
) -> None:
    urls = [f"https://auth{i}.example/authorize?state={i}" for i in range(50)]
    with ScriptedServer(sse_script(*_url_events(*urls))) as server:
        done = run_against(server, env)
    assert done.returncode == 0, done.stderr
    assert browser_log.read_text().splitlines() == [urls[0]]
    err = done.stderr.splitlines()
    assert [line for line in err if line.startswith("Authorize")] == [
        f"Authorize in your browser: {url}" for url in urls
    ]
    assert err.count("Not opening it: a browser was already opened for this connect.") == 49


REFUSED = [
    ("https://accounts.example@evil.example/", "user-info"),
    ("https://user:pw@evil.example/", "user-info"),
    ("https://evil.example/a b", "control or space"),
    ("https://evil.example/a\tb", "control or space"),
    ("https://evil.example/\u3000", "control or space"),
    ("https://evil.example/\x1b[2J", "control or space"),
    ("https://evil.example/\x9b2J", "control or space"),
    ("https://evil.example/\u202eexe.txt", "control or space"),
    ("https://evil.example/\n", "control or space"),
    ("javascript:alert(1)", "only http and https"),
    ("file:///etc/passwd", "only http and https"),
    ("//evil.example/x", "only http and https"),
    ("/authorize", "only http and https"),
    ("https:///no-host", "no plain host"),
    ("https://evil.example\\.good.example/", "no plain host"),
    ("https://%65vil.example/", "no plain host"),
    ("http://evil.example:99999/", "not a valid URL"),
    ("http://[::1/", "not a valid URL"),
    ("", "only http and https"),
]


@pytest.mark.parametrize(("url", "why"), REFUSED)
def test_browser_refusal_names_the_reason(url: str, why: str) -> None:
    refusal = cli._browser_refusal(url)
    assert refusal is not None
    assert why in refusal


@pytest.mark.parametrize(
    "url", ["https://auth.example/a?x=1", "http://127.0.0.1:8283/authorize", "http://[::1]:80/"]
)
def test_plain_urls_may_be_opened(url: str) -> None:
    assert cli._browser_refusal(url) is None


def test_only_plain_http_urls_are_opened(env: dict[str, str], browser_log: pathlib.Path) -> None:
    good = "https://auth.example/authorize?state=1"
    bad = [url for url, _ in REFUSED if url]
    with ScriptedServer(sse_script(*_url_events(*bad, good))) as server:
        done = run_against(server, env)
    assert done.returncode == 0, done.stderr
    assert browser_log.read_text().splitlines() == [good]
    assert_inert(done.stderr)
    err = done.stderr.splitlines()
    assert err.count(f"Authorize in your browser: {good}") == 1
    assert sum(line.startswith("Not opening it: ") for line in err) == len(bad)


def test_no_browser_opens_nothing(env: dict[str, str], browser_log: pathlib.Path) -> None:
    with ScriptedServer(sse_script(*_url_events("https://auth.example/a"))) as server:
        done = run_against(server, env, "--no-browser")
    assert done.returncode == 0, done.stderr
    assert "Authorize in your browser: https://auth.example/a" in done.stderr
    assert not browser_log.exists()


# --- manners: a closed pipe, -v, next steps, Ctrl-C ----------------------------------------

MANY_TOOLS = [{"name": f"tool{i:04}", "description": "x" * 40} for i in range(5000)]


def into_head(args: list[str], env: dict[str, str]) -> tuple[str, int, str]:
    """Run the CLI with ``args`` into ``head -n 1``: head's output, the CLI's exit status and
    its stderr."""
    cli_proc = subprocess.Popen(
        [sys.executable, "-m", "mcpconnect", *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        head = subprocess.Popen(["head", "-n", "1"], stdin=cli_proc.stdout,
                                stdout=subprocess.PIPE, text=True)
        assert cli_proc.stdout is not None
        cli_proc.stdout.close()  # head holds the only read end now
        cli_proc.stdout = None
        first, _ = head.communicate(timeout=60)
        _, err = cli_proc.communicate(timeout=60)
    finally:
        cli_proc.kill()
        cli_proc.wait()
    return first, cli_proc.returncode, err


@pytest.mark.parametrize("extra", [["--json"], []], ids=["json", "table"])
def test_output_into_head_ends_quietly(
    emulator: LettaEmulator, env: dict[str, str], extra: list[str]
) -> None:
    emulator.scenario = Scenario(tools=MANY_TOOLS)  # far more output than a pipe holds
    first, returncode, err = into_head(connect_args(emulator, *extra), env)
    assert first == ("[\n" if extra else "NAME      DESCRIPTION\n")
    assert returncode == 141, err
    assert err.splitlines()[-1] == "Connected: 5000 tools."  # and nothing after it


def test_verbose_shows_the_log_on_stderr(emulator: LettaEmulator, env: dict[str, str]) -> None:
    for args in (connect_args(emulator, "-v"), ["--verbose", *connect_args(emulator)]):
        done = run(args, env)
        assert done.returncode == 0, done.stderr
        lines = done.stderr.splitlines()
        assert f"DEBUG mcpconnect: POST {emulator.base_url}/v1/tools/mcp/servers/connect" in lines
        assert "DEBUG mcpconnect: event success in state connection_attempt" in lines
        assert "Connected: 3 tools." in lines
        assert KEY not in done.stderr
    quiet = run(connect_args(emulator), env)
    assert "DEBUG" not in quiet.stderr


def hint_of(stderr: str) -> str:
    [hint] = [line for line in stderr.splitlines() if line.startswith("mcpconnect: hint: ")]
    return hint.removeprefix("mcpconnect: hint: ")


def test_errors_say_what_to_do_next(emulator: LettaEmulator, env: dict[str, str]) -> None:
    settings = pathlib.Path(env["HOME"]) / ".letta" / "settings.json"
    wrong = run(connect_args(emulator), {**env, "LETTA_API_KEY": "sk-wrong-key-4567"})
    assert hint_of(wrong.stderr) == (
        f"check the API key (LETTA_API_KEY or {settings}) and that --base-url "
        f"({emulator.base_url}) is the server it belongs to"
    )
    missing = run(connect_args(emulator), {k: v for k, v in env.items() if k != "LETTA_API_KEY"})
    assert hint_of(missing.stderr) == f"set LETTA_API_KEY, or env.LETTA_API_KEY in {settings}"
    emulator.scenario = Scenario(oauth="silent")
    slow = run(connect_args(emulator, "--timeout", "0.5"), env)
    assert (slow.returncode, hint_of(slow.stderr)) == (3, "allow more time with --timeout SECONDS")
    waited = run(connect_args(emulator, "--auth-timeout", "0.5"), env)
    assert waited.returncode == 3
    assert "no authorization after 0.5 s" in waited.stderr
    assert "--auth-timeout SECONDS" in hint_of(waited.stderr)
    emulator.scenario = Scenario(error="Non-public IP not allowed: 127.0.0.1")
    refused = run(connect_args(emulator), env)
    assert "check the MCP server's URL" in hint_of(refused.stderr)


def test_a_silent_server_names_the_read_limit_option(env: dict[str, str]) -> None:
    attempt = {"event": "connection_attempt", "server_name": "github"}
    with ScriptedServer([Status(200), Chunk(f"data: {json.dumps(attempt)}\n\n".encode()),
                         HoldOpen()]) as server:
        done = run_against(server, env, "--read-timeout", "0.5")
    assert done.returncode == 3
    assert_one_error_line(done.stderr, "the server sent nothing for 0.5 s")
    assert "--read-timeout SECONDS" in hint_of(done.stderr)


def test_nothing_listening_says_to_check_the_url(env: dict[str, str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    done = run(["connect", "x", URL, "--base-url", base], env)
    assert done.returncode == 4
    assert hint_of(done.stderr) == (
        f"check that the Letta server at {base} is running and reachable (--base-url)"
    )


@pytest.mark.parametrize(
    ("script", "says"),
    [
        pytest.param(
            [Status(200), Chunk(b'data: {"event": "connection_attempt"}\n\n'), Close()],
            "broke: the response body was cut short or malformed",
            id="dropped",
        ),
        pytest.param(
            [Status(200), Raw(b"zz\r\ndata: {}\r\n"), Close()],
            "broke: the response body was cut short or malformed",
            id="bad-framing",
        ),
    ],
)
def test_a_broken_stream_names_no_urllib3_class(
    env: dict[str, str], script: list[Any], says: str
) -> None:
    with ScriptedServer(script) as server:
        done = run_against(server, env)
    assert done.returncode == 4
    assert_one_error_line(done.stderr, says)
    for name in ("ProtocolError", "IncompleteRead", "InvalidChunkLength", "urllib3"):
        assert name not in done.stderr


#: Stands in for a module that the command line imports while starting up: says so, then
#: takes its time, so that the test can press Ctrl-C at that very moment.
SLOW_MODULE = """\
import sys, time
sys.stderr.write("slow import started\\n")
sys.stderr.flush()
time.sleep(60)
"""

#: What the ``mcpconnect`` console script does (see ``[project.scripts]``).
CONSOLE_SCRIPT = "import sys; from mcpconnect.__main__ import run; sys.exit(run())"


def interrupt_at(marker: str, command: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    """Run ``command``, press Ctrl-C once a stderr line starts with ``marker``; return the
    exit status, stdout and stderr."""
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True)
    try:
        assert proc.stderr is not None
        seen = []
        for line in proc.stderr:
            seen.append(line)
            if line.startswith(marker):
                break
        else:
            pytest.fail("never saw " + marker + ": " + "".join(seen))
        proc.send_signal(signal.SIGINT)
        out, rest = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait()
    return proc.returncode, out, "".join(seen) + rest


@pytest.mark.parametrize("module", ["webbrowser", "urllib3"])
@pytest.mark.parametrize("how", ["-m", "console-script"])
def test_ctrl_c_during_start_up_is_no_traceback(
    emulator: LettaEmulator, env: dict[str, str], tmp_path: pathlib.Path, module: str, how: str
) -> None:
    # webbrowser is imported with mcpconnect.cli, urllib3 only once main() runs the command.
    fakes = tmp_path / "fakes"
    fakes.mkdir()
    (fakes / f"{module}.py").write_text(SLOW_MODULE)
    env["PYTHONPATH"] = str(fakes)
    start = ["-m", "mcpconnect"] if how == "-m" else ["-c", CONSOLE_SCRIPT]
    status, out, err = interrupt_at(
        "slow import started", [sys.executable, *start, *connect_args(emulator)], env
    )
    assert (status, out) == (130, "")
    assert err.splitlines()[-1] == "mcpconnect: interrupted"
    assert "Traceback" not in err
    assert emulator.requests == []


def test_the_console_script_is_the_guarded_entry_point() -> None:
    from importlib.metadata import entry_points

    [script] = entry_points(group="console_scripts", name="mcpconnect")
    assert script.value == "mcpconnect.__main__:run"


#: The command line with a transport whose close() (after the table is out) takes its time.
SLOW_CLOSE = """\
import sys, time
from mcpconnect.transports import _urllib3
calls = []
def close(self):
    if not calls:
        calls.append(1)
        sys.stderr.write("closing the transport\\n")
        sys.stderr.flush()
        time.sleep(60)
_urllib3.Urllib3Transport.close = close
from mcpconnect.__main__ import run
sys.exit(run())
"""


def test_ctrl_c_after_the_output_is_not_an_interruption(
    emulator: LettaEmulator, env: dict[str, str]
) -> None:
    command = [sys.executable, "-c", SLOW_CLOSE, *connect_args(emulator, "--json")]
    status, out, err = interrupt_at("closing the transport", command, env)
    assert status == 0, err
    assert json.loads(out) == [dict(tool) for tool in DEFAULT_TOOLS]
    assert "interrupted" not in err
    assert "Traceback" not in err


def test_a_proxy_failure_names_no_urllib3_class() -> None:
    from mcpconnect.transports._urllib3 import _describe

    with socket.socket() as sock:  # a port that was free a moment ago, now closed
        sock.bind(("127.0.0.1", 0))
        proxy = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with urllib3.ProxyManager(proxy) as pool, pytest.raises(urllib3.exceptions.ProxyError) as info:
        pool.request("GET", "http://127.0.0.1:9/", retries=False, timeout=5)
    described = _describe(info.value)
    assert described.startswith("cannot use the proxy: ConnectionRefusedError: ")
    for name in ("ProxyError", "NewConnectionError", "HTTPConnection", "urllib3"):
        assert name not in described
