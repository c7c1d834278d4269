"""Reading docs/deployment.md and the files it ships (docs/deploy/) the way an operator follows
them: the units' command lines and environment, the environment file, the guide's commands."""

from __future__ import annotations

import re
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "deployment.md"
DEPLOY = ROOT / "docs" / "deploy"
UNITS = ("voxpop-web.service", "voxpop-dispatch.service", "voxpop-scheduler.service")
ENV_EXAMPLE = DEPLOY / "voxpop.env.example"
TOML_EXAMPLE = DEPLOY / "voxpop.toml.example"
#: Where the guide installs Voxpop's virtualenv; here, the one running the tests.
INSTALLED_BIN = "/opt/voxpop/.venv/bin/"
VENV_BIN = Path(sys.executable).parent
#: The files the guide names for the settings and the secrets.
ETC_TOML = "/etc/voxpop/voxpop.toml"
ETC_ENV = "/etc/voxpop/voxpop.env"


@dataclass(frozen=True)
class Unit:
    name: str
    #: section -> key -> every value given (systemd allows a key more than once).
    sections: Mapping[str, Mapping[str, list[str]]]

    def one(self, section: str, key: str) -> str:
        values = self.sections.get(section, {}).get(key, [])
        assert len(values) == 1, f"{self.name}: [{section}] {key} given {len(values)} times"
        return values[0]

    def all(self, section: str, key: str) -> list[str]:
        return list(self.sections.get(section, {}).get(key, []))

    def exec_start(self) -> list[str]:
        """``ExecStart`` as the words systemd runs."""
        return shlex.split(self.one("Service", "ExecStart"))

    def environment(self) -> dict[str, str]:
        """The ``Environment=`` assignments (not the ``EnvironmentFile=``)."""
        pairs = [word for line in self.all("Service", "Environment") for word in shlex.split(line)]
        return dict(pair.split("=", 1) for pair in pairs)


def read_unit(name: str) -> Unit:
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for number, raw in enumerate((DEPLOY / name).read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        assert not line.endswith("\\"), f"{name}:{number}: keep each setting on one line"
        header = re.fullmatch(r"\[(\w+)\]", line)
        if header:
            current = sections.setdefault(header.group(1), {})
            continue
        key, equals, value = line.partition("=")
        assert equals, f"{name}:{number}: not a setting: {line!r}"
        assert current is not None, f"{name}:{number}: a setting before any [section]"
        current.setdefault(key.strip(), []).append(value.strip())
    return Unit(name, sections)


def read_env_file(path: Path) -> dict[str, str]:
    """An ``EnvironmentFile=`` as systemd reads it: ``KEY=value`` lines, ``#`` comments."""
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        key, equals, value = line.partition("=")
        assert equals, f"{path.name}:{number}: not KEY=value: {line!r}"
        assert re.fullmatch(r"[A-Z_][A-Z0-9_]*", key), f"{path.name}:{number}: bad name {key!r}"
        values[key] = value
    return values


def local_command(words: list[str]) -> list[str]:
    """A unit's command with the guide's install folder replaced by this virtualenv."""
    program = words[0]
    assert program.startswith(INSTALLED_BIN), f"{program}: not in {INSTALLED_BIN}"
    return [str(VENV_BIN / program.removeprefix(INSTALLED_BIN)), *words[1:]]


def guide_lines(start: str) -> list[str]:
    """The lines of the guide's code blocks that begin with ``start``."""
    lines: list[str] = []
    inside = False
    for raw in GUIDE.read_text(encoding="utf-8").splitlines():
        if raw.startswith("```"):
            inside = not inside
            continue
        if inside and raw.startswith(start):
            lines.append(raw.split("  #", 1)[0].strip())
    return lines
