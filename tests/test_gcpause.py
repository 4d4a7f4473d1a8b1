"""The collector pause around large events: always restored, never turned on by us."""

from __future__ import annotations

import gc
import json
import threading
from collections.abc import Iterator

import pytest

from mcpconnect._gcpause import MIN_PAUSE_CHARS, gc_paused
from mcpconnect.flow import ConnectFlow
from mcpconnect.sse import ServerSentEvent


@pytest.fixture(autouse=True)
def restore_gc() -> Iterator[None]:
    was = gc.isenabled()
    yield
    if was:
        gc.enable()
    else:
        gc.disable()


def test_pauses_and_restores_an_enabled_collector() -> None:
    gc.enable()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_leaves_a_disabled_collector_disabled() -> None:
    gc.disable()
    with gc_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()


def test_restores_after_an_exception() -> None:
    gc.enable()
    with pytest.raises(ZeroDivisionError), gc_paused():
        1 / 0  # noqa: B018
    assert gc.isenabled()


def test_overlapping_pauses_in_threads_end_with_the_collector_on() -> None:
    gc.enable()
    inside = threading.Barrier(2)
    leave_first = threading.Event()
    states: list[bool] = []

    def first() -> None:
        with gc_paused():
            inside.wait()
            leave_first.wait(10)
        states.append(gc.isenabled())  # the other thread still pauses

    def second() -> None:
        with gc_paused():
            inside.wait()
            leave_first.set()
            worker.join(10)
        states.append(gc.isenabled())

    worker = threading.Thread(target=first)
    other = threading.Thread(target=second)
    worker.start()
    other.start()
    other.join(10)
    assert states == [False, True]
    assert gc.isenabled()


def test_a_large_event_is_parsed_with_the_collector_restored() -> None:
    gc.enable()
    tools = [{"name": f"t{i}", "description": "x" * 100} for i in range(MIN_PAUSE_CHARS // 100)]
    data = json.dumps({"event": "success", "tools": tools})
    assert len(data) >= MIN_PAUSE_CHARS
    flow = ConnectFlow()
    flow.receive(ServerSentEvent(data=data))
    assert [t.name for t in flow.result()] == [t["name"] for t in tools]
    assert gc.isenabled()
