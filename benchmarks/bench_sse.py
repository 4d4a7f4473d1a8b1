"""Throughput of mcpconnect.sse against httpx-sse and sseclient-py, in one process.

Run from the repository root:

    .venv/bin/python benchmarks/bench_sse.py            # full run, a few minutes
    .venv/bin/python benchmarks/bench_sse.py --quick    # smoke run, seconds

Every decoder gets the same list of byte chunks and must produce every event:

* mcpconnect: ``SSEDecoder.feed()`` per chunk, then ``close()``.
* httpx-sse 0.4.3: its own ``EventSource.iter_sse()`` (``_iter_sse_lines`` ->
  ``SSELineDecoder`` -> ``SSEDecoder``), over a stand-in response whose ``iter_text()`` is
  what httpx's is for these chunks: httpx's ``TextDecoder`` (incremental UTF-8 with
  replacement), empty strings dropped as ``TextChunker`` does. Only the socket is missing.
* sseclient-py: ``SSEClient(iter(chunks)).events()``.
* floor: ``bytes.split(b"\\n")`` on the whole buffer, the least any line splitter can cost.

Times are the best CPU time (`time.process_time`) of N runs, the decoders taken in turn (the
machine is small and shared). A cell that takes longer than
``--budget`` seconds once is not repeated, and is marked ``*``.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx_sse
import sseclient
from httpx._decoders import TextDecoder

from mcpconnect.errors import ProtocolError
from mcpconnect.sse import SSEDecoder

FIXTURE = (
    Path(__file__).resolve().parent.parent
    / "tests"
    / "fixtures"
    / "letta-0.16.8"
    / "noauth_sse_success.txt"
)
SEED = 20240601

# --- Corpora ---------------------------------------------------------------------------------


def oauth_stream(n_tools: int, general: bool = False) -> tuple[bytes, list[int]]:
    """An OAuth connect stream whose ``success`` carries ``n_tools`` tools shaped like the
    recorded Letta fixture. Returns the bytes and the offsets where events end.

    Letta's framing is ``data: <json>\n\n``; with ``general`` every event also has an
    ``id:`` line, and the ``success`` an ``event:`` line and a comment line before its data."""
    raw = FIXTURE.read_bytes()
    shapes = json.loads(raw.split(b"\n\n")[1].removeprefix(b"data: "))["tools"]
    filler = " ".join(["Lorem ipsum dolor sit amet, consectetur adipiscing elit."] * 5)
    tools = []
    for i in range(n_tools):
        tool = dict(shapes[i % len(shapes)])
        tool["name"] = f"{tool['name']}_{i}"
        tool["description"] = f"{tool['description']} {filler}"
        tools.append(tool)
    payloads = [
        {"event": "connection_attempt", "server_name": "bench"},
        {"event": "oauth_required", "message": "OAuth authentication required"},
        {
            "event": "authorization_url",
            "url": "http://127.0.0.1:8403/authorize?response_type=code&client_id=62e888ef"
            "&state=5h7_BqJiJXIp5FcOJsA5rEZN4frkNIB0HD2eALxAacw&code_challenge_method=S256",
            "session_id": "mcp-oauth-01d4defb",
        },
        {"event": "waiting_for_auth", "message": "Waiting for authorization"},
        {"event": "success", "tools": tools},
    ]
    if not general:
        return events_to_stream(f"data: {json.dumps(p)}\n\n".encode() for p in payloads)
    return events_to_stream(
        (
            f"id: {i}\n"
            + (": the tools follow\nevent: success\n" if p["event"] == "success" else "")
            + f"data: {json.dumps(p)}\n\n"
        ).encode()
        for i, p in enumerate(payloads, 1)
    )


def small_events(n: int, ids: bool = False) -> tuple[bytes, list[int]]:
    """``n`` events of about 100 bytes, like progress or log messages; with ``ids``, each
    has an ``id:`` line too."""
    rng = random.Random(SEED)
    return events_to_stream(
        (
            (f"id: {i}\n" if ids else "")
            + f'data: {{"event": "progress", "seq": {i}, "message": "step {rng.randrange(10**6)}'
            f' of the job is done", "ok": true}}\n\n'
        ).encode()
        for i in range(n)
    )


def one_line(size: int) -> tuple[bytes, list[int]]:
    """One event whose data is one line of ``size`` bytes."""
    return events_to_stream([b"data: " + b"x" * size + b"\n\n"])


def events_to_stream(events: Iterator[bytes] | list[bytes]) -> tuple[bytes, list[int]]:
    parts = list(events)
    ends, total = [], 0
    for part in parts:
        total += len(part)
        ends.append(total)
    return b"".join(parts), ends


# --- Chunkings -------------------------------------------------------------------------------


def chunk_fixed(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def chunk_random(data: bytes) -> list[bytes]:
    """Sizes log-uniform between 1 byte and 64 KiB, from a fixed seed."""
    rng = random.Random(SEED)
    chunks, i = [], 0
    while i < len(data):
        size = int(2 ** rng.uniform(0, 16))
        chunks.append(data[i : i + size])
        i += size
    return chunks


def chunk_per_event(data: bytes, ends: list[int]) -> list[bytes]:
    return [data[a:b] for a, b in zip([0, *ends[:-1]], ends, strict=True)]


# --- Decoders: each returns (number of events, total length of their data) -------------------


def run_mcpconnect(chunks: list[bytes]) -> tuple[int, int]:
    decoder = SSEDecoder()
    feed = decoder.feed
    count = size = 0
    for chunk in chunks:
        for event in feed(chunk):
            count += 1
            size += len(event.data)
    decoder.close()
    return count, size


class _HttpxLikeResponse:
    """What ``httpx_sse.EventSource`` uses of an ``httpx.Response``, for these chunks."""

    headers = {"content-type": "text/event-stream"}  # noqa: RUF012

    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks

    def iter_text(self) -> Iterator[str]:
        # httpx.Response.iter_text() with chunk_size=None: TextDecoder, then TextChunker,
        # which passes each non-empty string through.
        decoder = TextDecoder("utf-8")
        for chunk in self._chunks:
            text = decoder.decode(chunk)
            if text:
                yield text
        text = decoder.flush()
        if text:
            yield text


def run_httpx_sse(chunks: list[bytes]) -> tuple[int, int]:
    count = size = 0
    for event in httpx_sse.EventSource(_HttpxLikeResponse(chunks)).iter_sse():  # type: ignore[arg-type]
        count += 1
        size += len(event.data)
    return count, size


def run_sseclient(chunks: list[bytes]) -> tuple[int, int]:
    count = size = 0
    for event in sseclient.SSEClient(iter(chunks)).events():
        count += 1
        size += len(event.data)
    return count, size


DECODERS: dict[str, Callable[[list[bytes]], tuple[int, int]]] = {
    "mcpconnect": run_mcpconnect,
    "httpx-sse": run_httpx_sse,
    "sseclient": run_sseclient,
}

# --- Measuring -------------------------------------------------------------------------------


def best_times(
    runs: dict[str, Callable[[], object]], repeat: int, budget: float
) -> dict[str, tuple[float, bool]]:
    """Best CPU time of ``repeat`` runs of each, taken in turn (so that a busy moment of the
    machine hits them all); a decoder whose first run takes over ``budget`` seconds is not
    run again (then its flag is True)."""
    best = dict.fromkeys(runs, float("inf"))
    single = dict.fromkeys(runs, False)
    for i in range(repeat):
        for name, run in runs.items():
            if single[name]:
                continue
            gc.collect()
            start = time.process_time()
            run()
            elapsed = time.process_time() - start
            best[name] = min(best[name], elapsed)
            if i == 0 and elapsed > budget and repeat > 1:
                single[name] = True
    return {name: (best[name], single[name]) for name in runs}


def peak_memory(run: Callable[[], object]) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def peak_at_limits(limit: int) -> list[tuple[str, float]]:
    """Peak traced memory, as a multiple of ``limit``, of streams that reach the limits."""
    tiny = b"data: xy\n" * (2 * limit // 9)  # no blank line: stops at the event limit
    # As long as both limits allow: the event limit counts the data plus 64 per line.
    line = b"data: " + b'{"name": "tool", "description": "x"}, ' * (limit // 38 - 2)
    line += b"x" * (limit - 58 - len(line))
    cases = {
        "tiny data lines, 64 KiB chunks (ProtocolError)": (chunk_fixed(tiny, 65536), {}),
        "one line at the line limit, whole": ([line + b"\n\n"], {}),
        "one line at the line limit, 64 KiB chunks": (chunk_fixed(line + b"\n\n", 65536), {}),
    }
    del tiny, line
    rows = []
    for name, (chunks, _) in cases.items():

        def run(c: list[bytes] = chunks) -> None:
            decoder = SSEDecoder(max_line_bytes=limit, max_event_bytes=limit)
            try:
                for chunk in c:
                    decoder.feed(chunk)
            except ProtocolError:
                pass

        rows.append((name, peak_memory(run) / limit))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small corpora, one run each")
    parser.add_argument("--repeat", type=int, default=None, help="runs per cell (best of)")
    parser.add_argument("--budget", type=float, default=3.0, help="seconds; see above")
    args = parser.parse_args()
    quick = args.quick
    repeat = args.repeat or (1 if quick else 5)
    target = 1.5  # issue 8: at least 1.5x httpx-sse in every cell

    scale = 10 if quick else 1
    n_tools, n_small, line_mb = 10_000 // scale, 100_000 // scale, 20 // scale
    corpora = {
        f"oauth, {n_tools:,} tools": oauth_stream(n_tools),
        f"oauth+ids, {n_tools:,} tools": oauth_stream(n_tools, general=True),
        f"{n_small:,} small events": small_events(n_small),
        f"{n_small:,} small, ids": small_events(n_small, ids=True),
        f"one {line_mb} MB line": one_line(line_mb * 1_000_000),
    }

    print(
        f"Python {sys.version.split()[0]}, best of {repeat} (CPU time); "
        "MB/s of input (1 MB = 10^6 B)"
    )
    header = (
        f"{'corpus':<24} {'chunking':<15} {'MB':>6} "
        f"{'mcpconnect':>11} {'httpx-sse':>10} {'sseclient':>10} {'ratio':>7}"
    )
    print(header)
    print("-" * len(header))
    misses = []
    for name, (data, ends) in corpora.items():
        # Built one at a time, so that the lists of other chunkings do not sit in memory
        # for the garbage collector to walk while this one is timed.
        chunkings: dict[str, Callable[[], list[bytes]]] = {
            "whole": lambda d=data: [d],
            "64 KiB": lambda d=data: chunk_fixed(d, 65536),
            "random": lambda d=data: chunk_random(d),
            "per event": lambda d=data, e=ends: chunk_per_event(d, e),
        }
        if "small" in name:
            n_bytes = 500 if quick else 5_000
            small = data[: ends[n_bytes - 1]]
            chunkings[f"1 byte ({n_bytes})"] = lambda s=small: chunk_fixed(s, 1)
        for chunking, make_chunks in chunkings.items():
            chunks = make_chunks()
            size = sum(map(len, chunks))
            results = {decoder: run(chunks) for decoder, run in DECODERS.items()}  # warm-up
            if results["mcpconnect"] != results["httpx-sse"]:
                raise SystemExit(f"{name}/{chunking}: events differ: {results}")
            times = best_times(
                {d: (lambda r=run, c=chunks: r(c)) for d, run in DECODERS.items()},
                repeat,
                args.budget,
            )
            speeds = {d: size / seconds / 1e6 for d, (seconds, _) in times.items()}
            ratio = speeds["mcpconnect"] / speeds["httpx-sse"]
            verdict = "ok" if ratio >= target else ("SLOWER" if ratio < 1 else "MISS")
            if verdict != "ok":
                misses.append(f"{name} / {chunking}: {ratio:.2f}x")
            cells = " ".join(
                f"{speeds[d]:>{w - 1}.1f}{'*' if times[d][1] else ' '}"
                for d, w in (("mcpconnect", 11), ("httpx-sse", 10), ("sseclient", 10))
            )
            print(f"{name:<24} {chunking:<15} {size / 1e6:>6.2f} {cells} {ratio:>6.2f}x {verdict}")
        floor = best_times({"split": lambda d=data: d.split(b"\n")}, repeat, args.budget)
        mb = len(data) / 1e6
        print(f"{name:<24} {'floor: split':<15} {mb:>6.2f} {mb / floor['split'][0]:>10.1f}")

    print()
    print("Linearity: one line in 1-byte chunks, mcpconnect (ns per byte should not grow)")
    for megabytes in (0.25, 0.5, 1.0) if quick else (1, 4, 20):
        n = int(megabytes * 1_000_000)
        byte_chunks = [b"data: ", *([b"x"] * n), b"\n\n"]  # b"x" is one shared object
        runs = 1 if n > 4e6 else repeat
        seconds = best_times({"m": lambda c=byte_chunks: run_mcpconnect(c)}, runs, 1e9)["m"][0]
        print(f"  {megabytes:>5} MB: {seconds:6.2f} s, {seconds / n * 1e9:5.0f} ns/byte")

    print()
    size = line_mb * 1_000_000
    data, _ = one_line(size)
    print(f"Peak memory (tracemalloc) for one {line_mb} MB line, as a multiple of it")
    for chunking, chunks in {
        "whole": [data],
        "64 KiB": chunk_fixed(data, 65536),
        "random": chunk_random(data),
    }.items():
        row = "  ".join(
            f"{decoder} {peak_memory(lambda r=run, c=chunks: r(c)) / size:4.2f}x"
            for decoder, run in DECODERS.items()
            if decoder != "sseclient" or chunking == "whole"
        )
        print(f"  {chunking:<8} {row}")
    del data, chunks

    print()
    limit = (8 if quick else 64) * 1024 * 1024
    print(
        f"Peak memory (tracemalloc) of mcpconnect at the limits (max_line_bytes = "
        f"max_event_bytes = {limit // 1024 // 1024} MiB), as a multiple of the limit"
    )
    for case, multiple in peak_at_limits(limit):
        print(f"  {case:<48} {multiple:4.2f}x")
    if misses:
        print(f"\nBelow the {target}x target:\n  " + "\n  ".join(misses))
    print("\n* one run only: the first took longer than --budget seconds")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
