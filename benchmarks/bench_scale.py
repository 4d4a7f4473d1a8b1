"""N concurrent connects waiting for authorization on one shared Client.

For each N (default 10, 100, 1000) it starts the Letta emulator in another process (OAuth
scenario, every user must authorize), starts N connects on one ``mcpconnect.Client``, each in
its own thread, and waits until all of them are in ``waiting_for_auth``. Then it measures:

- memory per waiting connect: the growth of this process's RSS, divided by N;
- CPU while they wait in silence: this process's CPU time over a window, as % of one core;
- authorize -> success: half the users authorize (their authorization URLs are opened, as a
  browser would); the time from opening a URL to that connect's ``success`` event;
- cancel -> raise: the other half's ``cancel`` events are set at once; the time until each
  connect raises ``ConnectCancelledError``;
- warnings (any log record at WARNING or above, urllib3's "Connection pool is full" among
  them) and connects that ended any other way.

Usage::

    python benchmarks/bench_scale.py            # N = 10, 100, 1000
    python benchmarks/bench_scale.py 200 --wait 3

Numbers depend on the machine and on what else runs on it; report them with that caveat.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import logging
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from typing import Any

import mcpconnect
from mcpconnect import ConnectCancelledError, McpOauthEvent, Timeouts

EMULATOR = """
import sys, time
from mcpconnect.testing import LettaEmulator, Scenario
with LettaEmulator(Scenario(oauth="approve", remember_token=False), api_key="sk-bench") as emu:
    print(emu.base_url, flush=True)
    sys.stdin.read()
"""


class _Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class _User:
    def __init__(self, index: int) -> None:
        self.index = index
        self.cancel = threading.Event()
        self.waiting = threading.Event()
        self.url: str | None = None
        self.authorized_at: float | None = None
        self.callback_done_at: float | None = None
        self.success_at: float | None = None
        self.ended_at: float | None = None
        self.outcome: Any = None

    def on_event(self, event: McpOauthEvent) -> None:
        if event.url:
            self.url = event.url
        if str(event.event) == "waiting_for_auth":
            self.waiting.set()
        elif str(event.event) == "success":
            self.success_at = time.monotonic()

    def run(self, client: mcpconnect.Client) -> None:
        config = {"server_name": f"user-{self.index}", "type": "streamable_http",
                  "server_url": f"https://mcp.example/{self.index}/mcp"}
        try:
            self.outcome = client.connect(config, on_event=self.on_event, cancel=self.cancel)
        except BaseException as exc:  # recorded, judged below
            self.outcome = exc
        self.ended_at = time.monotonic()


def _stats(values: list[float]) -> str:
    if not values:
        return "n/a"
    ms = sorted(v * 1000 for v in values)
    return f"median {statistics.median(ms):.1f} ms, max {ms[-1]:.1f} ms"


def run(n: int, wait_seconds: float) -> dict[str, Any]:
    server = subprocess.Popen(
        [sys.executable, "-c", EMULATOR], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    base_url = server.stdout.readline().strip()
    warnings = _Warnings()
    logging.getLogger().addHandler(warnings)
    try:
        users = [_User(i) for i in range(n)]
        with mcpconnect.Client(base_url=base_url, api_key="sk-bench",
                               timeout=Timeouts(read=120, authorization=600, total=900)) as client:
            rss_before = _rss_kib()
            threads = [threading.Thread(target=u.run, args=(client,), daemon=True) for u in users]
            started = time.monotonic()
            for thread in threads:
                thread.start()
            for user in users:
                if not user.waiting.wait(120):
                    raise SystemExit(f"user {user.index} never reached waiting_for_auth: "
                                     f"{user.outcome!r}")
            all_waiting = time.monotonic() - started
            time.sleep(0.5)  # let the start-up settle
            rss_waiting = _rss_kib()
            cpu0, wall0 = time.process_time(), time.monotonic()
            time.sleep(wait_seconds)
            cpu = (time.process_time() - cpu0) / (time.monotonic() - wall0)

            half = users[: n // 2] if n > 1 else users
            rest = users[n // 2:] if n > 1 else []

            def authorize(user: _User) -> None:
                assert user.url is not None
                user.authorized_at = time.monotonic()
                urllib.request.urlopen(user.url, timeout=60).close()
                user.callback_done_at = time.monotonic()

            with concurrent.futures.ThreadPoolExecutor(16) as pool:
                list(pool.map(authorize, half))
            for user in half:
                threads[user.index].join(60)
            cancelled_at = time.monotonic()
            for user in rest:
                user.cancel.set()
            for user in rest:
                threads[user.index].join(60)
        ok = [u for u in half if isinstance(u.outcome, list) and u.success_at is not None]
        cancelled = [u for u in rest if isinstance(u.outcome, ConnectCancelledError)]
        return {
            "n": n,
            "all waiting after": f"{all_waiting:.2f} s",
            "memory per waiting connect": f"{(rss_waiting - rss_before) / n:.1f} KiB",
            "CPU while waiting": f"{cpu * 100:.2f} % of a core",
            "authorize -> success": _stats(
                [u.success_at - u.authorized_at for u in ok  # type: ignore[operator]
                 if u.authorized_at is not None]),
            "  of which the browser's round trip (authorize page, redirect, callback)": _stats(
                [u.callback_done_at - u.authorized_at for u in ok  # type: ignore[operator]
                 if u.authorized_at is not None]),
            "callback answered -> success": _stats(
                [u.success_at - u.callback_done_at for u in ok  # type: ignore[operator]
                 if u.callback_done_at is not None]),
            "cancel -> raise": _stats(
                [u.ended_at - cancelled_at for u in cancelled if u.ended_at is not None]),
            "succeeded": f"{len(ok)}/{len(half)}",
            "cancelled": f"{len(cancelled)}/{len(rest)}",
            "other outcomes": [repr(u.outcome)[:120] for u in users
                               if u not in ok and u not in cancelled][:5],
            "warnings": len(warnings.records),
            "first warnings": sorted({r.getMessage()[:100] for r in warnings.records})[:3],
        }
    finally:
        logging.getLogger().removeHandler(warnings)
        assert server.stdin is not None
        server.stdin.close()
        server.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="*", type=int, default=[10, 100, 1000])
    parser.add_argument("--wait", type=float, default=5.0,
                        help="seconds to measure CPU while every connect waits")
    args = parser.parse_args()
    for n in args.n:
        result = run(n, args.wait)
        print(f"N = {n}")
        for key, value in result.items():
            if key != "n":
                print(f"  {key}: {value}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
