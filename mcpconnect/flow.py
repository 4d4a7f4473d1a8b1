"""The connect flow: a sans-IO state machine over the events of the connect stream.

It is fed :class:`~mcpconnect.sse.ServerSentEvent` values and hands back typed
:class:`~mcpconnect.McpOauthEvent` values. It knows nothing of HTTP. The whole protocol is the
table ``TRANSITIONS`` below, read by one lookup: ``TRANSITIONS[state][event] -> next state``.

Theory of operation. Letta sends ``connection_attempt``, then ``success`` or ``error``; or, when
the MCP server wants OAuth, ``oauth_required``, ``authorization_url``, ``waiting_for_auth``, then
``success`` or ``error``. The flow is lenient wherever leniency cannot hang: a known status event
that repeats or comes out of order (a second ``connection_attempt``, ``waiting_for_auth`` as a
keep-alive, ``oauth_required`` after the URL) leaves the state as it is; it is handed on like
any other event and logged at debug level. So is an event type this version does not know (the
server may grow). ``success`` and ``error`` end the flow.

The one place where leniency would hang is ``waiting_for_auth`` before any authorization URL:
nobody can authorize, and Letta (which does this when the MCP server answers 404, a wrong
``server_url`` path) then waits in silence forever. So that fails at once, with
:class:`~mcpconnect.MissingAuthorizationUrlError`. An ``authorization_url`` event whose ``url``
is null or blank is no URL: it leaves the state as it is.

The flow also says which time limit applies while it waits for the next event (:attr:`limit`)
and, once it is over, why (:attr:`error`). Whatever it raises ends it, as h11 moves to ``ERROR``:
from then on :meth:`receive` refuses more events and :meth:`result` raises the same error.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Literal

from .errors import (
    ConfigError,
    McpConnectError,
    MissingAuthorizationUrlError,
    ProtocolError,
    ServerError,
)
from .models import ConnectState, McpOauthEvent, McpTool, OauthStreamEvent, structure_event
from .sse import ServerSentEvent

__all__ = ["MAX_TOOLS", "TRANSITIONS", "ConnectFlow"]

log = logging.getLogger("mcpconnect")

#: The most tools a ``success`` may list (:class:`ConnectFlow`'s default ``max_tools``).
MAX_TOOLS = 100_000

S = ConnectState
E = OauthStreamEvent

# Each row lists every event; an entry that leads back to its own row is a repeat or an event
# out of order, handed on with the state unchanged.
TRANSITIONS: dict[ConnectState, dict[OauthStreamEvent, ConnectState]] = {
    S.STARTED: {
        E.CONNECTION_ATTEMPT: S.CONNECTION_ATTEMPT,
        E.OAUTH_REQUIRED: S.OAUTH_REQUIRED,
        E.AUTHORIZATION_URL: S.AUTHORIZATION_URL,
        E.WAITING_FOR_AUTH: S.ERROR,  # no authorization URL: fail at once
        E.SUCCESS: S.SUCCESS,
        E.ERROR: S.ERROR,
    },
    S.CONNECTION_ATTEMPT: {
        E.CONNECTION_ATTEMPT: S.CONNECTION_ATTEMPT,
        E.OAUTH_REQUIRED: S.OAUTH_REQUIRED,
        E.AUTHORIZATION_URL: S.AUTHORIZATION_URL,
        E.WAITING_FOR_AUTH: S.ERROR,  # no authorization URL: fail at once
        E.SUCCESS: S.SUCCESS,
        E.ERROR: S.ERROR,
    },
    S.OAUTH_REQUIRED: {
        E.CONNECTION_ATTEMPT: S.OAUTH_REQUIRED,
        E.OAUTH_REQUIRED: S.OAUTH_REQUIRED,
        E.AUTHORIZATION_URL: S.AUTHORIZATION_URL,
        E.WAITING_FOR_AUTH: S.ERROR,  # no authorization URL: fail at once
        E.SUCCESS: S.SUCCESS,
        E.ERROR: S.ERROR,
    },
    S.AUTHORIZATION_URL: {
        E.CONNECTION_ATTEMPT: S.AUTHORIZATION_URL,
        E.OAUTH_REQUIRED: S.AUTHORIZATION_URL,
        E.AUTHORIZATION_URL: S.AUTHORIZATION_URL,
        E.WAITING_FOR_AUTH: S.WAITING_FOR_AUTH,
        E.SUCCESS: S.SUCCESS,
        E.ERROR: S.ERROR,
    },
    S.WAITING_FOR_AUTH: {
        E.CONNECTION_ATTEMPT: S.WAITING_FOR_AUTH,
        E.OAUTH_REQUIRED: S.WAITING_FOR_AUTH,
        E.AUTHORIZATION_URL: S.WAITING_FOR_AUTH,
        E.WAITING_FOR_AUTH: S.WAITING_FOR_AUTH,
        E.SUCCESS: S.SUCCESS,
        E.ERROR: S.ERROR,
    },
    S.SUCCESS: {},
    S.ERROR: {},
}

TERMINAL = frozenset({S.SUCCESS, S.ERROR})

NO_AUTHORIZATION_URL = (
    "The server asked for OAuth but sent no authorization URL, so nobody can authorize and "
    "it would wait forever. Letta does this when the MCP server answers 404: check the path "
    "of server_url."
)

Limit = Literal["read", "authorization"]


def _not_json(name: str) -> Any:
    # json.loads reads NaN, Infinity and -Infinity, which JSON does not have: a tool schema
    # holding one would come out of ``--json`` as something no JSON parser reads.
    raise ProtocolError(f"event data holds {name}, which is not JSON")


class ConnectFlow:
    """One connect flow. Feed it with :meth:`receive`; when :attr:`done`, call :meth:`result`.

    ``max_tools`` caps the tools a ``success`` may list (default :data:`MAX_TOOLS`,
    100,000), so that what a server sends cannot make the tools take unbounded memory.

    >>> flow = ConnectFlow()
    >>> flow.receive(ServerSentEvent(data='{"event": "success", "tools": []}')).event
    <OauthStreamEvent.SUCCESS: 'success'>
    >>> flow.result()
    []
    """

    def __init__(self, *, max_tools: int = MAX_TOOLS) -> None:
        if not isinstance(max_tools, int) or isinstance(max_tools, bool) or max_tools < 0:
            raise ConfigError(f"max_tools must be a non-negative int, got {max_tools!r}")
        self.state = ConnectState.STARTED
        self.max_tools = max_tools
        #: Why the flow failed (``None`` while it runs and after ``success``).
        self.error: McpConnectError | None = None
        self._tools: list[McpTool] = []

    @property
    def done(self) -> bool:
        """Whether the flow is over (``success`` or ``error``); read no more events then."""
        return self.state in TERMINAL

    @property
    def limit(self) -> Limit | None:
        """Which time limit bounds the wait for the next event: ``"authorization"`` while
        the server waits for the user (``waiting_for_auth``), ``"read"`` before that, and
        ``None`` once the flow is over."""
        if self.done:
            return None
        return "authorization" if self.state is S.WAITING_FOR_AUTH else "read"

    def receive(self, sse: ServerSentEvent) -> McpOauthEvent | None:
        """Take one SSE event; return the typed event to hand on, or ``None`` when the frame
        carries no event (``[DONE]``, data that is not a JSON object: skipped and logged).

        Raises :class:`~mcpconnect.ProtocolError` for an event whose fields do not fit (the
        flow is over then), and :class:`RuntimeError` once the flow is over.
        """
        if self.done:
            raise RuntimeError(f"the flow is over (state {self.state})")
        try:
            event = self._parse(sse)
        except ProtocolError as exc:
            self._fail(exc)
            raise
        if event is None:
            return None
        kind = event.event
        log.debug("event %s in state %s", kind, self.state)
        if not isinstance(kind, OauthStreamEvent):
            return event  # a type this version does not know: handed on, nothing changes
        if kind is E.AUTHORIZATION_URL and not (event.url or "").strip():
            log.debug("an authorization_url event without a URL counts as none")
            return event
        state = TRANSITIONS[self.state][kind]
        if state is self.state:
            log.debug("%s repeated or out of order: handed on, still %s", kind, state)
        elif state is S.ERROR:
            if kind is E.WAITING_FOR_AUTH:
                self._fail(MissingAuthorizationUrlError(NO_AUTHORIZATION_URL, event))
            else:
                self._fail(ServerError(event.message or "Connection failed", event))
        elif state is S.SUCCESS and event.tools is None:
            error = ProtocolError("the success event has no tools")
            self._fail(error)
            raise error
        else:
            self.state = state
            if state is S.SUCCESS:
                self._tools = event.tools or []
        return event

    def result(self) -> list[McpTool]:
        """The tools, once the flow reached ``success``.

        Raises the flow's :attr:`error` when it failed: :class:`~mcpconnect.ServerError`
        (:class:`~mcpconnect.MissingAuthorizationUrlError` when OAuth had no URL) or
        :class:`~mcpconnect.ProtocolError`; :class:`RuntimeError` while it is not over.
        """
        if self.error is not None:
            raise self.error
        if not self.done:
            raise RuntimeError(f"the flow is not over (state {self.state})")
        return list(self._tools)

    def _fail(self, error: McpConnectError) -> None:
        self.state = S.ERROR
        self.error = error

    def _parse(self, sse: ServerSentEvent) -> McpOauthEvent | None:
        text = sse.data
        if len(text) < 16 and text.strip() == "[DONE]":
            return None
        try:
            data: Any = json.loads(text, parse_constant=_not_json)
        except ValueError:
            data = None
        except RecursionError as exc:  # json nests by recursion; this is not "not JSON"
            raise ProtocolError("event data is JSON nested too deeply to read") from exc
        if sse.event == "error":
            return _error_frame(data, text)
        if not isinstance(data, dict):
            log.debug("skipped a frame whose data is not a JSON object (%d chars)", len(text))
            return None
        if "event" not in data:
            log.debug("skipped a JSON object with no 'event' key: keys %s", sorted(data)[:10])
            return None
        tools = data.get("tools")
        if isinstance(tools, list) and len(tools) > self.max_tools:
            # Checked before the tools are structured, so they never take more memory.
            raise ProtocolError(
                f"the event lists {len(tools):,} tools, more than max_tools ({self.max_tools:,})"
            )
        return structure_event(data)


def _error_frame(data: Any, text: str) -> McpOauthEvent:
    """The server's own failure frame: ``event: error`` with ``{"error": ..., "code": ...}``."""
    if isinstance(data, dict):
        message = data.get("error") or data.get("message") or "Connection failed"
        extra = {k: v for k, v in data.items() if k not in ("error", "message")}
        return McpOauthEvent(event=OauthStreamEvent.ERROR, message=str(message), extra=extra)
    return McpOauthEvent(event=OauthStreamEvent.ERROR, message=text or "Connection failed")
