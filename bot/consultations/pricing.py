"""Every message of a consultation priced as SMS, per language: the intro, each question as
the SMS channel shows it (with its options), and the thanks.

The intro, the questions and an outro come from the validator's own prices
(:attr:`surveys.validate.ValidationReport.costs`, rendered by
:func:`bot.consultations.checking.sms_text`); a file without an outro ends with the engine's
plain thank-you (:func:`bot.conversation.engine.thanks`), rendered by the SMS channel.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.conversation.engine import thanks
from channels import sms
from messages import Address, OutboundMessage
from surveys.sms import Encoding, SmsCost, sms_cost
from surveys.validate import ValidationReport, character_name

__all__ = ["LanguagePrices", "PricedMessage", "sms_prices"]


@dataclass(frozen=True)
class PricedMessage:
    """One message in one language as an SMS carries it."""

    language: str
    #: ``intro``, ``question 'visits'`` or ``thanks``.
    what: str
    #: The text as the phone shows it (after the GSM-7 replacements).
    text: str
    cost: SmsCost

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
    def ucs2(self) -> int:
        """How many of its messages go as UCS-2."""
        return sum(1 for m in self.messages if m.encoding == "UCS-2")


def sms_prices(report: ValidationReport) -> list[LanguagePrices]:
    """The SMS price of every message of a checked file, per language in the file's order
    (empty when the file could not be read as a consultation)."""
    by_language: dict[str, list[PricedMessage]] = {}
    for cost in report.costs:
        what = "thanks" if cost.where == "outro" else cost.where
        by_language.setdefault(cost.language, []).append(
            PricedMessage(cost.language, what, cost.text, cost.cost)
        )
    survey = report.survey
    if survey is not None and not survey.outro:
        for language in survey.languages:
            rendered = sms.render(OutboundMessage(Address("sms", ""), thanks(survey, language)))
            priced = PricedMessage(language, "thanks", rendered.text, sms_cost(rendered.text))
            by_language.setdefault(language, []).append(priced)
    return [LanguagePrices(language, tuple(found)) for language, found in by_language.items()]
