"""``mcpconnect add``, ``servers`` and ``remove``, run as a user runs them: a subprocess
against a LettaEmulator (the fixtures and helpers of test_cli)."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from typing import Any

import pytest
import urllib3
from test_cli import (  # noqa: F401
    KEY,
    assert_one_error_line,
    browser_log,
    emulator,
    env,
    into_head,
    run,
)

from mcpconnect.testing import DEFAULT_TOOLS, LettaEmulator, Scenario

pytestmark = pytest.mark.timeout(120)

URL = "https://mcp.example.com/mcp#team-a"


def add_args(emu: LettaEmulator, *extra: str, url: str = URL) -> list[str]:
    return ["add", url, "--base-url", emu.base_url, "--no-browser", *extra]


def api(emu: LettaEmulator, method: str, path: str, body: bytes | None = None) -> Any:
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    request = urllib.request.Request(emu.base_url + path, body, headers, method=method)
    with urllib.request.urlopen(request, timeout=10) as page:
        return json.loads(page.read())


def creates(emu: LettaEmulator) -> list[dict[str, object]]:
    return [r.body for r in emu.requests if r.method == "POST" and r.path == "/v1/mcp-servers/"]


def test_add_list_remove(emulator: LettaEmulator, env: dict[str, str]) -> None:  # noqa: F811
    done = run(add_args(emulator), env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["SERVER", "ID"]
    name, server_id = lines[1].split()
    assert name == "example" and server_id.startswith("mcp_server-")
    assert lines[2] == ""
    assert lines[3].split() == ["NAME", "DESCRIPTION"]
    assert [line.split()[0] for line in lines[4:]] == ["echo", "add", "server_mode"]
    assert "Connected: 3 tools." in done.stderr
    assert f"Registered in Letta as example ({server_id})." in done.stderr
    connect = emulator.requests[0].body
    assert connect == {"server_name": "example", "type": "streamable_http", "server_url": URL}
    assert creates(emulator) == [{"server_name": "example", "config": {
        "mcp_server_type": "streamable_http", "server_url": URL}}]

    listed = run(["servers", "--base-url", emulator.base_url], {**env, "COLUMNS": "200"})
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[0].split() == ["ID", "NAME", "TYPE", "URL"]
    assert listed.stdout.splitlines()[1].split() == [server_id, "example", "streamable_http", URL]
    as_json = run(["servers", "--json", "--base-url", emulator.base_url], env)
    assert json.loads(as_json.stdout) == [{"id": server_id, "server_name": "example",
                                          "type": "streamable_http", "server_url": URL}]

    removed = run(["remove", server_id, "--base-url", emulator.base_url], env)
    assert (removed.returncode, removed.stdout) == (0, "")
    assert f"Removed MCP server {server_id}." in removed.stderr
    again = run(["remove", server_id, "--base-url", emulator.base_url], env)
    assert again.returncode == 1
    assert_one_error_line(again.stderr, f"Letta has no MCP server with id '{server_id}' (400)")
    assert "mcpconnect: hint: `mcpconnect servers` lists the servers" in again.stderr
    empty = run(["servers", "--base-url", emulator.base_url], env)
    assert (empty.returncode, empty.stdout) == (0, "(no servers)\n")


def test_add_with_oauth_registers_the_exact_url(
    emulator: LettaEmulator, env: dict[str, str]  # noqa: F811
) -> None:
    emulator.scenario = Scenario(oauth="approve")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mcpconnect", *add_args(emulator, "--json", "--name", "team")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stderr is not None
        seen = []
        for line in proc.stderr:
            seen.append(line)
            if line.startswith("Authorize in your browser: "):
                url = line.split(": ", 1)[1].strip()
                break
        else:
            pytest.fail("no authorization URL: " + "".join(seen))
        with urllib3.PoolManager() as pool:
            assert pool.request("GET", url, timeout=10).status == 200
        out, rest = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, rest
    server = json.loads(out)
    assert (server["server_name"], server["server_url"], server["type"]) == (
        "team", URL, "streamable_http")
    assert server["tools"] == [dict(tool) for tool in DEFAULT_TOOLS]
    tools = api(emulator, "GET", f"/v1/mcp-servers/{server['id']}/tools")
    assert len(tools) == 3  # Letta linked the authorization by the exact URL


def test_a_duplicate_name_exits_1_without_sql(
    emulator: LettaEmulator, env: dict[str, str]  # noqa: F811
) -> None:
    assert run(add_args(emulator, "--name", "taken"), env).returncode == 0
    done = run(add_args(emulator, "--name", "taken", url=URL + "-b"), env)
    assert done.returncode == 1
    assert_one_error_line(
        done.stderr, "Letta already has an MCP server named 'taken' (409); pick another name")
    assert "mcpconnect: hint: pick another name with --name NAME" in done.stderr
    assert "SQL" not in done.stderr and "INSERT" not in done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize("name", ["bad name", "a/b", "x" * 65])
def test_an_invalid_name_exits_2_before_any_request(
    emulator: LettaEmulator, env: dict[str, str], name: str  # noqa: F811
) -> None:
    done = run(add_args(emulator, "--name", name), env)
    assert done.returncode == 2
    assert_one_error_line(done.stderr, "is not 1 to 64 letters, digits, '_' or '-'")
    assert emulator.requests == []


@pytest.mark.parametrize(
    ("extra", "connect_auth", "create_auth"),
    [
        ([], {"auth_header": "Authorization", "auth_token": "Bearer tok-s3cr3t"},
         {"auth_header": "Authorization", "auth_token": "Bearer tok-s3cr3t"}),
        (["--auth-header", "X-Api-Key"], {"auth_header": "X-Api-Key", "auth_token": "tok-s3cr3t"},
         {"custom_headers": {"X-Api-Key": "tok-s3cr3t"}}),
    ],
)
def test_the_token_from_the_environment(
    emulator: LettaEmulator, env: dict[str, str], extra: list[str],  # noqa: F811
    connect_auth: dict[str, str], create_auth: dict[str, object],
) -> None:
    env["MCP_TOKEN"] = "tok-s3cr3t"
    done = run(add_args(emulator, "--auth-token-env", "MCP_TOKEN", "--sse", *extra), env)
    assert done.returncode == 0, done.stderr
    assert emulator.requests[0].body == {"server_name": "example", "type": "sse",
                                         "server_url": URL, **connect_auth}
    assert creates(emulator) == [{"server_name": "example", "config": {
        "mcp_server_type": "sse", "server_url": URL, **create_auth}}]
    assert "s3cr3t" not in done.stdout + done.stderr
    assert KEY not in done.stdout + done.stderr


def test_usage_errors_exit_2(emulator: LettaEmulator, env: dict[str, str]) -> None:  # noqa: F811
    done = run(add_args(emulator, "--auth-header", "X-Api-Key"), env)
    assert done.returncode == 2
    assert_one_error_line(done.stderr, "--auth-header needs --auth-token-env")
    done = run(add_args(emulator, "--auth-token-env", "UNSET_VAR_FOR_TEST"), env)
    assert done.returncode == 2
    del env["LETTA_API_KEY"]
    done = run(["servers", "--base-url", emulator.base_url], env)
    assert done.returncode == 2
    assert emulator.requests == []


def test_the_authorization_limit_exits_3(
    emulator: LettaEmulator, env: dict[str, str]  # noqa: F811
) -> None:
    emulator.scenario = Scenario(oauth="silent")
    done = run(add_args(emulator, "--auth-timeout", "0.5"), env)
    assert done.returncode == 3
    assert_one_error_line(done.stderr, "no authorization after 0.5 s")
    assert creates(emulator) == []


def test_server_text_is_escaped(emulator: LettaEmulator, env: dict[str, str]) -> None:  # noqa: F811
    """Letta accepts any name: one with terminal controls is shown escaped."""
    body = json.dumps({"server_name": "evil\x1b]0;pwned\x07\u202e", "config": {
        "mcp_server_type": "sse", "server_url": "https://x.example/sse\x1b[2J"}}).encode()
    server_id = api(emulator, "POST", "/v1/mcp-servers/", body)["id"]
    done = run(["servers", "--base-url", emulator.base_url], {**env, "COLUMNS": "200"})
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout and "\u202e" not in done.stdout
    assert f"{server_id}  evil\\x1b]0;pwned\\x07\\u202e" in done.stdout
    assert "https://x.example/sse\\x1b[2J" in done.stdout
    removed = run(["remove", "evil\x1b[2J", "--base-url", emulator.base_url], env)
    assert removed.returncode == 1
    assert "\x1b" not in removed.stderr and "evil\\x1b[2J" in removed.stderr


def test_help(env: dict[str, str]) -> None:  # noqa: F811
    for command in ("add", "servers", "remove"):
        done = run([command, "--help"], env)
        assert done.returncode == 0, done.stderr
        assert "exit status:" in done.stdout
    assert "example:" in run(["add", "--help"], env).stdout
    top = run(["--help"], env).stdout
    assert all(command in top for command in ("add", "servers", "remove"))


def test_add_into_head_ends_quietly(emulator: LettaEmulator, env: dict[str, str]) -> None:  # noqa: F811
    # The tools table is far more than a pipe holds: the closed pipe must show (exit 141),
    # not vanish into one large write that loses the rest without an error.
    emulator.scenario = Scenario(tools=[{"name": f"tool{i:04}", "description": "x" * 40}
                                        for i in range(5000)])
    first, returncode, err = into_head(add_args(emulator), env)
    assert first.split() == ["SERVER", "ID"]
    assert returncode == 141, err
