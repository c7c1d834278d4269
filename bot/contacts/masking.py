"""Addresses as staff may see them on a screen: enough to tell two apart, not to dial one.

The CLI's ``contacts list`` and ``show`` and every console page use these, so no page and no
terminal shows a whole phone number or chat id (unless the CLI is asked to).
"""

from __future__ import annotations

import re
from typing import Final

import phonenumbers

__all__ = ["MASK", "mask", "mask_numbers_in"]

MASK: Final = "•"
#: A run of digits that may be a phone number or a chat id inside free text.
_NUMBER_IN_TEXT: Final = re.compile(r"\+?\d(?:[\d .\-/()]{4,}\d)")
#: Fewer digits than this in a run are a year, a count, a house number: left alone.
_MIN_DIGITS: Final = 6


def mask(channel: str, value: str) -> str:
    """An address as staff may see it on screen: the country and first group, the last two
    digits, the rest hidden.

    >>> mask("sms", "+32470000056")
    '+32 470 •• •• 56'
    >>> mask("whatsapp", "+15555550123")
    '+1 555-•••-••23'
    >>> mask("telegram", "81234567")
    '••••••67'
    """
    if channel == "telegram" or not value.startswith("+"):
        return MASK * max(len(value) - 2, 0) + value[-2:]
    try:
        shown = phonenumbers.format_number(
            phonenumbers.parse(value, None), phonenumbers.PhoneNumberFormat.INTERNATIONAL
        )
    except phonenumbers.NumberParseException:
        shown = value
    runs = list(re.finditer(r"\d+", shown))
    total = sum(len(run.group()) for run in runs)
    visible = {i for run in runs[:2] for i in range(run.start(), run.end())}
    # The last two digits stay visible: enough to tell two numbers apart on screen.
    digit_positions = [i for i, char in enumerate(shown) if char.isdigit()]
    visible.update(digit_positions[-2:] if total > 4 else [])
    return "".join(
        char if not char.isdigit() or i in visible else MASK for i, char in enumerate(shown)
    )


def mask_numbers_in(text: str) -> str:
    """Free text (an answer a citizen typed) with every long run of digits hidden but its
    last two: a phone number written in an answer is not shown whole either.

    >>> mask_numbers_in("call me on +32 470 12 34 56 after 2026")
    'call me on +•• ••• •• •• 56 after 2026'
    """

    def hide(match: re.Match[str]) -> str:
        found = match.group()
        digits = sum(char.isdigit() for char in found)
        if digits < _MIN_DIGITS:
            return found
        seen = 0
        out = []
        for char in found:
            if char.isdigit():
                seen += 1
                out.append(char if seen > digits - 2 else MASK)
            else:
                out.append(char)
        return "".join(out)

    return _NUMBER_IN_TEXT.sub(hide, text)
