"""The watchdog's bookkeeping, driven directly (no sleeping, no durations)."""

from __future__ import annotations

import threading

from mcpconnect import ConnectCancelledError, ConnectTimeoutError, Timeouts
from mcpconnect._watchdog import Watch, take_pending


def test_the_authorization_limit_counts_from_entering_waiting_for_auth() -> None:
    watch = Watch(Timeouts(authorization=5.0), None)
    watch.waiting(True)
    entered = watch.waiting_since
    assert entered is not None
    watch.waiting(True)  # another event while waiting (an unknown type, say)
    assert watch.waiting_since == entered
    watch.waiting(False)
    assert watch.waiting_since is None


def test_reasons_name_the_limit_and_the_state() -> None:
    watch = Watch(Timeouts(authorization=5.0), None)
    watch.state = "waiting_for_auth"
    watch.waiting(True)
    assert watch.check() is None
    assert watch.waiting_since is not None
    watch.waiting_since -= 6.0  # as if six seconds had passed
    reason = watch.check()
    assert isinstance(reason, ConnectTimeoutError)
    assert (reason.limit, reason.seconds) == ("authorization", 5.0)
    assert reason.state == "waiting_for_auth"
    assert str(reason) == "no authorization after 5 s while waiting_for_auth"


def test_cancel_wins_over_limits() -> None:
    cancel = threading.Event()
    watch = Watch(Timeouts(read=1.0), cancel)
    watch.last_data -= 2.0
    cancel.set()
    reason = watch.check()
    assert isinstance(reason, ConnectCancelledError)
    assert reason.state == "started"


def test_a_watch_is_offered_to_the_transport_only_while_sending() -> None:
    watch = Watch(Timeouts(), None)
    assert take_pending() is None
    with watch.sending():
        assert take_pending() is watch
        assert take_pending() is None  # taken once
    with watch.sending():
        pass
    assert take_pending() is None  # not left behind for a later send
