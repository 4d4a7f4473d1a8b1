"""Time limits of a connect, as one small immutable value."""

from __future__ import annotations

from typing import Any

import attrs

from .errors import ConfigError

__all__ = ["MAX_SECONDS", "Timeouts"]

#: The longest limit there can be: 30 days (what every platform's waits and socket
#: timeouts can take). ``None`` is no limit at all.
MAX_SECONDS = 30 * 24 * 3600.0


def _seconds(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    # The chained comparison is False for NaN, and never converts a huge int to a float.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
        0 < value <= MAX_SECONDS
    ):
        # repr() of an int of over 4300 digits raises: show so big a number by its size.
        huge = isinstance(value, int) and abs(value) > 10**15
        shown = (
            f"an integer of about {value.bit_length() * 0.30103:.0f} digits"
            if huge else repr(value)
        )
        raise ConfigError(
            f"{attribute.name} must be a number of seconds above 0 and at most "
            f"{MAX_SECONDS:g} (30 days), or None for no limit, got {shown}"
        )


@attrs.frozen(kw_only=True)
class Timeouts:
    """The four limits of a connect, in seconds; ``None`` means no limit.

    - ``connect``: to open the TCP (and TLS) connection.
    - ``read``: the longest silence allowed while no OAuth is pending (also the wait for the
      response headers).
    - ``authorization``: the longest wait after ``waiting_for_auth``. Letta gives up on OAuth
      after 300 s but never says so; the default leaves it a margin.
    - ``total``: the deadline for the whole connect, from the request to the last event.

    Each is a number of seconds above 0 and at most :data:`MAX_SECONDS` (30 days).

    With the defaults, a stream that goes silent always ends in a
    :class:`~mcpconnect.ConnectTimeoutError`. Invalid values raise
    :class:`~mcpconnect.ConfigError`.
    """

    connect: float | None = attrs.field(default=10.0, validator=_seconds)
    read: float | None = attrs.field(default=60.0, validator=_seconds)
    authorization: float | None = attrs.field(default=330.0, validator=_seconds)
    total: float | None = attrs.field(default=900.0, validator=_seconds)

    @classmethod
    def coerce(cls, value: Timeouts | float | None, default: Timeouts | None = None) -> Timeouts:
        """``None`` gives ``default`` (or the defaults), a number the defaults with that
        ``total``, a :class:`Timeouts` itself."""
        if value is None:
            return default if default is not None else cls()
        if isinstance(value, Timeouts):
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"timeout must be a Timeouts, a number or None, got {value!r}")
        return attrs.evolve(default if default is not None else cls(), total=value)
