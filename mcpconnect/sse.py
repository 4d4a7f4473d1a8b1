"""A push-style, sans-IO Server-Sent-Events decoder.

Theory of operation
-------------------
The WHATWG "event stream interpretation" is two small layers: split the byte stream into
lines (a line ends in CR, LF or CRLF), then fold lines into events (``data`` lines join with
LF; a blank line dispatches). :class:`SSEDecoder` does both, fed bytes as they arrive.

Lines are found with C-level ``bytes`` methods, never a Python loop over bytes:

* A chunk's CRs are folded into LFs first (``CRLF -> LF``, then ``CR -> LF``). That is exact
  because CR and LF never occur inside a UTF-8 multi-byte sequence, and a line never holds a
  terminator. A CR that ends a chunk ends its line *at once* (the line is emitted without
  waiting for the next chunk); we only remember to drop an LF that starts the next chunk.
* Everything up to the chunk's last LF is complete lines. It is decoded as UTF-8 (with
  replacement) in one call and split on ``"\\n"`` in one call. Decoding several whole lines at
  once gives the same text as decoding each alone, because every line boundary is also a
  character boundary. ``str.split("\\n")`` (not ``splitlines``) keeps U+2028, U+2029 and U+0085
  as data.
* What follows the last LF is an incomplete line: its bytes are appended to a ``bytearray``
  and never scanned again, so a line that arrives in a thousand pieces costs what one piece
  does (each new chunk is searched once, for LF and CR, by ``bytes.__contains__``/``rfind``).
  A UTF-8 character split across chunks is therefore decoded whole.

Limits: ``max_line_bytes`` caps one line (and so the incomplete line held in memory);
``max_event_bytes`` caps the data of one event. Both raise :class:`ProtocolError`.

This module imports only the standard library and attrs; it does no I/O.
"""

from __future__ import annotations

import contextlib

import attrs

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


@attrs.frozen(slots=True)
class ServerSentEvent:
    """One dispatched event.

    ``event`` is the type (``"message"`` when the stream named none), ``data`` the data
    lines joined with ``"\\n"``, ``id`` the last event ID seen so far on the stream (it
    persists across events, ``""`` before any), ``retry`` the ``retry`` field of this
    event's block in milliseconds, or ``None``.
    """

    event: str = "message"
    data: str = ""
    id: str = ""
    retry: int | None = None


class SSEDecoder:
    """Incremental SSE decoder: :meth:`feed` bytes, get the events they complete.

    ``max_line_bytes`` and ``max_event_bytes`` bound memory (see the module constants for
    the defaults); a longer line or event raises :class:`~mcpconnect.errors.ProtocolError`.
    With ``bare_json_lines=True`` (what :func:`mcpconnect.connect` uses, for compatibility
    with the TypeScript original) a line that starts with ``{`` is dispatched at once as the
    data of one event of type ``"message"``, as if it had been ``data: {...}``.
    """

    __slots__ = (
        "_bare_json",
        "_bom_pending",
        "_closed",
        "_cr_pending",
        "_data",
        "_data_size",
        "_event_type",
        "_last_id",
        "_max_event",
        "_max_line",
        "_partial",
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
        self._max_line = max_line_bytes
        self._max_event = max_event_bytes
        self._bare_json = bare_json_lines
        self._partial = bytearray()  # the incomplete line, never rescanned
        self._cr_pending = False  # the last chunk ended in CR: drop one LF that starts the next
        self._bom_pending = True
        self._closed = False
        self._data: list[str] = []
        self._data_size = 0
        self._event_type = ""
        self._last_id = ""
        self._retry: int | None = None

    def feed(self, data: bytes) -> list[ServerSentEvent]:
        """Take the next bytes of the stream; return the events they complete, in order.

        Raises :class:`~mcpconnect.errors.ProtocolError` when a limit is exceeded and
        :class:`RuntimeError` after :meth:`close`.
        """
        if self._closed:
            raise RuntimeError("SSEDecoder.feed() called after close()")
        if not data:
            return []
        if self._cr_pending:
            self._cr_pending = False
            if data[0] == 0x0A:
                data = data[1:]
        if b"\r" in data:
            self._cr_pending = data[-1] == 0x0D
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        end = data.rfind(b"\n")
        partial = self._partial
        if end < 0:
            partial += data
            if len(partial) > self._max_line:
                raise ProtocolError(f"SSE line longer than max_line_bytes ({self._max_line})")
            return []
        if partial:
            partial += data[:end]
            block = bytes(partial)
            partial.clear()
        else:
            block = data[:end]
        partial += data[end + 1 :]
        if len(block) > self._max_line or len(partial) > self._max_line:
            self._check_line_lengths(block)
        text = block.decode("utf-8", "replace")
        if self._bom_pending:
            self._bom_pending = False
            if text[:1] == "\ufeff":
                text = text[1:]
        return self._lines(text.split("\n"))

    def close(self) -> list[ServerSentEvent]:
        """End the stream. An unterminated line or event is discarded, as the spec says, so
        this returns ``[]``; it is a list for symmetry with :meth:`feed`. Idempotent."""
        self._closed = True
        self._partial = bytearray()
        self._data = []
        return []

    def _check_line_lengths(self, block: bytes) -> None:
        # Rare path: only when the block could hold a line over the limit.
        if len(self._partial) > self._max_line or (
            block and max(map(len, block.split(b"\n"))) > self._max_line
        ):
            raise ProtocolError(f"SSE line longer than max_line_bytes ({self._max_line})")

    def _lines(self, lines: list[str]) -> list[ServerSentEvent]:
        events: list[ServerSentEvent] = []
        data = self._data
        for line in lines:
            if not line:
                if data:
                    events.append(
                        ServerSentEvent(
                            self._event_type or "message",
                            "\n".join(data),
                            self._last_id,
                            self._retry,
                        )
                    )
                    data.clear()
                    self._data_size = 0
                self._event_type = ""
                self._retry = None
                continue
            name, _, value = line.partition(":")
            if value[:1] == " ":
                value = value[1:]
            if name == "data":
                # The event's data is these values joined with "\n": count each value's
                # UTF-8 size plus one, and allow one more for the first line's missing "\n".
                self._data_size += (len(value) if value.isascii() else len(value.encode())) + 1
                if self._data_size > self._max_event + 1:
                    raise ProtocolError(
                        f"SSE event data longer than max_event_bytes ({self._max_event})"
                    )
                data.append(value)
            elif name == "event":
                self._event_type = value
            elif name == "id":
                if "\x00" not in value:
                    self._last_id = value
            elif name == "retry":
                if value.isascii() and value.isdigit():
                    # int() refuses over sys.get_int_max_str_digits() digits: ignore those.
                    with contextlib.suppress(ValueError):
                        self._retry = int(value)
            elif self._bare_json and name[:1] == "{":
                # A bare JSON line (no "data:" field): the TypeScript original reads these.
                events.append(ServerSentEvent("message", line, self._last_id, None))
        return events
