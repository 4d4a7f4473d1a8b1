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


def test_the_marker_chooses_the_scenario(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_user="""
        import pytest
        import mcpconnect
        from mcpconnect.testing import Scenario

        CONFIG = {"server_name": "gh", "type": "sse", "server_url": "https://mcp.example.com/s"}

        @pytest.mark.letta_scenario(error="boom")
        def test_keywords(letta_emulator, letta_scenario):
            assert letta_emulator.scenario == letta_scenario == Scenario(error="boom")
            with letta_emulator.client() as client:
                with pytest.raises(mcpconnect.ServerError, match="boom"):
                    client.connect(CONFIG)

        @pytest.mark.letta_scenario(Scenario(oauth="approve", tools=[{"name": "only"}]))
        def test_a_scenario(letta_emulator):
            def on_event(event):
                if event.event is mcpconnect.OauthStreamEvent.AUTHORIZATION_URL:
                    letta_emulator.authorize(event.url)
            with letta_emulator.client() as client:
                assert [t.name for t in client.connect(CONFIG, on_event=on_event)] == ["only"]

        def test_no_marker(letta_emulator):
            assert letta_emulator.scenario == Scenario()

        @pytest.mark.letta_scenario(oauth="sometimes")
        def test_bad_field(letta_emulator):
            pass

        @pytest.mark.letta_scenario("approve")
        def test_not_a_scenario(letta_emulator):
            pass
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q", "--strict-markers")
    result.assert_outcomes(passed=3, errors=2)
    result.stdout.fnmatch_lines(["*letta_scenario: *oauth*", "*needs a Scenario*"])


def test_the_scenario_fixture_can_be_overridden(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import pytest
        from mcpconnect.testing import Scenario

        @pytest.fixture
        def letta_scenario():
            return Scenario(error="from conftest")
        """
    )
    pytester.makepyfile(
        test_user="""
        def test_it(letta_emulator):
            assert letta_emulator.scenario.error == "from conftest"
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=1)


def test_the_marker_is_registered(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.letta_scenario(scenario=None, **fields):*"])


def test_fixtures_ignore_the_users_environment_and_settings_file(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = pytester.path / "user-home"
    (home / ".letta").mkdir(parents=True)
    (home / ".letta" / "settings.json").write_text("{ not json")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("LETTA_API_KEY", "the-users-real-key")
    monkeypatch.setenv("LETTA_BASE_URL", "http://127.0.0.1:9")
    pytester.makepyfile(
        test_user="""
        import os, pathlib
        import pytest
        import mcpconnect
        from mcpconnect.testing import sse_stream

        CONFIG = {"server_name": "gh", "type": "sse", "server_url": "https://mcp.example.com/s"}

        def test_outside_the_fixtures_the_environment_is_the_users():
            assert os.environ["LETTA_API_KEY"] == "the-users-real-key"

        def test_fake(fake_transport):
            assert not any(name.startswith("LETTA_") for name in os.environ)
            assert not (pathlib.Path.home() / ".letta").exists()
            with pytest.raises(mcpconnect.MissingApiKeyError):
                mcpconnect.connect(CONFIG, transport=fake_transport)
            fake_transport.add(sse_stream([{"event": "success", "tools": []}]))
            assert mcpconnect.connect(CONFIG, api_key="k", transport=fake_transport) == []
            assert fake_transport.last_request.url.startswith("https://api.letta.com/")

        def test_emulator(letta_emulator):
            assert "LETTA_API_KEY" not in os.environ
            assert letta_emulator.api_key == "test-key"
            tools = mcpconnect.connect(
                CONFIG, base_url=letta_emulator.base_url, api_key=letta_emulator.api_key)
            assert len(tools) == 3
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=3)


def test_fake_transport_fixture_checks_unused_responses_when_asked(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_user="""
        from mcpconnect.testing import FakeResponse

        def test_unused_asked(fake_transport):
            fake_transport.assert_all_used = True
            fake_transport.add(FakeResponse(500))

        def test_unused_not_asked(fake_transport):
            fake_transport.add(FakeResponse(500))
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_unused_asked*"])
    result.stdout.fnmatch_lines(["*1 scripted response(s) never requested*"])
