"""What a valid address is per channel, decided once for webhooks, the simulator, the terminal
chat and contacts files alike.

A phone address (SMS, WhatsApp) is a number in E.164 form that ``phonenumbers`` knows as a
valid number of its country, or one of the NANP numbers kept for fiction and examples
(555-0100 to 555-0199), which the test phone and the docs use. A WhatsApp user who hides
their number behind a WhatsApp username reaches us as a business-scoped user id (BSUID):
two capital letters (their country), a dot, and up to 128 letters and digits, sometimes with
``ENT.`` between; Twilio writes it as ``whatsapp:US.13491208655302741918``. On Telegram an
address is a numeric chat id.

>>> address_problem("sms", "+32470123456") is None, address_problem("sms", "+15555550100")
(True, None)
>>> address_problem("sms", "+123456")
'use a phone number in international format, like +15555550100'
>>> address_problem("whatsapp", "US.13491208655302741918") is None
True
>>> address_problem("sms", "US.13491208655302741918") is not None
True
>>> [address_problem("telegram", v) is None for v in ("-1001234567890", "9223372036854775807")]
[True, True]
>>> [address_problem("telegram", v) is None for v in ("9223372036854775808", "0", "1e9")]
[False, False, False]
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumber

__all__ = ["TEST_ADDRESSES", "address_problem", "is_phone_number", "usable_number"]

#: E.164: a plus, a country code and at most 15 digits in all (what parsing needs to see).
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")
#: NANP numbers reserved for fiction and examples: not "valid" to phonenumbers.
_FICTION = re.compile(r"\+1[2-9][0-9]{2}55501[0-9]{2}")
#: A WhatsApp business-scoped user id, as Meta documents it.
_WHATSAPP_USER_ID = re.compile(r"[A-Z]{2}\.(?:ENT\.)?[A-Za-z0-9]{1,128}")
#: Telegram chat ids: numeric, negative for groups, within a signed 64-bit integer.
_TELEGRAM_CHAT = re.compile(r"-?[1-9][0-9]{0,18}")
_E164_FORMAT = phonenumbers.PhoneNumberFormat.E164
_PHONE_HINT = "use a phone number in international format, like +15555550100"
#: The staff's test phone per channel: numbers in the 555 fiction range, a made-up chat id.
TEST_ADDRESSES: Mapping[str, str] = {
    "sms": "+15555550100",
    "whatsapp": "+15555550100",
    "telegram": "100000",
}


def usable_number(number: PhoneNumber) -> bool:
    """Whether a parsed phone number is one Voxpop may text: valid for its country, or in
    the fiction range. The one rule for every way a number comes in."""
    if phonenumbers.is_valid_number(number):
        return True
    return bool(_FICTION.fullmatch(phonenumbers.format_number(number, _E164_FORMAT)))


def address_problem(channel: str, value: str) -> str | None:
    """``None`` when ``value`` is a valid address on ``channel``, else what is wrong and how
    to write one (never repeating the value: it is personal data)."""
    if channel == "telegram":
        if _TELEGRAM_CHAT.fullmatch(value) and abs(int(value)) < 2**63:
            return None
        return "use a numeric chat id, like 100000"
    if channel not in ("sms", "whatsapp"):
        return f"unknown channel {channel!r}"
    if channel == "whatsapp" and _WHATSAPP_USER_ID.fullmatch(value):
        return None
    return None if is_phone_number(value) else _PHONE_HINT


def is_phone_number(value: str) -> bool:
    """Whether ``value`` is a phone number Voxpop may text, written in E.164."""
    if not _E164.fullmatch(value):
        return False
    try:
        number = phonenumbers.parse(value, None)
    except NumberParseException:
        return False
    # The E.164 form must be the value itself: one number, one way of writing it.
    return usable_number(number) and phonenumbers.format_number(number, _E164_FORMAT) == value
