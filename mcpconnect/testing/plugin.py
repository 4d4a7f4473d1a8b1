"""The pytest plugin of mcpconnect, registered through the ``pytest11`` entry point.

Fixtures:

- ``fake_transport``: an empty :class:`~mcpconnect.testing.FakeTransport`; queue responses
  with ``fake_transport.add(...)``. Closed at the end of the test, so with
  ``fake_transport.assert_all_used = True`` a scripted response no request took fails it.
- ``letta_emulator``: a running :class:`~mcpconnect.testing.LettaEmulator` with the API key
  ``"test-key"`` (:attr:`~mcpconnect.testing.LettaEmulator.api_key`) and the scenario from
  the ``letta_scenario`` fixture; stopped at the end of the test.
- ``letta_scenario``: the emulator's default :class:`~mcpconnect.testing.Scenario`: the one
  the test's ``@pytest.mark.letta_scenario(...)`` marker gives (a ``Scenario``, or its fields
  as keywords), else ``Scenario()``. Override the fixture to choose one for a whole module.
- ``letta_isolated_env``: removes every ``LETTA_*`` environment variable and points ``HOME``
  at an empty temporary directory, so neither the user's environment nor their
  ``~/.letta/settings.json`` reach the test; returns that directory. ``fake_transport`` and
  ``letta_emulator`` use it.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Iterator

import pytest

from . import FakeTransport, LettaEmulator, Scenario

__all__ = ["fake_transport", "letta_emulator", "letta_isolated_env", "letta_scenario"]

EMULATOR_API_KEY = "test-key"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "letta_scenario(scenario=None, **fields): the letta_emulator fixture's default "
        "Scenario for this test (a Scenario, or Scenario's fields as keywords)",
    )


@pytest.fixture
def letta_isolated_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> pathlib.Path:
    """No ``LETTA_*`` variables and an empty ``HOME`` (so no ``~/.letta/settings.json``)."""
    for name in list(os.environ):
        if name.startswith("LETTA_"):
            monkeypatch.delenv(name)
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("USERPROFILE", str(home))
    return home


@pytest.fixture
def fake_transport(letta_isolated_env: pathlib.Path) -> Iterator[FakeTransport]:
    """An empty FakeTransport: ``fake_transport.add(sse_stream([...]))`` scripts it.

    Closed after the test: with ``assert_all_used = True`` unused responses fail the test.
    """
    transport = FakeTransport()
    yield transport
    transport.close()


@pytest.fixture
def letta_scenario(request: pytest.FixtureRequest) -> Scenario:
    """The scenario of ``@pytest.mark.letta_scenario(...)``, else ``Scenario()``."""
    marker = request.node.get_closest_marker("letta_scenario")
    if marker is None:
        return Scenario()
    if len(marker.args) > 1 or (marker.args and marker.kwargs):
        raise pytest.UsageError(
            "letta_scenario takes one Scenario, or Scenario's fields as keywords"
        )
    if marker.args:
        scenario = marker.args[0]
        if not isinstance(scenario, Scenario):
            raise pytest.UsageError(f"letta_scenario needs a Scenario, got {scenario!r}")
        return scenario
    try:
        return Scenario(**marker.kwargs)
    except (TypeError, ValueError) as exc:
        raise pytest.UsageError(f"letta_scenario: {exc}") from exc


@pytest.fixture
def letta_emulator(
    letta_isolated_env: pathlib.Path, letta_scenario: Scenario
) -> Iterator[LettaEmulator]:
    """A LettaEmulator on 127.0.0.1 with the API key ``"test-key"`` and the scenario of
    ``letta_scenario``; stopped afterwards. ``letta_emulator.client()`` is a Client for it."""
    with LettaEmulator(letta_scenario, api_key=EMULATOR_API_KEY) as emulator:
        yield emulator
