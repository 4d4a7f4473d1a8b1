"""mcpconnect: connect MCP servers to a Letta server, with the OAuth flow, from sync Python."""

from ._version import __version__
from .errors import (
    ConfigError,
    ConnectCancelledError,
    ConnectionFailedError,
    ConnectTimeoutError,
    McpConnectError,
    MissingApiKeyError,
    MissingAuthorizationUrlError,
    ProtocolError,
    ServerError,
    StreamEndedError,
    TransportError,
)

__all__ = [
    "ConfigError",
    "ConnectCancelledError",
    "ConnectTimeoutError",
    "ConnectionFailedError",
    "McpConnectError",
    "MissingApiKeyError",
    "MissingAuthorizationUrlError",
    "ProtocolError",
    "ServerError",
    "StreamEndedError",
    "TransportError",
    "__version__",
]
