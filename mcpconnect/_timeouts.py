"""Time limits of a connect, as one small immutable value."""

from __future__ import annotations

import math
from typing import Any

import attrs

from .errors import ConfigError

__all__ = ["Timeouts"]


def _seconds(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or math.isnan(value)
        or value <= 0
    ):
        raise ConfigError(f"{attribute.name} must be a positive number of seconds or None, "
                          f"got {value!r}")


@attrs.frozen(kw_only=True)
class Timeouts:
    """The four limits of a connect, in seconds; ``None`` means no limit.

    - ``connect``: to open the TCP (and TLS) connection.
    - ``read``: the longest silence allowed while no OAuth is pending (also the wait for the
      response headers).
    - ``authorization``: the longest wait after ``waiting_for_auth``. Letta gives up on OAuth
      after 300 s but never says so; the default leaves it a margin.
    - ``total``: the deadline for the whole connect, from the request to the last event.

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
