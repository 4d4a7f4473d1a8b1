"""The command line: ``mcpconnect connect``, ``demo``, ``--version``; ``add``, ``servers`` and
``remove`` are in :mod:`mcpconnect._cli_servers`.

This is the only part of mcpconnect that writes to the terminal. Progress goes to stderr, the
result (the tools table, or JSON with ``--json``) to stdout, so the output can be piped.

Everything a server sent (names, messages, URLs, bodies, and the error messages that quote
them) passes through :func:`mcpconnect._terminal.safe` on its way out. A browser is opened at
most once per connect, and only for a plain http(s) URL. Start-up imports nothing but the
standard library, so that Ctrl-C at any moment lands in :func:`main`, which turns it (and a
closed stdout) into a quiet exit status.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import logging
import os
import re
import shutil
import sys
import threading
import time
import urllib.parse
import webbrowser
from collections.abc import Callable, Iterator, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, TextIO

from . import __version__
from ._settings import default_settings_path
from ._terminal import safe, table
from .errors import (
    ConfigError,
    ConnectCancelledError,
    ConnectionFailedError,
    ConnectTimeoutError,
    McpConnectError,
    MissingApiKeyError,
    MissingAuthorizationUrlError,
    ProtocolError,
    ServerError,
    StreamEndedError,
    TransportError,
    without_userinfo,
)

if TYPE_CHECKING:
    from .client import Client
    from .models import McpConnectConfig, McpOauthEvent, McpTool

__all__ = ["EXIT_CODES", "main"]

EXIT_OK = 0
EXIT_SERVER_ERROR = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 3
EXIT_TRANSPORT = 4
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141

#: What each exit status means, for ``--help`` and the README.
EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_SERVER_ERROR: "the server said error (an error event, or an HTTP error status)",
    EXIT_USAGE: "bad usage or configuration (a missing API key included)",
    EXIT_TIMEOUT: "a time limit ran out",
    EXIT_TRANSPORT: "the connection failed or the stream could not be understood",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C) before the work was done",
    EXIT_BROKEN_PIPE: "the output was closed early (e.g. piped into head); nothing is printed",
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

#: The time-limit options of ``connect``: option, ``Timeouts`` field, help.
_LIMITS = (
    ("--timeout", "total", "give up after S seconds in all (default 900)"),
    ("--connect-timeout", "connect", "the limit to open the connection (default 10)"),
    ("--read-timeout", "read", "the longest silence of the server (default 60)"),
    ("--auth-timeout", "authorization",
     "the longest wait for you to authorize (default 330; Letta itself gives up after 300)"),
)


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


class _Run:
    """What one run of the command line got done, for the messages at its end."""

    def __init__(self) -> None:
        self.status: int | None = None  # set once the result is out: nothing left to cut short
        self.connecting = False
        self.base_url: str | None = None  # shown in hints, without user-info
        self.events = 0


def _parse_header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise _UsageError(f"-H wants 'Name: value', got {text!r}")
    return name.strip(), value.strip()


_HOST = re.compile(r"[\w.-]+|\[[0-9A-Fa-f:.]+\]")


def _browser_refusal(url: str) -> str | None:
    """Why ``url`` must not be opened in a browser; ``None`` if it is a plain http(s) URL."""
    if safe(url) != url or any(c.isspace() for c in url):
        return "it holds control or space characters"
    try:
        parts = urllib.parse.urlsplit(url)
        _ = parts.port  # a bad port raises
    except ValueError:
        return "it is not a valid URL"
    if parts.scheme not in ("http", "https"):
        return "only http and https URLs are opened"
    if "@" in parts.netloc:
        return "it holds a user name (user-info), which can disguise the host"
    host = parts.netloc.rpartition(":")[0] if parts.port is not None else parts.netloc
    if not host or not _HOST.fullmatch(host):
        return "it names no plain host"
    return None


class _Progress:
    """Shows each event as a line; on a terminal, a spinner while waiting for authorization.

    Opens the browser at most once, for the first authorization URL that passes
    :func:`_browser_refusal`; every other URL is only shown.
    """

    def __init__(
        self,
        err: TextIO,
        *,
        open_browser: bool,
        on_authorization_url: Callable[[str], None] | None = None,
        run: _Run | None = None,
    ) -> None:
        self._err = err
        self._tty = err.isatty()
        self._open_browser = open_browser
        self._browser_tried = False
        self._on_url = on_authorization_url
        self._run = run
        self._spinner: threading.Thread | None = None
        self._stop_spinner = threading.Event()

    def __call__(self, event: McpOauthEvent) -> None:
        self.stop()
        if self._run is not None:
            self._run.events += 1
        kind = event.event  # an OauthStreamEvent (a str) or the raw string of an unknown type
        if kind == "connection_attempt":
            self._line(f"Connecting to {safe(event.server_name or 'the MCP server')}...")
        elif kind == "oauth_required":
            self._line("The MCP server requires OAuth.")
        elif kind == "authorization_url":
            self._authorization_url(event.url or "")
        elif kind == "waiting_for_auth":
            if self._tty:
                self._start_spinner()
            else:
                self._line("Waiting for authorization...")
        elif kind == "success":
            self._line(f"Connected: {len(event.tools or ())} tools.")
        elif kind != "error":  # the error itself is reported by main()
            message = f" ({safe(event.message)})" if event.message else ""
            self._line(f"Event: {safe(kind)}{message}")

    def _authorization_url(self, url: str) -> None:
        self._line(f"Authorize in your browser: {safe(url)}")
        refusal = _browser_refusal(url)
        if refusal is not None:
            self._line(f"Not opening it: {refusal}.")
        elif self._open_browser and self._browser_tried:
            self._line("Not opening it: a browser was already opened for this connect.")
        elif self._open_browser:
            self._browser_tried = True
            try:
                opened = webbrowser.open(url)
            except Exception:  # a broken browser setup must not end the flow
                opened = False
            if not opened:
                self._line("Could not open a browser; open the URL yourself.")
        if self._on_url is not None and refusal is None:
            self._on_url(url)

    def _line(self, text: str) -> None:
        self._err.write(text + "\n")
        self._err.flush()

    def _start_spinner(self) -> None:
        self._stop_spinner.clear()
        started = time.monotonic()

        def spin() -> None:
            try:
                for frame in itertools.cycle("|/-\\"):
                    elapsed = int(time.monotonic() - started)
                    self._err.write(f"\r{frame} Waiting for authorization... {elapsed}s ")
                    self._err.flush()
                    if self._stop_spinner.wait(0.1):
                        break
                self._err.write("\r" + " " * 48 + "\r")
                self._err.flush()
            except (OSError, ValueError):  # stderr closed: main() finds out at its next write
                pass

        self._spinner = threading.Thread(target=spin, name="mcpconnect-spinner", daemon=True)
        self._spinner.start()

    def stop(self) -> None:
        if self._spinner is not None:
            self._stop_spinner.set()
            self._spinner.join()
            self._spinner = None


def _tools_table(tools: Sequence[McpTool], width: int, encoding: str | None = None) -> str:
    if not tools:
        return "(no tools)"
    rows = [(t.name, " ".join((t.description or "").split())) for t in tools]
    return table(("NAME", "DESCRIPTION"), rows, width, encoding)


def _print_tools(tools: Sequence[McpTool], as_json: bool, out: TextIO) -> None:
    if as_json:  # ensure_ascii (the default) escapes every control and bidi character
        json.dump([t.to_dict() for t in tools], out, indent=2)
        out.write("\n")
    else:
        width = shutil.get_terminal_size().columns
        _write_lines(out, _tools_table(tools, width, getattr(out, "encoding", None)))
    out.flush()


def _write_lines(out: TextIO, text: str) -> None:
    """Write ``text`` and a final newline, a line at a time: a closed pipe then shows at the
    next write (one large write into a closed pipe can lose the rest with no error)."""
    for line in text.split("\n"):
        out.write(line + "\n")


def _run_connect(
    client: Client,
    config: McpConnectConfig,
    *,
    progress: _Progress,
    as_json: bool,
    out: TextIO,
    run: _Run,
) -> int:
    run.connecting = True
    try:
        tools = client.connect(config, on_event=progress)
    finally:
        progress.stop()
    _print_tools(tools, as_json, out)
    run.status = EXIT_OK
    return EXIT_OK


def _cmd_connect(args: argparse.Namespace, out: TextIO, err: TextIO, run: _Run) -> int:
    from ._timeouts import Timeouts
    from .client import Client
    from .models import McpConnectConfig

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
    limits = {field: getattr(args, field) for _, field, _ in _LIMITS}
    timeout = Timeouts(**{k: v for k, v in limits.items() if v is not None})
    with Client(base_url=args.base_url, timeout=timeout) as client:
        run.base_url = without_userinfo(client.base_url)
        progress = _Progress(err, open_browser=not args.no_browser, run=run)
        return _run_connect(
            client, config, progress=progress, as_json=args.json, out=out, run=run
        )


def _cmd_demo(args: argparse.Namespace, out: TextIO, err: TextIO, run: _Run) -> int:
    from . import _cli_servers
    from .client import Client
    from .models import McpConnectConfig
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
            progress = _Progress(err, open_browser=False, on_authorization_url=authorize, run=run)
            try:  # the whole job: connect with OAuth, then register the server in Letta
                return _cli_servers.run_add(
                    client, config, progress=progress, as_json=args.json, out=out, err=err,
                    run=run,
                )
            finally:
                for visit in visits:
                    visit.join(5)
                transport.close()


def _visit(url: str) -> None:
    import urllib3

    with urllib3.PoolManager() as pool:  # follows the redirect to the callback, as a browser
        pool.request("GET", url, retries=urllib3.Retry(total=3, redirect=3), timeout=10.0)


_TIMEOUT_HINTS = {
    "total": "allow more time with --timeout SECONDS",
    "connect": "check --base-url and the network, or allow longer with --connect-timeout SECONDS",
    "read": "the server went silent; allow a longer silence with --read-timeout SECONDS",
    "authorization": "authorize sooner, or wait longer with --auth-timeout SECONDS "
    "(Letta itself gives up after 300 s)",
}


def _hint(exc: McpConnectError, run: _Run) -> str | None:
    """The next step for the user after ``exc``, or ``None`` when the message says it all."""
    base = run.base_url or "the Letta server"
    if isinstance(exc, MissingApiKeyError):
        return f"set LETTA_API_KEY, or env.LETTA_API_KEY in {default_settings_path()}"
    if isinstance(exc, ConnectTimeoutError):
        return _TIMEOUT_HINTS.get(exc.limit)
    if isinstance(exc, ConnectionFailedError):
        if exc.status in (401, 403):
            return (f"check the API key (LETTA_API_KEY or {default_settings_path()}) and that "
                    f"--base-url ({base}) is the server it belongs to")
        if 300 <= exc.status < 400 or exc.status in (404, 405):
            return f"is {base} the Letta server's address? check --base-url"
        if exc.status >= 500:
            return "the Letta server failed; try again later, or look at its log"
        return "check the MCP server's name, URL and --type"
    if isinstance(exc, MissingAuthorizationUrlError):
        return "check the MCP server's URL, its path above all"
    if isinstance(exc, ServerError):
        return "check the MCP server's URL and --type, and that the Letta server can reach it"
    if isinstance(exc, StreamEndedError):
        return "the Letta server ended the stream early; try again, or look at its log"
    if isinstance(exc, ProtocolError):
        return f"is {base} a Letta server? check --base-url"
    if isinstance(exc, TransportError):
        if run.events:
            return "the connection dropped during the connect; try again"
        return f"check that the Letta server at {base} is running and reachable (--base-url)"
    return None


def build_parser() -> argparse.ArgumentParser:
    verbose = argparse.ArgumentParser(add_help=False)
    verbose.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
        help="show mcpconnect's log on stderr",
    )
    parser = argparse.ArgumentParser(
        prog="mcpconnect",
        description="Connect MCP servers to a Letta server, with the OAuth flow.",
        epilog=_EPILOG_EXIT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[verbose],
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
        parents=[verbose],
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
    for option, field, text in _LIMITS:
        connect.add_argument(option, dest=field, type=float, metavar="S", help=text)
    demo = commands.add_parser(
        "demo",
        help="add a server with the whole OAuth flow, against a built-in Letta emulator",
        description="Start a Letta emulator in OAuth mode on 127.0.0.1, connect to it through "
        "real HTTP, authorize as the user would, register the server in Letta, and print "
        "its name, id and tools (what `mcpconnect add` does).",
        epilog=DEMO_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[verbose],
    )
    demo.add_argument("--json", action="store_true", help="print the server and tools as JSON")
    from . import _cli_servers

    _cli_servers.add_parsers(commands, verbose)
    return parser


_ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]


class _LogFormatter(logging.Formatter):
    """Log lines with server text escaped; a traceback's lines indented, so that no record
    can pass for a line of the command line's own."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return safe(super().formatMessage(record))

    def formatException(self, ei: _ExcInfo) -> str:
        text = super().formatException(ei)
        return "\n".join("    " + safe(line) for line in text.split("\n"))

    def formatStack(self, stack_info: str) -> str:
        return "\n".join("    " + safe(line) for line in stack_info.split("\n"))


@contextlib.contextmanager
def _verbose_log(err: TextIO, enabled: bool) -> Iterator[None]:
    """While running, with ``enabled``: the ``mcpconnect`` log at debug level on ``err``."""
    if not enabled:
        yield
        return
    logger = logging.getLogger("mcpconnect")
    handler = logging.StreamHandler(err)
    handler.setFormatter(_LogFormatter("%(levelname)s %(name)s: %(message)s"))
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@contextlib.contextmanager
def _escaping_unencodable(*streams: TextIO) -> Iterator[None]:
    """While running: what a stream's encoding cannot write is written as an escape
    (``\\xe9``), not raised. Only text streams that can be reconfigured."""
    restore: list[tuple[Callable[..., None], str]] = []
    for stream in streams:
        reconfigure = getattr(stream, "reconfigure", None)
        errors = getattr(stream, "errors", None)
        if reconfigure is None or not isinstance(errors, str) or errors == "backslashreplace":
            continue
        with contextlib.suppress(OSError, ValueError):
            reconfigure(errors="backslashreplace")
            restore.append((reconfigure, errors))
    try:
        yield
    finally:
        for reconfigure, errors in restore:
            with contextlib.suppress(OSError, ValueError):
                reconfigure(errors=errors)


def _silence(*streams: TextIO) -> None:
    """Point the process's own stdout/stderr among ``streams`` at devnull, so that writing
    (and the flush at exit) after a closed pipe is quiet: the recipe of Python's ``signal``
    documentation."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for stream in streams:
            if stream is sys.stdout or stream is sys.stderr:
                with contextlib.suppress(OSError, ValueError):
                    os.dup2(devnull, stream.fileno())
    finally:
        os.close(devnull)


def _say(err: TextIO, text: str) -> None:
    err.write(text + "\n")
    err.flush()


def _main(argv: Sequence[str] | None, out: TextIO, err: TextIO, run: _Run) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version, or a usage error
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    if args.command is None:
        parser.print_help(err)
        return EXIT_USAGE
    for option, field, _ in _LIMITS:
        value = getattr(args, field, None)
        if value is not None and not 0 < value < float("inf"):
            _say(err, f"mcpconnect: error: {option} must be a positive number of seconds")
            return EXIT_USAGE
    from . import _cli_servers

    command = {"connect": _cmd_connect, "demo": _cmd_demo, **_cli_servers.COMMANDS}[args.command]
    with _verbose_log(err, getattr(args, "verbose", False)):
        try:
            return command(args, out, err, run)
        except _UsageError as exc:
            _say(err, f"mcpconnect: error: {safe(exc)}")
            return EXIT_USAGE
        except McpConnectError as exc:
            _say(err, f"mcpconnect: error: {safe(exc)}")
            hint = _cli_servers.hint(exc) or (_hint(exc, run) if args.command != "demo" else None)
            if hint is not None:
                _say(err, f"mcpconnect: hint: {safe(hint)}")
            return _exit_status(exc)


def main(
    argv: Sequence[str] | None = None,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run the command line; return the exit status (see :data:`EXIT_CODES`).

    ``argv`` defaults to ``sys.argv[1:]``, ``stdout`` and ``stderr`` to the process's own.
    Never raises for Ctrl-C (130, or the status of work already done) or a closed output
    (141, quietly).
    """
    out = sys.stdout if stdout is None else stdout
    err = sys.stderr if stderr is None else stderr
    run = _Run()
    try:
        with _escaping_unencodable(out, err):
            return _main(argv, out, err, run)
    except KeyboardInterrupt:
        if run.status is not None:  # the result is out: only the clean-up was cut short
            return run.status
        closed = "; the connection was closed" if run.connecting else ""
        try:
            _say(err, f"\nmcpconnect: interrupted{closed}")
        except (OSError, ValueError):
            _silence(out, err)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _silence(out, err)
        return EXIT_BROKEN_PIPE

