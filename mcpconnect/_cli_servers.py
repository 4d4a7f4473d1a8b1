"""The command line's server commands: ``add``, ``servers`` and ``remove``.

``add`` does what letta-code's ``/mcp connect`` wizard does: connect (showing the
authorization URL, and opening it, exactly as ``connect`` does), wait, then register the server
in Letta. Everything else (exit statuses, errors, Ctrl-C, escaping) is :mod:`mcpconnect.cli`'s,
which calls into this module; like it, start-up imports only the standard library.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

from ._terminal import safe, table
from .cli import (
    _EPILOG_EXIT,
    _LIMITS,
    EXIT_OK,
    _parse_header,
    _Progress,
    _Run,
    _tools_table,
    _UsageError,
    _write_lines,
)
from .errors import (
    DuplicateServerNameError,
    McpConnectError,
    ServerNotFoundError,
    without_userinfo,
)

if TYPE_CHECKING:
    from .client import Client
    from .models import McpConnectConfig
    from .servers import McpServer

__all__ = ["COMMANDS", "add_parsers", "hint", "run_add"]

ADD_EXAMPLE = """\
example:
  export LETTA_API_KEY=...            # or env.LETTA_API_KEY in ~/.letta/settings.json
  mcpconnect add https://mcp.example.com/mcp          # named "example", from the URL
  export LINEAR_TOKEN=...             # only if the MCP server wants a static token
  mcpconnect add https://mcp.linear.app/sse --sse --name linear --auth-token-env LINEAR_TOKEN
"""


def add_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser],
                verbose: argparse.ArgumentParser) -> None:
    """Add ``add``, ``servers`` and ``remove`` to ``commands``."""
    add = commands.add_parser(
        "add",
        help="connect an MCP server (OAuth included) and register it in Letta",
        description="Connect the MCP server at URL to the Letta server, walking you through "
        "OAuth if it asks for it, then register it in Letta and print its name, id and tools.",
        epilog=ADD_EXAMPLE + "\n" + _EPILOG_EXIT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[verbose],
    )
    add.add_argument("url", help="the MCP server's URL (http or https), registered exactly so")
    add.add_argument("--name", help="the server's name in Letta (default: from the URL's host; "
                     "letters, digits, '_' and '-')")
    add.add_argument("--sse", action="store_true",
                     help="the MCP server speaks SSE (default: streamable HTTP)")
    add.add_argument(
        "--auth-token-env", metavar="VAR",
        help="read the MCP server's token from this environment variable (never from the "
        "command line); sent as 'Authorization: Bearer <token>' unless --auth-header says",
    )
    add.add_argument("--auth-header", metavar="H",
                     help="the header that carries the token (default: Authorization)")
    add.add_argument(
        "-H", "--header", action="append", default=[], metavar="'Name: value'",
        help="a custom header for the MCP server (repeatable)",
    )
    _common(add, "print the server (and its tools) as JSON")
    add.add_argument("--no-browser", action="store_true",
                     help="print the authorization URL but do not open a browser")
    for option, field, text in _LIMITS:
        add.add_argument(option, dest=field, type=float, metavar="S", help=text)

    servers = commands.add_parser(
        "servers",
        help="list the MCP servers registered in Letta",
        description="List every MCP server registered in the Letta server (the whole "
        "organization's): id, name, type and URL.",
        epilog=_EPILOG_EXIT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[verbose],
    )
    _common(servers, "print the servers as JSON")

    remove = commands.add_parser(
        "remove",
        help="delete an MCP server from Letta, by id",
        description="Delete the MCP server ID from the Letta server (`mcpconnect servers` "
        "lists the ids).",
        epilog=_EPILOG_EXIT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[verbose],
    )
    remove.add_argument("id", help="the server's id (mcp_server-...)")
    remove.add_argument("--base-url", metavar="URL", help="the Letta server (default: "
                        "LETTA_BASE_URL, the settings file, or https://api.letta.com)")


def _common(parser: argparse.ArgumentParser, json_help: str) -> None:
    parser.add_argument("--base-url", metavar="URL", help="the Letta server (default: "
                        "LETTA_BASE_URL, the settings file, or https://api.letta.com)")
    parser.add_argument("--json", action="store_true", help=json_help)


def _config(args: argparse.Namespace) -> McpConnectConfig:
    from .models import McpConnectConfig
    from .servers import default_server_name

    token = auth_header = None
    if args.auth_token_env:
        token = os.environ.get(args.auth_token_env)
        if not token:
            raise _UsageError(f"environment variable {args.auth_token_env} is not set")
        auth_header = args.auth_header or "Authorization"
        if auth_header.lower() == "authorization" and not token.startswith("Bearer "):
            token = f"Bearer {token}"
    elif args.auth_header:
        raise _UsageError("--auth-header needs --auth-token-env")
    return McpConnectConfig(
        server_name=args.name if args.name is not None else default_server_name(args.url),
        type="sse" if args.sse else "streamable_http",
        server_url=args.url,
        auth_header=auth_header,
        auth_token=token,
        custom_headers=dict(_parse_header(h) for h in args.header) or None,
    )


def _cmd_add(args: argparse.Namespace, out: TextIO, err: TextIO, run: _Run) -> int:
    from ._timeouts import Timeouts
    from .client import Client

    config = _config(args)
    limits = {field: getattr(args, field) for _, field, _ in _LIMITS}
    timeout = Timeouts(**{k: v for k, v in limits.items() if v is not None})
    with Client(base_url=args.base_url, timeout=timeout) as client:
        run.base_url = without_userinfo(client.base_url)
        progress = _Progress(err, open_browser=not args.no_browser, run=run)
        return run_add(client, config, progress=progress, as_json=args.json, out=out,
                       err=err, run=run)


def run_add(
    client: Client,
    config: McpConnectConfig,
    *,
    progress: _Progress,
    as_json: bool,
    out: TextIO,
    err: TextIO,
    run: _Run,
) -> int:
    """Connect and register ``config``; print the server to ``out``. (``demo`` uses it too.)"""
    run.connecting = True
    try:
        server = client.add_server(config, on_event=progress)
    finally:
        progress.stop()
    err.write(f"Registered in Letta as {safe(server.server_name)} ({safe(server.id)}).\n")
    err.flush()
    encoding = getattr(out, "encoding", None)
    if as_json:  # ensure_ascii (the default) escapes every control and bidi character
        json.dump({**_summary(server), "tools": [t.to_dict() for t in server.tools or ()]},
                  out, indent=2)
        out.write("\n")
    else:
        width = shutil.get_terminal_size().columns
        _write_lines(out, table(("SERVER", "ID"), [(server.server_name, server.id)], width,
                                encoding))
        out.write("\n")
        _write_lines(out, _tools_table(server.tools or (), width, encoding))
    out.flush()
    run.status = EXIT_OK
    return EXIT_OK


def _summary(server: McpServer) -> dict[str, str | None]:
    url = server.server_url
    return {"id": server.id, "server_name": server.server_name, "type": server.type,
            "server_url": None if url is None else without_userinfo(url)}


def _cmd_servers(args: argparse.Namespace, out: TextIO, err: TextIO, run: _Run) -> int:
    from .client import Client

    with Client(base_url=args.base_url) as client:
        run.base_url = without_userinfo(client.base_url)
        servers = client.list_servers()
    if args.json:
        json.dump([_summary(s) for s in servers], out, indent=2)
        out.write("\n")
    elif not servers:
        out.write("(no servers)\n")
    else:
        rows = [(s["id"] or "", s["server_name"] or "", s["type"] or "", s["server_url"] or "")
                for s in map(_summary, servers)]
        width = shutil.get_terminal_size().columns
        _write_lines(out, table(("ID", "NAME", "TYPE", "URL"), rows, width,
                                getattr(out, "encoding", None)))
    out.flush()
    run.status = EXIT_OK
    return EXIT_OK


def _cmd_remove(args: argparse.Namespace, out: TextIO, err: TextIO, run: _Run) -> int:
    from .client import Client

    with Client(base_url=args.base_url) as client:
        run.base_url = without_userinfo(client.base_url)
        client.delete_server(args.id)
    run.status = EXIT_OK
    err.write(f"Removed MCP server {safe(args.id)}.\n")
    err.flush()
    return EXIT_OK


COMMANDS: dict[str, Callable[[argparse.Namespace, TextIO, TextIO, _Run], int]] = {
    "add": _cmd_add,
    "servers": _cmd_servers,
    "remove": _cmd_remove,
}


def hint(exc: McpConnectError) -> str | None:
    """The next step after an error of these commands, or ``None`` (then ``cli``'s)."""
    if isinstance(exc, DuplicateServerNameError):
        return "pick another name with --name NAME (`mcpconnect servers` lists the taken ones)"
    if isinstance(exc, ServerNotFoundError):
        return "`mcpconnect servers` lists the servers and their ids"
    return None
