"""The built-in simulator channel: shows what a citizen would see, as lines of text.

Staff use it (``voxpop chat``, ``/simulator``) to try a consultation exactly as it will
look on each channel: a numbered GSM-7 list for SMS, ``[1] Every week`` buttons for Telegram.
"""

from __future__ import annotations

from channels.base import Rendered

PREFIX = "bot> "


def display_lines(rendered: Rendered) -> list[str]:
    """The rendered message as transcript lines (without the ``bot> `` prefix)."""
    lines = rendered.text.split("\n")
    for row in rendered.buttons:
        lines.append("  ".join(f"[{_key(b.label)}] {_rest(b.label)}".rstrip() for b in row))
    return lines


def _key(label: str) -> str:
    key, sep, _ = label.partition(". ")
    return key if sep else label


def _rest(label: str) -> str:
    _, sep, rest = label.partition(". ")
    return rest if sep else ""
