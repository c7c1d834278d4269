"""Rendering per channel: one table of cases per registered channel.

DESIGN.md: a registered channel without cases fails the suite.
"""

from __future__ import annotations

import pytest

from channels.base import Button, Rendered
from channels.registry import RENDERERS, renderer
from channels.simulator import display_lines
from messages import Address, Option, OutboundMessage

CHOICES = (
    Option("1", "Every week", "visits:weekly"),
    Option("2", "Every month", "visits:monthly"),
)
SCALE = tuple(Option(str(n), str(n), f"clean:{n}") for n in range(1, 4))
ELEVEN = tuple(Option(str(n), str(n), f"nps:{n}") for n in range(11))


def msg(channel: str, text: str, options: tuple[Option, ...] = ()) -> OutboundMessage:
    return OutboundMessage(Address(channel, "+15555550100"), text, options)


CASES: dict[str, list[tuple[OutboundMessage, Rendered]]] = {
    "sms": [
        (
            msg("sms", "How often?", CHOICES),
            Rendered("How often?\n1 Every week\n2 Every month", segments=1),
        ),
        # A 1-3 scale is described by the text; listing bare numbers would only cost money.
        (msg("sms", "Clean? (1-3)", SCALE), Rendered("Clean? (1-3)", segments=1)),
        # Curly quotes and dashes have faithful GSM-7 equivalents: the SMS stays GSM-7.
        (
            msg("sms", "It’s “fine” – really…"),
            Rendered('It\'s "fine" - really...', segments=1),
        ),
        (msg("sms", "x" * 161), Rendered("x" * 161, segments=2)),
        (msg("sms", "Great 👍"), Rendered("Great 👍", segments=1)),
    ],
    "whatsapp": [
        (
            msg("whatsapp", "How often?", CHOICES),
            Rendered("How often?\n1 Every week\n2 Every month"),
        ),
        (msg("whatsapp", "It’s “fine” 👍"), Rendered("It’s “fine” 👍")),
    ],
    "telegram": [
        (
            msg("telegram", "How often?", CHOICES),
            Rendered(
                "How often?",
                buttons=(
                    (Button("1. Every week", "visits:weekly"),),
                    (Button("2. Every month", "visits:monthly"),),
                ),
            ),
        ),
        (
            msg("telegram", "Clean?", SCALE),
            Rendered(
                "Clean?",
                buttons=((Button("1", "clean:1"), Button("2", "clean:2"), Button("3", "clean:3")),),
            ),
        ),
        # A 0-10 scale: Telegram refuses more than 8 buttons in a row, so two even rows.
        (
            msg("telegram", "Likely? (0-10)", ELEVEN),
            Rendered(
                "Likely? (0-10)",
                buttons=(
                    tuple(Button(str(n), f"nps:{n}") for n in range(6)),
                    tuple(Button(str(n), f"nps:{n}") for n in range(6, 11)),
                ),
            ),
        ),
        (msg("telegram", "Thanks!"), Rendered("Thanks!")),
    ],
}


def test_every_registered_channel_has_cases() -> None:
    assert sorted(CASES) == sorted(RENDERERS)


@pytest.mark.parametrize(
    ("channel", "message", "expected"),
    [(ch, m, r) for ch, cases in CASES.items() for m, r in cases],
)
def test_render(channel: str, message: OutboundMessage, expected: Rendered) -> None:
    assert renderer(channel).render(message) == expected


def test_simulator_shows_telegram_buttons_as_bracketed_keys() -> None:
    rendered = renderer("telegram").render(msg("telegram", "How often?", CHOICES))
    assert display_lines(rendered) == ["How often?", "[1] Every week", "[2] Every month"]


def test_unknown_channel_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown channel 'fax'"):
        renderer("fax")
