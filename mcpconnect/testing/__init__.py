"""Helpers for testing code that uses mcpconnect.

- :class:`LettaEmulator`: a real HTTP server on 127.0.0.1 that behaves like Letta's connect
  endpoints, OAuth included, scripted by :class:`Scenario`.
- :class:`FakeTransport` and its stream builders: no sockets at all.
- A pytest plugin (loaded automatically when mcpconnect is installed) with the fixtures
  ``fake_transport``, ``letta_emulator``, ``letta_scenario`` and ``letta_isolated_env``, and
  the marker ``@pytest.mark.letta_scenario(...)``; see :mod:`mcpconnect.testing.plugin`.
"""

from ..transports._fake import (
    FakeResponse,
    FakeTransport,
    Hang,
    Pause,
    load_recording,
    sse_stream,
)
from ._contract import TransportContract
from ._emulator import DEFAULT_TOOLS, LettaEmulator, RecordedRequest, Scenario

__all__ = [
    "DEFAULT_TOOLS",
    "FakeResponse",
    "FakeTransport",
    "Hang",
    "LettaEmulator",
    "Pause",
    "RecordedRequest",
    "Scenario",
    "TransportContract",
    "load_recording",
    "sse_stream",
]

# help() and the docs name the public home of these, not the private modules they live in.
for _name in __all__:
    _value = globals()[_name]
    if isinstance(_value, type) or callable(_value):
        _value.__module__ = __name__
del _name, _value
