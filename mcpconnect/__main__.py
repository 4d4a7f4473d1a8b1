"""``python -m mcpconnect``: the command line."""

from __future__ import annotations

import sys


def _run() -> int:
    try:
        from .cli import main
    except KeyboardInterrupt:  # Ctrl-C while starting up: no traceback
        sys.stderr.write("\nmcpconnect: interrupted\n")
        return 130
    return main()


if __name__ == "__main__":
    sys.exit(_run())
