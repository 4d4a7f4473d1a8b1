"""Text for a terminal: what a server sent, made harmless before it is printed.

A server can put terminal controls into any string it sends (an event's message, a tool's
name, an error body, a redirect's ``Location``). ESC starts CSI and OSC sequences that move
the cursor, erase lines, set the window title, make fake links (OSC 8) or write the
clipboard (OSC 52); U+009B is a one-character CSI; CR, BS and newlines overwrite or fake
lines ("Connected: ..."); bidi controls (U+202E) make text read differently from what it is.

:func:`safe` replaces each such character by a visible escape (``\\x1b``, ``\\u202e``,
``\\n``): every C0 control (newline and tab included), DEL, every C1 control, the bidi
controls, the line and paragraph separators and lone surrogates (which no encoding can write).
Everything else is kept, so ordinary text in any script reads as sent. The command line passes
every piece of server text through it, on stdout and stderr; its ``--json`` output needs
nothing more, since ``json.dumps`` (with its default ``ensure_ascii``) escapes all of these.

:func:`table` lays out rows of such text in aligned columns, escaped, for commands that list
things (tools, servers).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["safe", "table"]

_UNSAFE = re.compile(
    r"[\x00-\x1f\x7f-\x9f"  # C0, DEL, C1 (U+009B is CSI)
    r"\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"  # bidi marks, embeddings, isolates
    r"\u2028\u2029"  # line and paragraph separators
    r"\ud800-\udfff]"  # lone surrogates (from JSON "\ud800")
)

_MAX_COLUMN = 40  # the widest a column but the last is padded to

_SHORT = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}  # as repr() writes them


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _SHORT.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def safe(text: object, encoding: str | None = None) -> str:
    """``str(text)`` with every control, bidi and separator character shown as an escape
    (``\\x1b``, ``\\u202e``; ``\\n``, ``\\r`` and ``\\t`` as in a repr), so that printing
    it can only show characters. With ``encoding`` (a stream's), also every character that
    encoding cannot write (``\\xe9`` in ASCII); an unknown encoding is ignored."""
    shown = _UNSAFE.sub(_escape, str(text))
    if encoding is None or shown.isascii():
        return shown
    try:
        return shown.encode(encoding, "backslashreplace").decode(encoding)
    except LookupError:
        return shown


def table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    width: int,
    encoding: str | None = None,
) -> str:
    """``rows`` under ``header`` in columns two spaces apart, every cell escaped by
    :func:`safe` (with ``encoding``), so that the columns stay aligned.

    The last column is cut to fit ``width`` characters (ending in ``...``), but keeps at
    least 20. Other columns are padded to their longest cell, but to no more than
    ``_MAX_COLUMN`` characters: a longer cell is shown whole and shifts only its own row (so
    one huge name cannot make every row huge). No trailing spaces, no final newline.
    """
    cells = [[safe(cell, encoding) for cell in row] for row in [header, *rows]]
    widths = [
        min(max(len(row[i]) for row in cells), _MAX_COLUMN) for i in range(len(header) - 1)
    ]
    room = max(width - sum(w + 2 for w in widths), 20)
    lines = []
    for row in cells:
        *first, last = row
        if len(last) > room:
            last = last[: room - 3] + "..."
        lines.append("".join(f"{c:<{w}}  " for c, w in zip(first, widths, strict=True)) + last)
    return "\n".join(line.rstrip() for line in lines)
