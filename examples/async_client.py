"""An asyncio client for Letta's MCP connect endpoint, over ``httpx.AsyncClient``.

It shows that mcpconnect's core can be wrapped: it does its own (async) I/O and reuses the
public, I/O-free parts of mcpconnect:

- :func:`mcpconnect.connect_request` builds the request :func:`mcpconnect.connect` sends
  (URL, headers, body; the base URL and API key resolved from arguments, environment and
  settings file exactly as ``connect()`` resolves them);
- :class:`mcpconnect.sse.SSEDecoder` turns body bytes into events;
- :class:`mcpconnect.ConnectFlow` turns those into typed events and knows when the flow is
  over, with which tools or which error, and which time limit bounds the next wait.

It gives the same events, tools and errors as ``connect()`` (``tests/test_examples.py``
checks that on the emulator and on Letta's recordings)::

    async with httpx.AsyncClient() as http:
        tools = await connect(config, http=http, on_event=print)

Cancel it the asyncio way: cancel the task (``asyncio.CancelledError`` propagates).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import httpx

import mcpconnect
from mcpconnect import (
    ConnectFlow,
    ConnectionFailedError,
    ConnectTimeoutError,
    McpOauthEvent,
    McpTool,
    ProtocolError,
    StreamEndedError,
    Timeouts,
    TransportError,
)
from mcpconnect.sse import SSEDecoder

__all__ = ["connect"]

MAX_ERROR_BODY = 64 * 1024  # what connect() keeps of a non-2xx body
ERROR_BODY_SECONDS = 5.0


async def connect(
    config: mcpconnect.McpConnectConfig | Mapping[str, Any],
    *,
    http: httpx.AsyncClient,
    on_event: Callable[[McpOauthEvent], object] | None = None,
    timeout: Timeouts | float | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    settings_path: str | os.PathLike[str] | None = None,
) -> list[McpTool]:
    """Connect the MCP server ``config`` and return its tools, as
    :func:`mcpconnect.connect` does (same events to ``on_event``, same exceptions)."""
    request = mcpconnect.connect_request(
        config, base_url=base_url, api_key=api_key, settings_path=settings_path
    )
    limits = Timeouts.coerce(timeout)
    flow = ConnectFlow()
    loop = asyncio.get_running_loop()
    started = loop.time()

    def left(limit: str, seconds: float | None) -> tuple[str, float | None]:
        """The limit that ends first: ``limit`` or the total."""
        if limits.total is None:
            return limit, seconds
        total_left = started + limits.total - loop.time()
        if seconds is None or total_left <= seconds:
            return "total", max(total_left, 0.0)
        return limit, seconds

    def expired(limit: str) -> ConnectTimeoutError:
        state = flow.state.value
        if limit == "total":
            assert limits.total is not None
            return ConnectTimeoutError(
                "total", limits.total, state,
                f"the connect took longer than its total limit of {limits.total:g} s "
                f"(in state {state})",
            )
        if limit == "authorization":
            assert limits.authorization is not None
            return ConnectTimeoutError(
                "authorization", limits.authorization, state,
                f"no authorization after {limits.authorization:g} s while {state}",
            )
        assert limits.read is not None
        return ConnectTimeoutError(
            "read", limits.read, state,
            f"the server sent nothing for {limits.read:g} s (in state {state})",
        )

    # httpx bounds the TCP and TLS connect; each wait after that is bounded below, by the
    # limit the flow says applies (read, or authorization while the user authorizes).
    http_request = http.build_request(
        request.method, request.url, headers=dict(request.headers), content=request.body,
        timeout=httpx.Timeout(connect=limits.connect, read=None, write=limits.read, pool=None),
    )
    limit, seconds = left("read", limits.read)
    try:
        response = await asyncio.wait_for(http.send(http_request, stream=True), seconds)
    except asyncio.TimeoutError:
        raise expired(limit) from None
    except httpx.ConnectTimeout as exc:
        raise ConnectTimeoutError(
            "connect", limits.connect or 0.0, "connecting",
            f"could not connect within {limits.connect or 0.0:g} s",
        ) from exc
    except httpx.HTTPError as exc:
        raise TransportError(f"cannot reach the server: {exc!r}") from exc
    try:
        chunks = response.aiter_raw()
        await _check_response(response, chunks)
        decoder = SSEDecoder(bare_json_lines=True)
        while True:
            limit, seconds = left(
                flow.limit or "read",
                limits.authorization if flow.limit == "authorization" else limits.read,
            )
            try:
                chunk = await asyncio.wait_for(anext(chunks), seconds)
            except StopAsyncIteration:
                break
            except asyncio.TimeoutError:
                raise expired(limit) from None
            except httpx.HTTPError as exc:
                raise TransportError(f"the connection broke: {exc!r}") from exc
            for sse in decoder.feed(chunk):
                event = flow.receive(sse)
                if event is None:
                    continue
                if on_event is not None:
                    on_event(event)
                if flow.done:
                    return flow.result()
        decoder.close()
        raise StreamEndedError(flow.state.value)
    finally:
        await response.aclose()


async def _check_response(response: httpx.Response, chunks: AsyncIterator[bytes]) -> None:
    """What ``connect()`` checks before it reads events: the status (a non-2xx is
    :class:`~mcpconnect.ConnectionFailedError` with the start of the body), the encoding,
    and the media type."""
    if not 200 <= response.status_code < 300:
        body = bytearray()

        async def read() -> None:
            async for chunk in chunks:
                body.extend(chunk)
                if len(body) >= MAX_ERROR_BODY:
                    return

        with contextlib.suppress(asyncio.TimeoutError, httpx.HTTPError):
            await asyncio.wait_for(read(), ERROR_BODY_SECONDS)  # the status is the error
        text = bytes(body[:MAX_ERROR_BODY]).decode("utf-8", "replace")
        location = response.headers.get("location")
        if 300 <= response.status_code < 400 and location:
            raise ConnectionFailedError(
                response.status_code, text,
                f"Connection failed ({response.status_code}): redirected to {location}; "
                "redirects are not followed, so that the API key stays with the server",
            )
        raise ConnectionFailedError(response.status_code, text)
    encoding = response.headers.get("content-encoding")
    if encoding is not None and encoding.strip().lower() not in ("", "identity"):
        raise ProtocolError(
            f"the server sent a body with Content-Encoding {encoding!r}; only an "
            "uncompressed event stream is read (the request says Accept-Encoding: identity)"
        )
    content_type = response.headers.get("content-type")
    if content_type is not None and (
        content_type.partition(";")[0].strip().lower() != "text/event-stream"
    ):
        first = await anext(chunks, b"")
        preview = first[:200].decode("utf-8", "replace")
        raise ProtocolError(f"expected an event stream, got {content_type!r}: {preview!r}")

