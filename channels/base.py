"""The channel contract: what a channel can show, and how a message is rendered for it.

Rendering is pure. The same question is buttons on Telegram and a numbered list on SMS;
whatever the citizen types back (``1``, ``one``, the label) maps to the same choice.
Sending, webhook verification and parsing join this contract with the real providers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from bot.messages import OutboundMessage


@dataclass(frozen=True)
class Capabilities:
    #: Longest text the provider accepts in one message.
    max_length: int
    #: Options can be shown as tappable buttons.
    buttons: bool
    #: Text is normalised to GSM-7 and billed per segment.
    gsm7: bool
    #: Free-form messages are allowed only this long after the citizen's last message.
    session_window: timedelta | None = None


@dataclass(frozen=True)
class Button:
    label: str
    payload: str


@dataclass(frozen=True)
class Rendered:
    """A message as the channel will carry it."""

    text: str
    buttons: tuple[tuple[Button, ...], ...] = ()
    #: SMS segments billed (SMS only).
    segments: int | None = None


class Renderer(Protocol):
    name: str
    capabilities: Capabilities

    def render(self, message: OutboundMessage) -> Rendered: ...


def numbered_list(message: OutboundMessage) -> str:
    """Question text followed by one ``key label`` line per option.

    Options whose label is just their key (a 1-5 scale) are already described by the text,
    so they are not listed: a basic phone shows every line, and each one costs.

    >>> from bot.messages import Address, Option
    >>> m = OutboundMessage(Address("sms", "+1"), "Q?", (Option("1", "Yes", "q:yes"),))
    >>> numbered_list(m)
    'Q?\\n1 Yes'
    """
    lines = [message.text]
    lines += [f"{o.key} {o.label}" for o in message.options if o.label != o.key]
    return "\n".join(lines)
