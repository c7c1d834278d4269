"""SMS: a numbered list in GSM-7 where a faithful equivalent exists; segments counted."""

from __future__ import annotations

from channels.base import Capabilities, Rendered, numbered_list
from messages import OutboundMessage
from surveys.sms import sms_cost, to_gsm

name = "sms"
# Providers concatenate long texts; 1600 characters is Twilio's limit for one message.
capabilities = Capabilities(max_length=1600, buttons=False, gsm7=True)


def render(message: OutboundMessage) -> Rendered:
    text = to_gsm(numbered_list(message))
    return Rendered(text=text, segments=sms_cost(text).segments)
