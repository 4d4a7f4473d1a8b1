"""The connect flow: a sans-IO state machine over the events of the connect stream.

It is fed :class:`~mcpconnect.sse.ServerSentEvent` values and hands back typed
:class:`~mcpconnect.McpOauthEvent` values. It knows nothing of HTTP. The whole protocol is the
table ``TRANSITIONS`` below, read by one lookup: ``TRANSITIONS[state][event] -> next state``.
An event type this version does not know leaves the state as it is (the server may grow);
a known event that the table has no entry for is a :class:`~mcpconnect.ProtocolError`.

Reaching ``ERROR`` by ``waiting_for_auth`` means the server asked for OAuth but never said
where to authorize: Letta does that when the MCP server answers 404 (a wrong ``server_url``
path) and then waits in silence forever, so the flow fails at once instead.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from .errors import MissingAuthorizationUrlError, ProtocolError, ServerError
from .models import ConnectState, McpOauthEvent, McpTool, OauthStreamEvent, structure_event
from .sse import ServerSentEvent

__all__ = ["TRANSITIONS", "ConnectFlow"]

log = logging.getLogger("mcpconnect")

S = ConnectState
E = OauthStreamEvent

TRANSITIONS: dict[ConnectState, dict[OauthStreamEvent, ConnectState]] = {
    S.STARTED: {
        E.CONNECTION_ATTEMPT: S.CONNECTION_ATTEMPT,
        E.OAUTH_REQUIRED: S.OAUTH_REQUIRED,
        E.AUTHORIZATION_URL: S.AUTHORIZATION_URL,
        E.WAITING_FOR_AUTH: S.ERROR,
        E.SUCCESS: S.SUCCESS,
        E.ERROR: S.ERROR,
    },
    S.CONNECTION_ATTEMPT: {
        E.OAUTH_REQUIRED: S.OAUTH_REQUIRED,
        E.AUTHORIZATION_URL: S.AUTHORIZATION_URL,
        E.WAITING_FOR_AUTH: S.ERROR,
        E.SUCCESS: S.SUCCESS,
        E.ERROR: S.ERROR,
    },
    S.OAUTH_REQUIRED: {
        E.AUTHORIZATION_URL: S.AUTHORIZATION_URL,
        E.WAITING_FOR_AUTH: S.ERROR,
        E.SUCCESS: S.SUCCESS,
        E.ERROR: S.ERROR,
    },
    S.AUTHORIZATION_URL: {
        E.AUTHORIZATION_URL: S.AUTHORIZATION_URL,
        E.WAITING_FOR_AUTH: S.WAITING_FOR_AUTH,
        E.SUCCESS: S.SUCCESS,
        E.ERROR: S.ERROR,
    },
    S.WAITING_FOR_AUTH: {
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


class ConnectFlow:
    """One connect flow. Feed it with :meth:`receive`; when :attr:`done`, call :meth:`result`.

    >>> flow = ConnectFlow()
    >>> flow.receive(ServerSentEvent(data='{"event": "success", "tools": []}')).event
    <OauthStreamEvent.SUCCESS: 'success'>
    >>> flow.result()
    []
    """

    def __init__(self) -> None:
        self.state = ConnectState.STARTED
        self._last: McpOauthEvent | None = None

    @property
    def done(self) -> bool:
        """Whether the flow reached ``success`` or ``error``; read no more events then."""
        return self.state in TERMINAL

    def receive(self, sse: ServerSentEvent) -> McpOauthEvent | None:
        """Take one SSE event; return the typed event to hand on, or ``None`` when the frame
        carries no event (``[DONE]``, data that is not a JSON object: skipped and logged).

        Raises :class:`~mcpconnect.ProtocolError` for an event out of order or one whose
        fields do not fit, and :class:`RuntimeError` once the flow is done.
        """
        if self.done:
            raise RuntimeError(f"the flow is over (state {self.state})")
        event = self._parse(sse)
        if event is None:
            return None
        kind = event.event
        log.debug("event %s in state %s", kind, self.state)
        if isinstance(kind, OauthStreamEvent):
            try:
                self.state = TRANSITIONS[self.state][kind]
            except KeyError:
                raise ProtocolError(
                    f"unexpected event {kind.value!r} in state {self.state.value}"
                ) from None
        self._last = event
        return event

    def result(self) -> list[McpTool]:
        """The tools, once the flow reached ``success``.

        Raises :class:`~mcpconnect.ServerError` when it reached ``error``
        (:class:`~mcpconnect.MissingAuthorizationUrlError` when OAuth had no URL), and
        :class:`RuntimeError` while it is not done.
        """
        event = self._last
        if not self.done or event is None:
            raise RuntimeError(f"the flow is not over (state {self.state})")
        if self.state is ConnectState.SUCCESS:
            return list(event.tools or ())
        if event.event is OauthStreamEvent.WAITING_FOR_AUTH:
            raise MissingAuthorizationUrlError(NO_AUTHORIZATION_URL, event)
        raise ServerError(event.message or "Connection failed", event)

    def _parse(self, sse: ServerSentEvent) -> McpOauthEvent | None:
        text = sse.data
        if len(text) < 16 and text.strip() == "[DONE]":
            return None
        try:
            data: Any = json.loads(text)
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
        return structure_event(data)


def _error_frame(data: Any, text: str) -> McpOauthEvent:
    """The server's own failure frame: ``event: error`` with ``{"error": ..., "code": ...}``."""
    if isinstance(data, dict):
        message = data.get("error") or data.get("message") or "Connection failed"
        extra = {k: v for k, v in data.items() if k not in ("error", "message")}
        return McpOauthEvent(event=OauthStreamEvent.ERROR, message=str(message), extra=extra)
    return McpOauthEvent(event=OauthStreamEvent.ERROR, message=text or "Connection failed")
