"""The contract kit (mcpconnect.testing.TransportContract) run against the built-in transports."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from mcpconnect.testing import TransportContract
from mcpconnect.testing._contract import CONNECTION_ATTEMPT, SUCCESS
from mcpconnect.transports import (
    FakeResponse,
    FakeTransport,
    Hang,
    Transport,
    Urllib3Transport,
    sse_stream,
)


class TestUrllib3Transport(TransportContract):
    def make_transport(self) -> Transport:
        return Urllib3Transport(trust_env=False)


_FAKE_SCRIPTS = {
    "success": sse_stream([CONNECTION_ATTEMPT, SUCCESS]),
    "silent": sse_stream([CONNECTION_ATTEMPT], then=[Hang()]),
    "no_headers": FakeResponse(waiting=[Hang()]),
    "unauthorized": FakeResponse(
        401, {"content-type": "application/json"}, [b'{"detail":"Unauthorized"}']
    ),
    "reset": sse_stream([CONNECTION_ATTEMPT], then=[ConnectionResetError(104, "reset")]),
    "refused": FakeResponse(connecting=[ConnectionRefusedError(111, "Connection refused")]),
    "hung_connect": FakeResponse(connecting=[Hang()]),
    "stalled_tls": FakeResponse(connecting=[Hang()]),
}


class TestFakeTransport(TransportContract):
    """The fake plays each scenario from a script instead of a server."""

    @contextlib.contextmanager
    def serve(self, scenario: str) -> Iterator[tuple[Transport, str]]:
        transport = FakeTransport(_FAKE_SCRIPTS[scenario])
        try:
            yield transport, "http://letta.invalid"
        finally:
            transport.close()


class _RawErrors(TestFakeTransport):
    """A transport that lets a raw, untranslated error out of send."""

    @contextlib.contextmanager
    def serve(self, scenario: str) -> Iterator[tuple[Transport, str]]:
        script = FakeResponse(connecting=[ValueError("not an mcpconnect error")])
        yield FakeTransport(script), "http://letta.invalid"


def test_the_kit_fails_a_transport_that_does_not_map_its_errors() -> None:
    with pytest.raises(ValueError, match="not an mcpconnect error"):
        _RawErrors().test_a_refused_connection_is_a_transport_error()
