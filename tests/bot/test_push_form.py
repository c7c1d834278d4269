"""A push as staff type it (the console's form, ``voxpop push``'s options), its preview and
its funnel, on both engines: every problem on the field it concerns; who is left out and why;
the preview counts what firing plans; planned, sent, delivered, started, completed with
their intervals."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from bot.pushes.audience import Audience
from bot.pushes.form import PushForm
from bot.pushes.service import PushError, Pushes, PushSpec, Variant
from bot.service import Service
from messages import Address, InboundMessage
from storage.db import transaction
from storage.models import Address as AddressRow
from storage.models import Contact, Message, PushRecipient
from tests.bot.conftest import T0, Clock, push_config
from tests.bot.test_pushes import add_contact, recipients, reply, spec

# --- reading the form -------------------------------------------------------------------------


def test_a_good_form_gives_the_push_with_the_config_s_defaults(pushes: Pushes) -> None:
    checked = pushes.check(
        PushForm(
            survey="every-type",
            at="2026-12-01T12:00",
            timezone="Europe/Brussels",
            channels=["sms", "telegram"],
            languages=["nl, en"],
            where=["district=north,east", ""],
            tags=["panel"],
            not_answered=["other"],
            rate="600/min",
            remind_after="24h",
            reminders="2",
            variant_texts=["The city asks.", "", "Help your street."],
        )
    )
    assert checked.problems == {}
    assert checked.spec is not None
    s = checked.spec
    assert s.at == T0 + timedelta(hours=1)  # 12:00 in Brussels is 11:00 UTC
    assert s.channels == ("sms", "telegram")
    assert s.audience == Audience(
        channels=("sms", "telegram"),
        languages=("nl", "en"),
        where={"district": ("north", "east")},
        tags=("panel",),
        not_answered=("other",),
    )
    assert (s.rate_per_second, s.quiet_hours) == (10.0, "")  # the config has no quiet hours
    assert s.reminders is not None
    assert (s.reminders.after, s.reminders.most) == (timedelta(hours=24), 2)
    assert [v.name for v in s.variants] == ["A", "B"]
    assert s.variants[1].texts == {"*": "Help your street."}


def test_every_problem_is_on_its_own_field(pushes: Pushes) -> None:
    checked = pushes.check(
        PushForm(
            survey="nope",
            at="tomorrow",
            timezone="Mars/Olympus",
            channels=["sms", "fax"],
            where=["district"],
            not_answered=["gone"],
            quiet_hours="late",
            rate="fast",
            reminders="0",
            variants_toml='[A]\nen = ""',
        )
    )
    assert checked.spec is None
    problems = dict(checked.problems)
    assert problems.pop("survey") == ("no consultation 'nope' is loaded",)
    assert problems.pop("not_answered") == ("no consultation 'gone' is loaded",)
    assert "'tomorrow' is not a time" in problems.pop("at")[0]
    assert "unknown timezone 'Mars/Olympus'" in problems.pop("timezone")[0]
    assert problems.pop("channels") == ("unknown channel 'fax': choose sms, whatsapp or telegram",)
    assert "NAME=VALUE" in problems.pop("where")[0]
    assert "21:00-09:00" in problems.pop("quiet_hours")[0]
    assert "'fast' is not a rate" in problems.pop("rate")[0]
    assert "'0' is not a number of reminders" in problems.pop("reminders")[0]
    assert "[A] needs a text per language" in problems.pop("variants")[0]
    assert problems == {}
    # In the form's order, for an error summary at the top of the page.
    fields = [name for name, _ in checked.listed()]
    assert fields.index("survey") < fields.index("at") < fields.index("variants")


@pytest.mark.parametrize(
    ("form", "field", "message"),
    [
        (PushForm(survey="every-type"), "at", "say when"),
        (PushForm(at="now"), "survey", "choose the consultation"),
        (PushForm(survey="every-type", at="now", reminders="2"), "remind_after", "how long"),
        (PushForm(survey="every-type", at="now", remind_after="soon"), "remind_after", "24h"),
        (PushForm(survey="every-type", at="now", rate="0/s"), "rate", "not a rate"),
        (PushForm(survey="every-type", at="now", rate="0.01/h"), "rate", "at least 1 per day"),
        (
            PushForm(survey="every-type", at="now", variant_texts=["a"], variants_toml="[A]\n"),
            "variants",
            "two wordings are named A",
        ),
        (
            PushForm(survey="every-type", at="now", where=['a"b=1']),
            "where",
            "no quotes or backslashes",
        ),
        (PushForm(survey="every-type", at="now", where=["d=1", "d=2"]), "where", "twice"),
    ],
)
def test_one_field_wrong(pushes: Pushes, form: PushForm, field: str, message: str) -> None:
    checked = pushes.check(form)
    assert checked.spec is None
    assert list(checked.problems) == [field]
    assert message in checked.problems[field][0]


def test_a_spec_made_in_code_is_checked_by_the_same_rules(pushes: Pushes) -> None:
    with pytest.raises(PushError) as caught:
        pushes.complete(spec(channels=("pigeon",)))
    assert caught.value.field == "channels"
    with pytest.raises(PushError) as caught:
        pushes.complete(spec(variants=(Variant("A", {"*": "a"}), Variant("A", {"*": "b"}))))
    assert caught.value.field == "variants"


# --- the preview: who, who not and why, what it costs -----------------------------------------


def _invalid(db: sessionmaker[Session], value: str) -> None:
    with transaction(db) as s:
        s.execute(update(AddressRow).where(AddressRow.value == value).values(invalid_at=T0))


def test_the_preview_says_who_is_left_out_and_why(
    db: sessionmaker[Session], pushes: Pushes, service: Service, clock: Clock
) -> None:
    add_contact(db, "+32470000001", language="nl")
    add_contact(db, "+32470000002", language="de")  # the survey has no German: English
    add_contact(db, "4242", channel="telegram")
    add_contact(db, "+32470000003", consent=False)
    add_contact(db, "+32470000004", opted_out=True)
    add_contact(db, "+32470000005")
    _invalid(db, "+32470000005")
    add_contact(db, "+32470000006")
    reply(service, clock, "+32470000006", "OTHER")
    reply(service, clock, "+32470000006", "yes")  # completed "other"
    add_contact(db, "+32470000007")
    reply(service, clock, "+32470000007", "OTHER")  # answering it now
    add_contact(db, "+32470000008")
    reply(service, clock, "+32470000008", "EVERY")  # in another: invited when it ends
    # A staff member's test phone in the simulator is nobody's contact.
    service.receive(
        InboundMessage(Address("sms", "+32470000099"), "OTHER", "sim-1", clock.now),
        simulated=True,
    )

    preview = pushes.preview(spec(survey="other", channels=("sms", "whatsapp")))
    assert preview.left_out == {
        "no address on the chosen channels": 1,
        "opted out": 1,
        "invalid number": 1,
        "no consent": 1,
        "completed it already": 1,
    }
    assert preview.recipients == 4
    assert preview.by_channel == {"sms": 4}
    assert preview.by_language == {"en": 3, "nl": 1}
    assert preview.by_channel_language == {("sms", "en"): 3, ("sms", "nl"): 1}
    assert (preview.answering, preview.busy) == (1, 1)
    # Three invitations by SMS (the one answering gets nothing new), of one segment each.
    assert preview.sms_segments == 3
    document = preview.to_json()
    assert document["left_out_total"] == 5
    assert document["left_out"][0] == {
        "reason": "no address on the chosen channels",
        "contacts": 1,
    }


def test_the_preview_counts_what_firing_plans(
    db: sessionmaker[Session], pushes: Pushes, clock: Clock
) -> None:
    """Many contacts, drawn at random: the preview's numbers are the plan's."""
    rng = random.Random(5)
    with transaction(db) as s:
        for n in range(300):
            contact = Contact(
                language=rng.choice(("en", "nl", "fr", None)),
                attributes={"district": rng.choice(("north", "south"))},
                tags=["panel"] if rng.random() < 0.3 else [],
                created_at=T0,
                updated_at=T0,
            )
            s.add(contact)
            s.flush()
            for channel, value in (("sms", f"+3247{n:07d}"), ("telegram", str(5000 + n))):
                if rng.random() < 0.6:
                    s.add(
                        AddressRow(
                            contact_id=contact.id,
                            channel=channel,
                            value=value,
                            created_at=T0,
                            consent_at=T0 if rng.random() < 0.8 else None,
                            opted_out_at=T0 if rng.random() < 0.1 else None,
                        )
                    )
    audiences = [
        Audience(),
        Audience(where={"district": ("north",)}, tags=("panel",)),
        Audience(languages=("en",), channels=("sms",)),
    ]
    for audience in audiences:
        made = spec(audience=audience, channels=audience.channels)
        preview = pushes.preview(made)
        push_id = pushes.create(made)
        assert pushes.fire(push_id).planned == preview.recipients
        planned = [r for r in recipients(db) if r.push_id == push_id]
        by_pair: dict[tuple[str, str], int] = {}
        for r in planned:
            by_pair[(r.channel, r.language)] = by_pair.get((r.channel, r.language), 0) + 1
        assert by_pair == preview.by_channel_language
        assert preview.recipients + preview.left_out_total > 0


def test_the_preview_prices_each_wording_for_its_share(
    db: sessionmaker[Session], service: Service, clock: Clock
) -> None:
    for n in range(4):
        add_contact(db, f"+3247000000{n}")
    priced = Pushes(db, service, push_config(sms_price_per_segment=0.1), clock=clock)
    long = "x" * 200  # two GSM-7 segments in place of the intro's one
    preview = priced.preview(
        spec(variants=(Variant("A", {"*": "short"}), Variant("B", {"*": long})))
    )
    # Two by A (1 + 1 segments), two by B (2 + 1).
    assert (preview.sms_segments, preview.cost) == (10, 1.0)


# --- the funnel -------------------------------------------------------------------------------


def test_the_funnel_counts_each_stage_per_channel_and_variant_with_intervals(
    db: sessionmaker[Session], pushes: Pushes, service: Service, clock: Clock
) -> None:
    for n in range(6):
        add_contact(db, f"+3247000000{n}")
    add_contact(db, "4242", channel="telegram")
    variants = (Variant("A", {"*": "Hello."}), Variant("B", {"*": "Hi."}))
    push_id = pushes.create(spec(variants=variants))
    pushes.fire(push_id)
    clock.advance(timedelta(seconds=1))
    pushes.tick()
    # The dispatcher sent every SMS invitation, and two were reported delivered.
    with transaction(db) as s:
        s.execute(update(Message).where(Message.channel == "sms").values(status="sent"))
        first = s.scalars(
            select(Message.id)
            .where(Message.address.in_(("+32470000000", "+32470000001")))
            .order_by(Message.id)
        ).all()
        s.execute(update(Message).where(Message.id.in_(first)).values(status="delivered"))
    reply(service, clock, "+32470000000", "1")  # started
    reply(service, clock, "+32470000001", "1")
    for answer in ("1", "yes", "3", "40", "3", "fine"):
        reply(service, clock, "+32470000001", answer)  # completed

    report = pushes.report(push_id)
    rows = report.funnel()
    assert [(r.group, r.label) for r in rows[:3]] == [
        ("all", "all"),
        ("channel", "sms"),
        ("channel", "telegram"),
    ]
    assert {r.label for r in rows if r.group == "variant"} == {"A", "B"}
    everyone = rows[0]
    assert [(s.name, s.count) for s in everyone.stages] == [
        ("planned", 7),
        ("sent", 6),
        ("delivered", 2),
        ("started", 2),
        ("completed", 1),
    ]
    completed = everyone.stages[-1].share
    assert (completed.hits, completed.total) == (1, 7)
    low, high = completed.interval
    assert 0 < low < 1 / 7 < high < 1
    sms = rows[1]
    assert (sms.response.hits, sms.response.total) == (1, 6)
    variants_invited = sum(r.counts.invited for r in rows if r.group == "variant")
    assert variants_invited == 7
    document = report.to_json()
    assert document["status"] == "sending" or document["status"] == "done"
    assert document["funnel"][0]["stages"][4]["count"] == 1
    assert document["funnel"][0]["response_rate"]["hits"] == 1


def test_a_cancelled_push_reports_why_nobody_more_was_invited(
    db: sessionmaker[Session], pushes: Pushes
) -> None:
    for n in range(3):
        add_contact(db, f"+3247000000{n}")
    push_id = pushes.create(replace(spec(), rate_per_second=0.001))
    pushes.fire(push_id)
    assert pushes.cancel(push_id, actor="editor@example.org") == 3
    report = pushes.report(push_id)
    assert report.push.status == "cancelled"
    assert report.not_invited() == {"push cancelled": 3}
    assert {r.status for r in recipients(db)} == {"cancelled"}
    with transaction(db, read_only=True) as s:
        assert s.scalars(select(PushRecipient.reason)).all() == ["push cancelled"] * 3


def test_a_spec_stays_a_spec(pushes: Pushes) -> None:
    made = pushes.complete(PushSpec(survey="every-type", at=T0))
    assert made.channels == ("telegram", "whatsapp", "sms")
