"""FakeTransport: scripted responses, recorded requests, the stream and recording helpers."""

from __future__ import annotations

import pathlib
import threading

import pytest

from mcpconnect import Timeouts, TransportError
from mcpconnect.transports import (
    FakeResponse,
    FakeTransport,
    Hang,
    Pause,
    Request,
    Transport,
    header,
    load_recording,
    sse_stream,
)

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "letta-0.16.8"
T = Timeouts()


def test_is_a_transport() -> None:
    assert isinstance(FakeTransport(), Transport)


def test_one_response_then_none_left() -> None:
    transport = FakeTransport(FakeResponse(201, {"x-a": "1"}, [b"ab", b"", b"c"]))
    response = transport.send(Request("GET", "http://h/p"), T)
    assert (response.status, response.headers, list(response.iter_chunks())) == (
        201, {"x-a": "1"}, [b"ab", b"c"],
    )
    with pytest.raises(TransportError) as info:
        transport.send(Request("POST", "http://h/q"), T)
    assert str(info.value) == "FakeTransport has no response left for POST http://h/q"


def test_a_list_answers_in_order_and_add_queues_more() -> None:
    transport = FakeTransport([FakeResponse(200, chunks=[b"1"]), FakeResponse(500)])
    transport.add(FakeResponse(404))
    statuses = [transport.send(Request("GET", f"http://h/{i}"), T).status for i in range(3)]
    assert statuses == [200, 500, 404]


def test_a_callable_computes_the_response() -> None:
    def respond(request: Request) -> FakeResponse:
        return FakeResponse(200 if request.method == "POST" else 405, chunks=[request.url.encode()])

    transport = FakeTransport(respond)
    got = [transport.send(Request(m, "http://h/x"), T) for m in ("POST", "GET", "POST")]
    assert [(r.status, list(r.iter_chunks())) for r in got] == [
        (200, [b"http://h/x"]), (405, [b"http://h/x"]), (200, [b"http://h/x"]),
    ]


def test_records_requests_timeouts_and_responses() -> None:
    transport = FakeTransport([FakeResponse(), FakeResponse()])
    first = Request("POST", "http://h/a", {"Content-Type": "application/json"}, b'{"k": [1]}')
    second = Request("GET", "http://h/b")
    limits = Timeouts(read=1.0)
    transport.send(first, limits)
    transport.send(second, T)
    assert transport.requests == [first, second]
    assert transport.last_request == second
    assert first.json() == {"k": [1]}
    assert second.json() is None
    assert transport.timeouts == [limits, T]
    assert [r.closed for r in transport.responses_sent] == [False, False]
    transport.responses_sent[0].close()
    assert [r.closed for r in transport.responses_sent] == [True, False]
    assert not transport.closed
    transport.close()
    assert transport.closed


def test_default_headers_are_an_event_stream() -> None:
    assert FakeResponse().headers == {"content-type": "text/event-stream; charset=utf-8"}
    assert FakeResponse().status == 200


def test_an_exception_step_is_raised_there() -> None:
    transport = FakeTransport(FakeResponse(chunks=[b"a", ConnectionResetError("reset"), b"b"]))
    response = transport.send(Request("GET", "http://h/"), T)
    got = []
    with pytest.raises(ConnectionResetError):
        for chunk in response.iter_chunks():
            got.append(chunk)
    assert got == [b"a"]


def test_invalid_steps_are_refused() -> None:
    with pytest.raises(TypeError) as info:
        FakeResponse(chunks=["text"])  # type: ignore[list-item]
    assert str(info.value) == (
        "a FakeResponse chunk must be bytes, Pause, Hang or an exception, got 'text'"
    )


def test_pause_and_hang_end_when_closed_from_another_thread() -> None:
    for step in (Pause(3600.0), Hang()):
        transport = FakeTransport(FakeResponse(chunks=[b"a", step, b"never"]))
        response = transport.send(Request("GET", "http://h/"), T)
        chunks = response.iter_chunks()
        assert next(chunks) == b"a"
        closer = threading.Timer(0.05, response.close)
        closer.start()
        with pytest.raises(TransportError) as info:
            next(chunks)
        closer.join()
        assert str(info.value) == "the response was closed while it was being read"


def test_a_short_pause_goes_on() -> None:
    transport = FakeTransport(FakeResponse(chunks=[b"a", Pause(0.001), b"b"]))
    response = transport.send(Request("GET", "http://h/"), T)
    assert list(response.iter_chunks()) == [b"a", b"b"]


def test_sse_stream_writes_one_chunk_per_event() -> None:
    response = sse_stream(
        [{"event": "connection_attempt"}, {"event": "success", "tools": []}],
        then=[Hang()],
    )
    assert response == FakeResponse(
        200,
        {"content-type": "text/event-stream; charset=utf-8"},
        [
            b'data: {"event": "connection_attempt"}\n\n',
            b'data: {"event": "success", "tools": []}\n\n',
            Hang(),
        ],
    )
    assert sse_stream([], status=502, headers={"content-type": "text/html"}) == FakeResponse(
        502, {"content-type": "text/html"}, []
    )


def test_load_recording_of_a_stream() -> None:
    path = FIXTURES / "noauth_streamable_success.txt"
    body = path.read_bytes()
    assert load_recording(path) == FakeResponse(
        200, {"date": "Fri, 27 Nov 2026 02:39:56 GMT", "server": "uvicorn",
              "content-type": "text/event-stream; charset=utf-8"},
        [body],
    )
    chunked = load_recording(path, chunk_size=100)
    assert b"".join(c for c in chunked.chunks if isinstance(c, bytes)) == body
    assert [len(c) for c in chunked.chunks if isinstance(c, bytes)][:2] == [100, 100]


def test_load_recording_of_a_stream_the_server_held_open() -> None:
    path = FIXTURES / "wrong_path_404_hangs.txt"
    assert load_recording(path).chunks == (path.read_bytes(), Hang())


def test_load_recording_of_an_error_status() -> None:
    recording = load_recording(FIXTURES / "get_method.txt")
    assert (recording.status, header(recording.headers, "Content-Type"),
            header(recording.headers, "allow"), recording.chunks) == (
        405, "application/json", "PATCH", (b'{"detail":"Method Not Allowed"}',)
    )


def test_load_recording_without_headers_file(tmp_path: pathlib.Path) -> None:
    body = tmp_path / "mine.txt"
    body.write_bytes(b'data: {"event": "success"}\n\n')
    assert load_recording(body) == FakeResponse(chunks=[b'data: {"event": "success"}\n\n'])
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    assert load_recording(empty).chunks == ()


def test_header_ignores_case() -> None:
    headers = {"Content-Type": "text/html", "x-a": "1"}
    assert (header(headers, "content-type"), header(headers, "X-A"), header(headers, "b")) == (
        "text/html", "1", None,
    )


def test_request_repr_hides_secret_headers() -> None:
    request = Request("POST", "http://h/", {"Authorization": "Bearer sk-123", "X": "y"}, b"abc")
    assert repr(request) == (
        "Request(method='POST', url='http://h/', headers={'Authorization': '***', 'X': 'y'}, "
        "body=<3 bytes>)"
    )
