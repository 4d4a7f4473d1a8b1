"""Every Python block of README.md and docs/*.rst runs, offline, so none can rot.

The blocks of one file run in order, each in a fresh namespace (as if pasted alone), with
``LETTA_BASE_URL`` and ``LETTA_API_KEY`` pointing at one LettaEmulator for that file (so a
block that registers a server is seen by the next one, as on a real Letta), ``HOME`` an empty
directory, and standard output captured. A marker just before a block changes that:

- ``<!-- docs: compile-only (why) -->`` in Markdown, ``.. docs: compile-only (why)`` in
  reStructuredText: the block needs what a test cannot have (a real server, a browser, a
  package we do not install); it is compiled, not run.
- ``<!-- docs: pytest -->`` / ``.. docs: pytest``: the block is a test module; it runs under
  pytest in a subprocess, as a user's test file, and must pass.
"""

from __future__ import annotations

import pathlib
import re
from collections.abc import Iterator

import attrs
import pytest

from mcpconnect.testing import LettaEmulator

ROOT = pathlib.Path(__file__).resolve().parent.parent
FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.rst"))]
API_KEY = "docs-key"

_MD_BLOCK = re.compile(r"^```python\n(.*?)^```$", re.M | re.S)
_MD_MARK = re.compile(r"<!-- docs: ([a-z-]+)[^>]*-->\s*\Z")
_RST_BLOCK = re.compile(r"^\.\. code-block:: python\n((?:[ \t]*\n)*)((?:(?:    .*)?\n)+)", re.M)
_RST_MARK = re.compile(r"^\.\. docs: ([a-z-]+).*\n\s*\Z", re.M)
MODES = ("run", "compile-only", "pytest")


@attrs.frozen
class Block:
    path: pathlib.Path
    line: int
    code: str
    mode: str

    @property
    def id(self) -> str:
        return f"{self.path.name}:{self.line}"


def _dedent(text: str) -> str:
    return "\n".join(line[4:] for line in text.splitlines()) + "\n"


def blocks(path: pathlib.Path) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    found = []
    if path.suffix == ".md":
        for m in _MD_BLOCK.finditer(text):
            mark = _MD_MARK.search(text, 0, m.start())
            mode = mark.group(1) if mark and text[mark.end() : m.start()].strip() == "" else "run"
            line = text.count("\n", 0, m.start(1)) + 1
            found.append(Block(path, line, m.group(1), mode))
    else:
        for m in _RST_BLOCK.finditer(text):
            before = text[: m.start()]
            mark = _RST_MARK.search(before)
            mode = mark.group(1) if mark else "run"
            line = text.count("\n", 0, m.start(2)) + 1
            found.append(Block(path, line, _dedent(m.group(2)), mode))
    return found


ALL = [block for path in FILES for block in blocks(path)]


def test_every_page_is_found_and_every_marker_is_known() -> None:
    assert {p.name for p in FILES} >= {"README.md", "index.rst", "quickstart.rst"}
    assert len(ALL) >= 20
    for block in ALL:
        assert block.mode in MODES, block.id
    # the offline quickstart: emulator, connect() and the OAuth approval in one block
    assert any(
        "LettaEmulator" in b.code and "connect(" in b.code and ".authorize(" in b.code
        for b in ALL
        if b.mode == "run" and b.path.name == "README.md"
    )


@pytest.fixture(scope="module")
def emulators() -> Iterator[dict[pathlib.Path, LettaEmulator]]:
    running: dict[pathlib.Path, LettaEmulator] = {}
    yield running
    for emulator in running.values():
        emulator.stop()


@pytest.mark.parametrize("block", ALL, ids=[b.id for b in ALL])
def test_block(
    block: Block,
    emulators: dict[pathlib.Path, LettaEmulator],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
) -> None:
    code = compile(block.code, block.id, "exec")
    if block.mode == "compile-only":
        return
    if block.mode == "pytest":
        pytester: pytest.Pytester = request.getfixturevalue("pytester")
        pytester.makepyfile(**{"test_" + re.sub(r"\W", "_", block.id): block.code})
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
        outcomes = result.parseoutcomes()
        assert result.ret == 0 and outcomes.get("passed", 0) >= 1, result.stdout.str()
        return
    emulator = emulators.get(block.path)
    if emulator is None:
        emulator = emulators[block.path] = LettaEmulator(api_key=API_KEY).start()
    for name in ("LETTA_BASE_URL", "LETTA_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LETTA_BASE_URL", emulator.base_url)
    monkeypatch.setenv("LETTA_API_KEY", API_KEY)
    monkeypatch.setenv("HOME", str(tmp_path))
    exec(code, {"__name__": "__docs__"})
    capsys.readouterr()


def _documented(obj: object) -> list[str]:
    import inspect

    doc = inspect.getdoc(obj) or ""
    target = obj.__init__ if isinstance(obj, type) else obj  # type: ignore[misc]
    params = [p for p in inspect.signature(target).parameters if p not in ("self", "kwargs")]
    return [p for p in params if not re.search(rf"^\s*{p}: ", doc, re.M)]


def test_help_lists_every_parameter_of_the_entry_points() -> None:
    import mcpconnect

    for obj in (
        mcpconnect.connect,
        mcpconnect.stream_events,
        mcpconnect.Client,
        mcpconnect.Client.connect,
        mcpconnect.Client.stream_events,
    ):
        assert _documented(obj) == [], obj


def test_the_aliases_in_public_signatures_are_importable() -> None:
    import inspect

    import mcpconnect

    aliases = {"ConfigLike", "TimeoutLike", "OnEvent"}
    seen = set()
    for obj in (mcpconnect.connect, mcpconnect.stream_events, mcpconnect.Client.connect):
        for param in inspect.signature(obj).parameters.values():
            seen |= set(re.findall(r"\b\w+\b", str(param.annotation))) & aliases
    assert seen == aliases
    for name in aliases:
        assert getattr(mcpconnect, name) is getattr(mcpconnect.client, name)
