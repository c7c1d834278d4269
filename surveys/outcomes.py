"""The outcome file: what the city decided after a consultation, in each language ("you said,
we did"), optionally worded per value of a contact attribute (a district). Pure.

::

    survey = "central-park"          # optional: the command names the consultation
    text.en = "You asked for more bins. 20 new bins arrive in May. Thank you!"
    text.nl = "U vroeg om meer vuilbakken. In mei komen er 20 bij. Bedankt!"

    # Optional: another text for contacts whose attribute has a given value.
    by = "district"
    [texts.north]
    en = "North asked for a fountain: it comes in June. Thank you!"

Problems are reported as ``file:line: error: ...`` like a consultation file's.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from safetext import clean_json
from surveys.sms import sms_cost, to_gsm
from surveys.syntax import syntax_problem
from surveys.validate import KeyLines, Problem

_KEYS = ("survey", "text", "by", "texts")


@dataclass(frozen=True)
class Outcome:
    survey: str
    #: Language -> text, the first being the default.
    texts: Mapping[str, str]
    #: The contact attribute that picks a text from ``per_value``, if any.
    by: str | None = None
    per_value: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "texts": dict(self.texts),
            # Named, not left to the order of "texts": PostgreSQL's jsonb keeps no key order.
            "default": next(iter(self.texts), None),
            "by": self.by,
            "values": {k: dict(v) for k, v in self.per_value.items()},
        }


@dataclass(frozen=True)
class OutcomeReport:
    outcome: Outcome | None
    problems: list[Problem]
    #: (where, language, segments, encoding) of every text, as SMS.
    costs: list[tuple[str, str, int, str]]


def text_for(message: Mapping[str, Any], language: str, attributes: Mapping[str, Any]) -> str:
    """The text a contact gets, from a stored outcome (:meth:`Outcome.to_json`).

    Whoever has no text in their language gets the default language's (the consultation's),
    whatever order the stored texts come back in:

    >>> m = {"texts": {"en": "Bins in May.", "nl": "Bakken in mei."}, "default": "nl",
    ...      "by": "district", "values": {"north": {"en": "A fountain.", "nl": "Een fontein."}}}
    >>> text_for(m, "fr", {"district": "north"}), text_for(m, "fr", {}), text_for(m, "en", {})
    ('Een fontein.', 'Bakken in mei.', 'Bins in May.')
    """
    texts: Mapping[str, str] = message.get("texts") or {}
    by = message.get("by")
    if by:
        chosen = (message.get("values") or {}).get(str(attributes.get(by, "")))
        if chosen:
            texts = chosen
    if language in texts:
        return texts[language]
    default = message.get("default")
    if isinstance(default, str) and default in texts:
        return texts[default]
    # Stored before the default was named: the first text (its order kept on SQLite).
    return next(iter(texts.values()), "")


def parse_outcome(
    data: bytes, source: str, survey_id: str, languages: tuple[str, ...] = ()
) -> OutcomeReport:
    """Read the outcome file of consultation ``survey_id`` (its ``survey`` key, if any, must
    say the same); ``languages`` are the consultation's, default first: a text in the default
    is required (everyone else falls back to it), a missing other one is a warning."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        problem = Problem(source, line, "error", "not UTF-8 text; save the file as UTF-8")
        return OutcomeReport(None, [problem], [])
    try:
        # A TOML escape can write NUL (\u0000); no database column takes it.
        document = clean_json(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        line, message = syntax_problem(str(exc), text)
        return OutcomeReport(None, [Problem(source, line, "error", message)], [])
    lines = KeyLines(text)
    problems: list[Problem] = []

    def error(path: tuple[str | int, ...], message: str) -> None:
        problems.append(Problem(source, lines.line(path), "error", message))

    for key in document:
        if key not in _KEYS:
            error((key,), f"unknown key {key!r} (known: {', '.join(_KEYS)})")
    survey = document.get("survey", survey_id)
    if survey != survey_id:
        error(("survey",), f"this file is for {survey!r}, not {survey_id!r}")
    texts = _texts(document.get("text"), ("text",), error)
    if "text" not in document:
        error((), 'text is required, e.g. text.en = "What the city decided"')
    by = document.get("by")
    per_value: dict[str, Mapping[str, str]] = {}
    if by is not None and (not isinstance(by, str) or not by):
        error(("by",), 'by must name a contact attribute, like "district"')
    raw_values = document.get("texts")
    if raw_values is not None and not by:
        error(("texts",), 'texts per value need by = "<attribute>" to say which attribute')
    if by and not isinstance(raw_values, dict):
        error(("by",), "by needs [texts.<value>] tables with the text for each value")
    elif isinstance(raw_values, dict):
        for value, table in raw_values.items():
            found = _texts(table, ("texts", value), error)
            if found:
                per_value[value] = found
    costs: list[tuple[str, str, int, str]] = []
    for where, table in [("text", texts or {})] + [
        (f"texts.{value}", table) for value, table in per_value.items()
    ]:
        for language, message in table.items():
            cost = sms_cost(to_gsm(message))
            costs.append((where, language, cost.segments, cost.encoding))
    if texts and languages and languages[0] not in texts:
        # Whoever has no text in their language gets the default one, so it must be there.
        error(("text",), missing_default(languages[0]))
    elif texts and languages:
        texts = {languages[0]: texts[languages[0]], **texts}  # the default first
    for language in languages:
        if texts and language not in texts and language != languages[0]:
            problems.append(
                Problem(
                    source,
                    lines.line(("text",)),
                    "warning",
                    f"no text in {language}: those citizens get the {next(iter(texts))} text",
                )
            )
    problems.sort(key=lambda p: p.line or 0)
    if any(p.severity == "error" for p in problems):
        return OutcomeReport(None, problems, costs)
    outcome = Outcome(survey_id, texts or {}, by if isinstance(by, str) else None, per_value)
    return OutcomeReport(outcome, problems, costs)


def missing_default(language: str) -> str:
    """The problem of an outcome without a text in the consultation's default language."""
    return (
        f"write the {language} text: {language} is the default language, sent to everyone "
        "without a text in their own language"
    )


def _texts(value: Any, path: tuple[str | int, ...], error: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        error(path, 'texts are given per language, like text.en = "..."')
        return None
    found: dict[str, str] = {}
    for language, message in value.items():
        if not message.strip():
            error((*path, language), f"the {language} text is empty")
        else:
            found[language] = message.strip()
    return found
