"""connect() over real loopback HTTP through Urllib3Transport, against a bare urllib3 read loop.

Run from the repository root:

    .venv/bin/python benchmarks/bench_http.py            # full run, about a minute
    .venv/bin/python benchmarks/bench_http.py --quick    # smoke run, seconds

A small server on 127.0.0.1 (a thread of this process) answers every request with a chunked
``text/event-stream``, one HTTP chunk per event, as Letta does. Streams:

* ``events``: ``connection_attempt``, N small events of a type the flow does not know (they are
  passed through to ``on_event``), then ``success`` with no tools.
* ``tools``: ``connection_attempt``, then one ``success`` carrying M tools.

Each stream is read three ways, over the same bytes:

* ``connect()``: ``mcpconnect.Client.connect`` with an ``on_event`` that counts;
* ``bare``: a urllib3 ``read1()`` loop with no parsing at all (the floor);
* ``bare+json``: that loop, splitting the body on blank lines and ``json.loads`` of every
  event's data (what the least possible client must do).

Times are the best of ``--repeat`` runs; peak memory is from ``tracemalloc`` in a separate run.
Two latencies are measured too, in the same process so the clocks agree:

* event latency: the server records ``time.monotonic()`` just before it writes an event, the
  client when ``on_event`` runs; the events are written one by one with a short gap.
* cancel latency: the server goes silent after ``connection_attempt``; once the client is
  blocked reading, another thread sets ``cancel``; from ``set()`` to the raise of
  ``ConnectCancelledError`` in the connecting thread.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import socket
import statistics
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import urllib3

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mcpconnect import Client, ConnectCancelledError, McpOauthEvent, Timeouts
from mcpconnect.transports import Urllib3Transport

CONFIG = {"server_name": "bench", "type": "streamable_http", "server_url": "https://x.test/mcp"}
HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
    b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
)


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def event(obj: object) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


def tool(i: int) -> dict[str, object]:
    return {
        "name": f"tool_{i}",
        "title": None,
        "description": f"Tool number {i}: does one small thing, well.",
        "inputSchema": {
            "type": "object",
            "properties": {"text": {"type": "string", "title": "Text"}},
            "required": ["text"],
        },
        "outputSchema": None,
        "annotations": None,
        "meta": None,
    }


def events_body(n: int) -> tuple[bytes, int]:
    parts = [chunk(event({"event": "connection_attempt", "server_name": "bench"}))]
    parts += [chunk(event({"event": "progress", "n": i})) for i in range(n)]
    parts.append(chunk(event({"event": "success", "tools": []})))
    parts.append(b"0\r\n\r\n")
    return b"".join(parts), n + 2


def tools_body(m: int) -> tuple[bytes, int]:
    parts = [
        chunk(event({"event": "connection_attempt", "server_name": "bench"})),
        chunk(event({"event": "success", "tools": [tool(i) for i in range(m)]})),
        b"0\r\n\r\n",
    ]
    return b"".join(parts), 2


# --- the server ------------------------------------------------------------------------------

Responder = Callable[[socket.socket], None]


class Server:
    """Answers each request with ``self.respond(sock)`` (one request per connection)."""

    def __init__(self) -> None:
        self.respond: Responder = lambda sock: None
        self._listen = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.url = f"http://127.0.0.1:{self._listen.getsockname()[1]}"
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                sock, _ = self._listen.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        with sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            buffer = b""
            while b"\r\n\r\n" not in buffer:
                data = sock.recv(65536)
                if not data:
                    return
                buffer += data
            head, _, body = buffer.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            while len(body) < length:
                body += sock.recv(65536)
            with contextlib.suppress(OSError):
                self.respond(sock)

    def close(self) -> None:
        self._stop = True
        self._listen.close()


def send_all(body: bytes) -> Responder:
    def respond(sock: socket.socket) -> None:
        sock.sendall(HEAD)
        view = memoryview(body)
        for start in range(0, len(body), 256 * 1024):
            sock.sendall(view[start : start + 256 * 1024])

    return respond


# --- the clients -----------------------------------------------------------------------------


def run_connect(client: Client) -> int:
    count = 0

    def on_event(event: McpOauthEvent) -> None:
        nonlocal count
        count += 1

    client.connect(CONFIG, on_event=on_event)
    return count


def bare_read(pool: urllib3.PoolManager, url: str) -> int:
    response = pool.request(
        "POST",
        url,
        body=json.dumps(CONFIG).encode(),
        preload_content=False,
        retries=False,
        redirect=False,
    )
    size = 0
    read1 = response.read1
    while data := read1(256 * 1024):
        size += len(data)
    response.release_conn()
    return size


def bare_read_json(pool: urllib3.PoolManager, url: str) -> int:
    response = pool.request(
        "POST",
        url,
        body=json.dumps(CONFIG).encode(),
        preload_content=False,
        retries=False,
        redirect=False,
    )
    count = 0
    buffer = b""
    read1 = response.read1
    loads = json.loads
    while data := read1(256 * 1024):
        buffer += data
        if b"\n\n" not in buffer:
            continue
        *frames, buffer = buffer.split(b"\n\n")
        for frame in frames:
            loads(frame[6:])
            count += 1
    response.release_conn()
    return count


def best_of(repeat: int, fn: Callable[[], object]) -> tuple[float, object]:
    best = float("inf")
    result: object = None
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def peak_memory(fn: Callable[[], object]) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# --- latency ---------------------------------------------------------------------------------


def event_latency(server: Server, client: Client, n: int, gap: float) -> list[float]:
    sent_at: dict[int, float] = {}
    got_at: dict[int, float] = {}

    def respond(sock: socket.socket) -> None:
        sock.sendall(HEAD + chunk(event({"event": "connection_attempt"})))
        for i in range(n):
            data = chunk(event({"event": "progress", "n": i}))
            sent_at[i] = time.monotonic()
            sock.sendall(data)
            time.sleep(gap)
        sock.sendall(chunk(event({"event": "success", "tools": []})) + b"0\r\n\r\n")

    def on_event(ev: McpOauthEvent) -> None:
        if ev.event == "progress":
            got_at[int(ev.extra["n"])] = time.monotonic()

    server.respond = respond
    client.connect(CONFIG, on_event=on_event)
    return [got_at[i] - sent_at[i] for i in range(n)]


def cancel_latency(server: Server, client: Client, runs: int) -> list[float]:
    def respond(sock: socket.socket) -> None:
        sock.sendall(HEAD + chunk(event({"event": "connection_attempt"})))
        sock.settimeout(30)
        with contextlib.suppress(OSError):
            sock.recv(1)  # silent until the client goes away

    server.respond = respond
    out: list[float] = []
    for _ in range(runs):
        cancel = threading.Event()
        first = threading.Event()
        raised_at: list[float] = []

        def work(
            cancel: threading.Event = cancel,
            first: threading.Event = first,
            raised_at: list[float] = raised_at,
        ) -> None:
            try:
                client.connect(CONFIG, on_event=lambda ev: first.set(), cancel=cancel)
            except ConnectCancelledError:
                raised_at.append(time.monotonic())

        thread = threading.Thread(target=work)
        thread.start()
        first.wait(10)
        time.sleep(0.05)  # let it block in the read
        set_at = time.monotonic()
        cancel.set()
        thread.join(10)
        out.append(raised_at[0] - set_at)
    return out


# --- main ------------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one run each")
    parser.add_argument("--repeat", type=int, default=None)
    args = parser.parse_args(argv)
    quick = args.quick
    repeat = args.repeat or (1 if quick else 3)
    n_events = 10_000 if quick else 100_000
    n_tools = 1_000 if quick else 10_000

    server = Server()
    transport = Urllib3Transport(trust_env=False)
    client = Client(
        base_url=server.url,
        api_key="sk-bench",
        transport=transport,
        timeout=Timeouts(read=30, total=600),
    )
    pool = urllib3.PoolManager()
    url = server.url + "/v1/tools/mcp/servers/connect"
    print(
        f"Python {sys.version.split()[0]}, urllib3 {urllib3.__version__}, "
        f"best of {repeat}{' (quick)' if quick else ''}\n"
    )
    try:
        header = (
            f"{'stream':<22} {'bytes':>10} {'connect()':>11} {'events/s':>11} {'MB/s':>6} "
            f"{'bare':>10} {'bare+json':>10} {'x bare':>7} {'x b+json':>9} "
            f"{'peak mem':>10} {'bare mem':>9}"
        )
        print(header)
        print("-" * len(header))
        for name, (body, count) in (
            (f"{n_events:,} events", events_body(n_events)),
            (f"success, {n_tools:,} tools", tools_body(n_tools)),
        ):
            server.respond = send_all(body)
            t_connect, got = best_of(repeat, lambda: run_connect(client))
            assert got == count, (got, count)
            t_bare, size = best_of(repeat, lambda: bare_read(pool, url))
            assert isinstance(size, int) and 0 < size < len(body)
            t_json, parsed = best_of(repeat, lambda: bare_read_json(pool, url))
            assert parsed == count, (parsed, count)
            peak = peak_memory(lambda: run_connect(client))
            bare_peak = peak_memory(lambda: bare_read_json(pool, url))
            print(
                f"{name:<22} {len(body):>10,} {ms(t_connect):>11} {count / t_connect:>11,.0f} "
                f"{len(body) / t_connect / 1e6:>6.1f} "
                f"{ms(t_bare):>10} {ms(t_json):>10} {t_connect / t_bare:>7.2f} "
                f"{t_connect / t_json:>9.2f} {peak / 2**20:>8.1f} MiB "
                f"{bare_peak / 2**20:>5.1f} MiB"
            )

        lat = sorted(event_latency(server, client, 50 if quick else 500, 0.002))
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        print(
            f"\nevent latency (server send -> on_event), {len(lat)} events 2 ms apart: "
            f"median {ms(statistics.median(lat))}, p99 {ms(p99)}, max {ms(lat[-1])}"
        )
        runs = 5 if quick else 20
        cancels = cancel_latency(server, client, runs)
        print(
            f"cancel latency (cancel.set() -> ConnectCancelledError), {runs} runs, blocked "
            f"in a read: median {ms(statistics.median(cancels))}, max {ms(max(cancels))}"
        )
    finally:
        client.close()
        transport.close()
        pool.clear()
        server.close()


if __name__ == "__main__":
    main()
