"""Bounded waits and cancellation for blocking reads, from one shared daemon thread.

Theory of operation
-------------------
A connect blocks in a socket read (or a TCP connect, or a TLS handshake) while the server is
silent, and a blocked call cannot watch a ``threading.Event``. So one watchdog thread watches
every running connect. Each connect has a :class:`Watch`: its limits, its ``cancel`` event,
its phase (connecting, waiting for the headers, reading) and a *stopper*, a function that
breaks whatever the connect is blocked in (before the headers: what the transport registered
with :meth:`Watch.on_stop`; after them: the response's ``close()``). When the cancel is set
or a limit runs out, the watchdog records why (:attr:`Watch.reason`) and calls the stopper
from its own thread. The blocked call then fails, and :meth:`Watch.failure` makes the connect
raise the recorded reason instead of the transport's error. That rule ("prefer the
watchdog's reason") lives in :meth:`Watch.failure` and nowhere else.

How the watchdog sleeps: on a condition, until the nearest deadline of any watch. Whatever can
move a deadline *earlier* (a watch attached, a phase change, entering ``waiting_for_auth``)
tells it (:meth:`_Watchdog.poke`, which notifies only if the new deadline is the nearest).
Arriving bytes only move deadlines later, so they tell nobody: the watchdog may wake at a
deadline that has moved, finds nothing due, and sleeps until the next one.

A caller's ``cancel`` is a ``threading.Event``, and an ``Event`` cannot notify anyone: the only
way to see that it was set is to look. So while some watch has a ``cancel``, the watchdog also
wakes now and then and looks at the cancels only (one ``is_set()`` per watch). That is the
trade-off, and its price was measured: a look costs about a microsecond per cancel once
a thousand connects wait (cold caches), so looking every 50 ms would cost 2 % of a core. The
interval therefore grows with the number of cancels (:func:`_cancel_poll`: 50 ms up to 125
cancels, 0.4 ms more per cancel beyond, at most 1 s), which keeps the looking at about
0.25 % of a core for any number up to 2,500, and a cancel takes effect within the interval
(400 ms for a thousand). Internal stops (``Client.close()``, :meth:`Watch.stop`) do not
wait for a look: they break the connect at once. Limits cost nothing while no deadline is near.

Robustness: an exception from a watched object (a ``cancel`` whose ``is_set()`` raises) ends
that connect with that exception and nothing else. If the thread ever dies anyway, it starts
again at once (and at the next :meth:`Watch.on_stop`), so no later connect loses its limits.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Protocol

from ._timeouts import Timeouts
from .errors import (
    ConnectCancelledError,
    ConnectTimeoutError,
    McpConnectError,
    TransportError,
    without_userinfo,
)

__all__ = ["CANCEL_POLL_SECONDS", "Watch"]

log = logging.getLogger("mcpconnect")

#: How often the watchdog looks at the callers' ``cancel`` events, at least; and how much
#: longer the interval gets per cancel, up to a second (see the module docstring).
CANCEL_POLL_SECONDS = 0.05
CANCEL_POLL_PER_CANCEL = 0.0004
CANCEL_POLL_MAX_SECONDS = 1.0


def _cancel_poll(cancels: int) -> float:
    """The interval between looks at ``cancels`` cancel events."""
    return min(CANCEL_POLL_MAX_SECONDS, max(CANCEL_POLL_SECONDS, cancels * CANCEL_POLL_PER_CANCEL))

_STARTED, _CONNECTING, _WAITING, _READING = "started", "connecting", "waiting", "reading"


class Watch:
    """The limits of one connect, and how to stop it.

    A transport sees it as ``request.watch`` (the :class:`~mcpconnect.transports.SendWatch`
    part: :meth:`connecting`, :meth:`sent`, :meth:`on_stop`). The connect thread updates
    ``state`` and calls :meth:`activity`, :meth:`holding` and :meth:`authorizing`; the
    watchdog thread reads them.
    """

    def __init__(
        self, timeouts: Timeouts, cancel: threading.Event | None, place: str = "the server"
    ) -> None:
        now = time.monotonic()
        self.timeouts = timeouts
        self.cancel = cancel
        self.place = place
        self.state: str = "started"  # a ConnectState (a str) once events arrive
        self.phase = _STARTED
        self.started = now
        self.last_data = now
        self.connecting_since = now
        self.waiting_since: float | None = None
        self.held = False
        self.reason: BaseException | None = None
        self._stopper: Callable[[], object] | None = None

    def __repr__(self) -> str:
        return f"<Watch phase={self.phase} state={self.state} reason={self.reason!r}>"

    # --- the transport's part (SendWatch) ------------------------------------------------

    def connecting(self) -> None:
        """The transport starts opening a connection (TCP, TLS, a proxy tunnel): from now
        until :meth:`sent`, the ``connect`` limit counts and the ``read`` limit does not."""
        self.phase = _CONNECTING
        self.connecting_since = time.monotonic()
        self._poke()

    def sent(self) -> None:
        """The request is out: the wait for the response headers counts as the server's
        silence (the ``read`` limit)."""
        self.phase = _WAITING
        self.last_data = time.monotonic()
        self._poke()

    def on_stop(self, stopper: Callable[[], object]) -> None:
        """Call ``stopper()`` from another thread when the connect must stop (cancel, a
        limit); it must make the call the connect is blocked in fail promptly, and must not
        block. A later call replaces the stopper. If the connect has already been stopped,
        ``stopper`` is called here and now; it may be called more than once."""
        self._stopper = stopper
        _WATCHDOG.add(self)
        if self.reason is not None:
            _call(stopper)

    # --- the connect thread's part ----------------------------------------------------------

    def attach(self, response: _Closable) -> None:
        """The headers are in: from now on, stopping the connect closes ``response``."""
        self.phase = _READING
        self.last_data = time.monotonic()
        self.on_stop(response.close)

    def detach(self) -> None:
        """The connect is over: stop watching it."""
        _WATCHDOG.remove(self)
        self._stopper = None

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

    def authorizing(self, waiting: bool) -> None:
        """Whether the flow is in ``waiting_for_auth``; the ``authorization`` limit counts
        from when it entered (an unknown event while waiting does not restart it)."""
        if not waiting:
            self.waiting_since = None
        elif self.waiting_since is None:
            self.waiting_since = time.monotonic()
            self._poke()

    def stop(self, reason: BaseException) -> None:
        """Stop the connect now with ``reason`` (from any thread): it raises ``reason``."""
        if self.reason is None:
            self.reason = reason
        stopper = self._stopper
        if stopper is not None:
            _call(stopper)

    def check(self) -> BaseException | None:
        """Why this connect must stop now, or ``None``."""
        if self.reason is not None:
            return self.reason
        if self.cancel is not None and self.cancel.is_set():
            return ConnectCancelledError(str(self.state))
        return self._limits(time.monotonic())[0]

    def failure(self, exc: Exception, what: str) -> BaseException:
        """What the connect raises for ``exc``, an error from the transport (its ``send`` or
        its body's iterator): the watch's reason when the watchdog stopped the connect, or a
        limit ran out meanwhile (``exc`` is then only the symptom of the stop); else ``exc``
        itself if it is a :class:`~mcpconnect.McpConnectError`, else a
        :class:`~mcpconnect.TransportError` that starts with ``what``."""
        stopped = self.check()
        if stopped is not None:
            return stopped
        if isinstance(exc, McpConnectError):  # a ConnectTimeoutError is also an OSError
            return exc
        return TransportError(f"{what}: {without_userinfo(str(exc))}")

    # --- the limits -----------------------------------------------------------------------

    def _limits(self, now: float) -> tuple[McpConnectError | None, float]:
        """The limit that ran out (or ``None``) and when the next one will."""
        state = str(self.state)  # the connect thread may set a ConnectState
        t = self.timeouts
        due = math.inf
        if t.total is not None:
            end = self.started + t.total
            if now >= end:
                return ConnectTimeoutError(
                    "total", t.total, state,
                    f"the connect took longer than its total limit of {t.total:g} s "
                    f"(in state {state})",
                ), now
            due = end
        if self.phase == _CONNECTING:
            if t.connect is not None:
                end = self.connecting_since + t.connect
                if now >= end:
                    return ConnectTimeoutError(
                        "connect", t.connect, "connecting",
                        f"could not connect to {self.place} within {t.connect:g} s",
                    ), now
                due = min(due, end)
        elif self.waiting_since is not None:
            if t.authorization is not None:
                end = self.waiting_since + t.authorization
                if now >= end:
                    return ConnectTimeoutError(
                        "authorization", t.authorization, state,
                        f"no authorization after {t.authorization:g} s while {state}",
                    ), now
                due = min(due, end)
        elif t.read is not None and not self.held:
            end = self.last_data + t.read
            if now >= end:
                return ConnectTimeoutError(
                    "read", t.read, state,
                    f"the server sent nothing for {t.read:g} s (in state {state})",
                ), now
            due = min(due, end)
        return None, due

    def _poke(self) -> None:
        if self._stopper is not None:
            _WATCHDOG.poke(self)

    def _fire(self, reason: BaseException) -> None:
        """Watchdog thread: record ``reason`` and break the connect."""
        if self.reason is None:
            self.reason = reason
        stopper = self._stopper
        if stopper is not None:
            _call(stopper)


class _Closable(Protocol):
    def close(self) -> None: ...


def _call(stopper: Callable[[], object]) -> None:
    try:
        stopper()
    except Exception:  # a transport's stopper must not kill the watchdog
        log.debug("stopping a connect failed", exc_info=True)


class _Watchdog:
    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._watches: set[Watch] = set()
        self._with_cancel = 0  # how many watches have a cancel event to poll
        self._next = math.inf  # when the next limit may run out
        self._poked = False
        self._thread: threading.Thread | None = None
        self._examining: Watch | None = None

    def add(self, watch: Watch) -> None:
        due = watch._limits(time.monotonic())[1]
        with self._cond:
            if watch not in self._watches:
                self._watches.add(watch)
                if watch.cancel is not None:
                    self._with_cancel += 1
                    if self._with_cancel == 1:
                        self._poked = True  # start polling
                        self._cond.notify()
            self._sooner(due)
            if self._thread is None or not self._thread.is_alive():
                self._start()

    def remove(self, watch: Watch) -> None:
        with self._cond:
            self._discard(watch)

    def poke(self, watch: Watch) -> None:
        """``watch``'s next deadline may have moved earlier."""
        due = watch._limits(time.monotonic())[1]
        with self._cond:
            if watch in self._watches:
                self._sooner(due)

    def _sooner(self, due: float) -> None:
        if due < self._next:
            self._next = due
            self._poked = True
            self._cond.notify()

    def _discard(self, watch: Watch) -> None:
        if watch in self._watches:
            self._watches.remove(watch)
            if watch.cancel is not None:
                self._with_cancel -= 1
            if not self._watches:
                self._cond.notify()  # let the thread end

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="mcpconnect-watchdog", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # never expected; never leave connects unwatched
            log.debug("the watchdog thread failed; starting it again", exc_info=True)
            culprit, self._examining = self._examining, None
            if culprit is not None:
                self.remove(culprit)
                culprit._fire(exc)
            else:
                time.sleep(CANCEL_POLL_SECONDS)  # not a watch's fault: never restart in a spin
            with self._cond:
                self._thread = None
                if self._watches:
                    self._start()

    def _loop(self) -> None:
        while True:
            with self._cond:
                if not self._watches:
                    self._thread = None
                    return
                if not self._poked:
                    timeout = self._next - time.monotonic()
                    if self._with_cancel:
                        timeout = min(timeout, _cancel_poll(self._with_cancel))
                    if timeout > 0:
                        self._cond.wait(None if timeout == math.inf else timeout)
                self._poked = False
                watches = list(self._watches)
                now = time.monotonic()
                sweep = now >= self._next
                if sweep:
                    self._next = math.inf  # pokes during the sweep lower it again
            if sweep:
                nearest = self._sweep(watches, now)
                with self._cond:
                    self._next = min(self._next, nearest)
            else:
                self._look_at_cancels(watches)

    def _sweep(self, watches: list[Watch], now: float) -> float:
        """Check every limit and cancel; return the nearest deadline."""
        nearest = math.inf
        for watch in watches:
            self._examining = watch
            try:
                if watch.cancel is not None and watch.cancel.is_set():
                    reason: BaseException | None = ConnectCancelledError(str(watch.state))
                    due = now
                else:
                    reason, due = watch._limits(now)
            except Exception as exc:
                log.debug("a watched connect raised; it ends with that error", exc_info=True)
                reason, due = exc, now
            if reason is not None:
                self.remove(watch)
                watch._fire(reason)
            else:
                nearest = min(nearest, due)
        self._examining = None
        return nearest

    def _look_at_cancels(self, watches: list[Watch]) -> None:
        for watch in watches:
            cancel = watch.cancel
            if cancel is None:
                continue
            self._examining = watch
            try:
                reason: BaseException | None = (
                    ConnectCancelledError(str(watch.state)) if cancel.is_set() else None
                )
            except Exception as exc:
                log.debug("a watched connect raised; it ends with that error", exc_info=True)
                reason = exc
            if reason is not None:
                self.remove(watch)
                watch._fire(reason)
        self._examining = None


_WATCHDOG = _Watchdog()
