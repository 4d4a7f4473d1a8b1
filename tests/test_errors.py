import pickle

import pytest

import mcpconnect
from mcpconnect import errors


def test_every_error_derives_from_the_root() -> None:
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, mcpconnect.McpConnectError)
        assert getattr(mcpconnect, name) is cls


def test_builtin_leaves() -> None:
    err = mcpconnect.ConnectTimeoutError("read", 1.5, "waiting_for_auth", "no data for 1.5 s")
    assert isinstance(err, TimeoutError)
    assert (err.limit, err.seconds, err.state) == ("read", 1.5, "waiting_for_auth")
    assert issubclass(mcpconnect.ConfigError, ValueError)
    assert issubclass(mcpconnect.MissingApiKeyError, mcpconnect.ConfigError)
    assert issubclass(mcpconnect.MissingAuthorizationUrlError, mcpconnect.ServerError)


def test_messages() -> None:
    assert str(mcpconnect.MissingApiKeyError()) == "Missing LETTA_API_KEY"
    err = mcpconnect.ConnectionFailedError(401, '{"detail":"Unauthorized"}')
    assert str(err) == 'Connection failed (401): {"detail":"Unauthorized"}'
    assert (err.status, err.body) == (401, '{"detail":"Unauthorized"}')
    ended = mcpconnect.StreamEndedError("waiting_for_auth")
    assert str(ended) == (
        "Stream ended unexpectedly without success or error (in state waiting_for_auth)"
    )
    with pytest.raises(mcpconnect.ServerError) as info:
        raise mcpconnect.ServerError("boom")
    assert info.value.message == "boom"
    assert info.value.event is None


# --- pickle (multiprocessing, task queues) ---------------------------------------------

EVENT = mcpconnect.McpOauthEvent(
    event=mcpconnect.OauthStreamEvent.ERROR, message="it broke", extra={"code": 3}
)

EXAMPLES: list[mcpconnect.McpConnectError] = [
    mcpconnect.McpConnectError("root"),
    mcpconnect.ConfigError("server_url must be an absolute http(s) URL"),
    mcpconnect.MissingApiKeyError(),
    mcpconnect.MissingApiKeyError("no key in /x/settings.json"),
    mcpconnect.ConnectionFailedError(401, '{"detail":"Unauthorized"}'),
    mcpconnect.ConnectionFailedError(302, "", "Connection failed (302): redirected to /x"),
    mcpconnect.ServerError("it broke", EVENT),
    mcpconnect.ServerError("no event"),
    mcpconnect.MissingAuthorizationUrlError("no URL", EVENT),
    mcpconnect.StreamEndedError("waiting_for_auth"),
    mcpconnect.ProtocolError("event does not fit the schema: … @ $.tools[3].name"),
    mcpconnect.TransportError("cannot reach http://127.0.0.1:9: refused"),
    mcpconnect.ConnectTimeoutError("read", 1.5, "started", "the server sent nothing for 1.5 s"),
    mcpconnect.ConnectCancelledError("authorization_url"),
    mcpconnect.DuplicateServerNameError("github"),
    mcpconnect.ServerNotFoundError("mcp_server-1", 400, '{"detail":"not found."}'),
]


def test_the_examples_cover_every_exception_class() -> None:
    assert {type(e).__name__ for e in EXAMPLES} == set(errors.__all__)


@pytest.mark.parametrize("exc", EXAMPLES, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_every_exception_survives_pickle(exc: mcpconnect.McpConnectError, protocol: int) -> None:
    again = pickle.loads(pickle.dumps(exc, protocol=protocol))
    assert type(again) is type(exc)
    assert (str(again), again.args) == (str(exc), exc.args)
    assert vars(again) == vars(exc)
    assert vars(exc) or type(exc) in (
        mcpconnect.McpConnectError, mcpconnect.ConfigError, mcpconnect.MissingApiKeyError,
        mcpconnect.ProtocolError, mcpconnect.TransportError,
    )
    if isinstance(exc, TimeoutError):
        assert isinstance(again, TimeoutError)
        assert (again.errno, again.strerror) == (exc.errno, exc.strerror)


def test_a_pickled_error_keeps_its_event_intact() -> None:
    again = pickle.loads(pickle.dumps(mcpconnect.ServerError("it broke", EVENT)))
    assert again.event == EVENT
    assert again.event.extra == {"code": 3}
    assert pickle.loads(pickle.dumps(EVENT)) == EVENT
    bare = mcpconnect.McpOauthEvent(event=mcpconnect.OauthStreamEvent.ERROR, message="m")
    again = pickle.loads(pickle.dumps(mcpconnect.ServerError("m", bare)))
    assert (again.event, again.event.extra) == (bare, {})
