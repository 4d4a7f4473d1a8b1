"""The exceptions of mcpconnect: one root, :class:`McpConnectError`.

Everything :func:`mcpconnect.connect` raises on purpose derives from it; exceptions from
urllib3, cattrs or :mod:`json` are translated at the boundary and chained with ``from``.
Leaf classes are also builtins where that helps (``ConnectTimeoutError`` is a
``TimeoutError``, ``ConfigError`` a ``ValueError``), in the manner of urllib3.

This module imports nothing but the standard library, so the SSE decoder can use it.
No message built here ever contains an API key or token.
"""

from __future__ import annotations

import re

__all__ = [
    "ConfigError",
    "ConnectCancelledError",
    "ConnectTimeoutError",
    "ConnectionFailedError",
    "DuplicateServerNameError",
    "McpConnectError",
    "MissingApiKeyError",
    "MissingAuthorizationUrlError",
    "ProtocolError",
    "ServerError",
    "ServerNotFoundError",
    "StreamEndedError",
    "TransportError",
]


class McpConnectError(Exception):
    """Base class of every error mcpconnect raises.

    Every subclass survives :mod:`pickle` (multiprocessing, task queues) with its message and
    attributes, whatever its ``__init__`` takes.
    """

    def __reduce__(self) -> tuple[object, ...]:
        # Exception's own reduce calls cls(*self.args), which fails for classes whose
        # __init__ takes other arguments than the message (urllib3 has the same fix).
        return _rebuild, (type(self), self.args), self.__dict__


def _rebuild(cls: type[McpConnectError], args: tuple[object, ...]) -> McpConnectError:
    """Unpickle: make the exception without calling ``__init__``; its ``__dict__`` follows."""
    exc = cls.__new__(cls)
    exc.args = args  # set here: OSError's __new__ ignores them when __init__ is overridden
    return exc


class ConfigError(McpConnectError, ValueError):
    """A configuration value is invalid: a bad ``McpConnectConfig`` field, a bad time
    limit, an unreadable or malformed settings file."""


class MissingApiKeyError(ConfigError):
    """No API key from the argument, ``LETTA_API_KEY``, or the settings file.

    Raised before any request is made.
    """

    def __init__(self, message: str = "Missing LETTA_API_KEY") -> None:
        super().__init__(message)


class ConnectionFailedError(McpConnectError):
    """The server answered with a status that is not 2xx.

    ``status`` is the HTTP status; ``body`` the start of the response body (bounded).
    """

    def __init__(self, status: int, body: str, message: str | None = None) -> None:
        self.status = status
        self.body = body
        super().__init__(message or f"Connection failed ({status}): {body}")


class ServerError(McpConnectError):
    """The stream reported an error: an ``error`` event, or an SSE ``event: error`` frame.

    ``message`` is the server's message; ``event`` the :class:`~mcpconnect.McpOauthEvent`
    that carried it (``None`` when there was none).
    """

    def __init__(self, message: str, event: object | None = None) -> None:
        self.message = message
        self.event = event
        super().__init__(message)


class MissingAuthorizationUrlError(ServerError):
    """The server asked for OAuth and went on to ``waiting_for_auth`` without ever sending
    an ``authorization_url``: nobody can authorize, and the server would wait in silence.

    Letta does this when the MCP server answers 404, usually a wrong ``server_url`` path.
    """


class StreamEndedError(McpConnectError):
    """The response body ended before ``success`` or ``error``. ``state`` says where."""

    def __init__(self, state: str) -> None:
        self.state = state
        super().__init__(
            f"Stream ended unexpectedly without success or error (in state {state})"
        )


class ProtocolError(McpConnectError):
    """The response cannot be understood: not an event stream, a line or event over the
    size limit, a ``success`` whose tools do not structure."""


class TransportError(McpConnectError):
    """The network failed: connection refused or reset, TLS failure, truncated body."""


class ConnectTimeoutError(McpConnectError, TimeoutError):
    """A time limit ran out. ``limit`` names it (``"connect"``, ``"read"``,
    ``"authorization"``, ``"total"``), ``seconds`` its value, ``state`` the flow's state."""

    def __init__(self, limit: str, seconds: float, state: str, message: str) -> None:
        self.limit = limit
        self.seconds = seconds
        self.state = state
        super().__init__(message)


class ConnectCancelledError(McpConnectError):
    """The caller's ``cancel`` event was set. ``state`` is the flow's state then."""

    def __init__(self, state: str) -> None:
        self.state = state
        super().__init__(f"Connect cancelled (in state {state})")


# The user-info of URLs anywhere in a text: from "//" to the last "@" before the host ends.
_USERINFO = re.compile(r"(?<=//)[^\s/?#]*@")


def without_userinfo(text: str) -> str:
    """``text`` with the ``user:password@`` of every URL in it masked, for messages and
    reprs (not exported). Never raises."""
    return _USERINFO.sub("***@", text)


# --- registering servers (mcpconnect.servers) ----------------------------------------------


class DuplicateServerNameError(ConnectionFailedError):
    """Letta already has an MCP server of this name (409). ``server_name`` is the name.

    ``body`` is empty: Letta's 409 body holds its SQL statement and parameters, which carry
    the server's URL, token and headers.
    """

    def __init__(self, server_name: str, message: str | None = None) -> None:
        self.server_name = server_name
        super().__init__(
            409,
            "",
            message
            or f"Letta already has an MCP server named {server_name!r} (409); pick another name",
        )


class ServerNotFoundError(ConnectionFailedError):
    """Letta has no MCP server with this id: 404, or the 400 that Letta answers to a
    ``DELETE`` of an unknown id. ``server_id`` is the id."""

    def __init__(self, server_id: str, status: int, body: str, message: str | None = None) -> None:
        self.server_id = server_id
        super().__init__(
            status, body, message or f"Letta has no MCP server with id {server_id!r} ({status})"
        )
