"""Load consultation files into :class:`~surveys.model.Survey` values.

Loading is pure: the same bytes give an equal survey with the same ``digest``, so callers
may cache by digest, and this module keeps a small cache of its own. A file with errors
raises :class:`SurveyError` carrying every problem, each with its file and line.

>>> survey = parse_survey('''
... id = "bins"
... title = { en = "Bins" }
... languages = ["en"]
... keywords = ["BINS"]
... [[questions]]
... id = "enough"
... type = "yesno"
... text = { en = "Are there enough bins in your street?" }
... ''')
>>> survey.id, survey.questions[0].type, len(survey.digest)
('bins', 'yesno', 64)
>>> try:
...     parse_survey('id = "bins"\\ntitle = "Bins"', "bins.toml")
... except SurveyError as exc:
...     print(*exc.problems, sep="\\n")
bins.toml: error: missing 'languages' (default first), like languages = ["en", "nl"]
bins.toml: error: missing 'questions': add at least one [[questions]] table
bins.toml:2: error: title must be a table of translations, like { en = "...", nl = "..." }
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from surveys.model import Survey
from surveys.text import normalize
from surveys.validate import KeyLines, Problem, validate_bytes

#: The example surveys shipped with the package.
EXAMPLES_DIR = Path(__file__).parent / "examples"


class SurveyError(Exception):
    """A survey file that cannot be used; ``problems`` lists every error and warning."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]


def load_survey(path: str | os.PathLike[str]) -> Survey:
    """Load and check the survey file at ``path``."""
    source = os.fspath(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise SurveyError([Problem(source, None, "error", f"cannot read: {exc}")]) from exc
    return _parse(data, source)


def parse_survey(text: str, source: str = "<string>") -> Survey:
    """Check and build a survey from TOML text; ``source`` names it in problems."""
    return _parse(text.encode("utf-8"), source)


def load_many(paths: Iterable[str | os.PathLike[str]]) -> tuple[Survey, ...]:
    """Load several files, reporting all their problems at once (see :func:`clashes`)."""
    problems: list[Problem] = []
    entries: list[tuple[Survey, str, str]] = []
    for path in paths:
        try:
            survey = load_survey(path)
        except SurveyError as exc:
            problems += exc.problems
            continue
        entries.append((survey, os.fspath(path), Path(path).read_text("utf-8-sig")))
    problems += clashes(entries)
    if any(p.severity == "error" for p in problems):
        raise SurveyError(problems)
    return tuple(survey for survey, _, _ in entries)


def clashes(
    entries: Iterable[tuple[Survey, str, str]], taken: Mapping[str, str] | None = None
) -> list[Problem]:
    """Surveys live side by side, so two may not share an id or a keyword: the keyword
    decides which survey a text starts.

    ``entries`` are ``(survey, source name, text)``; ``taken`` maps normalised keywords of
    surveys already loaded elsewhere to their survey id.
    """
    problems: list[Problem] = []
    ids: dict[str, str] = {}
    keywords: dict[str, tuple[str, str]] = {
        word: (survey_id, "already loaded") for word, survey_id in (taken or {}).items()
    }
    for survey, source, text in entries:
        lines = KeyLines(text)
        if survey.id and survey.id in ids:
            message = f"survey id '{survey.id}' is also used by {ids[survey.id]}"
            problems.append(Problem(source, lines.line(("id",)), "error", message))
        if survey.id:  # a missing id is reported by the file's own check
            ids.setdefault(survey.id, source)
        for index, keyword in enumerate(survey.keywords):
            word = normalize(keyword)
            if word in keywords and keywords[word][0] != survey.id:
                other, where = keywords[word]
                message = f"keyword '{keyword}' also starts survey '{other}' ({where})"
                problems.append(Problem(source, lines.line(("keywords", index)), "error", message))
            keywords.setdefault(word, (survey.id, source))
    return problems


def example_paths() -> list[Path]:
    """The example survey files, sorted by name."""
    return sorted(EXAMPLES_DIR.glob("*.toml"))


# Surveys are parsed once per version: the webhook path asks for the same survey often,
# and the key is the file's bytes, so an edited file is simply a new entry.
@functools.lru_cache(maxsize=64)
def _parse(data: bytes, source: str) -> Survey:
    report = validate_bytes(data, source, sms=False)
    if report.survey is None:
        raise SurveyError(report.problems)
    return report.survey
