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
