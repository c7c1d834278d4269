"""Long polling for Telegram: local development without a public URL. Updates go through the
same parsing and service as the webhook, so the conversation is the same."""

from __future__ import annotations

import json
import logging
from datetime import datetime

from bot.service import Service
from bot.web.webhooks import handle_parsed
from channels import telegram_webhook
from channels.base import BadRequest, WebhookRequest
from channels.ids import decimal_id
from channels.telegram_send import TelegramSender

log = logging.getLogger(__name__)


async def poll_once(
    sender: TelegramSender, service: Service, offset: int | None, now: datetime, timeout: int
) -> int | None:
    """Fetch and handle one round of updates; the offset for the next round."""
    for update in await sender.get_updates(offset, timeout):
        update_id = decimal_id(update.get("update_id"))
        if update_id is None:
            log.warning("update skipped: it has no usable update_id")
            continue
        offset = update_id + 1
        request = WebhookRequest(url="polling", headers={}, body=json.dumps(update).encode())
        try:
            items = telegram_webhook.parse(request, now)
        except BadRequest as exc:
            log.warning("update skipped: %s", exc)
            continue
        for item in items:
            handle_parsed(service, item)
    return offset
