"""Golden chat transcripts: every ``you>`` line goes through ``voxpop chat``; the whole
conversation printed must equal the file, line for line, on SQLite and PostgreSQL.

A transcript starts with ``#`` header lines::

    # What this transcript shows.
    # surveys: surveys/examples/central-park.toml
    # channel: sms                 (default sms)
    # from: +32470000001           (default: the chat command's default)
    # start: central-park          (optional: begin as an invitation would)

To re-record after a deliberate change, run with ``VOXPOP_UPDATE_GOLDEN=1`` and review the diff
line by line: the files are the specification of what citizens see.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bot.service import Service, read_survey_sources
from storage.db import make_engine, session_factory
from tests.helpers import voxpop

ROOT = Path(__file__).resolve().parents[2]
TRANSCRIPTS = sorted((Path(__file__).parent / "transcripts").glob("*.txt"))


def _parse(path: Path) -> tuple[dict[str, str], list[str]]:
    headers: dict[str, str] = {}
    body: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not body and line.startswith("#"):
            key, sep, value = line[1:].partition(":")
            if sep and key.strip() in {"surveys", "channel", "from", "start"}:
                headers[key.strip()] = value.strip()
            continue
        body.append(line)
    return headers, body


def test_there_are_transcripts() -> None:
    assert len(TRANSCRIPTS) >= 10


@pytest.mark.parametrize("path", TRANSCRIPTS, ids=[p.stem for p in TRANSCRIPTS])
def test_transcript(path: Path, db_url: str) -> None:
    headers, expected = _parse(path)
    engine = make_engine(db_url)
    try:
        service = Service(session_factory(engine))
        files = [str(ROOT / f) for f in headers.get("surveys", "").split()]
        service.load_surveys(read_survey_sources(files))
    finally:
        engine.dispose()

    args = ["chat", "--channel", headers.get("channel", "sms")]
    if "from" in headers:
        args += ["--from", headers["from"]]
    if "start" in headers:
        args += ["--start", headers["start"]]
    inputs = [line[len("you> ") :] for line in expected if line.startswith("you> ")]
    result = voxpop(db_url, *args, input="".join(f"{line}\n" for line in inputs))
    assert result.exit_code == 0, result.output
    actual = result.output.splitlines()
    if os.environ.get("VOXPOP_UPDATE_GOLDEN") == "1":
        header_lines = [
            line for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("#")
        ]
        header_end = len(header_lines)
        path.write_text("\n".join(header_lines[:header_end] + actual) + "\n", encoding="utf-8")
        return
    assert actual == expected
