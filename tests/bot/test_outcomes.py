"""Closing the loop: outcome files, publishing to those who took part, and RESULTS."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.pushes.outcomes import outcome_push, publish
from bot.pushes.service import Pushes, PushSpec
from bot.service import Service
from storage.db import transaction
from storage.models import Contact, OutcomeRow, PushRow
from surveys.outcomes import parse_outcome
from tests.bot.conftest import T0, Clock, push_config
from tests.bot.test_pushes import add_contact, outbox, recipients, reply

EXAMPLE = Path(__file__).parents[2] / "surveys" / "examples" / "outcomes" / "central-park.toml"
OUTCOME = b"""survey = "other"
text.en = "You said yes. We will do it."
text.nl = "U zei ja. We doen het."
by = "district"
[texts.north]
en = "North said yes: it starts in your street."
"""


def test_the_example_outcome_is_valid() -> None:
    report = parse_outcome(EXAMPLE.read_bytes(), str(EXAMPLE), "central-park", ("en", "nl", "fr"))
    assert report.problems == []
    assert report.outcome is not None
    assert report.outcome.by == "district"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            b'survey = "park"\ntext.en = "x"\n',
            "o.toml:1: error: this file is for 'park', not 'other'",
        ),
        (b'text.en = "x"\ncolour = "red"\n', "o.toml:2: error: unknown key 'colour'"),
        (b'text.en = "  "\n', "o.toml:1: error: the en text is empty"),
        (b'by = "district"\n', 'error: text is required, e.g. text.en = "What the city decided"'),
        (b'text.en = "x"\nby = "district"\n', "o.toml:2: error: by needs [texts.<value>] tables"),
        (b'text.en = "x"\n[texts.north]\nen = "y"\n', "o.toml:2: error: texts per value need by"),
        (b'text.en = "x\n', "o.toml:1: error: TOML syntax"),
        (b'text.en = "caf\xe9"\n', "o.toml:1: error: not UTF-8 text"),
        (b'text = "x"\n', "o.toml:1: error: texts are given per language"),
    ],
)
def test_a_bad_outcome_file_says_where_and_why(text: bytes, problem: str) -> None:
    report = parse_outcome(text, "o.toml", "other")
    assert report.outcome is None
    assert any(problem in str(p) for p in report.problems), report.problems


def test_a_missing_language_is_a_warning() -> None:
    report = parse_outcome(b'text.en = "x"\n', "o.toml", "other", ("en", "fr"))
    assert report.outcome is not None
    assert [str(p) for p in report.problems] == [
        "o.toml:1: warning: no text in fr: those citizens get the en text"
    ]


def test_a_missing_default_language_is_an_error_and_the_default_comes_first() -> None:
    report = parse_outcome(b'text.nl = "x"\n', "o.toml", "other", ("en", "nl"))
    assert report.outcome is None
    assert [str(p) for p in report.problems] == [
        "o.toml:1: error: write the en text: en is the default language, sent to everyone "
        "without a text in their own language"
    ]
    written = b'text.nl = "Ja"\ntext.en = "Yes"\n'
    outcome = parse_outcome(written, "o.toml", "other", ("en", "nl")).outcome
    assert outcome is not None
    assert list(outcome.texts) == ["en", "nl"]  # the default first, whatever the file order


def _publish(pushes: Pushes, service: Service) -> int:
    report = parse_outcome(OUTCOME, "o.toml", "other")
    assert report.outcome is not None
    spec = pushes.complete(outcome_push(report.outcome, PushSpec(survey="other", at=T0)))
    push_id = publish(pushes, service, report.outcome, OUTCOME.decode(), spec).push_id
    assert push_id is not None
    return push_id


def test_an_outcome_reaches_everyone_who_took_part_and_did_not_opt_out(
    db: sessionmaker[Session], service: Service, pushes: Pushes, clock: Clock
) -> None:
    # They texted the keyword themselves: no consent record, and none needed to hear back.
    for n in (1, 2, 3):
        reply(service, clock, f"+3247000000{n}", "OTHER")
        reply(service, clock, f"+3247000000{n}", "yes")
    reply(service, clock, "+32470000003", "STOP")
    add_contact(db, "+32470000009")  # agreed to be contacted, never took part
    with transaction(db) as s:
        contact = s.scalars(select(Contact).order_by(Contact.id)).first()
        assert contact is not None
        contact.attributes = {"district": "north"}
    push_id = _publish(pushes, service)
    pushes.fire(push_id)
    clock.now += timedelta(seconds=1)
    assert pushes.tick().invited == 2
    assert [r.address for r in recipients(db)] == ["+32470000001", "+32470000002"]
    assert outbox(db, "+32470000001")[-1].text == "North said yes: it starts in your street."
    assert outbox(db, "+32470000002")[-1].text == "You said yes. We will do it."
    assert outbox(db, "+32470000009") == []
    with transaction(db, read_only=True) as s:
        (row,) = s.scalars(select(OutcomeRow))
        assert (row.survey_slug, row.push_id) == ("other", push_id)


def test_results_tells_how_it_is_going_then_what_the_city_decided(
    db: sessionmaker[Session], service: Service, pushes: Pushes, clock: Clock
) -> None:
    assert reply(service, clock, "+32470000001", "RESULTS") == [
        "No results have been published yet."
    ]
    for n, answer in ((1, "yes"), (2, "yes"), (3, "no")):
        reply(service, clock, f"+3247000000{n}", "OTHER")
        reply(service, clock, f"+3247000000{n}", answer)
    assert reply(service, clock, "+32470000001", "RESULTS") == [
        "Participants in Other so far: 3. Most chose: Yes (67%)."
    ]
    _publish(pushes, service)
    assert reply(service, clock, "+32470000002", "RESULTADOS") == ["You said yes. We will do it."]
    # Someone who never took part hears the latest outcome too.
    assert reply(service, clock, "+32470000008", "RESULTS") == ["You said yes. We will do it."]


def test_an_outcome_that_cannot_be_stored_leaves_no_push_to_send(
    db: sessionmaker[Session],
    service: Service,
    pushes: Pushes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken() -> None:
        raise RuntimeError("the outcome row could not be written")

    # Fails after the push is added, while the outcome row is being made.
    monkeypatch.setattr(service, "now", broken)
    with pytest.raises(RuntimeError, match="could not be written"):
        _publish(pushes, service)
    with transaction(db, read_only=True) as s:
        assert s.scalars(select(PushRow)).all() == []
        assert s.scalars(select(OutcomeRow)).all() == []


def test_control_escapes_in_an_outcome_file_are_dropped() -> None:
    """TOML can write NUL as \\u0000; no database column takes it, on PostgreSQL none."""
    report = parse_outcome(b'text.en = "We\\u0000 did it.\\u001b"\n', "o.toml", "other")
    assert report.outcome is not None
    assert report.outcome.texts == {"en": "We did it."}


def test_the_preview_prices_the_outcome_each_person_gets_in_their_language(
    db: sessionmaker[Session], service: Service, clock: Clock
) -> None:
    pushes = Pushes(db, service, push_config(sms_price_per_segment=0.05), clock=clock)
    for n in (1, 2):
        reply(service, clock, f"+3247000000{n}", "OTHER")
        reply(service, clock, f"+3247000000{n}", "yes")
    reply(service, clock, "+32470000003", "OTHER")
    reply(service, clock, "+32470000003", "yes")
    with transaction(db) as s:
        dutch = s.scalars(select(Contact).order_by(Contact.id.desc())).first()
        assert dutch is not None
        dutch.language = "nl"
    # English fits one SMS; Dutch needs two (more than 160 GSM-7 characters).
    source = b'survey = "other"\ntext.en = "Bins in May."\ntext.nl = "' + b"Afval " * 30 + b'"\n'
    report = parse_outcome(source, "o.toml", "other")
    assert report.outcome is not None
    spec = outcome_push(report.outcome, PushSpec(survey="other", at=T0))
    preview = pushes.preview(spec)
    assert preview.by_channel_language == {("sms", "en"): 2, ("sms", "nl"): 1}
    assert preview.sms_segments == 2 * 1 + 1 * 2
    assert preview.cost == pytest.approx(4 * 0.05)
    # Not the price of an invitation to the consultation.
    invitation = pushes.preview(PushSpec(survey="other", at=T0, audience=spec.audience))
    assert invitation.sms_segments != preview.sms_segments


def test_whoever_has_no_text_in_their_language_gets_the_default_one_on_every_engine(
    service: Service, pushes: Pushes, clock: Clock
) -> None:
    """PostgreSQL's jsonb keeps no key order: the first stored text is not the default."""
    text = b'survey = "other"\ntext.en = "You said yes."\ntext.nl = "U zei ja."\n'
    report = parse_outcome(text, "o.toml", "other", ("nl", "en"))
    assert report.outcome is not None
    spec = pushes.complete(outcome_push(report.outcome, PushSpec(survey="other", at=T0)))
    publish(pushes, service, report.outcome, text.decode(), spec)
    reply(service, clock, "+32470000002", "LANG FR")  # no French text: the default, Dutch
    assert reply(service, clock, "+32470000002", "RESULTS") == ["U zei ja."]
    assert reply(service, clock, "+32470000003", "RESULTS") == ["You said yes."]
