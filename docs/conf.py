"""Sphinx configuration for mcpconnect's documentation.

Builds offline (no intersphinx): references to the standard library and to third-party
packages are rendered as plain code, references to mcpconnect's own names must resolve
(``sphinx-build -W -n``), and names defined in private modules resolve to the public name
they are re-exported as (``mcpconnect.models.McpTool`` -> ``mcpconnect.McpTool``).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import mcpconnect

project = "mcpconnect"
author = "The mcpconnect maintainers"
copyright = "the mcpconnect maintainers"
release = mcpconnect.__version__
version = release

extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon"]
napoleon_google_docstring = True
napoleon_numpy_docstring = False
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"members": True, "undoc-members": False}
autodoc_type_aliases = {
    name: f"mcpconnect.{name}" for name in ("ConfigLike", "TimeoutLike")  # OnEvent | None: no
}
default_role = "code"
nitpicky = True
html_theme = "alabaster"
exclude_patterns = ["_build"]
templates_path: list[str] = []

# Where each public name lives, for the references autodoc writes with its defining module.
_PUBLIC_MODULES = (
    "mcpconnect",
    "mcpconnect.servers",
    "mcpconnect.sse",
    "mcpconnect.transports",
    "mcpconnect.testing",
    "mcpconnect.testing.plugin",
)


def _public_name(target: str) -> str | None:
    name = target.rpartition(".")[2]
    for module_name in _PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        if name in getattr(module, "__all__", ()):
            return f"{module_name}.{name}"
    return None


def _missing_reference(app: Any, env: Any, node: Any, contnode: Any) -> Any:
    """Resolve private-module names to their public home; render foreign names as code."""
    if node.get("refdomain") != "py":
        return None
    target: str = node["reftarget"]
    if target.startswith("mcpconnect."):
        if target.rpartition(".")[2].startswith("_"):
            return contnode  # a private class in a signature (a transport's response): text
        public = _public_name(target) or target
        # "obj" finds any kind of object: a type alias (documented as data) named as a class
        domain = env.get_domain("py")
        return domain.resolve_xref(env, node["refdoc"], app.builder, "obj", public, node, contnode)
        # None (no such object documented): nitpicky warns
    return contnode  # the standard library, typing, urllib3, attrs: plain text, no warning


def setup(app: Any) -> None:
    app.connect("missing-reference", _missing_reference)
