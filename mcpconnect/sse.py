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
* Everything up to the chunk's last LF is complete lines (the *block*). What follows is an
  incomplete line: its bytes are appended to a ``bytearray`` and never scanned again, so a
  line that arrives in a thousand pieces costs what one piece does. A UTF-8 character split
  across chunks is therefore decoded whole. Past 64 KiB the bytes are decoded as they come,
  by an incremental UTF-8 decoder (which gives the same text as decoding them at once), and
  kept as a list of strings; when the line ends, a ``data`` line is joined once, without its
  field name (:meth:`SSEDecoder._long_line`), so a 20 MB line costs one 20 MB string.
* A block is decoded as UTF-8 (with replacement) in one call and split on ``"\\n"`` in one
  call. Decoding several whole lines at once gives the same text as decoding each alone,
  because LF is never part of a multi-byte sequence, so every line boundary is also a
  character boundary. ``str.split("\\n")`` (not ``splitlines``) keeps U+2028, U+2029 and
  U+0085 as data. The lines are then folded into events one by one.

Fast path. Almost every real stream is a run of ``data: <one line>\\n\\n`` events. When the
decoder is between events and a block starts with such a run, the run is checked and taken
apart with a few C-level calls instead of a Python loop over its lines; see
:meth:`SSEDecoder._data_events` for why that is exact. Everything else takes the line loop.

Limits: ``max_line_bytes`` caps one line (and so the incomplete line held in memory);
``max_event_bytes`` caps the UTF-8 size of the data of one event. Both raise
:class:`ProtocolError`.

This module imports only the standard library and attrs; it does no I/O.
"""

from __future__ import annotations

import codecs
import contextlib
from itertools import repeat

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
# An incomplete line's bytearray is moved to a list once it is over this size.
_SPILL = 64 * 1024
# Runs of data events are taken apart in regions of about this size (see _data_events).
_WINDOW = 64 * 1024


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


# Building events without attrs' generated __init__, which costs more than the rest of
# decoding a small event: allocate the instance and fill its four slots through the slot
# descriptors (the very setters the generated __init__ reaches through object.__setattr__).
# Exact because ServerSentEvent has no validators, converters or __attrs_post_init__, and
# these are all its fields (tests/test_sse.py checks both).
_new = object.__new__
_set_event = ServerSentEvent.__dict__["event"].__set__
_set_data = ServerSentEvent.__dict__["data"].__set__
_set_id = ServerSentEvent.__dict__["id"].__set__
_set_retry = ServerSentEvent.__dict__["retry"].__set__


def _event(event: str, data: str, id: str, retry: int | None) -> ServerSentEvent:
    self = _new(ServerSentEvent)
    _set_event(self, event)
    _set_data(self, data)
    _set_id(self, id)
    _set_retry(self, retry)
    return self


def _messages(datas: list[str], id: str) -> list[ServerSentEvent]:
    """``[ServerSentEvent("message", data, id, None) for data in datas]``, in C loops."""
    n = len(datas)
    if n < 8:
        return [_event("message", data, id, None) for data in datas]
    events = list(map(_new, repeat(ServerSentEvent, n)))
    # Each setter returns None, so any() runs it over every event.
    any(map(_set_event, events, repeat("message", n)))
    any(map(_set_data, events, datas))
    any(map(_set_id, events, repeat(id, n)))
    any(map(_set_retry, events, repeat(None, n)))
    return events


def _decode(block: bytes | bytearray, start: int, stop: int) -> str:
    """``block[start:stop]`` as UTF-8 with replacement, without copying the bytes first."""
    if stop - start < 4096:
        return block[start:stop].decode("utf-8", "replace")
    with memoryview(block) as view:
        return str(view[start:stop], "utf-8", "replace")


class SSEDecoder:
    """Incremental SSE decoder: :meth:`feed` bytes, get the events they complete.

    ``max_line_bytes`` and ``max_event_bytes`` bound memory (see the module constants for
    the defaults); a longer line or event raises :class:`~mcpconnect.errors.ProtocolError`.
    The event limit counts the UTF-8 bytes of the event's data as decoded (an invalid byte
    becomes U+FFFD, three bytes).
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
        "_idle",
        "_last_id",
        "_max_event",
        "_max_line",
        "_partial",
        "_pieces",
        "_pieces_size",
        "_ready",
        "_ready_max",
        "_retry",
        "_spill_at",
        "_utf8",
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
        # The incomplete line, never rescanned: whole pieces of it in _pieces (so that a long
        # line is not copied each time a bytearray outgrows its memory), the rest in _partial.
        self._pieces: list[str] = []  # decoded as they come, by _utf8
        self._utf8 = codecs.getincrementaldecoder("utf-8")("replace")
        self._pieces_size = 0
        self._partial = bytearray()
        self._spill_at = min(_SPILL, max_line_bytes)  # when _partial moves to _pieces
        self._cr_pending = False  # the last chunk ended in CR: drop one LF that starts the next
        self._bom_pending = True
        self._closed = False
        self._data: list[str] = []  # the data buffer, one entry per data line
        self._data_size = 0  # UTF-8 size of the data buffer, plus one per line
        self._event_type = ""
        self._last_id = ""
        self._retry: int | None = None
        self._idle = True  # between events: no data, event type or retry buffered
        # True when a chunk that is exactly "data: <line>\n\n" may take the shortcut in
        # feed(): between events, no CR pending, BOM done, open, no incomplete line.
        self._ready = False
        # The shortcut also needs the line and its event to be within the limits.
        self._ready_max = min(max_line_bytes + 2, max_event_bytes // 3)

    def feed(self, data: bytes) -> list[ServerSentEvent]:
        """Take the next bytes of the stream; return the events they complete, in order.

        Raises :class:`~mcpconnect.errors.ProtocolError` when a limit is exceeded and
        :class:`RuntimeError` after :meth:`close`.
        """
        size = len(data)
        if size == 1 and data[0] > 0x0D and not self._cr_pending and not self._closed:
            # One byte that ends no line (CR and LF are below 0x0E): extend the line.
            partial = self._partial
            partial += data
            self._ready = False
            if len(partial) > self._spill_at:
                self._spill()
            return []
        if (
            self._ready
            and data.startswith(b"data: ")
            and data.find(b"\n", 6) == size - 2
            and data[-1] == 0x0A  # with the line above: it ends in "\n\n", its first LF
            and data.find(b"\r") < 0
            and size <= self._ready_max
        ):
            # The chunk is exactly one event, "data: <line>\n\n" (what Letta sends), and the
            # decoder is between events with nothing buffered: the line dispatches a message
            # event with data <line>, the last event ID and no retry, and nothing changes.
            # (_decode and _event inlined: this runs once per chunk of a typical stream.)
            if size < 4096:
                value = data[6:-2].decode("utf-8", "replace")
            else:
                value = _decode(data, 6, size - 2)
            event = _new(ServerSentEvent)
            _set_event(event, "message")
            _set_data(event, value)
            _set_id(event, self._last_id)
            _set_retry(event, None)
            return [event]
        events = self._feed(data)
        self._ready = (
            self._idle
            and not self._cr_pending
            and not self._bom_pending
            and not self._pieces
            and not self._partial
        )
        return events

    def _feed(self, data: bytes) -> list[ServerSentEvent]:
        if self._closed:
            raise RuntimeError("SSEDecoder.feed() called after close()")
        if not data:
            return []
        if self._cr_pending:
            self._cr_pending = False
            if data[0] == 0x0A:
                data = data[1:]
        # bytes.find, not "in": it is much cheaper on small chunks.
        if data.find(b"\r") >= 0:
            self._cr_pending = data[-1] == 0x0D
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        end = data.rfind(b"\n") + 1
        partial = self._partial
        if not end:
            if len(data) < _SPILL:
                partial += data
                if len(partial) > self._spill_at:
                    self._spill()
            else:
                self._spill(data)  # kept as it is: bytes do not change
            return []
        # The block: complete lines, each ending in LF.
        block: bytes | bytearray
        if self._pieces:
            # A long line ends in this chunk: finish it on its own, then go on with the rest.
            first = data.find(b"\n")
            partial += memoryview(data)[:first]
            if self._pieces_size + len(partial) > self._max_line:
                raise ProtocolError(f"SSE line longer than max_line_bytes ({self._max_line})")
            pieces = self._pieces
            pieces.append(self._utf8.decode(partial, True))
            self._utf8.reset()
            self._pieces = []
            self._pieces_size = 0
            self._spill_at = min(_SPILL, self._max_line)
            self._partial = bytearray()
            events: list[ServerSentEvent] = []
            self._long_line(pieces, events)
            # The rest holds no CR (folded above); a CR that ended the chunk still counts.
            cr_pending, self._cr_pending = self._cr_pending, False
            events += self._feed(data[first + 1 :])
            self._cr_pending = cr_pending
            return events
        if partial:
            partial += memoryview(data)[:end]
            block = partial
            self._partial = partial = bytearray()
            if end < len(data):
                partial += memoryview(data)[end:]
            if len(block) > self._max_line or len(partial) > self._max_line:
                self._check_line_lengths(block)
        else:
            if end == len(data):
                block = data
            else:
                block = data[:end]
                partial += memoryview(data)[end:]
            if len(data) > self._max_line:
                self._check_line_lengths(block)
        start = 0
        if self._bom_pending:
            self._bom_pending = False
            if block.startswith(b"\xef\xbb\xbf"):
                start = 3
        end = len(block)
        if (
            self._idle
            and block.startswith(b"data: ", start)
            and block.find(b"\n", start + 6) == end - 2
        ):
            # The block is one event, "data: <line>\n\n", the usual chunk: _data_events
            # (see there), inlined.
            value = _decode(block, start + 6, end - 2)
            if 3 * (end - start) > self._max_event:
                self._check_event_sizes([value])
            return [_event("message", value, self._last_id, None)]
        # Alternate between the fast path, for runs of "data: <line>\n\n" events, and the line
        # loop, which takes other lines up to the next blank line that a "data: " line
        # follows. When a run ends in an event of another form, the line loop takes the rest
        # of the block, so no byte is scanned more than a few times.
        events = []
        while start < end:
            stop = end
            if self._idle and block.startswith(b"data: ", start):
                pos = self._data_events(block, start, events)
                if pos == end:
                    break
                if pos > start and not block.startswith(b"data: ", pos):
                    stop = block.find(b"\n\ndata: ", pos) + 2
                start = pos
            else:
                stop = block.find(b"\n\ndata: ", start) + 2
            if stop < 2:  # no such line (find gave -1)
                stop = end
            self._lines(_decode(block, start, stop - 1).split("\n"), events)
            start = stop
        return events

    def close(self) -> list[ServerSentEvent]:
        """End the stream. An unterminated line or event is discarded, as the spec says, so
        this returns ``[]``; it is a list for symmetry with :meth:`feed`. Idempotent."""
        self._closed = True
        self._ready = False
        self._partial = bytearray()
        self._pieces = []
        self._utf8.reset()
        self._data = []
        return []

    def _spill(self, more: bytes = b"") -> None:
        """Move the incomplete line's bytearray, then ``more``, to _pieces; or raise if the
        line is too long."""
        size = self._pieces_size + len(self._partial) + len(more)
        if size > self._max_line:
            raise ProtocolError(f"SSE line longer than max_line_bytes ({self._max_line})")
        self._ready = False
        if self._partial:
            self._pieces.append(self._utf8.decode(self._partial))
            self._partial = bytearray()
        if more:
            self._pieces.append(self._utf8.decode(more))
        self._pieces_size = size
        self._spill_at = min(_SPILL, self._max_line - size)

    def _long_line(self, pieces: list[str], events: list[ServerSentEvent]) -> None:
        """Fold one complete line that came in ``pieces`` (decoded) into the state. A data
        line, the usual long line, is joined once, without its field name: a 20 MB line costs
        one 20 MB string. Other lines are joined whole and go through the line loop."""
        if self._bom_pending:
            self._bom_pending = False
            if pieces[0].startswith("\ufeff"):
                pieces[0] = pieces[0][1:]
        head, rest = pieces[0], 1
        while len(head) < 6 and rest < len(pieces):  # enough to know "data:" or "data: "
            head += pieces[rest]
            rest += 1
        if not head.startswith("data:"):
            self._lines(["".join([head, *pieces[rest:]])], events)
            return
        value = "".join([head[6 if head.startswith("data: ") else 5 :], *pieces[rest:]])
        size = self._data_size + (len(value) if value.isascii() else len(value.encode())) + 1
        if size > self._max_event + 1:  # as in _lines: the first line's "\n" is not data
            raise ProtocolError(f"SSE event data longer than max_event_bytes ({self._max_event})")
        self._data.append(value)
        self._data_size = size
        self._idle = False

    def _check_line_lengths(self, block: bytes | bytearray) -> None:
        # Rare path: only when the block could hold a line over the limit.
        if len(self._partial) > self._max_line or (
            max(map(len, block.split(b"\n"))) > self._max_line
        ):
            raise ProtocolError(f"SSE line longer than max_line_bytes ({self._max_line})")

    def _check_event_sizes(self, datas: list[str]) -> None:
        # Rare path: only when the bytes they came from could hold an event over the limit.
        for value in datas:
            if (len(value) if value.isascii() else len(value.encode())) > self._max_event:
                raise ProtocolError(
                    f"SSE event data longer than max_event_bytes ({self._max_event})"
                )

    def _data_events(
        self, block: bytes | bytearray, start: int, events: list[ServerSentEvent]
    ) -> int:
        """The fast path: append the events of the run of ``data: <line>\\n\\n`` events that
        starts ``block`` at ``start`` to ``events``; return where the run ends (``start``
        when there is none). Called only between events (empty data buffer, no event type, no
        retry), where each such pair of lines dispatches one ``message`` event with data
        ``<line>``, the last event ID and no retry, and leaves the decoder between events.
        """
        # Event by event, each line end found by memchr: cheap for a few large events.
        end = len(block)
        last_id = self._last_id
        pos = start
        for _ in range(8):
            lf = block.find(b"\n", pos + 6)
            if lf + 1 == end or block[lf + 1] != 0x0A:
                return pos  # the line is not followed by a blank line (yet)
            value = _decode(block, pos + 6, lf)
            if 3 * (lf + 2 - pos) > self._max_event:
                self._check_event_sizes([value])
            events.append(_event("message", value, last_id, None))
            pos = lf + 2
            if pos == end or not block.startswith(b"data: ", pos):
                return pos
        # Many events: take the rest of the run apart with a few C-level calls. The region
        # block[pos:stop] starts with "data: " and ends with "\n\n" (a blank line ends at
        # stop >= pos + 8, the shortest event). Decoded and split at "\n\ndata: " it gives
        # k + 1 parts for k separators; if it holds exactly 2k + 2 LFs, every LF is in a
        # separator or in the final "\n\n", so the region is "data: V1\n\n ... data: Vk+1\n\n"
        # with no LF in any Vi, and the parts are the Vi. Decoding it at once gives the same
        # Vi as decoding each alone: the cuts sit next to ASCII bytes, and LF is never part
        # of a multi-byte sequence (nor swallowed by a replacement).
        final = end if block.endswith(b"\n\n") else block.rfind(b"\n\n", pos) + 2
        # Region by region of about _WINDOW bytes, each ending at a blank line: a large block
        # is read while it is in the cache (decoding 10 MB at once is half as fast).
        while pos < final:
            stop = final
            if final - pos > _WINDOW:
                stop = block.rfind(b"\n\n", pos, pos + _WINDOW) + 2
            if stop < pos + 8:  # rfind found none
                return pos
            text = _decode(block, pos + 6, stop - 2)
            datas = text.split("\n\ndata: ")
            if text.count("\n") != 2 * len(datas) - 2:
                return pos
            # An event's data is at most 3 bytes (U+FFFD) per byte it came from.
            if 3 * (stop - pos) > self._max_event:
                self._check_event_sizes(datas)
            events += _messages(datas, last_id)
            pos = stop
        return pos

    def _lines(self, lines: list[str], events: list[ServerSentEvent]) -> None:
        """Fold ``lines`` into the decoder's state, appending dispatched events."""
        data = self._data
        size = self._data_size
        event_type = self._event_type
        last_id = self._last_id
        retry = self._retry
        max_size = self._max_event + 1  # the first line's "\n" is not part of the data
        bare_json = self._bare_json
        try:
            for line in lines:
                if not line:
                    if data:
                        events.append(
                            _event(event_type or "message", "\n".join(data), last_id, retry)
                        )
                        data.clear()
                        size = 0
                    event_type = ""
                    retry = None
                    continue
                name, _, value = line.partition(":")
                if value[:1] == " ":
                    value = value[1:]
                if name == "data":
                    size += (len(value) if value.isascii() else len(value.encode())) + 1
                    if size > max_size:
                        raise ProtocolError(
                            f"SSE event data longer than max_event_bytes ({self._max_event})"
                        )
                    data.append(value)
                elif name == "event":
                    event_type = value
                elif name == "id":
                    if "\x00" not in value:
                        last_id = value
                elif name == "retry":
                    if value.isascii() and value.isdigit():
                        # int() refuses over sys.get_int_max_str_digits() digits: ignore those.
                        with contextlib.suppress(ValueError):
                            retry = int(value)
                elif bare_json and name[:1] == "{":
                    # A bare JSON line (no "data:" field): the TypeScript original reads these.
                    events.append(_event("message", line, last_id, None))
        finally:
            self._data_size = size
            self._event_type = event_type
            self._last_id = last_id
            self._retry = retry
            self._idle = not data and not event_type and retry is None
