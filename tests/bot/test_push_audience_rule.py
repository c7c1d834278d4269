"""The database's choice of who a push reaches, and on which address, agrees with the rule
as staff read it (docs/pushes.md), on contacts with several addresses in every state: the
first channel of the push's preference with a usable address, its oldest such address;
else the first reason that applies (opted out, then invalid, then no consent)."""

from __future__ import annotations

import random
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.pushes.service import Pushes, PushSpec
from storage.db import transaction
from storage.models import Address, Contact, PushRecipient
from tests.bot.conftest import T0

CHANNELS = ("telegram", "whatsapp", "sms")
STATES = ("ok", "no consent", "opted out", "invalid")


@dataclass(frozen=True)
class Made:
    id: int
    channel: str
    value: str
    state: str


def _make(db: sessionmaker[Session], rng: random.Random, contacts: int) -> dict[int, list[Made]]:
    made: dict[int, list[Made]] = {}
    serial = 0
    with transaction(db) as s:
        for _ in range(contacts):
            contact = Contact(language="en", attributes={}, tags=[], created_at=T0, updated_at=T0)
            s.add(contact)
            s.flush()
            made[contact.id] = []
            for _ in range(rng.randint(1, 4)):
                serial += 1
                channel, state = rng.choice(CHANNELS), rng.choice(STATES)
                value = str(9_000 + serial) if channel == "telegram" else f"+3247{serial:07d}"
                row = Address(
                    contact_id=contact.id,
                    channel=channel,
                    value=value,
                    created_at=T0,
                    consent_at=None if state == "no consent" else T0,
                    opted_out_at=T0 if state == "opted out" else None,
                    invalid_at=T0 if state == "invalid" else None,
                )
                s.add(row)
                s.flush()
                made[contact.id].append(Made(row.id, channel, value, state))
    return made


def _expected(addresses: list[Made], channels: tuple[str, ...]) -> Made | str:
    """The rule, written out plainly: the chosen address, or why the contact is left out."""
    on = [a for a in addresses if a.channel in channels]
    usable = [a for a in on if a.state == "ok"]
    if usable:
        return min(usable, key=lambda a: (channels.index(a.channel), a.id))
    if not on:
        return "no address on the chosen channels"
    states = {a.state for a in on}
    return next(s for s in ("opted out", "invalid", "no consent") if s in states).replace(
        "invalid", "invalid number"
    )


def test_the_preview_and_the_plan_choose_as_the_rule_says(
    db: sessionmaker[Session], pushes: Pushes
) -> None:
    rng = random.Random(20261207)
    made = _make(db, rng, 80)
    for channels in (("sms",), ("telegram", "sms"), ("whatsapp", "sms", "telegram")):
        spec = PushSpec(survey="every-type", at=T0, channels=channels)
        expected = {cid: _expected(addresses, channels) for cid, addresses in made.items()}
        reached = {cid: a for cid, a in expected.items() if isinstance(a, Made)}
        left_out: dict[str, int] = {}
        for why in expected.values():
            if isinstance(why, str):
                left_out[why] = left_out.get(why, 0) + 1
        by_channel: dict[str, int] = {}
        for a in reached.values():
            by_channel[a.channel] = by_channel.get(a.channel, 0) + 1

        preview = pushes.preview(spec)
        assert preview.recipients == len(reached)
        assert preview.left_out == left_out
        assert preview.by_channel == dict(sorted(by_channel.items()))

        push_id = pushes.create(spec)
        assert pushes.fire(push_id).planned == len(reached)
        with transaction(db, read_only=True) as s:
            planned = {
                r.contact_id: (r.channel, r.address)
                for r in s.scalars(select(PushRecipient).where(PushRecipient.push_id == push_id))
            }
        assert planned == {cid: (a.channel, a.value) for cid, a in reached.items()}
