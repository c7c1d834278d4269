"""Ids that come from outside (a provider's message id, an update id) are data: their shape
is read, never trusted. ``int()`` would take ``" 12"``, ``"1_000"``, ``"١٢"`` or raise on
``"12a"``; :func:`decimal_id` takes plain ASCII digits that fit a 64-bit column, or nothing.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["decimal_id"]

#: Up to 18 digits: every such number fits a signed 64-bit integer.
_DECIMAL: Final = re.compile(r"[0-9]{1,18}")
_LIMIT: Final = 10**18


def decimal_id(value: object) -> int | None:
    """``value`` as a non-negative integer id, or ``None`` when it has not that shape.

    >>> decimal_id("42"), decimal_id(42), decimal_id("0042")
    (42, 42, 42)
    >>> [decimal_id(v) for v in ("", "12a", "-1", " 12", "1_000", "١٢", "²", True, 1.0)]
    [None, None, None, None, None, None, None, None, None]
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value < _LIMIT else None
    if isinstance(value, str) and _DECIMAL.fullmatch(value):
        return int(value)
    return None
