"""How a consultation's messages look on each channel, made by the channels' own rendering
(:mod:`channels.sms`, :mod:`channels.whatsapp`, :mod:`channels.telegram`) from the messages
the engine says, so a preview cannot differ from what is sent."""

from __future__ import annotations

from dataclasses import dataclass

from bot.consultations.pricing import language_name, message_label
from bot.conversation.engine import ask, intro, thanks
from channels.base import Rendered
from channels.registry import renderer
from messages import Address, Option, OutboundMessage
from surveys.model import Survey

__all__ = ["PREVIEW_CHANNELS", "MessagePreview", "previews"]

#: The channels a preview shows, in this order.
PREVIEW_CHANNELS = ("sms", "whatsapp", "telegram")


@dataclass(frozen=True)
class MessagePreview:
    """One message in one language, rendered for each channel."""

    language: str
    #: ``intro``, ``question 'visits'`` or ``thanks``.
    what: str
    #: ``(channel, rendered)`` in :data:`PREVIEW_CHANNELS` order.
    views: tuple[tuple[str, Rendered], ...]
    #: What the message is, in staff's words: ``Question 2 (visits)``.
    label: str = ""

    @property
    def language_name(self) -> str:
        return language_name(self.language)

    def on(self, channel: str) -> Rendered:
        return dict(self.views)[channel]


def previews(survey: Survey) -> list[MessagePreview]:
    """Every message of ``survey`` in every language: intro, questions, thanks."""
    found: list[MessagePreview] = []
    numbers = {q.id: n for n, q in enumerate(survey.questions, 1)}
    for language in survey.languages:
        said: list[tuple[str, str, tuple[Option, ...]]] = []
        opening = intro(survey, language)
        if opening is not None:
            said.append(("intro", opening, ()))
        for question in survey.questions:
            say = ask(survey, question, language)
            said.append((f"question '{question.id}'", say.text, say.options))
        said.append(("thanks", thanks(survey, language), ()))
        for what, text, options in said:
            views = tuple(
                (channel, renderer(channel).render(_message(channel, text, options)))
                for channel in PREVIEW_CHANNELS
            )
            found.append(MessagePreview(language, what, views, message_label(what, numbers)))
    return found


def _message(channel: str, text: str, options: tuple[Option, ...]) -> OutboundMessage:
    return OutboundMessage(Address(channel, ""), text, options)
