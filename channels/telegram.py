"""Telegram: options as inline-keyboard buttons; typed answers are still accepted."""

from __future__ import annotations

from channels.base import Button, Capabilities, Rendered
from messages import OutboundMessage

name = "telegram"
capabilities = Capabilities(max_length=4096, buttons=True, gsm7=False)
#: Buttons per keyboard row: short labels (a scale) share a row, long labels get their own.
_SHORT_LABEL = 4
#: Telegram takes at most 8 inline buttons in a row (a 0-10 scale needs two rows).
MAX_ROW = 8


def render(message: OutboundMessage) -> Rendered:
    buttons = tuple(
        Button(o.label if o.label == o.key else f"{o.key}. {o.label}", o.payload)
        for o in message.options
    )
    if buttons and all(len(b.label) <= _SHORT_LABEL for b in buttons):
        count = -(-len(buttons) // MAX_ROW)  # rows needed; then rows of even length
        width = -(-len(buttons) // count)
        rows: tuple[tuple[Button, ...], ...] = tuple(
            buttons[i : i + width] for i in range(0, len(buttons), width)
        )
    else:
        rows = tuple((b,) for b in buttons)
    return Rendered(text=message.text, buttons=rows)
