"""The pytest plugin of mcpconnect, registered through the ``pytest11`` entry point.

Fixtures:

- ``fake_transport``: an empty :class:`~mcpconnect.testing.FakeTransport`; queue responses
  with ``fake_transport.add(...)``.
- ``letta_emulator``: a running :class:`~mcpconnect.testing.LettaEmulator` (default scenario,
  API key ``"test-key"``), stopped at the end of the test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from . import FakeTransport, LettaEmulator

__all__ = ["fake_transport", "letta_emulator"]

EMULATOR_API_KEY = "test-key"


@pytest.fixture
def fake_transport() -> FakeTransport:
    """An empty FakeTransport: ``fake_transport.add(sse_stream([...]))`` scripts it."""
    return FakeTransport()


@pytest.fixture
def letta_emulator() -> Iterator[LettaEmulator]:
    """A LettaEmulator on 127.0.0.1 with the API key ``"test-key"``; stopped afterwards."""
    with LettaEmulator(api_key=EMULATOR_API_KEY) as emulator:
        yield emulator
