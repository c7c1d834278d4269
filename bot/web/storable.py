"""What a channel parsed from a provider's request, made fit for the database before the
service sees it: every text cleaned (:func:`safetext.clean_text`) and cut to the length of
the column it is stored in (:func:`storage.models.column_length`).

The webhook view, Telegram polling and the simulator all pass their items through
:func:`storable`, so no input reaches a column it cannot go into, on SQLite or PostgreSQL.
An address is cut too, as a last guard only: a channel accepts the addresses its rule allows
(:mod:`channels.addresses`), and those fit.

>>> from datetime import UTC, datetime
>>> from messages import Address
>>> raw = InboundMessage(Address("sms", "+15555550100"), "Ja\\x00", "SM" + "9" * 200,
...                      datetime(2026, 1, 1, tzinfo=UTC), payload="k\\ud800")
>>> fit = storable(raw)
>>> fit.text, len(fit.provider_id), fit.payload
('Ja', 128, 'k\\ufffd')
>>> storable(StatusUpdate("sms", "SM1", "failed", "3" * 40)).error_code == "3" * 32
True
"""

from __future__ import annotations

from dataclasses import replace

from channels.base import ButtonPress, Ignored, Parsed, StatusUpdate
from messages import Address, InboundMessage
from safetext import clean_text
from storage.models import Message, StatusReport, column_length

__all__ = ["storable", "storable_message"]

_PROVIDER_ID = column_length(Message.provider_id)
_CHANNEL = column_length(Message.channel)
_ADDRESS = column_length(Message.address)
_STATUS = column_length(StatusReport.status)
_ERROR_CODE = column_length(StatusReport.error_code)
#: Ignored items are only logged: a reason longer than this says nothing more.
_REASON = 200


def storable(item: Parsed) -> Parsed:
    """``item`` with each of its texts cleaned and cut to its column."""
    if isinstance(item, InboundMessage):
        return storable_message(item)
    if isinstance(item, ButtonPress):
        return replace(
            item,
            message=storable_message(item.message),
            callback_id=_line(item.callback_id),
            keyboard_chat=_optional(item.keyboard_chat),
            keyboard_message=_optional(item.keyboard_message),
        )
    if isinstance(item, StatusUpdate):
        return replace(
            item,
            channel=_line(item.channel, _CHANNEL),
            provider_id=_line(item.provider_id, _PROVIDER_ID),
            status=_line(item.status, _STATUS),
            error_code=_optional(item.error_code, _ERROR_CODE),
        )
    assert isinstance(item, Ignored)
    return replace(
        item,
        reason=_line(item.reason, _REASON),
        notify=None if item.notify is None else _address(item.notify),
        provider_id=_optional(item.provider_id, _PROVIDER_ID),
    )


def storable_message(msg: InboundMessage) -> InboundMessage:
    """An inbound message made fit for the database (see the module's docstring)."""
    return replace(
        msg,
        address=_address(msg.address),
        # What the citizen typed keeps its line breaks; the text column has no length.
        text=clean_text(msg.text),
        provider_id=_line(msg.provider_id, _PROVIDER_ID),
        payload=_optional(msg.payload),
    )


def _address(address: Address) -> Address:
    return Address(_line(address.channel, _CHANNEL), _line(address.value, _ADDRESS))


def _line(value: str, limit: int | None = None) -> str:
    return clean_text(value, limit, single_line=True)


def _optional(value: str | None, limit: int | None = None) -> str | None:
    return None if value is None else _line(value, limit)
