"""WhatsApp: a numbered list in full Unicode; free-form only inside the 24-hour window."""

from __future__ import annotations

from datetime import timedelta

from channels.base import Capabilities, Rendered, numbered_list
from messages import OutboundMessage

name = "whatsapp"
capabilities = Capabilities(
    max_length=4096, buttons=False, gsm7=False, session_window=timedelta(hours=24)
)


def render(message: OutboundMessage) -> Rendered:
    return Rendered(text=numbered_list(message))
