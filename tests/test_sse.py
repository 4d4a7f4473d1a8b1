"""Tests of the SSE decoder: the WHATWG examples, one test per rule, the reconnection time,
the limits and the memory they bound, the regressions of issue 8, and hypothesis properties:
any chunking of any stream gives the events (and reconnection time) of a spec-literal
reference decoder, with the decoder's internal thresholds crossed."""

from __future__ import annotations

import contextlib
import itertools
import json
import pickle
import subprocess
import sys
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

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


def in_chunks(data: bytes, size: int | None) -> list[bytes]:
    """``data`` whole (size None) or in chunks of ``size`` bytes."""
    if size is None:
        return [data]
    return [data[i : i + size] for i in range(0, len(data), size)]


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


# max_event_bytes counts each data line's bytes plus 64, what a line costs in memory beside
# them; the LF between lines is inside that 64.
OVERHEAD = 64


def test_event_at_the_limit_is_accepted() -> None:
    stream = b"data: " + b"a" * 49 + b"\ndata: " + b"b" * 50 + b"\n\n"
    limit = 99 + 2 * OVERHEAD
    assert_decodes(stream, [E(data="a" * 49 + "\n" + "b" * 50)], max_event_bytes=limit)
    assert_decodes(b"data: " + b"x" * 100 + b"\n\n", [E(data="x" * 100)], max_event_bytes=164)
    assert_decodes(b"data\n" * 3 + b"\n", [E(data="\n\n")], max_event_bytes=3 * OVERHEAD)


def test_event_over_the_limit_raises() -> None:
    stream = b"data: " + b"a" * 50 + b"\ndata: " + b"b" * 50 + b"\n\n"
    for chunks in chunkings(stream):
        with pytest.raises(ProtocolError, match=r"max_event_bytes \(227\)"):
            decode(chunks, max_event_bytes=99 + 2 * OVERHEAD)
    with pytest.raises(ProtocolError, match=r"max_event_bytes \(192\)"):
        decode([b"data\n" * 4 + b"\n"], max_event_bytes=3 * OVERHEAD)  # four empty lines


def test_event_limit_counts_bytes_as_received() -> None:
    assert decode([b"data: " + "é".encode() * 50 + b"\n\n"], max_event_bytes=164) == [
        E(data="é" * 50)
    ]
    with pytest.raises(ProtocolError, match=r"max_event_bytes"):
        decode([b"data: " + "é".encode() * 51 + b"\n\n"], max_event_bytes=164)
    # An invalid byte counts as one byte (it becomes U+FFFD when decoded).
    assert decode([b"data: \xff\n\n"], max_event_bytes=65) == [E(data="\ufffd")]


def test_event_limit_is_per_event() -> None:
    stream = b"data: " + b"x" * 60 + b"\n\n"
    assert_decodes(stream * 5, [E(data="x" * 60)] * 5, max_event_bytes=124)


def test_limits_apply_to_chunks_that_are_one_event() -> None:
    # After the first line, a chunk that is exactly one "data: <line>\n\n" event takes the
    # shortcut in feed(); the limits hold there too, and a chunk just within them is taken.
    for limits, chunk in [
        ({"max_line_bytes": 100}, b"data: " + b"x" * 95 + b"\n\n"),
        ({"max_event_bytes": 164}, b"data: " + b"x" * 101 + b"\n\n"),
        ({"max_event_bytes": 164}, b"data: " + "é".encode() * 51 + b"\n\n"),
    ]:
        decoder = SSEDecoder(**limits)  # type: ignore[arg-type]
        assert decoder.feed(b"data: a\n\n") == [E(data="a")]
        with pytest.raises(ProtocolError, match=r"max_(line|event)_bytes \(1[06][04]\)"):
            decoder.feed(chunk)
    decoder = SSEDecoder(max_line_bytes=100, max_event_bytes=94 + OVERHEAD)
    assert decoder.feed(b"data: a\n\n") == [E(data="a")]
    assert decoder.feed(b"data: " + b"x" * 94 + b"\n\n") == [E(data="x" * 94)]


@pytest.mark.parametrize("value", [0, -1, True, 1.5, "10", None])
def test_limits_must_be_positive_ints(value: object) -> None:
    with pytest.raises(ValueError, match=r"max_line_bytes must be a positive int"):
        SSEDecoder(max_line_bytes=value)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"max_event_bytes must be a positive int"):
        SSEDecoder(max_event_bytes=value)  # type: ignore[arg-type]


# --- The reconnection time (SSEDecoder.retry) ----------------------------------------------


def reconnection_times(chunks: list[bytes]) -> tuple[list[ServerSentEvent], int | None]:
    decoder = SSEDecoder()
    events: list[ServerSentEvent] = []
    for chunk in chunks:
        events += decoder.feed(chunk)
    return events, decoder.retry


def test_retry_is_set_when_read_even_in_a_block_without_data() -> None:
    # eventsource-parser's case: the 500 comes in a block that dispatches no event.
    for chunks in chunkings(b"\nretry: 500\n\ndata: first\n\n"):
        assert reconnection_times(chunks) == ([E(data="first")], 500)


def test_retry_is_set_before_its_block_ends() -> None:
    decoder = SSEDecoder()
    assert decoder.retry is None
    assert decoder.feed(b"retry: 1500\ndata: a\n") == []
    assert decoder.retry == 1500
    assert decoder.feed(b"\n") == [E(data="a", retry=1500)]


def test_retry_keeps_the_last_valid_value() -> None:
    stream = b"retry: 10\n\nretry: x\n\ndata: a\nretry: 20\nretry: 2 0\n\nretry:\ndata: b\n\n"
    for chunks in chunkings(stream):
        assert reconnection_times(chunks) == ([E(data="a", retry=20), E(data="b")], 20)


def test_retry_stays_after_close() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"retry: 7\n")
    decoder.close()
    assert decoder.retry == 7


# --- Memory: what the limits bound (bytes held, counted by tracemalloc) --------------------


def peak_bytes(chunks: list[bytes], **limits: int) -> tuple[int, bool]:
    """Peak memory traced while ``chunks`` (allocated before) are decoded, and whether a
    ProtocolError stopped it."""
    decoder = SSEDecoder(**limits)  # type: ignore[arg-type]
    tracemalloc.start()
    try:
        for chunk in chunks:
            decoder.feed(chunk)
    except ProtocolError:
        raised = True
    else:
        raised = False
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak, raised


LIMIT = 512 * 1024


def test_tiny_data_lines_without_a_blank_line_stop_at_the_event_limit() -> None:
    # Issue 9: "data: xy\n" repeated with no blank line grew to 1.57 GB under a 64 MiB cap,
    # because the cap counted 3 bytes per line and each line held about 60.
    stream = b"data: xy\n" * (4 * LIMIT // 9)
    for size in (65536, 9 * 1000):
        chunks = in_chunks(stream, size)
        peak, raised = peak_bytes(chunks, max_event_bytes=LIMIT)
        assert raised
        assert peak < 2 * LIMIT, peak


@pytest.mark.parametrize(("unit", "bound"), [("x", 2.5), ("xé", 3.5)])
def test_a_line_at_the_line_limit_holds_a_small_multiple_of_it(unit: str, bound: float) -> None:
    # At the end of the line: its pieces and the line joined from them (2x), then the line
    # and its text being decoded: 1x more for ASCII, 2x for non-ASCII UTF-8, whose decoder
    # (CPython's) works in a buffer as long as the bytes.
    piece = unit.encode()
    line = b"data: " + piece * ((LIMIT - 6) // len(piece)) + b"x" * ((LIMIT - 6) % len(piece))
    assert len(line) == LIMIT
    stream = line + b"\n\n"
    for size in (7, 1000, 65536, len(stream)):
        chunks = in_chunks(stream, size)
        peak, raised = peak_bytes(chunks, max_line_bytes=LIMIT)
        assert not raised
        assert peak < bound * LIMIT, (size, peak)
        too_long = [*chunks[:-1], b"y" + chunks[-1]]
        peak, raised = peak_bytes(too_long, max_line_bytes=LIMIT)
        assert raised
        assert peak < 1.5 * LIMIT, (size, peak)


def test_unterminated_line_stops_at_the_line_limit() -> None:
    peak, raised = peak_bytes([b"x" * 7] * (LIMIT // 7 + 1), max_line_bytes=LIMIT)
    assert raised
    assert peak < 1.5 * LIMIT, peak


# --- Regressions of issue 8 ----------------------------------------------------------------


@pytest.mark.parametrize("size", [None, 1, 4096, 65536, 9])
def test_small_events_past_64_kib_keep_every_byte(size: int | None) -> None:
    stream = b"data: x\n\n" * 7289 + b"data:hello\n\n" + b"data: x\n\n"
    chunks = in_chunks(stream, size)
    events = decode(chunks)
    assert [e.data for e in events if e.data != "x"] == ["hello"]
    assert len(events) == 7291


@pytest.mark.parametrize("size", [None, 1, 4096, 65536, 9])
def test_a_comment_past_64_kib_dispatches_nothing(size: int | None) -> None:
    stream = b"data: x\n\n" * 7289 + b": ping\n\n" + b"data: x\n\n"
    chunks = in_chunks(stream, size)
    assert decode(chunks) == [E(data="x")] * 7290


# --- Cost: the incomplete line is never searched again -------------------------------------


class ScanCountingBytes(bytes):
    """bytes that add up how many bytes their searches and slices look at (find stops at
    the first match, rfind at the last from the end)."""

    scanned = 0

    @staticmethod
    def _range(self: bytes, start: int | None, stop: int | None) -> tuple[int, int]:
        begin, end, _ = slice(start, stop).indices(len(self))
        return begin, max(begin, end)

    def __contains__(self, sub):  # type: ignore[no-untyped-def,override]
        found = super().find(sub)
        ScanCountingBytes.scanned += found + 1 if found >= 0 else len(self)
        return found >= 0

    def find(self, sub, start=None, stop=None):  # type: ignore[no-untyped-def,override]
        begin, end = self._range(self, start, stop)
        found = super().find(sub, begin, end)
        ScanCountingBytes.scanned += (found + len(sub) if found >= 0 else end) - begin
        return found

    def rfind(self, sub, start=None, stop=None):  # type: ignore[no-untyped-def,override]
        begin, end = self._range(self, start, stop)
        found = super().rfind(sub, begin, end)
        ScanCountingBytes.scanned += end - (found if found >= 0 else begin)
        return found

    def split(self, sep=None, maxsplit=-1):  # type: ignore[no-untyped-def,override]
        ScanCountingBytes.scanned += len(self)
        return super().split(sep, maxsplit)

    def __getitem__(self, key):  # type: ignore[no-untyped-def,override]
        if isinstance(key, slice):
            begin, end = self._range(self, key.start, key.stop)
            ScanCountingBytes.scanned += end - begin
        return super().__getitem__(key)


@pytest.mark.parametrize(
    ("stream", "size"),
    [
        (b"data: " + b"x" * 200_000 + b"\n\n", 1),
        (b"data: " + b"x" * 200_000 + b"\n\n", 7),
        (b"data: " + b"x" * 200_000 + b"\n\n", 1000),
        (b"data: x\n\n" * 20_000, None),
        (b"data: " + b"x" * 100_000 + b"\n\n" + b"id: 1\ndata: x\n\n" * 2000, None),
        ((b"data: " + b"x" * 300 + b"\n" + b"data: y\n" * 30) * 200 + b"\n", None),
    ],
    ids=["long-line-1", "long-line-7", "long-line-1000", "small-events", "big-and-small", "mixed"],
)
def test_each_byte_is_searched_a_bounded_number_of_times(stream: bytes, size: int | None) -> None:
    # Counts work, not time: a decoder that searched the incomplete line again for each new
    # piece would look at the long line once per piece.
    chunks = in_chunks(stream, size)
    ScanCountingBytes.scanned = 0
    decoder = SSEDecoder()
    events = [e for chunk in chunks for e in decoder.feed(ScanCountingBytes(chunk))]
    assert events == reference_decode(stream)[0]
    assert ScanCountingBytes.scanned <= 8 * len(stream)


# --- Properties, against a spec-literal reference decoder ----------------------------------


def reference_decode(
    data: bytes, bare_json_lines: bool = False
) -> tuple[list[ServerSentEvent], int | None]:
    """The WHATWG "event stream interpretation", step by step, on the whole stream at once.
    Returns the events and the reconnection time (the last valid ``retry`` field)."""
    text = data.decode("utf-8", "replace")  # the spec's "UTF-8 decode" drops one BOM...
    if text.startswith("\ufeff"):
        text = text[1:]
    lines: list[str] = []
    line: list[str] = []
    i = 0
    while i < len(text):  # ...and a line ends at CRLF, a lone CR or a lone LF
        char = text[i]
        if char in "\r\n":
            lines.append("".join(line))
            line = []
            if text[i : i + 2] == "\r\n":
                i += 1
        else:
            line.append(char)
        i += 1
    # What is left in `line` never ended: it is discarded at the end of the stream.
    events: list[ServerSentEvent] = []
    data_buffer, event_type, last_id = "", "", ""
    block_retry: int | None = None
    reconnection: int | None = None
    for line_ in lines:
        if line_ == "":
            if data_buffer != "":
                events.append(
                    E(event_type or "message", data_buffer.removesuffix("\n"), last_id, block_retry)
                )
            data_buffer, event_type, block_retry = "", "", None
            continue
        if line_.startswith(":"):
            continue
        if ":" in line_:
            field, value = line_.split(":", 1)
            if value.startswith(" "):
                value = value[1:]
        else:
            field, value = line_, ""
        if field == "event":
            event_type = value
        elif field == "data":
            data_buffer += value + "\n"
        elif field == "id":
            if "\0" not in value:
                last_id = value
        elif field == "retry":
            if value and all(c in "0123456789" for c in value):
                with contextlib.suppress(ValueError):  # over Python's int digit limit
                    reconnection = block_retry = int(value)
        elif bare_json_lines and line_.startswith("{"):
            events.append(E("message", line_, last_id, None))
    return events, reconnection


FRAGMENTS = [
    b"data",
    b"data:",
    b"data: ",
    b"data:  ",
    b"event: x",
    b"event",
    b"id",
    b"id: 1",
    b"id: \x00",
    b"retry: 12",
    b"retry: 1x",
    b"retry",
    b"foo: bar",
    b"Data: no",
    b"no colon",
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
    b"data:" + b"w" * 40 + b"\n",
]
fragment_streams = st.lists(st.sampled_from(FRAGMENTS), max_size=60).map(b"".join)
data_events = st.builds(
    lambda value: b"data: " + value + b"\n\n",
    st.one_of(st.binary(max_size=8), st.sampled_from([b"x", b"\xe2\x82\xac", b"\xe2\x82", b"a\r"])),
)
streams = st.one_of(
    fragment_streams,
    st.binary(max_size=200),
    st.lists(
        st.one_of(data_events, data_events, st.sampled_from(FRAGMENTS), st.binary(max_size=20)),
        max_size=40,
    ).map(b"".join),
    st.tuples(st.sampled_from([b"", b"\xef\xbb\xbf"]), fragment_streams).map(b"".join),
)


def cut(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted(cuts), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


@st.composite
def stream_and_chunks(draw: st.DrawFn) -> tuple[bytes, list[bytes]]:
    data = draw(streams)
    how = draw(st.sampled_from(["whole", "bytes", "random"]))
    if how == "whole":
        return data, [data]
    if how == "bytes":
        return data, [data[i : i + 1] for i in range(len(data))]
    return data, cut(data, draw(st.lists(st.integers(0, len(data)), max_size=12)))


def decode_with_retry(
    chunks: list[bytes], **kwargs: object
) -> tuple[list[ServerSentEvent], int | None]:
    decoder = SSEDecoder(**kwargs)  # type: ignore[arg-type]
    events: list[ServerSentEvent] = []
    for chunk in chunks:
        events += decoder.feed(chunk)
    return events + decoder.close(), decoder.retry


@contextlib.contextmanager
def thresholds(spill: int, long_line: int, stretch: int, view: int) -> Iterator[None]:
    """The decoder's internal sizes, made small so that small streams cross all of them."""
    names = {"_SPILL": spill, "_LONG_LINE": long_line, "_STRETCH": stretch, "_VIEW": view}
    saved = {name: getattr(mcpconnect.sse, name) for name in names}
    for name, value in names.items():
        setattr(mcpconnect.sse, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(mcpconnect.sse, name, value)


small_thresholds = st.integers(1, 16).flatmap(
    lambda stretch: st.tuples(
        st.integers(1, 8), st.integers(1, stretch), st.just(stretch), st.integers(0, 8)
    )
)


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(stream_and_chunks(), st.booleans(), small_thresholds)
def test_any_chunking_matches_the_reference(
    case: tuple[bytes, list[bytes]], bare: bool, sizes: tuple[int, int, int, int]
) -> None:
    data, chunks = case
    with thresholds(*sizes):
        got = decode_with_retry(chunks, bare_json_lines=bare)
    assert got == reference_decode(data, bare_json_lines=bare)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(stream_and_chunks(), st.booleans())
def test_any_chunking_matches_the_reference_at_the_real_thresholds(
    case: tuple[bytes, list[bytes]], bare: bool
) -> None:
    data, chunks = case
    assert decode_with_retry(chunks, bare_json_lines=bare) == reference_decode(data, bare)


# Streams past every real threshold: runs of small events over 64 KiB (and over _STRETCH),
# lines over _LONG_LINE, _VIEW and _SPILL, with drawn fragments between them.
big_pieces = st.one_of(
    st.integers(1, 9000).map(lambda n: b"data: x\n\n" * n),
    st.integers(1, 3000).map(lambda n: b"id: 1\nevent: e\ndata: y\n\n" * n),
    st.integers(200, 140_000).map(lambda n: b"data: " + ("é" * (n // 2)).encode() + b"\n"),
    st.integers(200, 140_000).map(lambda n: b": " + b"c" * n + b"\r\n"),
    fragment_streams,
)
big_streams = st.lists(big_pieces, min_size=1, max_size=6).map(b"".join)


@st.composite
def big_stream_and_chunks(draw: st.DrawFn) -> tuple[bytes, list[bytes]]:
    data = draw(big_streams)
    how = draw(st.sampled_from(["whole", "64k", "random"]))
    if how == "whole":
        return data, [data]
    if how == "64k":
        return data, in_chunks(data, 65536)
    return data, cut(data, draw(st.lists(st.integers(0, len(data)), max_size=200)))


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(big_stream_and_chunks())
def test_streams_past_the_real_thresholds_match_the_reference(
    case: tuple[bytes, list[bytes]],
) -> None:
    data, chunks = case
    assert decode_with_retry(chunks) == reference_decode(data)


@settings(max_examples=200)
@given(stream_and_chunks(), st.integers(1, 12), st.integers(1, 200), small_thresholds)
def test_limits_do_not_depend_on_chunking(
    case: tuple[bytes, list[bytes]], max_line: int, max_event: int, sizes: tuple[int, int, int, int]
) -> None:
    data, chunks = case
    limits = {"max_line_bytes": max_line, "max_event_bytes": max_event}
    try:
        whole: list[ServerSentEvent] | None = decode([data], **limits)
    except ProtocolError:
        whole = None
    try:
        with thresholds(*sizes):
            chunked: list[ServerSentEvent] | None = decode(chunks, **limits)
    except ProtocolError:
        chunked = None
    assert chunked == whole


@settings(max_examples=500)
@given(
    st.lists(st.sampled_from([b"\n", b"x", b"xyz" * 5, b""]), max_size=40).map(b"".join),
    small_thresholds,
)
def test_split_is_bytes_split(data: bytes, sizes: tuple[int, int, int, int]) -> None:
    with thresholds(*sizes):
        assert mcpconnect.sse._split(data) == data.split(b"\n")


# --- The shortcut for a chunk that is one "data: <line>\n\n" event --------------------------


def test_the_one_event_shortcut_keeps_the_state() -> None:
    # A chunk shaped like one event is taken whole only between events; otherwise it goes on
    # the line or event in progress.
    cases = [
        ([b"data: a\n\n", b"data: b\n\n"], [E(data="a"), E(data="b")]),
        ([b"id: 3\n\n", b"data: b\n\n"], [E(data="b", id="3")]),
        ([b"data: a\n", b"data: b\n\n"], [E(data="a\nb")]),
        ([b"event: t\n", b"data: b\n\n"], [E("t", "b")]),
        ([b"retry: 5\n", b"data: b\n\n"], [E(data="b", retry=5)]),
        ([b"data: a\n\nda", b"data: b\n\n"], [E(data="a")]),  # "dadata: b": unknown field
        ([b"data: a\r", b"data: b\n\n"], [E(data="a\nb")]),
        ([b"data: a\n\r", b"\ndata: b\n\n"], [E(data="a"), E(data="b")]),
        ([b"data: b\n\n"], [E(data="b")]),
        ([b"\xef\xbb\xbf", b"data: b\n\n"], [E(data="b")]),
        ([b"\n", b"data: \xef\xbb\xbfb\n\n"], [E(data="\ufeffb")]),
        ([b"data: x\n\n", b"data: \xffb\r\n\n"], [E(data="x"), E(data="\ufffdb")]),
    ]
    for chunks, expected in cases:
        assert decode(chunks) == expected, chunks


# --- Packaging -----------------------------------------------------------------------------


def test_import_needs_only_the_standard_library() -> None:
    code = (
        "import sys\n"
        "sys.modules['urllib3'] = None\n"
        "sys.modules['cattrs'] = None\n"
        "sys.modules['attrs'] = None\n"
        "sys.modules['attr'] = None\n"
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
        "['mcpconnect']",
        "[ServerSentEvent(event='message', data='a', id='', retry=None)]",
    ]


def test_events_are_immutable_values() -> None:
    event = E("t", "d", "1", 5)
    assert event == ServerSentEvent(event="t", data="d", id="1", retry=5)
    assert hash(event) == hash(E("t", "d", "1", 5))
    assert E() == E("message", "", "", None)
    assert pickle.loads(pickle.dumps(event)) == event
    with pytest.raises(AttributeError):
        event.data = "x"  # type: ignore[misc]
