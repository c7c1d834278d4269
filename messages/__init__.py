"""Channel-agnostic message types shared by the engine, the service and the channels."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypeAlias

ChannelName: TypeAlias = Literal["sms", "whatsapp", "telegram"]
CHANNEL_NAMES: tuple[ChannelName, ...] = ("sms", "whatsapp", "telegram")
#: How people write each channel's name: the one spelling of every page, chart and table.
CHANNEL_LABELS: Mapping[str, str] = {"sms": "SMS", "whatsapp": "WhatsApp", "telegram": "Telegram"}


def channel_label(name: str) -> str:
    """A channel as staff read it; an unknown one as it is stored.

    >>> channel_label("whatsapp"), channel_label("fax")
    ('WhatsApp', 'fax')
    """
    return CHANNEL_LABELS.get(name, name)


MessageKind: TypeAlias = Literal["reply", "push"]


@dataclass(frozen=True)
class Address:
    """Where a citizen is reached: ``("sms", "+32470123456")``, ``("telegram", "81234")``."""

    channel: str
    value: str


@dataclass(frozen=True)
class Option:
    """One answer option as shown to the citizen: ``key`` is what they may type (``2``, ``B``)."""

    key: str
    label: str
    payload: str


@dataclass(frozen=True)
class InboundMessage:
    address: Address
    text: str
    provider_id: str
    received_at: datetime
    #: Button data (Telegram callback data, WhatsApp ButtonPayload), when a button was pressed.
    payload: str | None = None


@dataclass(frozen=True)
class OutboundMessage:
    address: Address
    text: str
    options: tuple[Option, ...] = ()
    kind: MessageKind = "reply"


def options_of(payload: Any) -> tuple[Option, ...]:
    """The options an outbox row's payload holds (``{"options": [{key, label, payload}]}``).

    >>> options_of({"options": [{"key": "1", "label": "Yes", "payload": "q:yes"}]})
    (Option(key='1', label='Yes', payload='q:yes'),)
    >>> options_of(None)
    ()
    """
    if not isinstance(payload, Mapping):
        return ()
    return tuple(
        Option(str(o["key"]), str(o["label"]), str(o["payload"]))
        for o in payload.get("options", ())
    )


def stored_outbound(address: Address, text: str, kind: str | None, payload: Any) -> OutboundMessage:
    """An outbox row as the channel-agnostic message it holds: its options from the payload;
    kinds other than ``push`` (replies, chores) read as replies.

    >>> stored_outbound(Address("sms", "+15555550100"), "Hi", "push", None).kind
    'push'
    """
    return OutboundMessage(
        address, text, options_of(payload), "push" if kind == "push" else "reply"
    )
