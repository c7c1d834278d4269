"""The consultation functions the CLI and the console share (bot/consultations/): checking a
text, SMS prices, channel previews, the list, loading, closing, outcomes, the home page."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.consultations.checking import check_text, sms_text
from bot.consultations.home import home
from bot.consultations.manage import consultation, consultations, load_text
from bot.consultations.outcome import (
    check_outcome,
    outcome_source,
    participant_values,
    plan_outcome,
    publish_outcome,
)
from bot.consultations.preview import previews
from bot.consultations.pricing import sms_prices
from bot.conversation.engine import ask, start
from bot.pushes.service import Pushes, PushSpec
from bot.service import Service
from channels import sms, telegram, whatsapp
from messages import Address, OutboundMessage
from storage.db import transaction
from storage.models import AuditEntry, OutcomeRow
from surveys.loader import parse_survey
from surveys.outcomes import parse_outcome
from surveys.validate import validate_text
from tests.bot.conftest import FIXTURES, T0, Clock
from tests.bot.test_pushes import add_contact, outbox, reply

ZONE = "Europe/Brussels"
PARK = Path(__file__).parents[2] / "surveys" / "examples" / "central-park.toml"
SHORT = """id = "bins"
title = { en = "Bins", nl = "Vuilbakken" }
languages = ["en", "nl"]
keywords = ["BINS"]

[[questions]]
id = "enough"
type = "yesno"
text = { en = "Are there enough bins? 🗑", nl = "Zijn er genoeg vuilbakken?" }
"""


def nothing_loaded(_replaced: object) -> dict[str, str]:
    return {}


# --- checking a text ---------------------------------------------------------------------------


def test_a_mistake_is_reported_on_its_line() -> None:
    text = SHORT.replace('type = "yesno"', 'type = "yes-no"')
    report = check_text(text, "bins.toml", nothing_loaded)
    assert report.has_errors
    [error] = report.errors
    assert error.line == 8
    assert "unknown type 'yes-no'" in error.message


def test_a_keyword_of_a_loaded_consultation_is_a_clash_on_its_line(service: Service) -> None:
    text = SHORT.replace('keywords = ["BINS"]', 'keywords = ["BINS", "other"]')
    report = check_text(text, "bins.toml", service.loaded_keywords)
    assert [(p.line, p.message) for p in report.errors] == [
        (4, "keyword 'other' also starts survey 'other' (already loaded)")
    ]
    # Its own next version may keep its keywords.
    own = (FIXTURES / "other.toml").read_text()
    assert check_text(own, "other.toml", service.loaded_keywords).ok


def test_the_console_and_the_cli_find_the_same_problems(tmp_path: Path) -> None:
    from bot.consultations.checking import check_files

    text = SHORT.replace('id = "enough"', 'id = "Enough"')
    path = tmp_path / "bins.toml"
    path.write_text(text)
    [from_file] = check_files([str(path)], nothing_loaded)
    from_text = check_text(text, str(path), nothing_loaded)
    assert from_file.problems == from_text.problems


# --- SMS prices and previews -------------------------------------------------------------------


def test_every_message_is_priced_per_language_as_the_sms_channel_sends_it() -> None:
    report = check_text(PARK.read_text(), "central-park.toml", nothing_loaded)
    survey = report.survey
    assert survey is not None
    prices = sms_prices(report)
    assert [p.language for p in prices] == ["en", "nl", "fr"]
    for language in prices:
        whats = [m.what for m in language.messages]
        assert whats == ["intro", *[f"question '{q.id}'" for q in survey.questions], "thanks"]
        for message, question in zip(language.messages[1:-1], survey.questions, strict=True):
            say = ask(survey, question, language.language)
            sent = sms.render(OutboundMessage(Address("sms", "+1"), say.text, say.options))
            assert message.text == sent.text
            assert message.segments == sent.segments
        assert language.segments == sum(m.segments for m in language.messages)
    visits = prices[0].messages[1]
    assert visits.text.endswith("3 Rarely\n4 Never")
    assert (visits.encoding, visits.segments) == ("GSM-7", 1)


def test_the_characters_that_force_ucs2_are_named_and_a_default_thanks_is_priced() -> None:
    report = check_text(SHORT, "bins.toml", nothing_loaded)
    en, nl = sms_prices(report)
    question = en.messages[0]
    assert question.encoding == "UCS-2"
    assert question.forcing_ucs2 == ("U+1F5D1 WASTEBASKET 🗑",)
    assert nl.messages[0].encoding == "GSM-7"
    assert nl.messages[0].forcing_ucs2 == ()
    # No outro in the file: the engine's own thank-you, as a finished conversation says it.
    assert en.messages[-1].what == "thanks"
    assert en.messages[-1].text == "Thank you for taking part!"


def test_previews_are_the_channels_own_rendering_of_what_the_engine_says() -> None:
    survey = parse_survey(PARK.read_text(), "central-park.toml")
    found = previews(survey)
    first = start(survey, "en", T0)
    intro, visits = found[0], found[1]
    assert (intro.what, visits.what) == ("intro", "question 'visits'")
    assert [say.text for say in first.says] == [intro.on("sms").text, first.says[1].text]
    message = OutboundMessage(Address("telegram", ""), first.says[1].text, first.says[1].options)
    assert visits.on("telegram") == telegram.render(message)
    assert next(b.label for row in visits.on("telegram").buttons for b in row) == "1. Every week"
    assert visits.on("whatsapp").text == whatsapp.render(message).text
    assert "1 Every week" in visits.on("whatsapp").text
    assert visits.on("sms").segments == 1
    assert {p.language for p in found} == {"en", "nl", "fr"}
    assert found[-1].what == "thanks"


def test_the_pricing_renderer_is_the_engines_numbered_list() -> None:
    survey = parse_survey(PARK.read_text(), "central-park.toml")
    question = survey.questions[2]
    report = validate_text(PARK.read_text(), "p.toml", render=sms_text)
    priced = next(c for c in report.costs if c.where == f"question '{question.id}'")
    assert priced.text.startswith("What do you do in the park? At most 3. (one or more")


# --- the list, loading and closing -------------------------------------------------------------


def test_the_list_gives_status_versions_and_who_answered_today(
    db: sessionmaker[Session], service: Service, clock: Clock
) -> None:
    reply(service, clock, "+32470000001", "EVERY")
    reply(service, clock, "+32470000001", "1")  # answered yesterday
    clock.advance(timedelta(days=1))
    reply(service, clock, "+32470000002", "EVERY")
    reply(service, clock, "+32470000002", "2")
    reply(service, clock, "+32470000002", "1")  # two answers, one citizen
    service.close_survey("other", clock.now + timedelta(days=2))
    listed = {c.slug: c for c in consultations(service, ZONE)}
    every, other = listed["every-type"], listed["other"]
    assert (every.status, every.answered_today, every.responses) == ("open", 1, 2)
    assert (every.version, every.versions, every.title) == (1, 1, "Every type")
    assert (other.status, other.closes_at) == ("closing", clock.now + timedelta(days=2))
    clock.advance(timedelta(days=3))
    assert {c.slug: c.status for c in consultations(service, ZONE)}["other"] == "closed"
    assert {c.slug: c.answered_today for c in consultations(service, ZONE)}["every-type"] == 0


def test_loading_a_text_makes_a_version_and_a_mistake_loads_nothing(
    db: sessionmaker[Session], service: Service, clock: Clock
) -> None:
    broken = load_text(service, SHORT.replace("[[questions]]", "[[question]]"), "bins.toml")
    assert broken.loaded is None
    assert broken.report.has_errors
    assert "bins" not in {c.slug for c in consultations(service, ZONE)}
    first = load_text(service, SHORT.replace("\n", "\r\n"), "bins.toml", "staff:ann@city.example")
    assert first.loaded is not None
    assert (first.loaded.version, first.loaded.outcome) == (1, "new")
    again = load_text(service, SHORT, "bins.toml")
    assert again.loaded is not None
    assert again.loaded.outcome == "unchanged"
    clock.advance(timedelta(minutes=1))
    changed = load_text(service, SHORT.replace("enough bins", "enough bins here"), "bins.toml")
    assert changed.loaded is not None
    assert changed.loaded.version == 2
    detail = consultation(service, "bins", ZONE)
    assert [v.version for v in detail.versions] == [2, 1]
    assert [v.current for v in detail.versions] == [True, False]
    assert "enough bins here" in detail.source
    assert "\r" not in detail.source
    with transaction(db, read_only=True) as s:
        actors = s.scalars(
            select(AuditEntry.actor)
            .where(AuditEntry.action == "consultation loaded")
            .order_by(AuditEntry.id)
        ).all()
    assert actors[-2:] == ["staff:ann@city.example", "staff"]
    with pytest.raises(LookupError):
        consultation(service, "nope", ZONE)


def test_a_clash_found_at_load_time_loads_nothing(service: Service) -> None:
    loading = load_text(service, SHORT.replace('"BINS"', '"EVERY"'), "bins.toml")
    assert loading.loaded is None
    assert [p.line for p in loading.report.errors] == [4]


def test_per_version_responses(service: Service, clock: Clock) -> None:
    reply(service, clock, "+32470000003", "OTHER")
    reply(service, clock, "+32470000003", "yes")
    text = (FIXTURES / "other.toml").read_text().replace("Is it OK?", "Is it fine?")
    clock.advance(timedelta(minutes=1))
    assert load_text(service, text, "other.toml").loaded is not None
    detail = consultation(service, "other", ZONE)
    assert [(v.version, v.responses) for v in detail.versions] == [(2, 0), (1, 1)]
    assert detail.summary.responses == 1


# --- outcomes ----------------------------------------------------------------------------------


def test_a_composed_outcome_is_the_file_format_with_its_districts() -> None:
    source = outcome_source(
        "other",
        {"en": 'You said "yes".', "nl": ""},
        "district",
        {"north": {"en": "North: it starts in your street.", "nl": ""}, "south": {"en": ""}},
    )
    report = parse_outcome(source.encode(), "o.toml", "other", ("en", "nl"))
    assert report.outcome is not None
    assert report.outcome.texts == {"en": 'You said "yes".'}
    assert report.outcome.by == "district"
    assert dict(report.outcome.per_value) == {"north": {"en": "North: it starts in your street."}}
    assert [str(p) for p in report.problems] == [
        "o.toml:2: warning: no text in nl: those citizens get the en text"
    ]


def test_an_outcome_is_priced_previewed_published_and_reaches_who_took_part(
    db: sessionmaker[Session], service: Service, pushes: Pushes, clock: Clock
) -> None:
    add_contact(db, "+32470000011", attributes={"district": "north"})
    add_contact(db, "+32470000012", attributes={"district": "south"})
    for number in ("+32470000011", "+32470000012"):
        reply(service, clock, number, "OTHER")
        reply(service, clock, number, "yes")
    add_contact(db, "+32470000013", attributes={"district": "north"})  # did not take part
    assert participant_values(service, "other", "district") == {"north": 1, "south": 1}
    source = outcome_source(
        "other", {"en": "You said yes: we do it ✓"}, "district", {"north": {"en": "North: yes."}}
    )
    with transaction(db, read_only=True) as s:
        survey = service.survey(s, "other")
    checked = check_outcome(survey, source.encode(), "outcome.toml")
    assert checked.outcome is not None
    assert [(p.what, p.language, p.encoding) for p in checked.prices] == [
        ("text", "en", "UCS-2"),
        ("texts.north", "en", "GSM-7"),
    ]
    assert checked.prices[0].forcing_ucs2 == ("U+2713 CHECK MARK ✓",)
    assert checked.previews[0].on("telegram").text == "You said yes: we do it ✓"
    planned = plan_outcome(pushes, checked.outcome, PushSpec(survey="other", at=clock.now))
    assert planned.preview.recipients == 2
    published = publish_outcome(pushes, service, checked.outcome, checked.source, planned)
    assert published.fired is not None
    assert published.fired.planned == 2
    clock.advance(timedelta(seconds=1))  # the second is due a little later, at the rate
    pushes.tick()
    sent = {m.address: m.text for m in outbox(db) if m.kind == "push"}
    assert sent == {"+32470000011": "North: yes.", "+32470000012": "You said yes: we do it ✓"}
    with transaction(db, read_only=True) as s:
        row = s.scalars(select(OutcomeRow)).one()
        assert row.source == source
        assert row.push_id == published.push_id


def test_a_broken_outcome_gives_its_problems_and_no_prices(
    service: Service, db: sessionmaker[Session]
) -> None:
    with transaction(db, read_only=True) as s:
        survey = service.survey(s, "other")
    checked = check_outcome(survey, b'text.en = "x"\ncolour = "red"\n', "o.toml")
    assert checked.outcome is None
    assert checked.prices == ()
    assert [p.line for p in checked.report.problems if p.severity == "error"] == [2]


# --- the home page -----------------------------------------------------------------------------


def test_home_gives_what_runs_now(
    db: sessionmaker[Session], service: Service, pushes: Pushes, clock: Clock
) -> None:
    add_contact(db, "+32470000021")
    add_contact(db, "+32470000022", opted_out=True)
    reply(service, clock, "+32470000023", "EVERY")
    reply(service, clock, "+32470000023", "1")
    reply(service, clock, "+32470000024", "STOP")
    service.close_survey("other", clock.now)
    later = pushes.create(PushSpec(survey="every-type", at=clock.now + timedelta(days=2)))
    sooner = pushes.create(PushSpec(survey="every-type", at=clock.now + timedelta(hours=1)))
    summary = home(service, ZONE)
    assert [c.slug for c in summary.open] == ["every-type"]
    assert summary.answered_today == 1
    assert [p.id for p in summary.next_pushes] == [sooner, later]
    [queue] = summary.queues
    assert queue.channel == "sms"
    assert queue.queued == len(outbox(db))
    assert queue.failed_today == 0
    assert summary.opt_outs_this_week == 2  # one by STOP, one imported as opted out
    clock.advance(timedelta(days=8))
    assert home(service, ZONE).opt_outs_this_week == 0
