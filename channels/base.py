"""The channel contract: what a channel can show, and how a message is rendered for it.

Rendering is pure. The same question is buttons on Telegram and a numbered list on SMS;
whatever the citizen types back (``1``, ``one``, the label) maps to the same choice.
Sending, webhook verification and parsing join this contract with the real providers.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import TracebackType
from typing import Protocol, Self, TypeAlias

from messages import Address, InboundMessage, OutboundMessage


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


class FormFields(Mapping[str, str]):
    """The fields of a form body in their order, a name possibly more than once. As a mapping
    a name gives its first value; :meth:`getlist` gives them all, which is what Twilio signs
    (its SDK's validator reads ``getlist``).

    >>> form = FormFields([("To", "+1"), ("MediaUrl", "a"), ("MediaUrl", "b")])
    >>> form["MediaUrl"], form.getlist("MediaUrl"), len(form)
    ('a', ['a', 'b'], 2)
    """

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        self._values: dict[str, list[str]] = {}
        for name, value in pairs:
            self._values.setdefault(name, []).append(value)

    def __getitem__(self, name: str) -> str:
        return self._values[name][0]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def getlist(self, name: str) -> list[str]:
        """Every value given for ``name``, in order (none: an empty list)."""
        return list(self._values.get(name, ()))


@dataclass(frozen=True)
class WebhookRequest:
    """A provider's HTTP request, framework-free, so channels stay testable without Flask."""

    #: The URL the provider called, as it sees it: ``server.public_url`` plus the path and
    #: query (signatures are computed over it, so a proxy must not change it).
    url: str
    #: Header names in lower case.
    headers: Mapping[str, str]
    body: bytes
    #: The form fields of an ``application/x-www-form-urlencoded`` body, else empty; a
    #: :class:`FormFields` keeps every value of a repeated name.
    form: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StatusUpdate:
    """A delivery report for a message we sent (Twilio status callbacks)."""

    channel: str
    provider_id: str
    #: queued, sent, delivered, read, undelivered or failed.
    status: str
    error_code: str | None = None


@dataclass(frozen=True)
class Ignored:
    """A well-formed update Voxpop does not act on (a sticker, an edit, a group chat).

    ``notify`` is the address to tell, politely, to reply with text; ``None`` stays silent.
    """

    reason: str
    notify: Address | None = None
    provider_id: str | None = None


@dataclass(frozen=True)
class ButtonPress:
    """A tapped inline button: the inbound message plus what the provider needs to confirm it."""

    message: InboundMessage
    #: Telegram's callback query id, answered with answerCallbackQuery.
    callback_id: str
    #: The chat and message carrying the keyboard, so it can be removed once answered.
    keyboard_chat: str | None = None
    keyboard_message: str | None = None


Parsed: TypeAlias = InboundMessage | ButtonPress | StatusUpdate | Ignored


class BadRequest(Exception):
    """Malformed provider input: answered with a 4xx and ``str(exc)`` as the reason."""


@dataclass(frozen=True)
class SendReceipt:
    provider_id: str
    #: SMS segments billed, when the provider or our count knows it.
    segments: int | None = None
    #: The approved template sent instead of the text (WhatsApp outside its window).
    template: str | None = None


class Channel(Renderer, Protocol):
    """A channel behind one small contract. The webhook view, not the channel, calls
    :meth:`verify` first and answers 403 when it fails (DESIGN.md)."""

    def verify(self, request: WebhookRequest) -> bool:
        """Whether the request really comes from the provider (constant-time compare)."""
        ...

    def parse(self, request: WebhookRequest, now: datetime) -> list[Parsed]:
        """What the request carries; raises :class:`BadRequest` on malformed input."""
        ...

    async def send(self, address: Address, rendered: Rendered) -> SendReceipt:
        """Send one message; raises a :class:`channels.errors.SendError` subclass."""
        ...


def numbered_list(message: OutboundMessage) -> str:
    """Question text followed by one ``key label`` line per option.

    Options whose label is just their key (a 1-5 scale) are already described by the text,
    so they are not listed: a basic phone shows every line, and each one costs.

    >>> from messages import Address, Option
    >>> m = OutboundMessage(Address("sms", "+1"), "Q?", (Option("1", "Yes", "q:yes"),))
    >>> numbered_list(m)
    'Q?\\n1 Yes'
    """
    lines = [message.text]
    lines += [f"{o.key} {o.label}" for o in message.options if o.label != o.key]
    return "\n".join(lines)


class Lifecycle:
    """``async with`` for objects with ``initialize()`` and ``shutdown()`` (SDK clients)."""

    async def initialize(self) -> None:
        """Open connections (nothing by default)."""

    async def shutdown(self) -> None:
        """Close connections (nothing by default)."""

    async def __aenter__(self) -> Self:
        await self.initialize()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.shutdown()
