"""Checks of what a caller passes in: header text and http(s) URLs, one rule each.

The client uses them for its base URL, API key, ``source`` and ``user_agent``; the config
for ``server_url``, ``auth_token`` and custom header values. A failure is a
:class:`~mcpconnect.ConfigError` that names the argument and never shows a secret.
"""

from __future__ import annotations

import re
import urllib.parse

from .errors import ConfigError, without_userinfo

__all__ = ["check_header_text", "check_http_url", "control_char"]

# C0 controls, DEL and C1 controls: never in a header value or a URL.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def control_char(value: str) -> str | None:
    """The first control character in ``value``, as ``"U+000A"``, or ``None``."""
    bad = _CONTROL.search(value)
    return None if bad is None else f"U+{ord(bad.group()):04X}"


def check_header_text(
    value: object, what: str, *, show: bool = True, ascii_only: bool = False
) -> str:
    """``value`` if it can be sent as an HTTP header value: a string without control
    characters, of Latin-1 characters (ASCII with ``ascii_only``: an API key is ASCII, and a
    pasted no-break space or quote would only make it wrong). Else a ConfigError naming
    ``what``, showing the value only with ``show``."""
    if not isinstance(value, str):
        raise ConfigError(f"{what} must be a string, got {type(value).__name__}")
    shown = f": {value!r}" if show else ""
    bad = control_char(value)
    if bad is not None:
        raise ConfigError(f"{what} contains a control character ({bad}){shown}")
    highest, charset = (0x7F, "ASCII") if ascii_only else (0xFF, "Latin-1")
    wide = next((c for c in value if ord(c) > highest), None)
    if wide is not None:
        raise ConfigError(
            f"{what} contains a character that cannot be sent in an HTTP header "
            f"(U+{ord(wide):04X}, not {charset}; a pasted typographic quote?){shown}"
        )
    return value


def check_http_url(value: object, what: str) -> urllib.parse.SplitResult:
    """The parts of ``value`` if it is an absolute http(s) URL with a host and a valid port,
    without spaces or control characters. Else a ConfigError naming ``what``; the URL is
    shown with its user-info masked (and not at all for a space, which would end the
    user-info that the mask finds)."""
    if not isinstance(value, str):
        raise ConfigError(f"{what} must be a string, got {type(value).__name__}")
    bad = control_char(value) or next((f"U+{ord(c):04X}" for c in value if c.isspace()), None)
    if bad:
        raise ConfigError(f"{what} contains a space or a control character ({bad})")
    shown = repr(without_userinfo(value))
    try:
        parts = urllib.parse.urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"{what} is not a valid URL ({exc}): {shown}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{what} must be an absolute http(s) URL, got {shown}")
    if port == 0:
        raise ConfigError(f"{what} has port 0: {shown}")
    return parts
