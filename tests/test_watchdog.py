"""The watchdog's bookkeeping, driven directly (no sleeping, no durations)."""

from __future__ import annotations

import threading

import pytest

from mcpconnect import ConnectCancelledError, ConnectTimeoutError, Timeouts
from mcpconnect._watchdog import Watch


def test_the_authorization_limit_counts_from_entering_waiting_for_auth() -> None:
    watch = Watch(Timeouts(authorization=5.0), None)
    watch.authorizing(True)
    entered = watch.waiting_since
    assert entered is not None
    watch.authorizing(True)  # another event while waiting (an unknown type, say)
    assert watch.waiting_since == entered
    watch.authorizing(False)
    assert watch.waiting_since is None


def test_reasons_name_the_limit_and_the_state() -> None:
    watch = Watch(Timeouts(authorization=5.0), None)
    watch.state = "waiting_for_auth"
    watch.authorizing(True)
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




class _Target:
    """A stopper that records being called."""

    def __init__(self) -> None:
        self.stopped = threading.Event()

    def close(self) -> None:
        self.stopped.set()


class _RaisingCancel(threading.Event):
    """A cancel whose is_set() raises when the watchdog (not the connect) looks at it."""

    def __init__(self, exc: BaseException) -> None:
        super().__init__()
        self.exc = exc

    def is_set(self) -> bool:
        if threading.current_thread().name == "mcpconnect-watchdog":
            raise self.exc
        return super().is_set()


def _watched(cancel: threading.Event | None, timeouts: Timeouts | None = None) -> tuple[
    Watch, _Target
]:
    watch = Watch(timeouts or Timeouts(), cancel)
    target = _Target()
    watch.attach(target)
    return watch, target


def test_an_exception_from_a_watched_cancel_ends_only_that_connect() -> None:
    bad, bad_target = _watched(_RaisingCancel(ValueError("broken cancel")))
    cancel = threading.Event()
    good, good_target = _watched(cancel)
    try:
        assert bad_target.stopped.wait(5)
        assert isinstance(bad.reason, ValueError)
        assert not good_target.stopped.is_set()
        cancel.set()
        assert good_target.stopped.wait(5), "the watchdog died with the bad cancel"
        assert isinstance(good.reason, ConnectCancelledError)
    finally:
        bad.detach()
        good.detach()


def test_the_watchdog_starts_again_if_its_thread_dies() -> None:
    """SystemExit ends the watchdog's thread; a later connect still gets its limits."""
    bad, bad_target = _watched(_RaisingCancel(SystemExit()))
    try:
        assert bad_target.stopped.wait(5)
        later, later_target = _watched(None, Timeouts(read=0.05))
        try:
            assert later_target.stopped.wait(5), "no watchdog after the thread died"
            assert isinstance(later.reason, ConnectTimeoutError)
            assert later.reason.limit == "read"
        finally:
            later.detach()
    finally:
        bad.detach()


def test_a_limit_nearer_than_the_one_the_watchdog_sleeps_for_wakes_it() -> None:
    """The watchdog sleeps until the nearest deadline; a watch attached later with a nearer
    one is still stopped on time (well before the far one)."""
    far, far_target = _watched(None, Timeouts(read=600))
    try:
        near, near_target = _watched(None, Timeouts(read=0.05))
        try:
            assert near_target.stopped.wait(5)
            assert not far_target.stopped.is_set()
        finally:
            near.detach()
    finally:
        far.detach()


def test_authorizing_brings_the_authorization_deadline_forward() -> None:
    watch, target = _watched(None, Timeouts(read=600, authorization=0.05))
    try:
        watch.authorizing(True)
        assert target.stopped.wait(5)
        assert isinstance(watch.reason, ConnectTimeoutError)
        assert watch.reason.limit == "authorization"
    finally:
        watch.detach()


def test_failure_prefers_the_watchs_reason() -> None:
    watch = Watch(Timeouts(), None)
    broke = OSError("reset")
    error = watch.failure(broke, "the connection broke")
    assert str(error) == "the connection broke: reset"
    watch.stop(ConnectCancelledError("started"))
    assert isinstance(watch.failure(broke, "the connection broke"), ConnectCancelledError)


def test_connects_keep_their_limits_after_a_connect_whose_cancel_raised() -> None:
    import mcpconnect
    from mcpconnect.transports import FakeTransport, Hang, sse_stream

    silent = sse_stream([{"event": "connection_attempt"}], then=[Hang()])
    kwargs: dict[str, object] = {"base_url": "http://letta.example", "api_key": "sk-x"}
    config = {"server_name": "s", "type": "sse", "server_url": "https://mcp.example/sse"}
    with pytest.raises(ValueError, match="broken cancel"):
        mcpconnect.connect(
            config, transport=FakeTransport(silent), cancel=_RaisingCancel(
                ValueError("broken cancel")), timeout=Timeouts(read=60), **kwargs,  # type: ignore[arg-type]
        )
    with pytest.raises(ConnectTimeoutError) as info:
        mcpconnect.connect(
            config, transport=FakeTransport(silent), timeout=Timeouts(read=0.05), **kwargs,  # type: ignore[arg-type]
        )
    assert info.value.limit == "read"


def test_failure_masks_a_password_in_a_transports_error() -> None:
    # A user's transport may put the URL it could not reach into its OSError.
    error = Watch(Timeouts(), None).failure(
        OSError("cannot open https://user:s3cret@h.example/x"), "cannot reach https://h.example"
    )
    assert "s3cret" not in str(error)
    assert str(error) == "cannot reach https://h.example: cannot open https://***@h.example/x"
