"""connect() end to end over the fake transport, against json.loads of the same payload.

Run from the repository root:

    .venv/bin/python benchmarks/bench_connect.py            # full run
    .venv/bin/python benchmarks/bench_connect.py --quick    # smoke run

The stream is what Letta sends for a server with many tools: a ``connection_attempt`` event,
then one ``success`` event whose ``tools`` are copies of the recorded ``echo`` tool (renamed
``tool_0``...), sent in 64 KiB chunks. ``connect()`` decodes the SSE, parses the JSON,
structures every tool into an ``McpTool`` and returns them; the floor is ``json.loads`` of
the success payload alone. Target: connect() at most 2x the floor.

Times are best of N (the machine is small and noisy); the garbage collector runs before
each timed call, and stays on during it, as it would in use. The library never touches the
collector; a last line shows what an application gains by raising the collector's first
threshold, as the README suggests for huge tool lists (the benchmark, not the library, does it).
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import mcpconnect
from mcpconnect.transports import FakeResponse, FakeTransport

FIXTURE = (
    Path(__file__).resolve().parent.parent
    / "tests" / "fixtures" / "letta-0.16.8" / "noauth_streamable_success.txt"
)
CONFIG = {"server_name": "bench", "type": "streamable_http", "server_url": "https://h/mcp"}
CHUNK = 64 * 1024
TARGET = 2.0


def payload(n_tools: int) -> str:
    success = json.loads(FIXTURE.read_text().split("data: ")[2])
    template = success["tools"][0]
    tools = [dict(template, name=f"tool_{i}") for i in range(n_tools)]
    return json.dumps({"event": "success", "tools": tools})


def best_of(repeat: int, fn: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: fewer tools, runs")
    parser.add_argument("--tools", type=int, default=None, help="tools in the success event")
    parser.add_argument("--repeat", type=int, default=None, help="runs per measurement")
    parser.add_argument("--profile", action="store_true", help="cProfile one connect()")
    args = parser.parse_args()
    n_tools = args.tools or (1_000 if args.quick else 10_000)
    repeat = args.repeat or (3 if args.quick else 15)

    text = payload(n_tools)
    body = b'data: {"event": "connection_attempt", "server_name": "bench"}\n\n'
    body += b"data: " + text.encode() + b"\n\n"
    chunks = [body[i : i + CHUNK] for i in range(0, len(body), CHUNK)]

    def run_connect() -> object:
        transport = FakeTransport(FakeResponse(chunks=chunks))
        tools = mcpconnect.connect(
            CONFIG, base_url="http://letta.invalid", api_key="k", transport=transport
        )
        assert len(tools) == n_tools
        return tools

    def run_json() -> object:
        return json.loads(text)

    run_connect()  # warm up (imports, the watchdog thread)
    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.runcall(run_connect)
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(20)

    floor = best_of(repeat, run_json)
    took = best_of(repeat, run_connect)
    ratio = took / floor
    thresholds = gc.get_threshold()
    gc.set_threshold(10_000, *thresholds[1:])  # what an application may do; see the README
    try:
        tuned = best_of(repeat, run_connect)
    finally:
        gc.set_threshold(*thresholds)
    print(f"python {sys.version.split()[0]}; {n_tools} tools, {len(body) / 1e6:.1f} MB body "
          f"in {len(chunks)} chunks; best of {repeat}")
    print(f"  json.loads(payload)  {floor * 1e3:8.1f} ms")
    print(f"  mcpconnect.connect() {took * 1e3:8.1f} ms   {ratio:.2f}x  (target <= {TARGET:g}x)")
    print(f"  connect(), the application's gc threshold 10,000 (README) "
          f"{tuned * 1e3:8.1f} ms   {tuned / floor:.2f}x")
    if ratio > TARGET:
        print("  MISSED the target")
        return 0 if args.quick else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
