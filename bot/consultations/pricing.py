"""Every message of a consultation priced as SMS, per language: the intro, each question as
the SMS channel shows it (with its options), and the thanks.

The intro, the questions and an outro come from the validator's own prices
(:attr:`surveys.validate.ValidationReport.costs`, rendered by
:func:`bot.consultations.checking.sms_text`); a file without an outro ends with the engine's
plain thank-you (:func:`bot.conversation.engine.thanks`), rendered by the SMS channel.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from babel import Locale, UnknownLocaleError

from bot.conversation.engine import thanks
from channels import sms
from messages import Address, OutboundMessage
from surveys.sms import Encoding, SmsCost, sms_cost
from surveys.validate import ValidationReport, character_name

__all__ = ["LanguagePrices", "PricedMessage", "language_name", "message_label", "sms_prices"]

#: What one SMS holds, per encoding: alone, and as a part of a longer message.
_ONE_SMS = {"GSM-7": (160, 153), "UCS-2": (70, 67)}


def language_name(code: str) -> str:
    """A language code as staff read it, the code kept for the file.

    >>> language_name("fr"), language_name("xx")
    ('French (fr)', 'xx')
    """
    try:
        name = Locale.parse(code).get_display_name("en")
    except (ValueError, UnknownLocaleError):
        return code
    return f"{name} ({code})" if name else code


@dataclass(frozen=True)
class PricedMessage:
    """One message in one language as an SMS carries it."""

    language: str
    #: ``intro``, ``question 'visits'`` or ``thanks``.
    what: str
    #: The text as the phone shows it (after the GSM-7 replacements).
    text: str
    cost: SmsCost
    #: What the message is, in staff's words: ``Question 2 (visits)``; ``what`` if not given.
    label: str = ""

    @property
    def name(self) -> str:
        return self.label or self.what

    @property
    def explained(self) -> str:
        """Why it takes the SMS it takes, in plain words.

        >>> PricedMessage("fr", "intro", "Bonjour", sms_cost("Bonjour")).explained
        'Fits in one SMS: 7 of 160 characters'
        >>> PricedMessage("fr", "intro", "Votre âge ?", sms_cost("Votre âge ?")).explained
        'Unicode because of ‘â’: one SMS then holds 70 characters, not 160; this one has 11'
        """
        whole, part = _ONE_SMS[self.encoding]
        if self.encoding == "UCS-2":
            shown = ", ".join(f"‘{ch}’" for ch in self.cost.non_gsm[:3])
            more = " and others" if len(self.cost.non_gsm) > 3 else ""
            why = (
                f"Unicode because of {shown}{more}: one SMS then holds {whole} characters, not 160"
            )
            if self.segments <= 1:
                return f"{why}; this one has {self.characters}"
            return f"{why}; these {self.characters} go in parts of up to {part}"
        if self.segments <= 1:
            return f"Fits in one SMS: {self.characters} of {whole} characters"
        return (
            f"{self.characters} characters, more than the {whole} of one SMS: "
            f"sent in parts of up to {part}"
        )

    @property
    def encoding(self) -> Encoding:
        return self.cost.encoding

    @property
    def segments(self) -> int:
        return self.cost.segments

    @property
    def characters(self) -> int:
        return self.cost.characters

    @property
    def forcing_ucs2(self) -> tuple[str, ...]:
        """The characters that make this message UCS-2 (70 characters an SMS, not 160),
        each with its code and name, so staff can find and replace it.

        >>> PricedMessage("en", "intro", "Park 🌳", sms_cost("Park 🌳")).forcing_ucs2
        ('U+1F333 DECIDUOUS TREE 🌳',)
        """
        return tuple(character_name(ch) for ch in self.cost.non_gsm)


@dataclass(frozen=True)
class LanguagePrices:
    """A language's messages; ``segments`` if someone got every one of them."""

    language: str
    messages: tuple[PricedMessage, ...]

    @property
    def segments(self) -> int:
        return sum(m.segments for m in self.messages)

    @property
    def name(self) -> str:
        return language_name(self.language)

    @property
    def longer(self) -> int:
        """How many of its messages take more than one SMS."""
        return sum(1 for m in self.messages if m.segments > 1)

    @property
    def ucs2(self) -> int:
        """How many of its messages go as UCS-2."""
        return sum(1 for m in self.messages if m.encoding == "UCS-2")


def sms_prices(report: ValidationReport) -> list[LanguagePrices]:
    """The SMS price of every message of a checked file, per language in the file's order
    (empty when the file could not be read as a consultation)."""
    by_language: dict[str, list[PricedMessage]] = {}
    survey = report.survey
    numbers = {q.id: n for n, q in enumerate(survey.questions, 1)} if survey else {}
    for cost in report.costs:
        what = "thanks" if cost.where == "outro" else cost.where
        by_language.setdefault(cost.language, []).append(
            PricedMessage(cost.language, what, cost.text, cost.cost, message_label(what, numbers))
        )
    if survey is not None and not survey.outro:
        for language in survey.languages:
            rendered = sms.render(OutboundMessage(Address("sms", ""), thanks(survey, language)))
            text = rendered.text
            priced = PricedMessage(
                language, "thanks", text, sms_cost(text), message_label("thanks", {})
            )
            by_language.setdefault(language, []).append(priced)
    return [LanguagePrices(language, tuple(found)) for language, found in by_language.items()]


def message_label(what: str, numbers: Mapping[str, int]) -> str:
    """``intro`` -> ``Welcome message``; ``question 'visits'`` -> ``Question 2 (visits)``.

    >>> message_label("question 'visits'", {"visits": 2}), message_label("thanks", {})
    ('Question 2 (visits)', 'Thank-you message')
    """
    if what.startswith("question '"):
        question = what.removeprefix("question '").removesuffix("'")
        number = numbers.get(question)
        return f"Question {number} ({question})" if number else f"Question {question}"
    return {"intro": "Welcome message", "thanks": "Thank-you message"}.get(what, what)
