"""The command line: ``mcpconnect connect``, ``mcpconnect demo``, ``mcpconnect --version``.

This is the only part of mcpconnect that writes to the terminal. Progress goes to stderr, the
result (the tools table, or JSON with ``--json``) to stdout, so the output can be piped.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import sys
import threading
import time
import urllib.parse
import webbrowser
from collections.abc import Callable, Sequence
from typing import TextIO

from . import __version__
from ._timeouts import Timeouts
from .client import Client
from .errors import (
    ConfigError,
    ConnectCancelledError,
    ConnectionFailedError,
    ConnectTimeoutError,
    McpConnectError,
    ServerError,
)
from .models import McpConnectConfig, McpOauthEvent, McpTool, OauthStreamEvent

__all__ = ["EXIT_CODES", "main"]

EXIT_OK = 0
EXIT_SERVER_ERROR = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 3
EXIT_TRANSPORT = 4
EXIT_INTERRUPTED = 130

#: What each exit status means, for ``--help`` and the README.
EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_SERVER_ERROR: "the server said error (an error event, or an HTTP error status)",
    EXIT_USAGE: "bad usage or configuration (a missing API key included)",
    EXIT_TIMEOUT: "a time limit ran out",
    EXIT_TRANSPORT: "the connection failed or the stream could not be understood",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
}

_EPILOG_EXIT = "exit status:\n" + "\n".join(f"  {k:<4} {v}" for k, v in EXIT_CODES.items())

CONNECT_EXAMPLE = """\
example:
  export LETTA_API_KEY=...            # or env.LETTA_API_KEY in ~/.letta/settings.json
  export GITHUB_MCP_TOKEN=...         # only if the MCP server wants a static token
  mcpconnect connect github https://mcp.example.com/mcp \\
      --auth-header Authorization --auth-token-env GITHUB_MCP_TOKEN -H 'X-Team: core'
"""

DEMO_EXAMPLE = """\
example:
  mcpconnect demo            # no Letta server, no key, no network needed
"""


def _exit_status(exc: BaseException) -> int:
    if isinstance(exc, (ConnectCancelledError, KeyboardInterrupt)):
        return EXIT_INTERRUPTED
    if isinstance(exc, ConfigError):
        return EXIT_USAGE
    if isinstance(exc, ConnectTimeoutError):
        return EXIT_TIMEOUT
    if isinstance(exc, (ServerError, ConnectionFailedError)):
        return EXIT_SERVER_ERROR
    return EXIT_TRANSPORT


class _UsageError(Exception):
    """Bad command-line input: exit status 2."""


def _parse_header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise _UsageError(f"-H wants 'Name: value', got {text!r}")
    return name.strip(), value.strip()


def _safe_browser_url(url: str) -> bool:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


class _Progress:
    """Shows each event as a line; on a terminal, a spinner while waiting for authorization."""

    def __init__(
        self,
        err: TextIO,
        *,
        open_browser: bool,
        on_authorization_url: Callable[[str], None] | None = None,
    ) -> None:
        self._err = err
        self._tty = err.isatty()
        self._open_browser = open_browser
        self._on_url = on_authorization_url
        self._spinner: threading.Thread | None = None
        self._stop_spinner = threading.Event()

    def __call__(self, event: McpOauthEvent) -> None:
        self.stop()
        kind = event.event
        if kind is OauthStreamEvent.CONNECTION_ATTEMPT:
            self._line(f"Connecting to {event.server_name or 'the MCP server'}...")
        elif kind is OauthStreamEvent.OAUTH_REQUIRED:
            self._line("The MCP server requires OAuth.")
        elif kind is OauthStreamEvent.AUTHORIZATION_URL:
            self._authorization_url(event.url or "")
        elif kind is OauthStreamEvent.WAITING_FOR_AUTH:
            if self._tty:
                self._start_spinner()
            else:
                self._line("Waiting for authorization...")
        elif kind is OauthStreamEvent.SUCCESS:
            self._line(f"Connected: {len(event.tools or ())} tools.")
        elif kind is not OauthStreamEvent.ERROR:  # the error itself is reported by main()
            self._line(f"Event: {kind}" + (f" ({event.message})" if event.message else ""))

    def _authorization_url(self, url: str) -> None:
        self._line(f"Authorize in your browser: {url}")
        if not _safe_browser_url(url):
            self._line("Not opening it: only http and https URLs are opened.")
        elif self._open_browser:
            try:
                opened = webbrowser.open(url)
            except Exception:  # a broken browser setup must not end the flow
                opened = False
            if not opened:
                self._line("Could not open a browser; open the URL yourself.")
        if self._on_url is not None:
            self._on_url(url)

    def _line(self, text: str) -> None:
        self._err.write(text + "\n")
        self._err.flush()

    def _start_spinner(self) -> None:
        self._stop_spinner.clear()
        started = time.monotonic()

        def spin() -> None:
            for frame in itertools.cycle("|/-\\"):
                elapsed = int(time.monotonic() - started)
                self._err.write(f"\r{frame} Waiting for authorization... {elapsed}s ")
                self._err.flush()
                if self._stop_spinner.wait(0.1):
                    break
            self._err.write("\r" + " " * 48 + "\r")
            self._err.flush()

        self._spinner = threading.Thread(target=spin, name="mcpconnect-spinner", daemon=True)
        self._spinner.start()

    def stop(self) -> None:
        if self._spinner is not None:
            self._stop_spinner.set()
            self._spinner.join()
            self._spinner = None


def _tools_table(tools: Sequence[McpTool], width: int) -> str:
    if not tools:
        return "(no tools)"
    names = [t.name for t in tools]
    pad = max(len("NAME"), *map(len, names))
    room = max(width - pad - 2, 20)
    lines = [f"{'NAME':<{pad}}  DESCRIPTION"]
    for tool in tools:
        description = " ".join((tool.description or "").split())
        if len(description) > room:
            description = description[: room - 3] + "..."
        lines.append(f"{tool.name:<{pad}}  {description}".rstrip())
    return "\n".join(lines)


def _print_tools(tools: Sequence[McpTool], as_json: bool, out: TextIO) -> None:
    if as_json:
        json.dump([t.to_dict() for t in tools], out, indent=2)
        out.write("\n")
    else:
        out.write(_tools_table(tools, shutil.get_terminal_size().columns) + "\n")
    out.flush()


def _run_connect(
    client: Client,
    config: McpConnectConfig,
    *,
    progress: _Progress,
    as_json: bool,
    out: TextIO,
) -> int:
    try:
        tools = client.connect(config, on_event=progress)
    finally:
        progress.stop()
    _print_tools(tools, as_json, out)
    return EXIT_OK


def _cmd_connect(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    token = None
    if args.auth_token_env:
        token = os.environ.get(args.auth_token_env)
        if not token:
            raise _UsageError(f"environment variable {args.auth_token_env} is not set")
    headers = dict(_parse_header(h) for h in args.header) or None
    config = McpConnectConfig(
        server_name=args.name,
        type=args.type,
        server_url=args.url,
        auth_header=args.auth_header,
        auth_token=token,
        custom_headers=headers,
    )
    timeout = Timeouts(total=args.timeout) if args.timeout is not None else None
    with Client(base_url=args.base_url, timeout=timeout) as client:
        progress = _Progress(err, open_browser=not args.no_browser)
        return _run_connect(client, config, progress=progress, as_json=args.json, out=out)


def _cmd_demo(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .testing import LettaEmulator, Scenario
    from .transports import Urllib3Transport

    api_key = "demo-" + os.urandom(8).hex()
    with LettaEmulator(Scenario(oauth="approve"), api_key=api_key) as emulator:
        err.write(f"Started a Letta emulator at {emulator.base_url} (OAuth mode).\n")
        transport = Urllib3Transport(trust_env=False)
        visits: list[threading.Thread] = []

        def authorize(url: str) -> None:
            # A person would open the URL in a browser; the demo visits it itself.
            err.write("Demo: visiting the authorization URL as the user would...\n")
            visit = threading.Thread(target=_visit, args=(url,), daemon=True)
            visit.start()
            visits.append(visit)

        config = McpConnectConfig(
            server_name="demo", type="streamable_http", server_url="https://mcp.example.com/mcp"
        )
        with Client(base_url=emulator.base_url, api_key=api_key, transport=transport) as client:
            progress = _Progress(err, open_browser=False, on_authorization_url=authorize)
            try:
                return _run_connect(client, config, progress=progress, as_json=args.json, out=out)
            finally:
                for visit in visits:
                    visit.join(5)
                transport.close()


def _visit(url: str) -> None:
    import urllib3

    with urllib3.PoolManager() as pool:  # follows the redirect to the callback, as a browser
        pool.request("GET", url, retries=urllib3.Retry(total=3, redirect=3), timeout=10.0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mcpconnect",
        description="Connect MCP servers to a Letta server, with the OAuth flow.",
        epilog=_EPILOG_EXIT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"mcpconnect {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    connect = commands.add_parser(
        "connect",
        help="connect an MCP server and list its tools",
        description="Connect the MCP server NAME at URL to the Letta server and list its "
        "tools. The API key comes from LETTA_API_KEY or ~/.letta/settings.json.",
        epilog=CONNECT_EXAMPLE + "\n" + _EPILOG_EXIT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    connect.add_argument("name", help="the MCP server's name in Letta")
    connect.add_argument("url", help="the MCP server's URL (http or https)")
    connect.add_argument(
        "--type", choices=("sse", "streamable_http"), default="streamable_http",
        help="the MCP transport (default: streamable_http)",
    )
    connect.add_argument("--auth-header", metavar="H", help="the header that carries the token")
    connect.add_argument(
        "--auth-token-env", metavar="VAR",
        help="read the MCP server's token from this environment variable (never from the "
        "command line)",
    )
    connect.add_argument(
        "-H", "--header", action="append", default=[], metavar="'Name: value'",
        help="a custom header for the MCP server (repeatable)",
    )
    connect.add_argument("--base-url", metavar="URL", help="the Letta server (default: "
                         "LETTA_BASE_URL, the settings file, or https://api.letta.com)")
    connect.add_argument("--no-browser", action="store_true",
                         help="print the authorization URL but do not open a browser")
    connect.add_argument("--json", action="store_true", help="print the tools as JSON")
    connect.add_argument("--timeout", type=float, metavar="S",
                         help="give up after S seconds in all")
    demo = commands.add_parser(
        "demo",
        help="run the whole OAuth flow against a built-in Letta emulator",
        description="Start a Letta emulator in OAuth mode on 127.0.0.1, connect to it through "
        "real HTTP, authorize as the user would, and print the tools.",
        epilog=DEMO_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument("--json", action="store_true", help="print the tools as JSON")
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run the command line; return the exit status (see :data:`EXIT_CODES`)."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version, or a usage error
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    if args.command is None:
        parser.print_help(err)
        return EXIT_USAGE
    if getattr(args, "timeout", None) is not None and not args.timeout > 0:
        err.write("mcpconnect: error: --timeout must be a positive number of seconds\n")
        return EXIT_USAGE
    command = _cmd_connect if args.command == "connect" else _cmd_demo
    try:
        return command(args, out, err)
    except _UsageError as exc:
        err.write(f"mcpconnect: error: {exc}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        err.write("\nmcpconnect: interrupted; the connection was closed\n")
        return EXIT_INTERRUPTED
    except McpConnectError as exc:
        err.write(f"mcpconnect: error: {exc}\n")
        return _exit_status(exc)
