"""Where the base URL and the API key come from: argument, environment, settings file."""

from __future__ import annotations

import json
import os
import pathlib
import urllib.parse
from collections.abc import Mapping
from typing import Any

from .errors import ConfigError, MissingApiKeyError, without_userinfo

__all__ = ["DEFAULT_BASE_URL", "default_settings_path", "resolve_api_key", "resolve_base_url"]

DEFAULT_BASE_URL = "https://api.letta.com"


def default_settings_path() -> pathlib.Path:
    """``~/.letta/settings.json``, the file letta-code keeps its settings in."""
    return pathlib.Path.home() / ".letta" / "settings.json"


class _Settings:
    """The ``env`` table of the settings file, read at most once, and only when needed."""

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self._path = pathlib.Path(path) if path is not None else default_settings_path()
        self._explicit = path is not None  # a path the caller named must exist
        self._env: Mapping[str, Any] | None = None

    def get(self, key: str) -> str | None:
        if self._env is None:
            self._env = self._load()
        value = self._env.get(key)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise ConfigError(f"settings file {self._path}: env.{key} must be a string")
        return value

    def _load(self) -> Mapping[str, Any]:
        path = self._path
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            if self._explicit:
                raise ConfigError(f"settings file {path} does not exist") from exc
            return {}
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"cannot read settings file {path}: {exc.__class__.__name__}"
            ) from exc
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"settings file {path} is not valid JSON: {exc}") from exc
        env = data.get("env", {}) if isinstance(data, dict) else None
        if not isinstance(env, dict):
            raise ConfigError(f"settings file {path}: expected an object with an 'env' object")
        return env


def _from_env(environ: Mapping[str, str], key: str) -> str | None:
    return environ.get(key) or None


def resolve_base_url(
    base_url: str | None,
    *,
    settings_path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    _settings: _Settings | None = None,
) -> str:
    """The Letta base URL: ``base_url``, else ``LETTA_BASE_URL``, else ``env.LETTA_BASE_URL``
    in the settings file, else ``https://api.letta.com``. Without a trailing slash.

    Raises :class:`~mcpconnect.ConfigError` for a URL that is not absolute http(s) and for a
    settings file that cannot be read or parsed."""
    env = os.environ if environ is None else environ
    settings = _settings or _Settings(settings_path)
    url = base_url or _from_env(env, "LETTA_BASE_URL") or settings.get("LETTA_BASE_URL")
    url = (url or DEFAULT_BASE_URL).rstrip("/")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            f"base URL must be an absolute http(s) URL, got {without_userinfo(url)!r}"
        )
    return url


def resolve_api_key(
    api_key: str | None,
    *,
    settings_path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    _settings: _Settings | None = None,
) -> str:
    """The API key: ``api_key``, else ``LETTA_API_KEY``, else ``env.LETTA_API_KEY`` in the
    settings file. Raises :class:`~mcpconnect.MissingApiKeyError` when there is none."""
    env = os.environ if environ is None else environ
    settings = _settings or _Settings(settings_path)
    key = api_key or _from_env(env, "LETTA_API_KEY") or settings.get("LETTA_API_KEY")
    if not key:
        raise MissingApiKeyError()
    if any(c in key for c in "\r\n\x00"):
        raise ConfigError("the API key contains a line break or NUL")
    return key
