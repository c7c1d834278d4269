"""Who may import whom (docs/architecture.md): arrows point down, never up.

Read from the source (every import statement, also those inside functions), so a new module
that breaks a layer fails here, not in review.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: The edges: nothing below them may import them.
EDGES = ("bot.cli", "bot.web", "bot.console", "bot.wsgi")


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _sources(*packages: str) -> list[Path]:
    return sorted(
        path
        for package in packages
        for path in (ROOT / package).rglob("*.py")
        if "migrations" not in path.parts
    )


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


@pytest.mark.parametrize(
    "path", _sources("channels", "storage", "surveys", "messages", "safetext"), ids=_name
)
def test_the_lower_packages_import_nothing_from_the_application(path: Path) -> None:
    assert not [name for name in _imports(path) if _under(name, ("bot",))]


@pytest.mark.parametrize("path", _sources("bot/conversation"), ids=_name)
def test_the_conversation_is_pure(path: Path) -> None:
    allowed = ("bot.conversation", "messages", "surveys", "safetext")
    application = [name for name in _imports(path) if _under(name, ("bot", "storage", "channels"))]
    assert not [name for name in application if not _under(name, allowed)]
    io = ("flask", "sqlalchemy", "apscheduler", "requests", "socket", "time")
    assert not [name for name in _imports(path) if name.split(".")[0] in io]


@pytest.mark.parametrize("path", _sources("bot"), ids=_name)
def test_nothing_below_the_edges_imports_an_edge(path: Path) -> None:
    module = _module(path)
    if _under(module, EDGES):
        return
    assert not [name for name in _imports(path) if _under(name, EDGES)]


def test_the_layer_tests_read_the_whole_application() -> None:
    # A rename that empties a package would make the tests above pass on nothing.
    assert len(_sources("bot")) > 40
    assert {_module(p).split(".")[1] for p in _sources("bot") if p.parent != ROOT / "bot"} >= {
        "cli",
        "web",
        "console",
        "conversation",
        "contacts",
        "pushes",
        "delivery",
        "staff",
    }
