"""mcpconnect: connect MCP servers to a Letta server, with the OAuth flow, from sync Python.

>>> tools = mcpconnect.connect(
...     {"server_name": "github", "type": "streamable_http",
...      "server_url": "https://mcp.example.com/mcp"},
...     on_event=print)
"""

from ._timeouts import Timeouts
from ._version import __version__
from .client import Client, EventStream, connect, stream_events
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
from .flow import ConnectFlow
from .models import ConnectState, McpConnectConfig, McpOauthEvent, McpTool, OauthStreamEvent

__all__ = [
    "Client",
    "ConfigError",
    "ConnectCancelledError",
    "ConnectFlow",
    "ConnectState",
    "ConnectTimeoutError",
    "ConnectionFailedError",
    "EventStream",
    "McpConnectConfig",
    "McpConnectError",
    "McpOauthEvent",
    "McpTool",
    "MissingApiKeyError",
    "MissingAuthorizationUrlError",
    "OauthStreamEvent",
    "ProtocolError",
    "ServerError",
    "StreamEndedError",
    "Timeouts",
    "TransportError",
    "__version__",
    "connect",
    "stream_events",
]
