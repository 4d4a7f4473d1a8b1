"""Bounded waits and cancellation for blocking reads, from one shared daemon thread.

A connect blocks in a read while the server is silent. ``threading.Event`` has no callbacks and
a socket read cannot watch one, so a single watchdog thread looks at every running connect
every few milliseconds. When a connect's ``cancel`` is set, or one of its limits runs out, the
watchdog records why and closes the connect's response from its own thread; the blocked read
then ends, and the connect raises the recorded reason instead of the read's error. The thread
runs only while some connect is being watched.

A transport can also be watched while it waits for the response headers, before it has a
response to hand back: a :class:`Watch` made on a thread is that thread's *pending* watch until
the next send takes it (:func:`take_pending`). The transport then attaches an object that can
break its in-flight connection, and reports when it is busy opening the connection
(:attr:`Watch.connecting`: the ``read`` limit does not count then, the transport's ``connect``
limit does). ``Urllib3Transport`` does this; other transports need not.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from typing import Protocol

from ._timeouts import Timeouts
from .errors import ConnectCancelledError, ConnectTimeoutError, McpConnectError

__all__ = ["Watch", "take_pending"]

log = logging.getLogger("mcpconnect")

POLL_SECONDS = 0.01

_local = threading.local()


class _Closable(Protocol):
    def close(self) -> None: ...


class Watch:
    """The limits of one connect. The connect thread updates ``state``, :meth:`activity`
    and :meth:`waiting`; the watchdog thread reads them."""

    def __init__(self, timeouts: Timeouts, cancel: threading.Event | None) -> None:
        now = time.monotonic()
        self.timeouts = timeouts
        self.cancel = cancel
        self.state: str = "started"  # a ConnectState (a str) once events arrive
        self.started = now
        self.last_data = now
        self.waiting_since: float | None = None
        self.reason: McpConnectError | None = None
        self.connecting = False
        self.held = False
        self._target: _Closable | None = None

    # --- called by the connect thread ----------------------------------------------------

    def activity(self) -> None:
        """Bytes arrived."""
        self.last_data = time.monotonic()

    def holding(self, held: bool) -> None:
        """The caller holds an event (``on_event`` runs, or a ``stream_events`` consumer has
        not asked for the next one): nobody reads, so the ``read`` limit does not count.
        ``cancel``, ``authorization`` and ``total`` still do."""
        self.held = held
        if not held:
            self.last_data = time.monotonic()

    def waiting(self, waiting: bool) -> None:
        """Whether the flow is in ``waiting_for_auth``; the ``authorization`` limit counts
        from when it entered (an unknown event while waiting does not restart it)."""
        if not waiting:
            self.waiting_since = None
        elif self.waiting_since is None:
            self.waiting_since = time.monotonic()

    @contextlib.contextmanager
    def sending(self) -> Iterator[None]:
        """Around the transport's ``send``: a transport that can may take this watch
        (:func:`take_pending`) and attach its in-flight connection, so that cancel and the
        limits work before the response headers are in."""
        _local.pending = self
        try:
            yield
        finally:
            _local.pending = None

    def attach(self, target: _Closable) -> None:
        """Watch ``target``: close it when a limit runs out or ``cancel`` is set.

        Attaching again replaces the target (the response replaces the in-flight connection).
        If the watch already fired, ``target`` is closed here and now, so that a target
        attached just after the watchdog looked is never left open.
        """
        self._target = target
        _WATCHDOG.add(self)
        if self.reason is not None:
            _close(target)

    def detach(self) -> None:
        _WATCHDOG.remove(self)
        self._target = None

    def check(self) -> McpConnectError | None:
        """Why this connect must stop now, or ``None``. Also the watchdog's test."""
        if self.reason is not None:
            return self.reason
        return self._check()

    def _check(self) -> McpConnectError | None:
        state = str(self.state)  # the connect thread may set a ConnectState
        if self.cancel is not None and self.cancel.is_set():
            return ConnectCancelledError(state)
        now = time.monotonic()
        t = self.timeouts
        if t.total is not None and now - self.started >= t.total:
            return ConnectTimeoutError(
                "total", t.total, state,
                f"the connect took longer than its total limit of {t.total:g} s "
                f"(in state {state})",
            )
        if self.waiting_since is not None:
            if t.authorization is not None and now - self.waiting_since >= t.authorization:
                return ConnectTimeoutError(
                    "authorization", t.authorization, state,
                    f"no authorization after {t.authorization:g} s while {state}",
                )
        elif (
            t.read is not None
            and not self.connecting
            and not self.held
            and now - self.last_data >= t.read
        ):
            return ConnectTimeoutError(
                "read", t.read, state,
                f"the server sent nothing for {t.read:g} s (in state {state})",
            )
        return None

    # --- called by the watchdog thread ---------------------------------------------------

    def _fire(self) -> bool:
        reason = self.check()
        if reason is None:
            return False
        self.reason = reason
        target = self._target
        if target is not None:
            _close(target)
        return True


def _close(target: _Closable) -> None:
    try:
        target.close()
    except Exception:  # a transport's close() must not kill the watchdog
        log.debug("closing a response failed", exc_info=True)


def take_pending() -> Watch | None:
    """The watch of the connect that is sending on this thread (see :meth:`Watch.sending`),
    if any; taken once, by the transport's ``send``. ``None`` outside a connect (a transport
    used on its own)."""
    watch: Watch | None = getattr(_local, "pending", None)
    _local.pending = None
    return watch


class _Watchdog:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watches: set[Watch] = set()
        self._thread: threading.Thread | None = None

    def add(self, watch: Watch) -> None:
        with self._lock:
            self._watches.add(watch)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="mcpconnect-watchdog", daemon=True
                )
                self._thread.start()

    def remove(self, watch: Watch) -> None:
        with self._lock:
            self._watches.discard(watch)

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._watches:
                    self._thread = None
                    return
                watches = list(self._watches)
            for watch in watches:
                if watch._fire():
                    self.remove(watch)
            time.sleep(POLL_SECONDS)


_WATCHDOG = _Watchdog()
