"""Pause the cyclic garbage collector while one large event is parsed, or one large chunk
is decoded into thousands of events.

``json.loads`` of a ``success`` event with thousands of tools makes some 100,000 containers,
and structuring the tools right after makes thousands more. Every allocation counts towards
CPython's collection thresholds, so the collector runs full passes over all those young,
live, acyclic objects again and again: it doubles the time to read a large event (measured:
104 ms with it, 58 ms without, for 10,000 tools) and frees nothing, since none of it is
garbage. Reference counting still frees memory while the collector is paused.

The pause is process-wide, so it is shared: the first thread in turns the collector off if
it was on, the last one out turns it back on. A collector that the program disabled itself
stays disabled. (A program that disables the collector from another thread during a pause
will find it enabled again afterwards.)
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

__all__ = ["MIN_PAUSE_CHARS", "gc_paused"]

#: Events (in characters) and chunks (in bytes) smaller than this are handled with the
#: collector as it is.
MIN_PAUSE_CHARS = 256 * 1024

_lock = threading.Lock()
_pausers = 0
_was_enabled = False


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Keep the cyclic collector off inside the block (if it was on when the first of any
    concurrent blocks began)."""
    global _pausers, _was_enabled
    with _lock:
        if _pausers == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _pausers += 1
    try:
        yield
    finally:
        with _lock:
            _pausers -= 1
            if _pausers == 0 and _was_enabled:
                gc.enable()
