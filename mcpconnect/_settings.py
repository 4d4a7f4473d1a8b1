"""Where the base URL and the API key come from: argument, environment, settings file.

Every value is checked here, whatever its source, and a bad one is a
:class:`~mcpconnect.ConfigError` that names where it came from and never repeats a key.
"""

from __future__ import annotations

import ipaddress
import json
import os
import pathlib
import re
import stat
from collections.abc import Mapping
from typing import Any

from ._checks import check_header_text, check_http_url
from .errors import ConfigError, MissingApiKeyError
from .transports._base import without_userinfo

__all__ = [
    "DEFAULT_BASE_URL",
    "MAX_SETTINGS_BYTES",
    "default_settings_path",
    "resolve_api_key",
    "resolve_base_url",
]

DEFAULT_BASE_URL = "https://api.letta.com"
MAX_SETTINGS_BYTES = 8 * 1024 * 1024

# The ASCII characters a host name may have (others are left to IDNA, in the transport).
_BAD_HOST_CHAR = re.compile(r"[\x00-\x7f](?<![A-Za-z0-9._~-])")


def default_settings_path() -> pathlib.Path:
    """``~/.letta/settings.json``, the file letta-code keeps its settings in."""
    return pathlib.Path.home() / ".letta" / "settings.json"


class _Settings:
    """The ``env`` table of the settings file, read at most once, and only when needed."""

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        if path is not None and not isinstance(path, (str, os.PathLike)):
            raise ConfigError(f"settings_path must be a path or None, got {type(path).__name__}")
        try:
            self._path = pathlib.Path(path) if path is not None else default_settings_path()
        except TypeError as exc:  # a PathLike that gives bytes
            raise ConfigError("settings_path must be a str path") from exc
        self._explicit = path is not None  # a path the caller named must exist
        self._env: Mapping[str, Any] | None = None

    def where(self, key: str) -> str:
        return f"env.{key} in settings file {self._path}"

    def get(self, key: str) -> str | None:
        if self._env is None:
            self._env = self._load()
        value = self._env.get(key)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise ConfigError(f"settings file {self._path}: env.{key} must be a string")
        return value

    def _read(self) -> bytes:
        """The file's bytes, if it is a regular file (a FIFO or a device is never opened
        for reading: that could block for ever)."""
        path = self._path
        # O_NONBLOCK: opening a FIFO does not wait for a writer; fstat then refuses it.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
        with os.fdopen(fd, "rb") as file:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise ConfigError(f"settings file {path} is not a regular file")
            data = file.read(MAX_SETTINGS_BYTES + 1)
        if len(data) > MAX_SETTINGS_BYTES:
            raise ConfigError(
                f"settings file {path} is larger than {MAX_SETTINGS_BYTES} bytes"
            )
        return data

    def _load(self) -> Mapping[str, Any]:
        path = self._path
        try:
            text = self._read().decode("utf-8")
        except FileNotFoundError as exc:
            if self._explicit:
                raise ConfigError(f"settings file {path} does not exist") from exc
            return {}
        except ConfigError:
            raise
        except (OSError, UnicodeDecodeError, ValueError) as exc:  # ValueError: a NUL in the path
            raise ConfigError(
                f"cannot read settings file {path}: {exc.__class__.__name__}"
            ) from exc
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"settings file {path} is not valid JSON: {exc}") from exc
        except RecursionError:
            raise ConfigError(f"settings file {path} is nested too deeply") from None
        env = data.get("env", {}) if isinstance(data, dict) else None
        if not isinstance(env, dict):
            raise ConfigError(f"settings file {path}: expected an object with an 'env' object")
        return env


def _from_env(environ: Mapping[str, str], key: str) -> str | None:
    return environ.get(key) or None


def _pick(
    given: object, what: str, key: str, environ: Mapping[str, str], settings: _Settings
) -> tuple[object, str]:
    """The first value set and where it came from: the argument, the environment, the file."""
    if given is not None and given != "":
        return given, what
    value = _from_env(environ, key)
    if value is not None:
        return value, key
    return settings.get(key), settings.where(key)


def check_base_url(url: object, what: str = "base_url") -> str:
    """``url`` without trailing slashes, if it is an absolute http(s) URL with a host, a
    valid port, and no query, fragment, control character or space. Else a
    :class:`~mcpconnect.ConfigError` naming ``what``; user-info is masked in the message."""
    parts = check_http_url(url, what)
    assert isinstance(url, str)  # check_http_url made sure
    shown = repr(without_userinfo(url))
    if not _valid_host(parts.netloc.rpartition("@")[2], parts.hostname or ""):
        raise ConfigError(f"{what} has an invalid host name: {shown}")
    if "?" in url or "#" in url:
        # The API path is appended to the base URL: a query or fragment would swallow it.
        raise ConfigError(f"{what} must not have a query or a fragment, got {shown}")
    return url.rstrip("/")


def _valid_host(hostport: str, host: str) -> bool:
    if hostport.startswith("["):
        try:
            ipaddress.IPv6Address(host.partition("%")[0])
        except ValueError:
            return False
        return True
    return _BAD_HOST_CHAR.search(host) is None


def resolve_base_url(
    base_url: str | None,
    *,
    settings_path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    _settings: _Settings | None = None,
) -> str:
    """The Letta base URL: ``base_url``, else ``LETTA_BASE_URL``, else ``env.LETTA_BASE_URL``
    in the settings file, else ``https://api.letta.com``. Without a trailing slash.

    Raises :class:`~mcpconnect.ConfigError` for a URL that is not an absolute http(s) URL
    (or has a query, a fragment, a bad port, a space or a control character), naming where
    it came from, and for a settings file that cannot be read or parsed."""
    env = os.environ if environ is None else environ
    settings = _settings or _Settings(settings_path)
    url, what = _pick(base_url, "base_url", "LETTA_BASE_URL", env, settings)
    if url is None:
        return DEFAULT_BASE_URL
    return check_base_url(url, what)


def resolve_api_key(
    api_key: str | None,
    *,
    settings_path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    _settings: _Settings | None = None,
) -> str:
    """The API key: ``api_key``, else ``LETTA_API_KEY``, else ``env.LETTA_API_KEY`` in the
    settings file. Raises :class:`~mcpconnect.MissingApiKeyError` when there is none, and
    :class:`~mcpconnect.ConfigError` (without the key) for one that is not a string or
    cannot be sent in an HTTP header (a control or non-Latin-1 character)."""
    env = os.environ if environ is None else environ
    settings = _settings or _Settings(settings_path)
    key, what = _pick(api_key, "api_key", "LETTA_API_KEY", env, settings)
    if key is None:
        raise MissingApiKeyError()
    return check_header_text(key, f"the API key ({what})", show=False, ascii_only=True)
