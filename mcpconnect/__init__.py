"""mcpconnect: connect MCP servers to a Letta server, with the OAuth flow, from sync Python.

>>> tools = mcpconnect.connect(
...     {"server_name": "github", "type": "streamable_http",
...      "server_url": "https://mcp.example.com/mcp"},
...     on_event=print)

The exceptions are imported at once; everything else on first use, so that
``import mcpconnect.sse`` (the standalone SSE decoder) needs neither cattrs nor urllib3.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import (
    ConfigError,
    ConnectCancelledError,
    ConnectionFailedError,
    ConnectTimeoutError,
    DuplicateServerNameError,
    McpConnectError,
    MissingApiKeyError,
    MissingAuthorizationUrlError,
    ProtocolError,
    ServerError,
    ServerNotFoundError,
    StreamEndedError,
    TransportError,
)

if TYPE_CHECKING:
    from ._timeouts import Timeouts
    from .client import (
        Client,
        ConfigLike,
        EventStream,
        OnEvent,
        TimeoutLike,
        connect,
        connect_request,
        stream_events,
    )
    from .flow import ConnectFlow
    from .models import ConnectState, McpConnectConfig, McpOauthEvent, McpTool, OauthStreamEvent
    from .servers import McpServer, add_server

_LAZY = {
    "Timeouts": "._timeouts",
    "Client": ".client",
    "ConfigLike": ".client",
    "OnEvent": ".client",
    "TimeoutLike": ".client",
    "EventStream": ".client",
    "connect": ".client",
    "connect_request": ".client",
    "stream_events": ".client",
    "ConnectFlow": ".flow",
    "ConnectState": ".models",
    "McpConnectConfig": ".models",
    "McpOauthEvent": ".models",
    "McpTool": ".models",
    "OauthStreamEvent": ".models",
    "McpServer": ".servers",
    "add_server": ".servers",
}

__all__ = [
    "Client",
    "ConfigError",
    "ConfigLike",
    "ConnectCancelledError",
    "ConnectFlow",
    "ConnectState",
    "ConnectTimeoutError",
    "ConnectionFailedError",
    "DuplicateServerNameError",
    "EventStream",
    "McpConnectConfig",
    "McpConnectError",
    "McpOauthEvent",
    "McpServer",
    "McpTool",
    "MissingApiKeyError",
    "MissingAuthorizationUrlError",
    "OauthStreamEvent",
    "OnEvent",
    "ProtocolError",
    "ServerError",
    "ServerNotFoundError",
    "StreamEndedError",
    "TimeoutLike",
    "Timeouts",
    "TransportError",
    "__version__",
    "add_server",
    "connect",
    "connect_request",
    "stream_events",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
