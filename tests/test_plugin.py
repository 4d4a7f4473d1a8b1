"""The pytest plugin, used from a test file of its own, as a user would."""

from __future__ import annotations

import pytest


def test_the_plugin_is_registered(pytestconfig: pytest.Config) -> None:
    assert pytestconfig.pluginmanager.has_plugin("mcpconnect")


def test_fixtures_from_a_user_test_file(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_user="""
        import mcpconnect
        from mcpconnect.testing import FakeTransport, LettaEmulator, Scenario, sse_stream

        CONFIG = {"server_name": "gh", "type": "sse", "server_url": "https://mcp.example.com/s"}

        def test_fake(fake_transport):
            assert isinstance(fake_transport, FakeTransport)
            fake_transport.add(sse_stream([
                {"event": "connection_attempt"},
                {"event": "success", "tools": [{"name": "echo"}]},
            ]))
            tools = mcpconnect.connect(CONFIG, api_key="k", transport=fake_transport)
            assert [t.name for t in tools] == ["echo"]
            assert fake_transport.last_request.json() == CONFIG

        def test_emulator(letta_emulator):
            assert isinstance(letta_emulator, LettaEmulator)
            tools = mcpconnect.connect(
                CONFIG, api_key="test-key", base_url=letta_emulator.base_url)
            assert [t.name for t in tools] == ["echo", "add", "server_mode"]
            assert letta_emulator.requests[0].body == CONFIG

        def test_emulator_error(letta_emulator):
            letta_emulator.scenario = Scenario(error="nope")
            try:
                mcpconnect.connect(CONFIG, api_key="test-key", base_url=letta_emulator.base_url)
            except mcpconnect.ServerError as exc:
                assert exc.message == "nope"
            else:
                raise AssertionError("no ServerError")
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=3)


def test_fixtures_are_listed(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--fixtures", "-q")
    result.stdout.fnmatch_lines(["*fake_transport*", "*letta_emulator*"])
