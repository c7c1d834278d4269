"""The real senders for the configured channels, as the dispatcher's :data:`Deliver` functions,
and each channel's :class:`~bot.delivery.sending.Pacing` from the config.

An outbox row is rendered for its channel here, at send time, so a change in rendering rules
applies to messages still waiting. Rendering is pure and does not depend on the address, so
a push's question is rendered (and its SMS segments counted) once for all its recipients,
not once for the claim's pacing and again for each send. Telegram chores queued by the
webhook (answering a button press, removing an answered keyboard) are outbox rows too: the
webhook never calls out.
A WhatsApp invitation outside the 24-hour window goes as the approved template configured for
its survey and language (``[twilio] whatsapp_templates``).

One channel's failure never stops the others: a sender that cannot start (Telegram refusing
the token, say) is reported on the process's :class:`~bot.health.Board` and tried again with
backoff, while the dispatcher claims nothing for its channels until it is up; the other
channels send meanwhile. :func:`dispatch_forever` writes the board to the dispatcher's
heartbeat, which ``GET /readyz`` reads (docs/delivery.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, nullcontext
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config, find_template
from bot.delivery.dispatcher import Dispatcher
from bot.delivery.pipeline import first
from bot.delivery.sending import Deliver, DispatchSettings, Job, Pacing
from bot.health import (
    BEAT_SECONDS,
    OK,
    SENDER_CHANNELS,
    Board,
    Heartbeat,
    configured_channels,
    send_problem,
    start_problem,
)
from bot.service import CALLBACK_ANSWER, KEYBOARD_REMOVE, Clock, utc_now
from channels import errors, sms, telegram, whatsapp
from channels.base import Lifecycle, Rendered, SendReceipt
from channels.telegram_send import TelegramSender
from channels.twilio_send import TwilioSender
from messages import Address, Option, OutboundMessage, stored_outbound
from storage import outbox_bell

log = logging.getLogger(__name__)


def outbound(job: Job) -> OutboundMessage:
    """The channel-agnostic message an outbox row holds."""
    return stored_outbound(Address(job.channel, job.address), job.text, job.kind, job.payload)


_RENDERERS: dict[str, Callable[[OutboundMessage], Rendered]] = {
    "sms": sms.render,
    "telegram": telegram.render,
    "whatsapp": whatsapp.render,
}


@functools.lru_cache(maxsize=4096)
def _render(
    channel: str, kind: str, text: str, options: tuple[tuple[str, str, str], ...]
) -> Rendered:
    message = OutboundMessage(
        Address(channel, ""),
        text,
        tuple(Option(*option) for option in options),
        "push" if kind == "push" else "reply",
    )
    return _RENDERERS[channel](message)


def rendered(job: Job) -> Rendered:
    """``job`` as its channel renders it (the same for every address: cached).

    >>> job = Job(1, "sms", "+15555550123", "reply", "Hi…", None, 1)
    >>> rendered(job).text, rendered(job).segments, rendered(job) is rendered(job)
    ('Hi...', 1, True)
    """
    options: tuple[tuple[str, str, str], ...] = ()
    if isinstance(job.payload, Mapping) and job.payload.get("options"):
        # Plain tuples: a cheaper cache key than Option objects, built twice per message.
        options = tuple(
            (str(o["key"]), str(o["label"]), str(o["payload"])) for o in job.payload["options"]
        )
    return _render(job.channel, job.kind, job.text, options)


def _sms_segments(job: Job) -> int:
    return rendered(job).segments or 1


def _telegram_cost(job: Job) -> int:
    # Answering a tapped button shows nothing in the chat and must not wait behind messages.
    return 0 if job.kind == CALLBACK_ANSWER else 1


def pacing(config: Config) -> dict[str, Pacing]:
    """Each configured channel's limits, shared by all dispatchers (docs/delivery.md).

    >>> from bot.config import TwilioConfig
    >>> twilio = TwilioConfig(account_sid="AC1", auth_token="t", sms_from="+15555550199")
    >>> p = pacing(Config(twilio=twilio))["sms"]
    >>> p.key, p.per_second
    ('sms:+15555550199', 10.0)
    """
    found: dict[str, Pacing] = {}
    tg, twilio = config.telegram, config.twilio
    channels = configured_channels(config)
    if "telegram" in channels:
        found["telegram"] = Pacing(
            key="telegram",
            per_second=tg.messages_per_second,
            per_address=timedelta(seconds=1 / tg.per_chat_per_second),
            cost=_telegram_cost,
        )
    if "sms" in channels:
        sender = twilio.messaging_service_sid or twilio.sms_from
        found["sms"] = Pacing(
            key=f"sms:{sender}",
            per_second=twilio.sms_segments_per_second,
            cost=_sms_segments,
            # Twilio's 429 is about concurrent API requests, not the sender's pace: the
            # message retries with backoff, the others go on.
            throttle_holds_sender=False,
        )
    if "whatsapp" in channels:
        found["whatsapp"] = Pacing(
            key=f"whatsapp:{twilio.whatsapp_from}",
            per_second=twilio.whatsapp_messages_per_second,
            session_window=whatsapp.capabilities.session_window,
            throttle_holds_sender=False,
        )
    return found


class _Available(Mapping[str, Deliver]):
    """The senders of the channels that are up, as the dispatcher reads them at each claim
    (a channel that went down is left alone until it is back)."""

    def __init__(self, delivers: Mapping[str, Deliver], down: Callable[[], frozenset[str]]):
        self._delivers = dict(delivers)
        self._down = down

    def __getitem__(self, channel: str) -> Deliver:
        # Always found: a message claimed just before its channel went down is still tried.
        return self._delivers[channel]

    def __iter__(self) -> Iterator[str]:
        down = self._down()
        return iter([channel for channel in self._delivers if channel not in down])

    def __len__(self) -> int:
        return sum(1 for _ in self)


class Transports(Lifecycle):
    """Opens the senders of the configured channels; use as ``async with`` in the loop that
    sends (the SDKs' connection pools belong to one event loop).

    A sender that fails to open is retried after ``restart_after`` seconds, doubling up to
    ``restart_max``; its channels' state is on ``board`` (:mod:`bot.health`).
    """

    def __init__(
        self,
        config: Config,
        board: Board | None = None,
        *,
        restart_after: float = 5.0,
        restart_max: float = 300.0,
    ) -> None:
        self._templates = config.twilio.whatsapp_templates
        self._default_language = config.conversation.default_language
        self.board = board if board is not None else Board()
        self._channels = configured_channels(config)
        self._restart_after = restart_after
        self._restart_max = restart_max
        self._down: frozenset[str] = frozenset()
        self._restarts: set[asyncio.Task[None]] = set()
        timeout = config.dispatch.send_timeout_seconds
        self.telegram = None
        if config.telegram.enabled:
            self.telegram = TelegramSender(config.telegram, timeout=timeout)
        twilio = config.twilio
        self.twilio = None
        if twilio.enabled:
            callback = config.server.public_url.rstrip("/") + "/webhooks/twilio/status"
            self.twilio = TwilioSender(twilio, status_callback=callback, timeout=timeout)

    def delivers(self) -> Mapping[str, Deliver]:
        """The senders by channel, only those up when iterated (the dispatcher's claims)."""
        found: dict[str, Deliver] = {}
        if self.telegram is not None:
            found["telegram"] = self._telegram
        if self.twilio is not None and "sms" in self._channels:
            found["sms"] = self._sms_send
        if self.twilio is not None and "whatsapp" in self._channels:
            found["whatsapp"] = self._whatsapp_send
        return _Available(found, lambda: self._down)

    @property
    def down(self) -> frozenset[str]:
        """The channels whose sender is not open (waiting for its next try)."""
        return self._down

    async def _telegram(self, job: Job) -> SendReceipt:
        assert self.telegram is not None
        payload = job.payload if isinstance(job.payload, Mapping) else {}
        # Chores carry no provider id: (direction, channel, provider_id) is unique.
        if job.kind == CALLBACK_ANSWER:
            callback = payload.get("callback_id")
            if not isinstance(callback, str) or not callback:
                raise errors.Rejected("telegram: a button answer without its callback id")
            await self.telegram.answer_callback(callback)
            return SendReceipt(provider_id="")
        if job.kind == KEYBOARD_REMOVE:
            await self.telegram.remove_keyboard(job.address, payload.get("message_id"))
            return SendReceipt(provider_id="")
        receipt = await self.telegram.send(Address(job.channel, job.address), rendered(job))
        # Telegram numbers messages per chat: the chat makes the id unique.
        return SendReceipt(f"{job.address}:{receipt.provider_id}", receipt.segments)

    async def _sms_send(self, job: Job) -> SendReceipt:
        assert self.twilio is not None
        return await self.twilio.send(Address(job.channel, job.address), rendered(job))

    async def _whatsapp_send(self, job: Job) -> SendReceipt:
        assert self.twilio is not None
        address = Address(job.channel, job.address)
        if job.template:
            return await self._whatsapp_template(job, address)
        return await self.twilio.send(address, rendered(job))

    async def _whatsapp_template(self, job: Job, address: Address) -> SendReceipt:
        """An invitation outside the 24-hour window: its survey's approved template."""
        assert self.twilio is not None
        invitation: Mapping[str, Any] = job.payload["invitation"]
        survey = str(invitation.get("survey", ""))
        languages = (str(invitation.get("language", "")), *invitation.get("languages", ()))
        languages += (self._default_language,)
        found = find_template(self._templates, survey, tuple(dict.fromkeys(languages)))
        if found is None:
            raise errors.NoTemplate(
                f"whatsapp: outside the 24-hour window and no template for {survey} in "
                f"{', '.join(dict.fromkeys(languages))} ([twilio] whatsapp_templates)"
            )
        language, template = found
        values = {name: str(invitation.get(name, "")) for name in ("title", "keyword", "questions")}
        # A template in another language than the citizen's (a fallback) gets its variables
        # in its own language: no Dutch title inside an English sentence.
        titles = invitation.get("titles")
        if isinstance(titles, Mapping) and language in titles:
            values["title"] = str(titles[language])
        receipt = await self.twilio.send_template(
            address, template.content_sid, template.fill(values)
        )
        return SendReceipt(receipt.provider_id, receipt.segments, template=template.content_sid)

    def _senders(self) -> dict[str, Lifecycle]:
        senders: dict[str, Lifecycle | None] = {"telegram": self.telegram, "twilio": self.twilio}
        return {name: sender for name, sender in senders.items() if sender is not None}

    def _channels_of(self, sender: str) -> tuple[str, ...]:
        return tuple(c for c in SENDER_CHANNELS[sender] if c in self._channels)

    async def initialize(self) -> None:
        """Open every sender; one that fails is reported and retried, the others send."""
        for name, sender in self._senders().items():
            if not await self._open(name, sender):
                task = asyncio.create_task(self._reopen(name, sender), name=f"reopen-{name}")
                self._restarts.add(task)
                task.add_done_callback(self._restarts.discard)

    async def _open(self, name: str, sender: Lifecycle) -> bool:
        channels = self._channels_of(name)
        try:
            await sender.initialize()
        except Exception as exc:  # one channel's failure must not stop the others
            self._down |= frozenset(channels)
            for channel in channels:
                self.board.set(channel, start_problem(channel, exc))
            with contextlib.suppress(Exception):
                await sender.shutdown()
            return False
        self._down -= frozenset(channels)
        # Telegram out of reach at start: open anyway (sends retry), but say so until one works.
        problem = getattr(sender, "start_error", None)
        for channel in channels:
            self.board.set(channel, send_problem(channel, problem) or OK)
        return True

    async def _reopen(self, name: str, sender: Lifecycle) -> None:
        wait = self._restart_after
        while True:
            # Jittered, so that several dispatchers do not knock at the same moment.
            await asyncio.sleep(wait * (0.5 + random.random() / 2))  # noqa: S311 - jitter
            if await self._open(name, sender):
                log.info("%s: sender open again", name)
                return
            wait = min(wait * 2, self._restart_max)

    async def shutdown(self) -> None:
        for task in list(self._restarts):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for sender in self._senders().values():
            await sender.shutdown()


async def _keep_beating(
    heartbeat: Heartbeat, board: Board, changed: asyncio.Event, stop: asyncio.Event
) -> None:
    """Write the board every few seconds, and at once when a part changes."""
    while not stop.is_set():
        changed.clear()
        await asyncio.to_thread(heartbeat.beat, board.snapshot())
        await first(stop.wait(), changed.wait(), timeout=BEAT_SECONDS)


async def dispatch_forever(
    config: Config,
    sessions: sessionmaker[Session],
    stop: asyncio.Event,
    wake: asyncio.Event,
    clock: Clock = utc_now,
    *,
    restart_after: float = 5.0,
) -> None:
    """Open the configured channels and work the outbox until ``stop``; a channel whose
    sender cannot open is tried again after ``restart_after`` seconds, then less often."""
    d = config.dispatch
    settings = DispatchSettings(
        lease=timedelta(seconds=d.lease_seconds),
        max_attempts=d.max_attempts,
        base_backoff=timedelta(seconds=d.base_backoff_seconds),
        max_backoff=timedelta(seconds=d.max_backoff_seconds),
        concurrency=d.concurrency,
    )
    loop = asyncio.get_running_loop()

    def rung() -> None:  # from the bell's thread
        loop.call_soon_threadsafe(wake.set)

    engine = sessions.kw.get("bind")
    # Other processes' commits (gunicorn's workers, voxpop scheduler) ring the bell.
    listening: AbstractContextManager[None] = nullcontext()
    if isinstance(engine, Engine):
        listening = outbox_bell.listen(engine, rung)
    board = Board()
    changed = asyncio.Event()

    def part_changed() -> None:  # from any thread
        loop.call_soon_threadsafe(changed.set)

    board.on_change = part_changed
    heartbeat = Heartbeat(sessions, "dispatcher", BEAT_SECONDS)
    async with Transports(config, board, restart_after=restart_after) as transports:
        dispatcher = Dispatcher(
            sessions, transports.delivers(), clock, settings, pacing=pacing(config), board=board
        )
        board.set("dispatcher", OK)
        beating = asyncio.create_task(_keep_beating(heartbeat, board, changed, stop))
        try:
            with listening:
                await dispatcher.run(stop, wake, d.idle_poll_seconds)
        finally:
            beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beating
            # Stopped on purpose: readiness must not count this process for its last minute.
            await asyncio.to_thread(heartbeat.remove)
