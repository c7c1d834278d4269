"""Property tests: no text a citizen can send makes the engine or the router raise, and every
reply leaves the session in a valid state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.conversation import engine
from bot.conversation import router as conv
from bot.conversation.engine import Say, SessionState
from surveys.loader import example_paths, load_survey
from surveys.model import AnswerValue, Question, Survey

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
SURVEYS = {p.stem: load_survey(p) for p in example_paths()}
PARK = SURVEYS["central-park"]
LIGHTS = SURVEYS["street-lighting"]

# What citizens really send: any unicode, plus the shapes that break naive parsers.
citizen_text = st.one_of(
    st.text(max_size=200),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=50),
    st.sampled_from(
        [
            "",
            " ",
            "\x00",
            "⭐" * 6,
            "👍👎",
            "مرحبا ١٢",
            "שלום 2",
            "\u202e1",
            "1" * 10_000,
            "a" * 10_240,
            "STOP",
            "LANG",
            "LANG zz",
            "SKIP",
            "YES",
            "NON",
            "1,2,3,4,5,6,7",
            "-1",
            "1e9",
            "NaN",
            "inf",
            "½",
            "²",
            "٣",
            "\ud800",
            "\udfff x",
        ]
    ),
    st.builds(lambda n: str(n), st.integers(min_value=-(10**30), max_value=10**30)),
)


def _valid_value(question: Question, value: AnswerValue) -> bool:
    if value is None:
        return question.optional
    ids = [c.id for c in question.choices]
    if question.type == "choice":
        return value in ids
    if question.type == "multi":
        return (
            isinstance(value, list)
            and len(value) >= question.min_choices
            and (question.max_choices is None or len(value) <= question.max_choices)
            and value == [i for i in ids if i in value]
        )
    if question.type == "yesno":
        return isinstance(value, bool)
    if question.type == "scale":
        return (
            isinstance(value, int)
            and not isinstance(value, bool)
            and (question.min or 0) <= value <= (question.max or 0)
        )
    if question.type == "number":
        return (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and (question.min is None or value >= question.min)
            and (question.max is None or value <= question.max)
        )
    return isinstance(value, str) and 0 < len(value) <= question.max_length


def assert_valid(survey: Survey, state: SessionState) -> None:
    assert state.status in ("active", "completed", "abandoned")
    assert state.language in survey.languages
    assert set(state.answers) <= set(state.asked)
    for question_id, value in state.answers.items():
        question = survey.question(question_id)
        assert question is not None
        assert _valid_value(question, value), (question_id, value)
    if state.status == "active":
        assert state.current is not None
        current = survey.question(state.current)
        assert current is not None
        assert state.current not in state.answers
        assert engine.conditions_hold(current, state.answers)
    if state.status == "completed":
        assert state.current is None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    replies=st.lists(citizen_text, min_size=1, max_size=12),
    survey_name=st.sampled_from(sorted(SURVEYS)),
)
def test_any_replies_keep_the_session_valid(replies: list[str], survey_name: str) -> None:
    survey = SURVEYS[survey_name]
    step = engine.start(survey, "nl", NOW)
    assert_valid(survey, step.state)
    for text in replies:
        before = step.state
        step = engine.resume(survey, before, engine.Reply(text), NOW)
        assert_valid(survey, step.state)
        if before.status == "active":
            # A citizen always hears something back while a survey runs.
            assert any(isinstance(e, Say) and e.text for e in step.effects)
        if step.state.status != "active":
            step = engine.start(survey, "en", NOW)


@settings(max_examples=200, deadline=None)
@given(payload=st.text(max_size=80), text=citizen_text)
def test_any_button_payload_is_safe(payload: str, text: str) -> None:
    step = engine.start(PARK, "en", NOW)
    step = engine.resume(PARK, step.state, engine.Reply(text, payload), NOW)
    assert_valid(PARK, step.state)


@st.composite
def contexts(draw: st.DrawFn) -> conv.Context:
    active = None
    if draw(st.booleans()):
        survey = draw(st.sampled_from([PARK, LIGHTS]))
        state = engine.start(survey, draw(st.sampled_from(["en", "nl", "fr"])), NOW).state
        active = conv.SessionView(1, survey, state)
    pending = draw(
        st.sampled_from(
            [
                None,
                {"kind": "forget"},
                {"kind": "switch", "survey": "street-lighting"},
                {"kind": "switch", "survey": "gone"},
                {"kind": "unknown"},
            ]
        )
    )
    last_help = draw(st.sampled_from([None, NOW - timedelta(hours=1), NOW - timedelta(days=2)]))
    return conv.Context(
        contact=conv.ContactView(
            language=draw(st.sampled_from([None, "en", "nl", "fr", "de", "es", "xx"])),
            opted_out=draw(st.booleans()),
            pending=pending,
            last_help_at=last_help,
        ),
        now=NOW,
        keywords={"park": PARK, "parc": PARK, "lights": LIGHTS, "licht": LIGHTS},
        active=active,
    )


@settings(max_examples=400, deadline=None)
@given(ctx=contexts(), text=citizen_text)
def test_router_never_raises_and_sessions_stay_valid(ctx: conv.Context, text: str) -> None:
    effects = conv.handle(ctx, text)
    for effect in effects:
        if isinstance(effect, conv.UpdateSession):
            assert_valid(effect.survey, effect.step.state)
        if isinstance(effect, Say):
            assert effect.text
    if ctx.contact.opted_out and not any(isinstance(e, conv.OptIn) for e in effects):
        # After STOP only what the citizen explicitly asks for is answered.
        assert not any(isinstance(e, conv.UpdateSession) for e in effects)
