"""Shared test setup. The recorded responses live in tests/fixtures/letta-0.16.8/."""

from __future__ import annotations

import pathlib

pytest_plugins = ["pytester"]

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "letta-0.16.8"
