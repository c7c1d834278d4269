"""The language a consultation speaks to a contact, on both engines: the contact's own choice
if the consultation has it, else the consultation's first language, whether they start it by
keyword, by invitation, in the simulator or from a push. ``[conversation] default_language``
plays no part (it is for messages outside any consultation)."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config, ConversationConfig, PushesConfig
from bot.pushes.audience import Audience
from bot.pushes.service import Pushes, PushSpec
from bot.service import Service, read_survey_sources
from messages import Address, InboundMessage
from storage import repo
from storage.db import transaction
from storage.models import Message, SessionRow
from tests.bot.conftest import FIXTURES, T0, Clock
from tests.bot.test_pushes import add_contact

DUTCH_INTRO = "Welkom bij de buurtbevraging."
ENGLISH_INTRO = "Welcome to the neighbourhood survey."
_ids = itertools.count(1)

# contact's own language (None: never chose) -> the language of the consultation
CASES = [
    (None, "nl"),  # the file's first language, whatever default_language says
    ("nl", "nl"),
    ("en", "en"),  # their own choice, which the consultation has
    ("de", "nl"),  # a language the consultation lacks: its first
]
ENTRIES = ["keyword", "invitation", "simulator keyword", "simulator start", "push"]


def _service(db: sessionmaker[Session], clock: Clock, default_language: str) -> Service:
    svc = Service(db, clock=clock, default_language=default_language)
    svc.load_surveys(read_survey_sources([str(FIXTURES / "dutch-first.toml")]))
    return svc


def _set_language(db: sessionmaker[Session], value: str, language: str | None) -> None:
    with transaction(db) as s:
        contact, _, _ = repo.find_or_create_contact(s, "sms", value, T0)
        contact.language = language


def _start(
    entry: str, db: sessionmaker[Session], service: Service, clock: Clock, default: str
) -> list[str]:
    """Start the consultation for +32470000001 by ``entry``; the texts it got."""
    address = Address("sms", "+32470000001")
    if entry in ("keyword", "simulator keyword"):
        msg = InboundMessage(address, "buurt", f"in-{next(_ids)}", clock.now)
        return [o.text for o in service.receive(msg, simulated=entry != "keyword").outgoing]
    if entry in ("invitation", "simulator start"):
        outgoing = service.start_survey(address, "dutch-first", simulated=entry != "invitation")
        return [o.text for o in outgoing]
    config = Config(
        pushes=PushesConfig(quiet_hours="", rate_per_second=100.0),
        conversation=ConversationConfig(default_language=default),
    )
    pushes = Pushes(db, service, config, clock=clock)
    push_id = pushes.create(PushSpec(survey="dutch-first", at=T0))
    assert pushes.fire(push_id).planned == 1
    pushes.tick()
    with transaction(db, read_only=True) as s:
        return list(
            s.scalars(select(Message.text).where(Message.direction == "out").order_by(Message.id))
        )


@pytest.mark.parametrize("default_language", ["en", "fr"])
@pytest.mark.parametrize(("own", "expected"), CASES)
@pytest.mark.parametrize("entry", ENTRIES)
def test_a_consultation_speaks_the_contacts_language_else_its_first(
    db: sessionmaker[Session],
    clock: Clock,
    entry: str,
    own: str | None,
    expected: str,
    default_language: str,
) -> None:
    service = _service(db, clock, default_language)
    if entry == "push":
        add_contact(db, "+32470000001", language=own)
    elif own is not None:
        # The simulators keep their conversations in their own address space.
        simulated = entry.startswith("simulator")
        value = repo.simulator_value("+32470000001") if simulated else "+32470000001"
        _set_language(db, value, own)
    texts = _start(entry, db, service, clock, default_language)
    intro = DUTCH_INTRO if expected == "nl" else ENGLISH_INTRO
    assert texts[0] == intro, texts
    with transaction(db, read_only=True) as s:
        states = list(s.scalars(select(SessionRow.state)))
    assert [state["language"] for state in states] == [expected]


def test_a_push_for_dutch_counts_contacts_who_never_chose_when_dutch_comes_first(
    db: sessionmaker[Session], clock: Clock
) -> None:
    """``--language nl`` picks who would get the consultation in Dutch."""
    service = _service(db, clock, "en")
    unset = add_contact(db, "+32470000001", language=None)
    dutch = add_contact(db, "+32470000002", language="nl")
    add_contact(db, "+32470000003", language="en")
    config = Config(pushes=PushesConfig(quiet_hours="", rate_per_second=100.0))
    pushes = Pushes(db, service, config, clock=clock)
    spec = PushSpec(survey="dutch-first", at=T0, audience=Audience(languages=("nl",)))
    assert pushes.preview(spec).recipients == 2
    push_id = pushes.create(spec)
    assert pushes.fire(push_id).planned == 2
    clock.advance(timedelta(minutes=1))
    pushes.tick()
    with transaction(db, read_only=True) as s:
        planned = set(s.scalars(select(SessionRow.contact_id)))
    assert planned == {unset, dutch}
