"""A push-style, sans-IO Server-Sent-Events decoder.

Theory of operation
-------------------
The WHATWG "event stream interpretation" is two small layers, and so is this module.

:class:`_LineSplitter` takes bytes as they arrive and hands back the complete lines in them.
A line ends at CR, LF or CRLF. A chunk's CRs are turned into LFs first (exact, because CR and
LF never occur inside a UTF-8 sequence); a CR that ends a chunk ends its line at once, and an
LF that starts the next chunk is then dropped as the rest of that CRLF. The bytes after a
chunk's last LF are the incomplete line: they are held, never searched again, and joined once
when the line ends, so a line that arrives in a thousand pieces costs what one piece does.
Small pieces are gathered in a bytearray that is set aside whole every 64 KiB (``_SPILL``), so
neither the number of pieces nor any copy grows with each piece. :func:`_split` cuts a chunk
into lines: ``bytes.split`` for short lines, ``bytes.find`` (``memchr``) over long ones.

:class:`SSEDecoder` folds the lines into events. Lines stay bytes: field names, the colon and
the space after it are ASCII, and UTF-8 decoding (with replacement) never merges an ASCII byte
into a neighbouring character, so reading the fields from the bytes gives what reading them
from the decoded text would. The data buffer is the list of the event's data values (a long
value is a view of its line, not a copy); a blank line joins them with LF and decodes them,
once, into the event.

Memory is bounded by the two limits: ``max_line_bytes`` caps one line, and so what the
splitter holds; ``max_event_bytes`` caps the data buffer, counting each line's bytes plus what
a line costs in memory beside them (``_LINE_OVERHEAD``), so that many tiny lines cannot hold
more than the limit says. Both raise :class:`ProtocolError`.

This module imports only the standard library; it does no I/O.
"""

from __future__ import annotations

import contextlib
from typing import NamedTuple

from .errors import ProtocolError

__all__ = [
    "DEFAULT_MAX_EVENT_BYTES",
    "DEFAULT_MAX_LINE_BYTES",
    "SSEDecoder",
    "ServerSentEvent",
]

#: Default cap on one line: 64 MiB. A ``success`` event with 100,000 tools is about 35 MB.
DEFAULT_MAX_LINE_BYTES = 64 * 1024 * 1024
#: Default cap on the data of one event: 64 MiB.
DEFAULT_MAX_EVENT_BYTES = 64 * 1024 * 1024

# What a data line costs in memory beside its bytes (a bytes object's header, rounded up, and
# its slot in the list), counted against max_event_bytes.
_LINE_OVERHEAD = 64
# The incomplete line's small pieces are set aside once they reach this size.
_SPILL = 64 * 1024
# _split: a line this long is cut out on its own; short lines are split a stretch at a time.
_LONG_LINE = 256
_STRETCH = 4096
# A data value this long is kept as a view of its line instead of a copy.
_VIEW = 4096

_BOM = b"\xef\xbb\xbf"


class ServerSentEvent(NamedTuple):
    """One dispatched event (an immutable, hashable named tuple).

    ``event`` is the type (``"message"`` when the stream named none), ``data`` the data
    lines joined with ``"\\n"``, ``id`` the last event ID seen so far on the stream (it
    persists across events, ``""`` before any), ``retry`` the ``retry`` field of this
    event's block in milliseconds, or ``None``.
    """

    event: str = "message"
    data: str = ""
    id: str = ""
    retry: int | None = None


def _split(data: bytes) -> list[bytes]:
    """``data.split(b"\\n")``, fast over long lines too.

    ``bytes.split`` looks at every byte in a C loop; ``bytes.find`` jumps to the next LF with
    ``memchr``, ten times as fast over a long line but a Python call per line. So a long line
    is cut out with ``find``, and runs of short lines are split a stretch at a time.
    """
    if len(data) <= _STRETCH:
        return data.split(b"\n")
    lines: list[bytes] = []
    pos = 0
    while True:
        lf = data.find(b"\n", pos)
        if lf < 0:
            lines.append(data[pos:])
            return lines
        if lf - pos >= _LONG_LINE:
            lines.append(data[pos:lf])
            pos = lf + 1
        else:
            stop = data.rfind(b"\n", lf, pos + _STRETCH)  # the stretch's last LF
            lines += data[pos:stop].split(b"\n")
            pos = stop + 1


class _LineSplitter:
    """Bytes in, complete lines out: without their terminators, the stream's BOM removed."""

    __slots__ = ("_cr_pending", "_held", "_max_line", "_partial", "_pieces", "_started")

    def __init__(self, max_line_bytes: int) -> None:
        self._max_line = max_line_bytes
        # The incomplete line: pieces set aside, then the latest bytes; and its length.
        self._pieces: list[bytearray] = []
        self._partial = bytearray()
        self._held = 0
        self._cr_pending = False  # the last chunk ended in CR: drop an LF that starts the next
        self._started = False  # a line was returned (the BOM can only start the first)

    @property
    def at_line_start(self) -> bool:
        """Whether the next byte starts a line (and the stream has started: no BOM to drop)."""
        return self._started and not self._held and not self._cr_pending

    def feed(self, data: bytes) -> list[bytes]:
        """Return the lines that ``data`` completes; raise ProtocolError for a long line."""
        if self._cr_pending and data:
            self._cr_pending = False
            if data.startswith(b"\n"):
                data = data[1:]
        if b"\r" in data:
            self._cr_pending = data.endswith(b"\r")
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines: list[bytes] = []
        tail = data
        if b"\n" in data:
            lines = _split(data)
            tail = lines.pop()
            if self._held + len(data) > self._max_line and (
                self._held + len(lines[0]) > self._max_line or max(map(len, lines)) > self._max_line
            ):
                raise ProtocolError(f"SSE line longer than max_line_bytes ({self._max_line})")
            if self._held:
                lines[0] = b"".join([*self._pieces, self._partial, lines[0]])
                self._pieces = []
                self._partial = bytearray()
                self._held = 0
            if not self._started:
                self._started = True
                if lines[0].startswith(_BOM):
                    lines[0] = lines[0][3:]
        if tail:
            self._held += len(tail)
            if self._held > self._max_line:
                raise ProtocolError(f"SSE line longer than max_line_bytes ({self._max_line})")
            partial = self._partial
            partial += tail
            if len(partial) >= _SPILL:
                self._pieces.append(partial)
                self._partial = bytearray()
        return lines

    def close(self) -> None:
        """Drop the incomplete line."""
        self._pieces = []
        self._partial = bytearray()
        self._held = 0


class SSEDecoder:
    """Incremental SSE decoder: :meth:`feed` bytes, get the events they complete.

    ``max_line_bytes`` caps one line, in bytes as received (without its terminator).
    ``max_event_bytes`` caps what the data of one event holds: each data line counts its
    bytes plus 64 (what a line costs in memory beside them). Each defaults to 64 MiB; past
    either, :meth:`feed` raises :class:`~mcpconnect.errors.ProtocolError`. Both must be
    positive ints, else :class:`ValueError`.
    With ``bare_json_lines=True`` (what :func:`mcpconnect.connect` uses, for compatibility
    with the TypeScript original) a line that starts with ``{`` is dispatched at once as the
    data of one event of type ``"message"``, as if it had been ``data: {...}``.
    """

    __slots__ = (
        "_bare_json",
        "_block_retry",
        "_closed",
        "_data",
        "_data_size",
        "_event_type",
        "_last_id",
        "_lines",
        "_max_event",
        "_one_event_max",
        "_retry",
    )

    def __init__(
        self,
        *,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        bare_json_lines: bool = False,
    ) -> None:
        limits = (("max_line_bytes", max_line_bytes), ("max_event_bytes", max_event_bytes))
        for name, value in limits:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self._lines = _LineSplitter(max_line_bytes)
        self._max_event = max_event_bytes
        # The longest chunk the shortcut in feed() takes: its line and its data are in limits.
        self._one_event_max = min(max_line_bytes + 2, max_event_bytes - _LINE_OVERHEAD + 8)
        self._bare_json = bare_json_lines
        self._closed = False
        # The spec's buffers; the data buffer as the list of its values.
        self._data: list[bytes | memoryview] = []
        self._data_size = 0  # what they hold, as max_event_bytes counts it
        self._event_type = ""
        self._last_id = ""
        self._block_retry: int | None = None  # the retry field of the current block
        self._retry: int | None = None

    @property
    def retry(self) -> int | None:
        """The stream's reconnection time in milliseconds: the last valid ``retry`` field
        read so far (whether or not its block dispatched an event), or ``None``."""
        return self._retry

    def feed(self, data: bytes) -> list[ServerSentEvent]:
        """Take the next bytes of the stream; return the events they complete, in order.

        Raises :class:`~mcpconnect.errors.ProtocolError` when a limit is exceeded and
        :class:`RuntimeError` after :meth:`close`.
        """
        if self._closed:
            raise RuntimeError("SSEDecoder.feed() called after close()")
        if (
            data.startswith(b"data: ")
            and data.find(b"\n") == len(data) - 2
            and data.endswith(b"\n")
            and b"\r" not in data
            and len(data) <= self._one_event_max
            and not self._data
            and not self._event_type
            and self._block_retry is None
            and self._lines.at_line_start
        ):
            # The one shortcut: the chunk is exactly one event, "data: <line>\n\n" (how Letta
            # sends them), and the decoder is between events. The general path would dispatch
            # a "message" event with data <line>, the last event ID and no retry, and change
            # nothing else.
            value = data[6:-2].decode("utf-8", "replace")
            return [ServerSentEvent("message", value, self._last_id)]
        lines = self._lines.feed(data)
        return self._fold(lines) if lines else []

    def close(self) -> list[ServerSentEvent]:
        """End the stream. An unterminated line or event is discarded, as the spec says, so
        this returns ``[]``; it is a list for symmetry with :meth:`feed`. Idempotent."""
        self._closed = True
        self._lines.close()
        self._data = []
        self._data_size = 0
        return []

    def _fold(self, lines: list[bytes]) -> list[ServerSentEvent]:
        """Fold ``lines`` into the buffers; return the events they dispatch."""
        events: list[ServerSentEvent] = []
        data = self._data
        size = self._data_size
        event_type = self._event_type
        last_id = self._last_id
        block_retry = self._block_retry
        try:
            for line in lines:
                if not line:
                    if data:
                        joined = data[0] if len(data) == 1 else b"\n".join(data)
                        events.append(
                            ServerSentEvent(
                                event_type or "message",
                                str(joined, "utf-8", "replace"),
                                last_id,
                                block_retry,
                            )
                        )
                        data.clear()
                        size = 0
                    event_type = ""
                    block_retry = None
                    continue
                # Field name, then the value after the colon and one optional space.
                colon = line.find(b":")
                if colon < 0:
                    name, start = line, len(line)
                else:
                    name = line[:colon]
                    start = colon + 2 if line[colon + 1 : colon + 2] == b" " else colon + 1
                if name == b"data":
                    length = len(line) - start
                    size += length + _LINE_OVERHEAD
                    if size > self._max_event:
                        raise ProtocolError(
                            f"SSE event data longer than max_event_bytes ({self._max_event})"
                        )
                    data.append(line[start:] if length < _VIEW else memoryview(line)[start:])
                elif name == b"event":
                    event_type = line[start:].decode("utf-8", "replace")
                elif name == b"id":
                    if line.find(b"\0", start) < 0:
                        last_id = line[start:].decode("utf-8", "replace")
                elif name == b"retry":
                    # ASCII digits only (bytes.isdigit); int() refuses over
                    # sys.get_int_max_str_digits() digits: such a field is ignored too.
                    value = line[start:]
                    if value.isdigit():
                        with contextlib.suppress(ValueError):
                            self._retry = block_retry = int(value)
                elif self._bare_json and line.startswith(b"{"):
                    # A bare JSON line (no "data:" field): the TypeScript original reads these.
                    events.append(
                        ServerSentEvent("message", line.decode("utf-8", "replace"), last_id)
                    )
        finally:
            self._data_size = size
            self._event_type = event_type
            self._last_id = last_id
            self._block_retry = block_retry
        return events
