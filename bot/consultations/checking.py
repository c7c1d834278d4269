"""A consultation file checked before it is loaded, the one check of ``voxpop survey
validate``, ``voxpop survey load`` and the console's editor.

Each file is validated alone (:mod:`surveys.validate`: every problem with its ``file:line``,
each message priced as the SMS channel sends it), then side by side with the other files and
with the consultations already loaded: a keyword decides which consultation a text starts,
so two may not share one.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path

from bot.conversation.engine import ask
from channels.base import numbered_list
from messages import Address, OutboundMessage
from surveys.loader import clashes
from surveys.model import Question, Survey
from surveys.validate import ValidationReport, validate_file, validate_text

__all__ = ["Loaded", "check_files", "check_text", "normalise_source", "sms_text"]

#: The keywords of the consultations already loaded but those with the given ids (a file with
#: the same id is their next version): normalised keyword -> consultation id.
Loaded = Callable[[Collection[str]], Mapping[str, str]]


def sms_text(survey: Survey, question: Question, language: str) -> str:
    """A question as the engine words it for SMS, before GSM-7 normalisation, so the
    validator prices what is sent and still warns about the characters SMS replaces."""
    say = ask(survey, question, language)
    return numbered_list(OutboundMessage(Address("sms", ""), say.text, say.options))


def check_files(paths: Sequence[str], loaded: Loaded) -> list[ValidationReport]:
    """Each file's report (an unreadable file is a problem, not a crash), clashes included;
    each problem is in the report of the file it is about."""
    reports = [validate_file(path, render=sms_text) for path in paths]
    texts = {r.source: Path(r.source).read_text("utf-8-sig") for r in reports if r.draft}
    return _with_clashes(reports, texts, loaded)


def check_text(text: str, name: str, loaded: Loaded) -> ValidationReport:
    """The report on one consultation given as text (uploaded or typed in the browser);
    ``name`` is the file name its problems use."""
    report = validate_text(text, name, render=sms_text)
    return _with_clashes([report], {name: text}, loaded)[0]


def normalise_source(text: str) -> str:
    """Text from a browser as a file would hold it: a browser sends a textarea's lines
    ended by CRLF, and an uploaded file may start with a byte-order mark.

    >>> normalise_source('\\ufeffid = "x"\\r\\n')
    'id = "x"\\n'
    """
    return text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


def _with_clashes(
    reports: list[ValidationReport], texts: Mapping[str, str], loaded: Loaded
) -> list[ValidationReport]:
    # A file with other mistakes is still checked for clashes, as far as its id and keywords
    # could be read, so the clash is not news only once everything else is fixed.
    entries = [(r.draft, r.source, texts[r.source]) for r in reports if r.draft is not None]
    taken = loaded({survey.id for survey, _, _ in entries if survey.id}) if entries else {}
    problems = clashes(entries, taken)
    return [report.adding(problems) for report in reports]
