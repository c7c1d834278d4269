"""End to end with the real SDKs: a signed webhook goes in, the service answers through the
outbox, the dispatcher sends the reply to the loopback fake provider, and (Twilio) the
provider's status callback comes back."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.config import (
    Config,
    DispatchConfig,
    ServerConfig,
    TelegramConfig,
    TwilioConfig,
    WhatsAppTemplate,
)
from bot.delivery.dispatcher import Dispatcher, DispatcherThread
from bot.delivery.sending import DispatchSettings
from bot.delivery.transports import Transports, dispatch_forever, pacing
from bot.service import Service, read_survey_sources
from bot.web.app import create_app
from messages import Address
from storage import repo
from storage.db import transaction
from storage.models import AnswerRow, Message
from surveys.loader import example_paths
from tests.fakes import Call
from tests.fakes.telegram_api import FakeTelegram
from tests.fakes.twilio_api import FakeTwilio
from tests.web.test_webhooks import SECRET, post_telegram, post_twilio, text_update, twilio_form

PUBLIC_URL = "https://voxpop.example.city"
T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def _config(telegram: FakeTelegram, twilio: FakeTwilio) -> Config:
    return Config(
        server=ServerConfig(public_url=PUBLIC_URL),
        telegram=TelegramConfig(
            token=telegram.token, webhook_secret=SECRET, api_base_url=telegram.url
        ),
        twilio=TwilioConfig(
            account_sid=twilio.account_sid,
            auth_token=twilio.auth_token,
            api_base_url=twilio.url,
            sms_from="+15555550199",
            whatsapp_from="+15555550188",
        ),
    )


def _service(db: sessionmaker[Session], clock: Clock) -> Service:
    service = Service(db, clock=clock)
    service.load_surveys(read_survey_sources([str(p) for p in example_paths()]))
    return service


def _dispatch(
    config: Config,
    db: sessionmaker[Session],
    clock: Clock,
    rounds: int = 1,
    *,
    paced: bool = False,
) -> int:
    """Run the real dispatcher; ``paced`` applies the config's limits and windows (with the
    frozen clock, a chat's second message then waits until the test moves the clock)."""

    async def work() -> int:
        sent = 0
        async with Transports(config) as transports:
            dispatcher = Dispatcher(
                db,
                transports.delivers(),
                clock,
                DispatchSettings(concurrency=8),
                pacing=pacing(config) if paced else None,
            )
            for _ in range(rounds):
                sent += await dispatcher.run_once()
        return sent

    return asyncio.run(work())


def _outbox(db: sessionmaker[Session]) -> list[Message]:
    with transaction(db, read_only=True) as s:
        return list(
            s.scalars(select(Message).where(Message.direction == "out").order_by(Message.id))
        )


def test_telegram_update_in_buttons_out(
    db: sessionmaker[Session], telegram: FakeTelegram, twilio: FakeTwilio
) -> None:
    clock = Clock()
    config = _config(telegram, twilio)
    client: FlaskClient = create_app(_service(db, clock), config, clock=clock).test_client()
    assert post_telegram(client, text_update("PARK", chat="4242")).status_code == 200
    assert _dispatch(config, db, clock) == 2  # the intro, then the first question
    sent = telegram.calls_to("sendMessage")
    assert [c.params["chat_id"] for c in sent] == ["4242", "4242"]
    assert sent[1].params["text"] == "How often do you visit the park?"
    markup = sent[1].params["reply_markup"]
    rows = json.loads(markup) if isinstance(markup, str) else markup
    assert [row[0]["callback_data"] for row in rows["inline_keyboard"]] == [
        "visits:weekly",
        "visits:monthly",
        "visits:rarely",
        "visits:never",
    ]
    assert [(m.status, (m.provider_id or "").split(":")[0]) for m in _outbox(db)] == [
        ("sent", "4242"),
        ("sent", "4242"),
    ]


def test_sms_in_numbered_list_out_and_the_status_comes_back(
    db: sessionmaker[Session], telegram: FakeTelegram, twilio: FakeTwilio
) -> None:
    clock = Clock()
    config = _config(telegram, twilio)
    client = create_app(_service(db, clock), config, clock=clock).test_client()
    inbound = twilio_form("sms_inbound", Body="LIGHTS")
    assert post_twilio(client, "sms", inbound, token=twilio.auth_token).status_code == 200
    assert _dispatch(config, db, clock) == 2
    created = twilio.messages
    assert [(m["to"], m["from"]) for m in created] == [(inbound["From"], "+15555550199")] * 2
    assert (
        created[1]["body"] == "Is there a street near you that is too dark at night?\n1 Yes\n2 No"
    )
    question = _outbox(db)[1]
    assert (question.status, question.segments) == ("sent", 1)
    # Twilio reports delivery to <public_url>/webhooks/twilio/status.
    form, headers = twilio.signed_status_callback(
        f"{PUBLIC_URL}/webhooks/twilio/status", created[1]["sid"], "delivered"
    )
    answer = client.post("/webhooks/twilio/status", data=form, headers=headers)
    assert answer.status_code == 200
    assert _outbox(db)[1].status == "delivered"


def test_whatsapp_goes_out_with_whatsapp_addresses(
    db: sessionmaker[Session], telegram: FakeTelegram, twilio: FakeTwilio
) -> None:
    clock = Clock()
    config = _config(telegram, twilio)
    client = create_app(_service(db, clock), config, clock=clock).test_client()
    form = twilio_form("whatsapp_inbound", Body="PARK")
    assert post_twilio(client, "whatsapp", form, token=twilio.auth_token).status_code == 200
    assert _dispatch(config, db, clock) == 2
    assert {(m["to"], m["from"]) for m in twilio.messages} == {
        (form["From"], "whatsapp:+15555550188")
    }


def test_a_provider_failing_one_send_in_five_loses_nothing(
    db: sessionmaker[Session], telegram: FakeTelegram, twilio: FakeTwilio
) -> None:
    clock = Clock()
    config = _config(telegram, twilio)
    client = create_app(_service(db, clock), config, clock=clock).test_client()
    for n in range(40):
        form = twilio_form("sms_inbound", Body="LIGHTS", From=f"+3247000{n:04d}")
        assert post_twilio(client, "sms", form, token=twilio.auth_token).status_code == 200
    twilio.set_failure_rate(0.2, seed=11, kinds=("5xx", "429"))
    for _ in range(30):
        _dispatch(config, db, clock)
        clock.now += timedelta(minutes=20)  # past any backoff or Retry-After
    rows = _outbox(db)
    assert len(rows) == 80
    assert {m.status for m in rows} == {"sent"}
    # 5xx and 429 are refusals before acceptance: each row reached Twilio exactly once.
    accepted = [m["sid"] for m in twilio.messages]
    assert sorted(accepted) == sorted(m.provider_id for m in rows if m.provider_id)
    assert any(c.fault for c in twilio.calls)  # the faults really happened


def test_one_citizens_messages_arrive_in_order_even_after_a_failure(
    db: sessionmaker[Session], telegram: FakeTelegram, twilio: FakeTwilio
) -> None:
    clock = Clock()
    config = _config(telegram, twilio)
    client = create_app(_service(db, clock), config, clock=clock).test_client()
    form = twilio_form("sms_inbound", Body="LIGHTS")
    assert post_twilio(client, "sms", form, token=twilio.auth_token).status_code == 200
    twilio.fail_next(1, "5xx")  # the intro fails once; the question must not overtake it
    assert _dispatch(config, db, clock) == 2
    assert [m.status for m in _outbox(db)] == ["queued", "queued"]
    assert twilio.messages == []
    clock.now += timedelta(minutes=1)
    _dispatch(config, db, clock)
    assert [m["body"].split("\n")[0] for m in twilio.messages] == [
        "The city is checking its street lights. 4 quick questions.",
        "Is there a street near you that is too dark at night?",
    ]
    assert [(m.status, m.attempts) for m in _outbox(db)] == [("sent", 2), ("sent", 1)]


def _until(done: Callable[[], bool], seconds: float) -> None:
    """Look every 10 ms until ``done()``, for at most ``seconds`` (a bound for a loaded
    machine, never waited out when things work)."""
    deadline = time.monotonic() + seconds
    while not done() and time.monotonic() < deadline:
        time.sleep(0.01)


def test_a_reply_leaves_at_the_commit_not_at_the_next_poll(
    db: sessionmaker[Session], telegram: FakeTelegram, twilio: FakeTwilio
) -> None:
    """The wake-up after a commit sends a reply at once; only the 30 s idle poll would
    otherwise find it. How soon "at once" is (well under a second, even at load) is
    measured by ``make bench`` (bench/latency_bench.py), not here: a timed test cannot hold
    on a busy machine."""
    idle_poll = 30.0
    config = replace(
        _config(telegram, twilio), dispatch=DispatchConfig(idle_poll_seconds=idle_poll)
    )
    thread: DispatcherThread | None = None
    service = Service(db, on_outbox=lambda: thread.wake() if thread else None)
    service.load_surveys(read_survey_sources([str(p) for p in example_paths()]))
    thread = DispatcherThread(partial(dispatch_forever, config, db))
    thread.start()
    client = create_app(service, config).test_client()

    def sent_to(chat: str) -> list[Call]:
        return [c for c in telegram.calls_to("sendMessage") if str(c.params["chat_id"]) == chat]

    try:
        # A first conversation: once its intro and question are out, the dispatcher has
        # nothing left to do and waits for the idle poll (or a wake-up).
        assert post_telegram(client, text_update("PARK", chat="776")).status_code == 200
        _until(lambda: len(sent_to("776")) == 2, idle_poll)
        assert len(sent_to("776")) == 2
        committed = time.monotonic()
        assert post_telegram(client, text_update("PARK", chat="777")).status_code == 200
        _until(lambda: len(sent_to("777")) == 2, idle_poll)
    finally:
        thread.stop()
    intro, question = sent_to("777")
    assert intro.at - committed < idle_poll / 3
    # The question follows the intro no sooner than Telegram's one message a second per
    # chat. A message may leave late on a loaded machine, never early: the question's turn
    # is a second after the intro's, which is after the commit.
    assert question.at - committed >= 1.0


# --- WhatsApp's 24-hour window -------------------------------------------------------------

TEMPLATE_SID = "HX" + "0123456789abcdef" * 2
CITIZEN = "+15555550123"


def _with_template(config: Config) -> Config:
    templates = {"*": {"en": WhatsAppTemplate(TEMPLATE_SID)}}
    return replace(config, twilio=replace(config.twilio, whatsapp_templates=templates))


def _answers(db: sessionmaker[Session]) -> list[tuple[str, object]]:
    with transaction(db, read_only=True) as s:
        return [(a.question_id, a.value) for a in s.scalars(select(AnswerRow))]


def test_an_invitation_outside_the_window_goes_as_a_template_and_goes_on_after_the_reply(
    db: sessionmaker[Session], telegram: FakeTelegram, twilio: FakeTwilio
) -> None:
    clock = Clock()
    config = _with_template(_config(telegram, twilio))
    service = _service(db, clock)
    client = create_app(service, config, clock=clock).test_client()
    service.start_survey(Address("whatsapp", CITIZEN), "central-park")
    assert _dispatch(config, db, clock, paced=True) == 1
    (call,) = twilio.calls_to("messages.create")
    assert (call.params["ContentSid"], "Body" in call.params) == (TEMPLATE_SID, False)
    assert json.loads(call.params["ContentVariables"]) == {"1": "Central Park", "2": "PARK"}
    intro, question = _outbox(db)
    assert (intro.status, intro.payload["template"], question.status) == (
        "sent",
        TEMPLATE_SID,
        "held",
    )

    # The citizen taps the template's quick reply: no answer, the first question follows.
    tap = twilio_form(
        "whatsapp_inbound",
        Body="Yes",
        ButtonText="Yes",
        ButtonPayload="go",
        From=f"whatsapp:{CITIZEN}",
    )
    assert post_twilio(client, "whatsapp", tap, token=twilio.auth_token).status_code == 200
    assert _dispatch(config, db, clock, paced=True) == 1
    assert twilio.messages[-1]["body"].startswith("How often do you visit the park?\n1 Every week")
    assert _answers(db) == []

    answer = twilio_form("whatsapp_inbound", Body="1", From=f"whatsapp:{CITIZEN}")
    assert post_twilio(client, "whatsapp", answer, token=twilio.auth_token).status_code == 200
    assert _answers(db) == [("visits", "weekly")]


def test_a_template_in_another_language_gets_its_variables_in_that_language(
    db: sessionmaker[Session], telegram: FakeTelegram, twilio: FakeTwilio
) -> None:
    clock = Clock()
    config = _with_template(_config(telegram, twilio))  # an English template only
    service = _service(db, clock)
    with transaction(db) as s:
        contact, _, _ = repo.find_or_create_contact(s, "whatsapp", CITIZEN, clock.now, "nl")
    service.start_survey(Address("whatsapp", CITIZEN), "central-park")
    assert _dispatch(config, db, clock, paced=True) == 1
    (call,) = twilio.calls_to("messages.create")
    assert json.loads(call.params["ContentVariables"]) == {"1": "Central Park", "2": "PARK"}
    assert contact.language == "nl"


def test_inside_the_window_an_invitation_is_plain_text(
    db: sessionmaker[Session], telegram: FakeTelegram, twilio: FakeTwilio
) -> None:
    clock = Clock()
    config = _with_template(_config(telegram, twilio))
    service = _service(db, clock)
    client = create_app(service, config, clock=clock).test_client()
    hello = twilio_form("whatsapp_inbound", Body="hello", From=f"whatsapp:{CITIZEN}")
    assert post_twilio(client, "whatsapp", hello, token=twilio.auth_token).status_code == 200
    clock.now += timedelta(hours=23)
    service.start_survey(Address("whatsapp", CITIZEN), "central-park")
    while _dispatch(config, db, clock, paced=True):
        pass
    bodies = [m["body"] for m in twilio.messages]
    assert bodies[-2].startswith("Hello! The city wants your view on Central Park.")
    assert bodies[-1].startswith("How often do you visit the park?")
    assert all("ContentSid" not in c.params for c in twilio.calls_to("messages.create"))


def test_without_a_template_an_invitation_outside_the_window_is_never_free_text(
    db: sessionmaker[Session], telegram: FakeTelegram, twilio: FakeTwilio
) -> None:
    clock = Clock()
    config = _config(telegram, twilio)  # no whatsapp_templates
    service = _service(db, clock)
    service.start_survey(Address("whatsapp", CITIZEN), "central-park")
    _dispatch(config, db, clock, paced=True, rounds=2)
    assert twilio.calls == []
    intro, question = _outbox(db)
    assert intro.status == "failed"
    assert "no template for central-park in en" in (intro.error or "")
    assert question.status == "held"


def test_a_63016_refusal_holds_the_message_until_the_citizen_writes(
    db: sessionmaker[Session], telegram: FakeTelegram, twilio: FakeTwilio
) -> None:
    clock = Clock()
    config = _config(telegram, twilio)
    client = create_app(_service(db, clock), config, clock=clock).test_client()
    form = twilio_form("whatsapp_inbound", Body="PARK", From=f"whatsapp:{CITIZEN}")
    assert post_twilio(client, "whatsapp", form, token=twilio.auth_token).status_code == 200
    twilio.refuse(f"whatsapp:{CITIZEN}", "63016")  # Twilio counts the window differently
    _dispatch(config, db, clock, paced=True)
    assert [m.status for m in _outbox(db)] == ["held", "queued"]
    clock.now += timedelta(hours=1)
    _dispatch(config, db, clock, paced=True)  # the question now waits behind the window too
    assert [m.status for m in _outbox(db)] == ["held", "held"]
    twilio.clear_refusals()
    again = twilio_form("whatsapp_inbound", Body="1", From=f"whatsapp:{CITIZEN}")
    assert post_twilio(client, "whatsapp", again, token=twilio.auth_token).status_code == 200
    while _dispatch(config, db, clock, paced=True):
        pass
    assert [m["body"].split("\n")[0] for m in twilio.messages][:2] == [
        "Hello! The city wants your view on Central Park. A few short questions, about 3 "
        "minutes. Send STOP to stop.",
        "How often do you visit the park?",
    ]


# --- pacing with the real SDK ---------------------------------------------------------------


CHATS = 30


def test_two_dispatchers_together_keep_telegrams_limits(
    db: sessionmaker[Session],
    telegram: FakeTelegram,
    twilio: FakeTwilio,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = _config(telegram, twilio)
    config = replace(
        config,
        telegram=replace(config.telegram, messages_per_second=20.0, per_chat_per_second=1.0),
        dispatch=DispatchConfig(idle_poll_seconds=0.05),
    )
    # The turn each dispatcher gives each message: the limits are kept there, where two
    # dispatchers share the sender's budget and each chat's next turn through the database.
    # A message leaves at its turn or, on a loaded machine, later, and a stalled process
    # sends what it owes at once: arrival times at the fake cannot tell a shared budget
    # from two.
    # (A claim that is rolled back claims again: the last turn of a message is its own.)
    turns: dict[int, tuple[str, datetime]] = {}
    take_turn = Dispatcher._take_turn

    def noted(self: Dispatcher, pacing: Any, job: Any, *args: Any) -> Any:
        turn = take_turn(self, pacing, job, *args)
        if isinstance(turn, datetime):
            turns[job.id] = (job.address, turn)
        return turn

    monkeypatch.setattr(Dispatcher, "_take_turn", noted)
    # More first messages than the sender may send in a second: its limit has to bite.
    now = datetime.now(UTC)
    with transaction(db) as s:
        for chat in range(CHATS):
            for n in range(2):
                repo.add_outbound(
                    s, channel="telegram", address=str(9000 + chat), text=f"m{n}", now=now
                )
                repo.find_or_create_contact(s, "telegram", str(9000 + chat), now)
    threads = [DispatcherThread(partial(dispatch_forever, config, db)) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        _until(lambda: len(telegram.calls_to("sendMessage")) >= 2 * CHATS, 120)
    finally:
        for thread in threads:
            thread.stop()
    calls = telegram.calls_to("sendMessage")
    # Each message once: no two dispatchers sent the same one.
    assert sorted((str(c.params["chat_id"]), c.params["text"]) for c in calls) == sorted(
        (str(9000 + chat), f"m{n}") for chat in range(CHATS) for n in range(2)
    )
    assert len(turns) == 2 * CHATS, turns
    # At most 20 turns in any one second, both dispatchers together.
    times = sorted(at for _, at in turns.values())
    second = timedelta(seconds=1)
    assert max(sum(1 for t in times if start <= t < start + second) for start in times) <= 20
    # A chat's second message has its turn a second after its first one's.
    by_chat: dict[str, list[datetime]] = {}
    for address, at in turns.values():
        by_chat.setdefault(address, []).append(at)
    assert all(b - a >= second for a, b in map(sorted, by_chat.values())), by_chat
