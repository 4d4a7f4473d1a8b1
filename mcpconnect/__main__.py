"""``python -m mcpconnect``: the command line."""

from __future__ import annotations

import sys


def run() -> int:
    """The ``mcpconnect`` command: :func:`mcpconnect.cli.main`, with Ctrl-C while it is
    being imported an exit status too (130), not a traceback."""
    try:
        from .cli import main
    except KeyboardInterrupt:  # Ctrl-C while starting up: no traceback
        sys.stderr.write("\nmcpconnect: interrupted\n")
        return 130
    return main()


if __name__ == "__main__":
    sys.exit(run())
