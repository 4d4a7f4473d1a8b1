"""Tests of the SSE decoder: the WHATWG examples, one test per rule, the limits, and a
hypothesis property that chunking never changes the events (and that they match a
spec-literal reference decoder)."""

from __future__ import annotations

import itertools
import json
import random
import re
import subprocess
import sys
import unittest.mock
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mcpconnect.sse
from mcpconnect.errors import ProtocolError
from mcpconnect.sse import (
    DEFAULT_MAX_EVENT_BYTES,
    DEFAULT_MAX_LINE_BYTES,
    ServerSentEvent,
    SSEDecoder,
)

FIXTURES = Path(__file__).parent / "fixtures" / "letta-0.16.8"
E = ServerSentEvent


def decode(chunks: list[bytes], **kwargs: object) -> list[ServerSentEvent]:
    decoder = SSEDecoder(**kwargs)  # type: ignore[arg-type]
    events: list[ServerSentEvent] = []
    for chunk in chunks:
        events += decoder.feed(chunk)
    return events + decoder.close()


def chunkings(data: bytes) -> Iterator[list[bytes]]:
    """Whole, one byte at a time, and split in two at every position."""
    yield [data]
    yield [data[i : i + 1] for i in range(len(data))]
    for i in range(len(data) + 1):
        yield [data[:i], data[i:]]


def assert_decodes(data: bytes, expected: list[ServerSentEvent], **kwargs: object) -> None:
    for chunks in chunkings(data):
        assert decode(chunks, **kwargs) == expected, chunks


# --- The examples of the WHATWG spec (HTML, "9.2.6 Interpreting an event stream") -------


def test_spec_example_stock_ticker() -> None:
    assert_decodes(b"data: YHOO\ndata: +2\ndata: 10\n\n", [E(data="YHOO\n+2\n10")])


def test_spec_example_four_blocks() -> None:
    stream = (
        b": test stream\n\n"
        b"data: first event\nid: 1\n\n"
        b"data:second event\nid\n\n"
        b"data:  third event\n\n"
    )
    assert_decodes(
        stream,
        [E(data="first event", id="1"), E(data="second event", id=""), E(data=" third event")],
    )


def test_spec_example_last_block_needs_a_blank_line() -> None:
    assert_decodes(
        b"data: first event\nid: 1\n\ndata:  third event\n", [E(data="first event", id="1")]
    )


def test_spec_example_empty_data() -> None:
    # The first block fires data "", the middle one data "\n"; the last has no blank line.
    assert_decodes(b"data\n\ndata\ndata\n\ndata:", [E(data=""), E(data="\n")])


def test_spec_example_space_after_colon_is_optional() -> None:
    assert_decodes(b"data:test\n\ndata: test\n\n", [E(data="test"), E(data="test")])


def test_spec_example_event_types() -> None:
    stream = (
        b"event: add\ndata: 73857293\n\nevent: remove\ndata: 2153\n\nevent: add\ndata: 113411\n\n"
    )
    assert_decodes(
        stream,
        [E("add", "73857293"), E("remove", "2153"), E("add", "113411")],
    )


def test_recorded_letta_stream() -> None:
    raw = (FIXTURES / "noauth_sse_success.txt").read_bytes()
    events = decode([raw])
    assert [json.loads(e.data)["event"] for e in events] == ["connection_attempt", "success"]
    assert [(e.event, e.id, e.retry) for e in events] == [("message", "", None)] * 2
    for chunks in chunkings(raw):
        assert decode(chunks) == events


# --- Lines ---------------------------------------------------------------------------------


@pytest.mark.parametrize("eol", [b"\n", b"\r", b"\r\n"])
def test_each_line_terminator(eol: bytes) -> None:
    stream = b"data: a" + eol + b"data: b" + eol + eol + b"data: c" + eol + eol
    assert_decodes(stream, [E(data="a\nb"), E(data="c")])


def test_mixed_line_terminators() -> None:
    stream = b"data: a\rdata: b\ndata: c\r\ndata: d\r\r\ndata: e\n\r\n\r\n"
    assert_decodes(stream, [E(data="a\nb\nc\nd"), E(data="e")])


def test_cr_lf_split_across_chunks_is_one_terminator() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\ndata: b\r") == []
    assert decoder.feed(b"\n\r") == [E(data="a\nb")]
    assert decoder.feed(b"\n") == []  # the LF of the CRLF above, not a second blank line
    assert decoder.feed(b"data: c\n\n") == [E(data="c")]


def test_lone_cr_at_chunk_end_dispatches_at_once() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r\r") == [E(data="a")]
    assert decoder.feed(b"data: b\n\r") == [E(data="b")]
    assert decoder.feed(b"data: c\r") == []
    assert decoder.feed(b"\r") == [E(data="c")]


def test_line_is_emitted_when_its_terminator_arrives() -> None:
    decoder = SSEDecoder(bare_json_lines=True)
    assert decoder.feed(b'{"a": 1}') == []
    assert decoder.feed(b"\r") == [E(data='{"a": 1}')]


def test_leading_bom_is_dropped() -> None:
    assert_decodes(b"\xef\xbb\xbfdata: a\n\n", [E(data="a")])
    assert_decodes(b"\xef\xbb\xbf\n\ndata: a\n\n", [E(data="a")])


def test_only_one_leading_bom_is_dropped() -> None:
    # The second BOM is part of the field name "\ufeffdata", an unknown field.
    assert_decodes(b"\xef\xbb\xbf\xef\xbb\xbfdata: a\n\ndata: b\n\n", [E(data="b")])


def test_bom_elsewhere_is_kept() -> None:
    assert_decodes(b"data: a\n\n\xef\xbb\xbfdata: b\n\n", [E(data="a")])
    assert_decodes(b"data: \xef\xbb\xbfb\n\n", [E(data="\ufeffb")])
    assert_decodes(b"\ndata: \xef\xbb\xbfb\n\n", [E(data="\ufeffb")])


# --- Fields --------------------------------------------------------------------------------


def test_comments_are_ignored() -> None:
    assert_decodes(b": hi\ndata: a\n: there\ndata: b\n\n:\n\n", [E(data="a\nb")])


def test_line_without_colon_is_a_field_with_empty_value() -> None:
    assert_decodes(b"data\n\n", [E(data="")])
    assert_decodes(b"event\ndata: a\n\n", [E(data="a")])  # empty type -> "message"
    assert_decodes(b"id: 1\ndata: a\n\nid\ndata: b\n\n", [E(data="a", id="1"), E(data="b")])


def test_only_one_space_after_colon_is_removed() -> None:
    assert_decodes(
        b"data:a\n\ndata: a\n\ndata:  a\n\ndata:\ta\n\nevent:  x\ndata:\n\n",
        [E(data="a"), E(data="a"), E(data=" a"), E(data="\ta"), E(" x", "")],
    )


def test_value_keeps_later_colons_and_trailing_spaces() -> None:
    assert_decodes(b"data: a: b :c \n\n", [E(data="a: b :c ")])


def test_unknown_and_miscased_fields_are_ignored() -> None:
    assert_decodes(b"foo: bar\nData: x\n data: y\ndata: a\nDATA\n\n", [E(data="a")])


def test_data_lines_join_with_lf() -> None:
    assert_decodes(b"data: a\ndata:\ndata: b\ndata\n\n", [E(data="a\n\nb\n")])


def test_blank_line_without_data_dispatches_nothing() -> None:
    assert_decodes(b"\n\n: comment\n\nevent: x\n\nretry: 5\n\nid: 7\n\n", [])


def test_no_phantom_event_after_a_comment_once_an_id_was_seen() -> None:
    # httpx-sse bug #35: it dispatches an empty event for each later blank line once
    # last_event_id is set, e.g. after a keep-alive comment.
    stream = b"id: 1\n\n: keep-alive\n\ndata: a\n\n: ping\n\n\n\nid: 2\n\n"
    assert_decodes(stream, [E(data="a", id="1")])


def test_event_type_resets_after_each_blank_line() -> None:
    assert_decodes(
        b"event: foo\ndata: a\n\ndata: b\n\nevent: bar\n\ndata: c\n\n",
        [E("foo", "a"), E("message", "b"), E("message", "c")],
    )


def test_last_event_id_persists_and_ignores_nul() -> None:
    stream = (
        b"id: 1\ndata: a\n\ndata: b\n\nid: 2\x003\ndata: c\n\nid: 4\n\ndata: d\n\nid:\ndata: e\n\n"
    )
    assert_decodes(
        stream,
        [
            E(data="a", id="1"),
            E(data="b", id="1"),
            E(data="c", id="1"),
            E(data="d", id="4"),
            E(data="e", id=""),
        ],
    )


def test_retry_only_when_all_ascii_digits() -> None:
    stream = (
        b"retry: 1500\ndata: a\n\n"
        b"data: b\n\n"  # retry belongs to its block only
        b"retry: 15a\ndata: c\n\n"
        b"retry: -1\ndata: d\n\n"
        b"retry: 1 \ndata: e\n\n"
        b"retry:\ndata: f\n\n"
        b"retry: \xd9\xa1\xd9\xa2\ndata: g\n\n"  # Arabic-Indic digits are not ASCII digits
        b"retry: 0007\ndata: h\n\n"
        b"retry: +7\ndata: i\n\n"
    )
    assert_decodes(
        stream,
        [
            E(data="a", retry=1500),
            E(data="b"),
            E(data="c"),
            E(data="d"),
            E(data="e"),
            E(data="f"),
            E(data="g"),
            E(data="h", retry=7),
            E(data="i"),
        ],
    )


def test_retry_with_more_digits_than_int_parses_is_ignored_not_raised() -> None:
    # Python refuses int() of a string of over 4300 digits; the decoder must not raise.
    stream = b"retry: " + b"9" * 5000 + b"\ndata: a\n\nretry: 12\ndata: b\n\n"
    assert decode([stream]) == [E(data="a"), E(data="b", retry=12)]


# --- UTF-8 ---------------------------------------------------------------------------------


def test_multibyte_characters_split_across_chunks() -> None:
    text = "data: é€😀 ünï\n\n"
    assert_decodes(text.encode(), [E(data="é€😀 ünï")])


def test_invalid_utf8_becomes_replacement_characters() -> None:
    assert_decodes(
        b"data: a\xffb\n\ndata: \xe2\x82\n\ndata: \xc3\n\ndata: \xed\xa0\x80!\n\n",
        [E(data="a\ufffdb"), E(data="\ufffd"), E(data="\ufffd"), E(data="\ufffd\ufffd\ufffd!")],
    )
    assert_decodes(b"\xffdata: a\n\nda\xffta: b\n\ndata: c\n\n", [E(data="c")])


def test_unicode_line_separators_are_data() -> None:
    data = "a\u2028b\u2029c\x85d\x0be\x0cf\x1cg\x1dh\x1ei"
    assert_decodes(f"data: {data}\n\n".encode(), [E(data=data)])


# --- End of stream -------------------------------------------------------------------------


def test_unterminated_event_is_discarded_at_close() -> None:
    assert_decodes(b"data: a\n\ndata: b\n", [E(data="a")])
    assert_decodes(b"data: a\n\ndata: b", [E(data="a")])
    assert_decodes(b"data: a\n\ndata: b\r", [E(data="a")])


def test_close_returns_nothing_and_feed_after_close_raises() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n") == []
    assert decoder.close() == []
    assert decoder.close() == []
    with pytest.raises(RuntimeError, match=r"after close"):
        decoder.feed(b"\n")
    with pytest.raises(RuntimeError, match=r"after close"):
        decoder.feed(b"")


def test_empty_chunks_change_nothing() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"") == []
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"") == []
    assert decoder.feed(b"\n") == []
    assert decoder.feed(b"\n") == [E(data="a")]


# --- Bare JSON lines (compatibility with the TypeScript original) --------------------------


def test_bare_json_lines_are_off_by_default() -> None:
    assert_decodes(b'{"event": "success"}\n\n', [])


def test_bare_json_line_is_one_event() -> None:
    stream = b'{"event": "a"}\n{"event": "b"}\r\nid: 3\n\n{"x": ": y"}\n\n'
    assert_decodes(
        stream,
        [E(data='{"event": "a"}'), E(data='{"event": "b"}'), E(data='{"x": ": y"}', id="3")],
        bare_json_lines=True,
    )


def test_bare_json_mixed_with_data_lines_and_done() -> None:
    # A bare line is dispatched when it ends; the data buffer around it is unaffected.
    stream = b'data: a\n{"b": 1}\ndata: c\n\n[DONE]\n\n {"x": 1}\n\n'
    assert_decodes(stream, [E(data='{"b": 1}'), E(data="a\nc")], bare_json_lines=True)


# --- Limits --------------------------------------------------------------------------------


def test_default_limits_fit_a_success_with_100000_tools() -> None:
    assert DEFAULT_MAX_LINE_BYTES >= 35_000_000
    assert DEFAULT_MAX_EVENT_BYTES >= 35_000_000
    raw = (FIXTURES / "noauth_sse_success.txt").read_bytes()
    success = json.loads(raw.split(b"\n\n")[1].removeprefix(b"data: "))
    tools = (success["tools"] * 33_334)[:100_000]
    data = json.dumps({"event": "success", "tools": tools})
    assert len(data) >= 34_000_000
    decoder = SSEDecoder()
    events = decoder.feed(f"data: {data}\n\n".encode())
    assert events == [E(data=data)]


def test_line_at_the_limit_is_accepted() -> None:
    line = b"data: " + b"x" * 94  # 100 bytes, the terminator not counted
    for eol in (b"\n", b"\r", b"\r\n"):
        assert_decodes(line + eol + eol, [E(data="x" * 94)], max_line_bytes=100)


def test_line_over_the_limit_raises() -> None:
    line = b"data: " + b"x" * 95  # 101 bytes
    for chunks in chunkings(line + b"\n\n"):
        with pytest.raises(ProtocolError, match=r"max_line_bytes \(100\)"):
            decode(chunks, max_line_bytes=100)


def test_line_limit_counts_bytes_not_characters() -> None:
    assert decode([b"data: " + "é".encode() * 47 + b"\n\n"], max_line_bytes=100) == [
        E(data="é" * 47)
    ]
    with pytest.raises(ProtocolError):
        decode([b"data: " + "é".encode() * 48 + b"\n\n"], max_line_bytes=100)


def test_unterminated_line_raises_as_soon_as_it_is_over_the_limit() -> None:
    decoder = SSEDecoder(max_line_bytes=100)
    for _ in range(100):
        assert decoder.feed(b"x") == []
    with pytest.raises(ProtocolError, match=r"max_line_bytes"):
        decoder.feed(b"x")
    decoder = SSEDecoder(max_line_bytes=100)
    with pytest.raises(ProtocolError, match=r"max_line_bytes"):
        decoder.feed(b"data: a\n\n" + b"x" * 101)


def test_event_at_the_limit_is_accepted() -> None:
    # 100 bytes of data: 49 + "\n" + 50.
    stream = b"data: " + b"a" * 49 + b"\ndata: " + b"b" * 50 + b"\n\n"
    assert_decodes(stream, [E(data="a" * 49 + "\n" + "b" * 50)], max_event_bytes=100)
    assert_decodes(b"data: " + b"x" * 100 + b"\n\n", [E(data="x" * 100)], max_event_bytes=100)


def test_event_over_the_limit_raises() -> None:
    stream = b"data: " + b"a" * 50 + b"\ndata: " + b"b" * 50 + b"\n\n"  # 101 bytes of data
    for chunks in chunkings(stream):
        with pytest.raises(ProtocolError, match=r"max_event_bytes \(100\)"):
            decode(chunks, max_event_bytes=100)
    with pytest.raises(ProtocolError, match=r"max_event_bytes \(100\)"):
        decode([b"data\n" * 102 + b"\n"], max_event_bytes=100)  # 101 LFs


def test_event_limit_counts_utf8_bytes() -> None:
    assert decode([b"data: " + "é".encode() * 50 + b"\n\n"], max_event_bytes=100) == [
        E(data="é" * 50)
    ]
    with pytest.raises(ProtocolError, match=r"max_event_bytes"):
        decode([b"data: " + "é".encode() * 51 + b"\n\n"], max_event_bytes=100)


def test_event_limit_is_per_event() -> None:
    stream = b"data: " + b"x" * 60 + b"\n\n"
    assert_decodes(stream * 5, [E(data="x" * 60)] * 5, max_event_bytes=100)


@pytest.mark.parametrize("value", [0, -1, True, 1.5, "10", None])
def test_limits_must_be_positive_ints(value: object) -> None:
    with pytest.raises(ValueError, match=r"max_line_bytes must be a positive int"):
        SSEDecoder(max_line_bytes=value)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"max_event_bytes must be a positive int"):
        SSEDecoder(max_event_bytes=value)  # type: ignore[arg-type]


# --- Cost: count the decoder's Python work, not time ---------------------------------------


def _opcodes_per_feed(chunks: list[bytes]) -> list[int]:
    """How many bytecodes of mcpconnect/sse.py each feed() runs."""
    import mcpconnect.sse as module

    decoder = SSEDecoder()
    count = 0

    def tracer(frame, event, arg):  # type: ignore[no-untyped-def]
        nonlocal count
        if frame.f_code.co_filename != module.__file__:
            return None
        frame.f_trace_opcodes = True
        if event == "opcode":
            count += 1
        return tracer

    counts = []
    for chunk in chunks:
        count = 0
        sys.settrace(tracer)
        try:
            decoder.feed(chunk)
        finally:
            sys.settrace(None)
        counts.append(count)
    return counts


def test_python_work_per_chunk_of_a_long_line_does_not_grow() -> None:
    # A line arriving in pieces: every piece after the first costs the same number of
    # bytecodes, however much of the line is already buffered. (The C-level work per piece
    # is proportional to the piece; the benchmark shows the whole is linear.)
    # Only every 64 KiB or so, the buffered piece moves to a list: one more kind of count.
    for size in (1, 7, 4096):
        counts = _opcodes_per_feed([b"data: "] + [b"x" * size] * 300)
        usual = max(set(counts[1:]), key=counts.count)
        others = [c for c in counts[1:] if c != usual]
        assert len(others) <= size * 300 // 65536
        assert len(set(others)) <= 1
    # The line's end costs the same whether the line came in 10 or 300 pieces.
    short = _opcodes_per_feed([b"data: "] + [b"x" * 7] * 10 + [b"\n\n"])
    long = _opcodes_per_feed([b"data: "] + [b"x" * 7] * 300 + [b"\n\n"])
    assert short[-1] == long[-1]


class ScanCountingBytes(bytes):
    """bytes that add up how many bytes their search methods look at (find stops at the
    first match, rfind at the last, count looks at its whole range)."""

    scanned = 0

    def _range(self, start: int | None, stop: int | None) -> tuple[int, int]:
        begin, end, _ = slice(start, stop).indices(len(self))
        return begin, max(begin, end)

    def find(self, sub, start=None, stop=None):  # type: ignore[no-untyped-def,override]
        begin, end = self._range(start, stop)
        found = super().find(sub, begin, end)
        ScanCountingBytes.scanned += (found + len(sub) if found >= 0 else end) - begin
        return found

    def rfind(self, sub, start=None, stop=None):  # type: ignore[no-untyped-def,override]
        begin, end = self._range(start, stop)
        found = super().rfind(sub, begin, end)
        ScanCountingBytes.scanned += end - (found if found >= 0 else begin)
        return found

    def count(self, sub, start=None, stop=None):  # type: ignore[no-untyped-def,override]
        begin, end = self._range(start, stop)
        ScanCountingBytes.scanned += end - begin
        return super().count(sub, begin, end)

    def __getitem__(self, key):  # type: ignore[no-untyped-def,override]
        if isinstance(key, slice):
            begin, end = self._range(key.start, key.stop)
            ScanCountingBytes.scanned += end - begin
        return super().__getitem__(key)


@pytest.mark.parametrize(
    "stream",
    [
        b"data: x\n\n" * 2000 + b"data: y\nid: 1\n\n" + b"data: x\n\n" * 2000,
        (b"data: x\n\n" * 9 + b"data: y\ndata: z\n\n") * 400,
        b"data: x\n\n: ping\n\n" * 2000,
        b"event: e\ndata: x\n\n" * 2000,
        b"data: " + b"x" * 100_000 + b"\n\n" + b"data: x\n\n" * 2000 + b"data: x\n",
    ],
    ids=[
        "odd-event-in-a-run",
        "odd-event-every-tenth",
        "comments",
        "typed-events",
        "big-and-small",
    ],
)
def test_each_byte_is_searched_a_bounded_number_of_times(
    stream: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Counts work, not time: the bytes that find/rfind/count look at, the bytes sliced, and
    # the bytes decoded (a fast path that gave up and retried on the rest of the block would
    # look at the block once per event).
    decode_range = mcpconnect.sse._decode

    def counting_decode(block: bytes, start: int, stop: int) -> str:
        ScanCountingBytes.scanned += stop - start
        return decode_range(block, start, stop)

    monkeypatch.setattr(mcpconnect.sse, "_decode", counting_decode)
    ScanCountingBytes.scanned = 0
    events = SSEDecoder().feed(ScanCountingBytes(stream))
    assert events == reference_decode(stream)
    assert ScanCountingBytes.scanned <= 6 * len(stream)


# --- Properties ----------------------------------------------------------------------------


def reference_decode(data: bytes, bare_json_lines: bool = False) -> list[ServerSentEvent]:
    """The WHATWG algorithm, literally, on the whole stream at once."""
    text = data.decode("utf-8", "replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = re.split("\r\n|\r|\n", text)[:-1]  # the last piece is unterminated
    events = []
    buffer, event_type, last_id, retry = "", "", "", None
    for line in lines:
        if line == "":
            if buffer:
                events.append(E(event_type or "message", buffer[:-1], last_id, retry))
            buffer, event_type, retry = "", "", None
            continue
        if line.startswith(":"):
            continue
        if ":" in line:
            name, value = line.split(":", 1)
            value = value[1:] if value.startswith(" ") else value
        else:
            name, value = line, ""
        if name == "data":
            buffer += value + "\n"
        elif name == "event":
            event_type = value
        elif name == "id":
            if "\0" not in value:
                last_id = value
        elif name == "retry":
            if value and all(c in "0123456789" for c in value):
                retry = int(value)
        elif bare_json_lines and line.startswith("{"):
            events.append(E("message", line, last_id, None))
    return events


FRAGMENTS = [
    b"data",
    b"data:",
    b"data: ",
    b"event: x",
    b"id",
    b"id: 1",
    b"retry: 12",
    b"retry",
    b":",
    b": c",
    b" ",
    b"x",
    b"{",
    b'{"a": 1}',
    b"\n",
    b"\n",
    b"\n\n",
    b"\r",
    b"\r\n",
    b"\n\r",
    b"\x00",
    b"\xef\xbb\xbf",
    b"\xef",
    b"\xbb",
    b"\xe2\x82\xac",
    b"\xf0\x9f\x98\x80",
    b"\xff",
    b"\xc2\x85",
    b"\xe2\x80\xa8",
    b"data: x\n\n",
    b"data: yy\r\n\r\n",
    b"data: z\r\r",
]
# Runs of "data: V\n\n" events (the decoder's fast path: event by event for the first
# eight, then in bulk), broken now and then by any other fragment.
data_events = st.builds(
    lambda value: b"data: " + value + b"\n\n",
    st.one_of(st.binary(max_size=8), st.sampled_from([b"x", b"\xe2\x82\xac", b"\xe2\x82", b"a\r"])),
)
data_runs = st.lists(data_events, min_size=9, max_size=20).map(b"".join)
streams = st.one_of(
    st.tuples(
        data_runs, st.lists(st.sampled_from(FRAGMENTS), max_size=6).map(b"".join), data_runs
    ).map(b"".join),
    st.lists(st.sampled_from(FRAGMENTS), max_size=60).map(b"".join),
    st.binary(max_size=200),
    st.lists(
        st.one_of(data_events, data_events, data_events, st.sampled_from(FRAGMENTS)), max_size=40
    ).map(b"".join),
)


@st.composite
def stream_and_chunks(draw: st.DrawFn) -> tuple[bytes, list[bytes]]:
    data = draw(streams)
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=12)))
    bounds = [0, *cuts, len(data)]
    return data, [data[a:b] for a, b in itertools.pairwise(bounds)]


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(stream_and_chunks(), st.booleans())
def test_any_chunking_gives_the_same_events_as_whole(
    case: tuple[bytes, list[bytes]], bare: bool
) -> None:
    data, chunks = case
    whole = decode([data], bare_json_lines=bare)
    assert decode(chunks, bare_json_lines=bare) == whole
    assert whole == reference_decode(data, bare_json_lines=bare)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(stream_and_chunks(), st.booleans(), st.integers(1, 6))
def test_lines_kept_in_pieces_decode_as_whole(
    case: tuple[bytes, list[bytes]], bare: bool, spill: int
) -> None:
    # With the spill size made tiny, most incomplete lines are kept in pieces (decoded as
    # they come) and finished by SSEDecoder._long_line, the path of lines over 64 KiB.
    data, chunks = case
    with unittest.mock.patch("mcpconnect.sse._SPILL", spill):
        chunked = decode(chunks, bare_json_lines=bare)
    assert chunked == reference_decode(data, bare_json_lines=bare)


@settings(max_examples=200)
@given(stream_and_chunks(), st.integers(1, 12), st.integers(1, 12), st.integers(1, 6))
def test_limits_hold_for_lines_kept_in_pieces(
    case: tuple[bytes, list[bytes]], max_line: int, max_event: int, spill: int
) -> None:
    data, chunks = case
    limits = {"max_line_bytes": max_line, "max_event_bytes": max_event}
    try:
        whole: list[ServerSentEvent] | None = decode([data], **limits)
    except ProtocolError:
        whole = None
    try:
        with unittest.mock.patch("mcpconnect.sse._SPILL", spill):
            chunked: list[ServerSentEvent] | None = decode(chunks, **limits)
    except ProtocolError:
        chunked = None
    assert chunked == whole


@settings(max_examples=300)
@given(stream_and_chunks(), st.integers(1, 12), st.integers(1, 12))
def test_limits_do_not_depend_on_chunking(
    case: tuple[bytes, list[bytes]], max_line: int, max_event: int
) -> None:
    data, chunks = case
    limits = {"max_line_bytes": max_line, "max_event_bytes": max_event}
    try:
        whole: list[ServerSentEvent] | None = decode([data], **limits)
    except ProtocolError:
        whole = None
    try:
        chunked: list[ServerSentEvent] | None = decode(chunks, **limits)
    except ProtocolError:
        chunked = None
    assert chunked == whole


# --- The fast path for runs of "data: <line>\n\n" events (see SSEDecoder._data_events) ------


def fast(n: int, tag: str = "") -> tuple[bytes, list[ServerSentEvent]]:
    values = [f"{tag}{i} é" for i in range(n)]
    return b"".join(f"data: {v}\n\n".encode() for v in values), [E(data=v) for v in values]


def test_long_runs_mixed_with_other_events() -> None:
    run1, events1 = fast(20, "a")
    run2, events2 = fast(12, "b")
    for other, middle in [
        (b"data: x\nid: 5\n\n", [E(data="x", id="5")]),
        (b"data: x\ndata: y\n\n", [E(data="x\ny")]),
        (b"data: x\n\n\n", [E(data="x")]),
        (b": ping\n\n", []),
        (b"event: e\ndata: x\n\n", [E("e", "x")]),
        (b"data:x\n\n", [E(data="x")]),
        (b"data: x\n", []),  # joins the first event of run2
    ]:
        expected = events1 + middle + events2
        if other == b"data: x\n":
            expected = [*events1, E(data="x\nb0 é"), *events2[1:]]
        id_ = "5" if b"id: 5" in other else ""
        expected = [attrs.evolve(e, id=id_) if e in events2 else e for e in expected]
        assert_decodes(run1 + other + run2, expected)


def test_runs_after_other_lines_and_with_pending_state() -> None:
    run, events = fast(10)
    assert_decodes(b": hi\nretry: 10\n\n" + run, events)
    assert_decodes(b"retry: 10\n" + run, [E(data="0 é", retry=10), *events[1:]])
    assert_decodes(b"event: x\n" + run, [E("x", "0 é"), *events[1:]])
    assert_decodes(b"id: 3\n\n" + run, [attrs.evolve(e, id="3") for e in events])
    assert_decodes(b"\xef\xbb\xbf" + run, events)


def test_runs_with_invalid_utf8_and_empty_data() -> None:
    stream = b"data: \xff\n\ndata: \xe2\x82\n\ndata: \n\n" * 5
    assert_decodes(stream, [E(data="\ufffd"), E(data="\ufffd"), E(data="")] * 5)


def test_event_limit_in_long_runs() -> None:
    run, events = fast(20)
    assert decode([run], max_event_bytes=5) == events  # "19 é" is 5 bytes
    with pytest.raises(ProtocolError, match=r"max_event_bytes \(4\)"):
        decode([run], max_event_bytes=4)
    with pytest.raises(ProtocolError, match=r"max_event_bytes \(2\)"):
        decode([b"data: \xff\n\n"], max_event_bytes=2)  # U+FFFD is 3 bytes


def test_long_line_in_pieces_then_a_whole_event_chunk() -> None:
    # A line over 64 KiB is buffered in pieces; a chunk that is exactly "data: y\n\n"
    # continues that line, it is not an event of its own.
    head = b"data: a\n\n" + b"data: " + b"x" * 70_000
    expected = [E(data="a"), E(data="x" * 70_000 + "data: y"), E(data="z")]
    rng = random.Random(7)
    chunkings_ = [
        [head, b"data: y\n\n", b"data: z\n\n"],
        [head[:3], head[3:], b"data: y\n\ndata: z\n\n"],
    ]
    chunkings_.append(
        [head[i : i + 1000] for i in range(0, len(head), 1000)] + [b"data: y\n\n", b"data: z\n\n"]
    )
    for _ in range(20):
        data = head + b"data: y\n\ndata: z\n\n"
        cuts = sorted(rng.sample(range(len(data)), 30))
        chunkings_.append([data[a:b] for a, b in itertools.pairwise([0, *cuts, len(data)])])
    for chunks in chunkings_:
        assert decode(chunks) == expected
    # One byte at a time, the line's last byte makes it 64 KiB + 1 long: it moves to the list.
    line = b"data: " + b"x" * (65537 - 6)
    chunks = [b"data: a\n\n", *(line[i : i + 1] for i in range(len(line))), b"data: y\n\n"]
    assert decode([*chunks, b"\n"]) == [E(data="a"), E(data="x" * 65531 + "data: y")]
    with pytest.raises(ProtocolError, match="max_line_bytes"):
        decode([head[:40_000], head[40_000:], b"data: y\n\n"], max_line_bytes=70_006)
    assert decode([head[:40_000], head[40_000:], b"\n\n"], max_line_bytes=70_006) == [
        E(data="a"),
        E(data="x" * 70_000),
    ]


def test_limits_apply_to_chunks_that_are_one_event() -> None:
    # After the first event, a chunk that is exactly one "data: <line>\n\n" event takes a
    # shortcut in feed(); the limits hold there too.
    for limits, chunk in [
        ({"max_line_bytes": 100}, b"data: " + b"x" * 95 + b"\n\n"),
        ({"max_event_bytes": 100}, b"data: " + b"x" * 101 + b"\n\n"),
        ({"max_event_bytes": 100}, b"data: " + "é".encode() * 51 + b"\n\n"),
    ]:
        decoder = SSEDecoder(**limits)  # type: ignore[arg-type]
        assert decoder.feed(b"data: a\n\n") == [E(data="a")]
        with pytest.raises(ProtocolError, match=r"max_(line|event)_bytes \(100\)"):
            decoder.feed(chunk)
    decoder = SSEDecoder(max_line_bytes=100, max_event_bytes=94)
    assert decoder.feed(b"data: a\n\n") == [E(data="a")]
    assert decoder.feed(b"data: " + b"x" * 94 + b"\n\n") == [E(data="x" * 94)]


def test_events_are_built_exactly_as_attrs_would() -> None:
    # The decoder builds events through the slot setters (see mcpconnect/sse.py); that is
    # exact only while these are all the fields and nothing runs in attrs' __init__.
    fields = attrs.fields(ServerSentEvent)
    assert [(f.name, f.validator, f.converter) for f in fields] == [
        ("event", None, None),
        ("data", None, None),
        ("id", None, None),
        ("retry", None, None),
    ]
    assert not hasattr(ServerSentEvent, "__attrs_post_init__")
    assert not hasattr(ServerSentEvent, "__attrs_pre_init__")
    stream = b"".join(b"data: %d\n\n" % i for i in range(20))
    events = decode([b"id: 7\n\n" + stream])
    assert events == [ServerSentEvent("message", str(i), "7", None) for i in range(20)]
    assert [hash(e) for e in events] == [hash(E("message", str(i), "7")) for i in range(20)]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        events[0].data = "x"  # type: ignore[misc]


# --- Packaging -----------------------------------------------------------------------------


def test_import_needs_neither_urllib3_nor_cattrs() -> None:
    code = (
        "import sys\n"
        "sys.modules['urllib3'] = None\n"
        "sys.modules['cattrs'] = None\n"
        "before = set(sys.modules)\n"
        "import mcpconnect.sse\n"
        "new = {m.split('.')[0] for m in set(sys.modules) - before}\n"
        "print(sorted(new - set(sys.stdlib_module_names)))\n"
        "d = mcpconnect.sse.SSEDecoder()\n"
        "print(d.feed(b'data: a\\n\\n'))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines() == [
        "['attr', 'attrs', 'mcpconnect']",
        "[ServerSentEvent(event='message', data='a', id='', retry=None)]",
    ]
