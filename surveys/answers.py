"""Interpret a citizen's reply to one question: a mistake is data, not an exception.

``interpret(question, text, language)`` returns :class:`Accepted` with a typed value, or
:class:`Reask` with a reason code the engine turns into a short localized hint.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from surveys.model import AnswerValue, Question

ReaskReason: TypeAlias = Literal[
    "choose_one",  # params: low, high (keys as shown: "1".."3" or "A".."C")
    "ambiguous",  # several options match; params: low, high
    "choose_many",  # params: low, high
    "too_few",  # params: min
    "too_many",  # params: max
    "yesno",
    "scale",  # params: low, high
    "number",  # params: low, high (may be absent when unbounded)
    "integer",
    "text_empty",
    "text_too_long",  # params: max
]


@dataclass(frozen=True)
class Accepted:
    value: AnswerValue
    #: How the reply was understood, kept with the answer for audit: "number", "word",
    #: "letter", "label", "prefix", "fuzzy", "yesno", "stars", "text", "payload"...
    how: str


@dataclass(frozen=True)
class Reask:
    reason: ReaskReason
    params: Mapping[str, str | int | float] = field(default_factory=dict)


Interpretation: TypeAlias = Accepted | Reask


def interpret(
    question: Question, text: str, language: str, languages: tuple[str, ...] = ()
) -> Interpretation:
    """Interpret ``text`` as an answer to ``question`` (labels in ``language`` first,
    then in the other ``languages`` of the survey)."""
    raise NotImplementedError
