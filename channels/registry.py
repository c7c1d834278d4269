"""Every channel Voxpop knows, by name. Adding a channel is one line here."""

from __future__ import annotations

from channels import sms, telegram, whatsapp
from channels.base import Renderer

RENDERERS: dict[str, Renderer] = {m.name: m for m in (sms, whatsapp, telegram)}


def renderer(channel: str) -> Renderer:
    try:
        return RENDERERS[channel]
    except KeyError:
        raise ValueError(f"unknown channel {channel!r} (known: {', '.join(RENDERERS)})") from None
