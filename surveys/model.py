"""The consultation model: frozen, typed, channel-agnostic.

A :class:`Survey` is what :mod:`surveys.loader` builds from a TOML file. Everything
here is pure data; translations are ``{language: text}`` mappings.

>>> q = Question(id="ok", type="yesno", text={"en": "OK?"})
>>> q.text_in("fr", default="en")
'OK?'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, TypeAlias

QuestionType: TypeAlias = Literal["choice", "multi", "yesno", "scale", "number", "text"]
QUESTION_TYPES: tuple[QuestionType, ...] = ("choice", "multi", "yesno", "scale", "number", "text")
Numbering: TypeAlias = Literal["numbers", "letters"]

#: A stored answer value, JSON-typed: choice id, list of choice ids, bool, int, float, str;
#: ``None`` means an optional question that was skipped.
AnswerValue: TypeAlias = str | list[str] | bool | int | float | None

Translations: TypeAlias = Mapping[str, str]


def pick(texts: Translations, language: str, default: str) -> str:
    """The text in ``language``, else in ``default``, else any.

    >>> pick({"en": "Hi", "nl": "Hoi"}, "nl", "en")
    'Hoi'
    >>> pick({"en": "Hi"}, "de", "en")
    'Hi'
    """
    if language in texts:
        return texts[language]
    if default in texts:
        return texts[default]
    return next(iter(texts.values()), "")


@dataclass(frozen=True)
class Choice:
    id: str
    label: Translations

    def label_in(self, language: str, default: str) -> str:
        return pick(self.label, language, default)


@dataclass(frozen=True)
class Range:
    """An inclusive bound used in ``when`` for scale/number questions."""

    min: float | None = None
    max: float | None = None

    def holds(self, value: float) -> bool:
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)


#: One ``when`` condition: a choice id, a list of choice ids (any of), a bool (yesno),
#: or a :class:`Range` (scale/number).
Condition: TypeAlias = str | tuple[str, ...] | bool | Range


@dataclass(frozen=True)
class Question:
    id: str
    type: QuestionType
    text: Translations
    optional: bool = False
    when: Mapping[str, Condition] = field(default_factory=dict)
    choices: tuple[Choice, ...] = ()
    numbering: Numbering = "numbers"
    min_choices: int = 1
    max_choices: int | None = None
    # scale: integers min..max; number: bounds (None = unbounded)
    min: float | None = None
    max: float | None = None
    min_label: Translations = field(default_factory=dict)
    max_label: Translations = field(default_factory=dict)
    integer: bool = False
    max_length: int = 1000
    #: yesno only: the answer records whether the citizen wants future consultations.
    consent: bool = False

    def text_in(self, language: str, default: str) -> str:
        return pick(self.text, language, default)

    @property
    def free_text(self) -> bool:
        """Whether its answers are what the citizen typed, as they typed it: they can name
        someone, so FORGET erases them and an export can leave them out (docs/results.md).

        >>> Question(id="q", type="text", text={}).free_text
        True
        """
        return self.type == "text"

    def choice(self, choice_id: str) -> Choice | None:
        return next((c for c in self.choices if c.id == choice_id), None)

    def option_key(self, index: int) -> str:
        """What the citizen types for the option at ``index`` (0-based): ``1`` or ``A``.

        >>> Question(id="q", type="choice", text={}, numbering="letters").option_key(1)
        'B'
        """
        return chr(ord("A") + index) if self.numbering == "letters" else str(index + 1)


@dataclass(frozen=True)
class Survey:
    id: str
    title: Translations
    languages: tuple[str, ...]
    questions: tuple[Question, ...]
    keywords: tuple[str, ...] = ()
    intro: Translations = field(default_factory=dict)
    outro: Translations = field(default_factory=dict)
    closes_at: datetime | None = None
    #: Hash of the source text; a changed file is a new version.
    digest: str = ""

    @property
    def default_language(self) -> str:
        return self.languages[0]

    def language_for(self, preferred: str | None) -> str:
        """The language this survey speaks to a citizen: ``preferred`` (the language they
        chose, with LANG or in their contacts file; None if they never did) if the survey has
        it, else the survey's first language. This is the one rule for a keyword, an
        invitation and the simulator alike: never pass ``[conversation] default_language``
        in place of a missing choice, or a ``["nl", "en"]`` survey would start in English.

        >>> park = Survey("park", {}, ("nl", "en"), ())
        >>> park.language_for(None), park.language_for("en"), park.language_for("de")
        ('nl', 'en', 'nl')
        """
        if preferred and preferred in self.languages:
            return preferred
        return self.default_language

    def question(self, question_id: str) -> Question | None:
        return next((q for q in self.questions if q.id == question_id), None)

    @property
    def consent_question(self) -> Question | None:
        """The question asking whether the citizen wants future consultations, if any."""
        return next((q for q in self.questions if q.consent), None)

    def is_closed(self, now: datetime) -> bool:
        return self.closes_at is not None and now >= self.closes_at
