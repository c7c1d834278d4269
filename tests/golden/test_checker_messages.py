"""Golden messages of the consultation checker: each ``checker/<name>.toml`` is checked by
``voxpop survey validate`` after street-lighting (keywords LIGHTS, LICHT) is loaded, and
every problem printed must equal ``checker/<name>.txt``, line for line, on both databases.

All problems come in one pass (a keyword clash too, when the file has other mistakes), and
a mistake shared by the choices of one line is said once, with the right form.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.helpers import voxpop

HERE = Path(__file__).parent / "checker"
LIGHTS = Path(__file__).resolve().parents[2] / "surveys" / "examples" / "street-lighting.toml"
CASES = sorted(p.stem for p in HERE.glob("*.toml"))


@pytest.mark.parametrize("name", CASES)
def test_checker_messages(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    assert voxpop(db_url, "survey", "load", str(LIGHTS)).exit_code == 0
    monkeypatch.chdir(tmp_path)  # short file names in the messages
    shutil.copy(HERE / f"{name}.toml", tmp_path / f"{name}.toml")
    result = voxpop(db_url, "survey", "validate", "--quiet", f"{name}.toml")
    printed = [
        line for line in result.output.splitlines() if ": error: " in line or ": warning: " in line
    ]
    assert printed == (HERE / f"{name}.txt").read_text("utf-8").splitlines()
    assert result.exit_code == 1
