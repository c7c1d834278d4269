"""What a valid address looks like per channel, as a provider would deliver it.

>>> address_problem("sms", "+32470123456") is None
True
>>> address_problem("sms", "0470123456")
'use a phone number in international format, like +15555550100'
"""

from __future__ import annotations

import re
from collections.abc import Mapping

# E.164 numbers for SMS and WhatsApp; numeric chat ids (negative for groups) on Telegram.
_PATTERNS: Mapping[str, re.Pattern[str]] = {
    "sms": re.compile(r"\+[1-9][0-9]{5,14}"),
    "whatsapp": re.compile(r"\+[1-9][0-9]{5,14}"),
    "telegram": re.compile(r"-?[1-9][0-9]{0,19}"),
}
_HINTS: Mapping[str, str] = {
    "sms": "a phone number in international format, like +15555550100",
    "whatsapp": "a phone number in international format, like +15555550100",
    "telegram": "a numeric chat id, like 100000",
}
#: The staff's test phone per channel: numbers in the 555 fiction range, a made-up chat id.
TEST_ADDRESSES: Mapping[str, str] = {
    "sms": "+15555550100",
    "whatsapp": "+15555550100",
    "telegram": "100000",
}


def address_problem(channel: str, value: str) -> str | None:
    """``None`` when ``value`` is a valid address on ``channel``, else how to write one."""
    pattern = _PATTERNS.get(channel)
    if pattern is None:
        return f"unknown channel {channel!r}"
    return None if pattern.fullmatch(value) else f"use {_HINTS[channel]}"
