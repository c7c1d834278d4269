"""The conversation engine: pure. It takes a survey, a session state, an event and ``now``,
and returns the new state and the effects for the caller to carry out.

No database, clock, channel or Flask in here (see docs/architecture.md): the service
stores what :class:`Record` says and sends what :class:`Say` says.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal, TypeAlias

from bot.conversation.i18n import N_, t
from messages import MessageKind, Option
from surveys.answers import Reask, choice_payload, interpret, interpret_payload
from surveys.model import AnswerValue, Question, Range, Survey

SessionStatus: TypeAlias = Literal["active", "completed", "abandoned"]
#: Bumped when the JSON shape of :class:`SessionState` changes; old rows are upgraded on read.
STATE_FORMAT = 1
#: Failed tries on one question after which the re-ask also mentions HELP (and SKIP).
TRIES_BEFORE_HELP = 2


@dataclass(frozen=True)
class SessionState:
    """Where one citizen is in one survey. Serialised as JSON in the sessions table."""

    survey_id: str
    digest: str
    language: str
    status: SessionStatus = "active"
    #: The question awaiting an answer; ``None`` once finished.
    current: str | None = None
    #: Answers so far; a skipped optional question maps to ``None``.
    answers: Mapping[str, AnswerValue] = field(default_factory=dict)
    #: Question ids in the order they were asked.
    asked: tuple[str, ...] = ()
    #: Failed tries on the current question.
    tries: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            "survey_id": self.survey_id,
            "digest": self.digest,
            "language": self.language,
            "status": self.status,
            "current": self.current,
            "answers": dict(self.answers),
            "asked": list(self.asked),
            "tries": self.tries,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SessionState:
        return cls(
            survey_id=str(data["survey_id"]),
            digest=str(data["digest"]),
            language=str(data["language"]),
            status=session_status(str(data.get("status", "active"))),
            current=data.get("current"),
            answers=dict(data.get("answers", {})),
            asked=tuple(data.get("asked", ())),
            tries=int(data.get("tries", 0)),
        )


_STATUSES: dict[str, SessionStatus] = {s: s for s in ("active", "completed", "abandoned")}


def session_status(value: str) -> SessionStatus:
    """Check a stored status string."""
    try:
        return _STATUSES[value]
    except KeyError:
        raise ValueError(f"unknown session status {value!r}") from None


# --- events -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    text: str
    payload: str | None = None


@dataclass(frozen=True)
class Skip:
    pass


@dataclass(frozen=True)
class Repeat:
    pass


@dataclass(frozen=True)
class SetLanguage:
    language: str


@dataclass(frozen=True)
class Timeout:
    """The session idled too long, or the citizen left it for another survey."""


Event: TypeAlias = Reply | Skip | Repeat | SetLanguage | Timeout


# --- effects ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Say:
    text: str
    options: tuple[Option, ...] = ()
    kind: MessageKind = "reply"


@dataclass(frozen=True)
class Record:
    question_id: str
    value: AnswerValue
    raw: str | None
    how: str


@dataclass(frozen=True)
class Finish:
    status: SessionStatus


Effect: TypeAlias = Say | Record | Finish


@dataclass(frozen=True)
class Step:
    state: SessionState
    effects: tuple[Effect, ...]

    @property
    def says(self) -> tuple[Say, ...]:
        return tuple(e for e in self.effects if isinstance(e, Say))


# --- the flow -----------------------------------------------------------------------------


def start(survey: Survey, language: str | None, now: datetime) -> Step:
    """Begin ``survey``: intro (if any) and the first question that applies."""
    lang = survey.language_for(language)
    state = SessionState(survey_id=survey.id, digest=survey.digest, language=lang)
    if survey.is_closed(now):
        return Step(replace(state, status="abandoned"), (Say(closed_text(lang)),))
    effects: list[Effect] = []
    opening = intro(survey, lang)
    if opening is not None:
        effects.append(Say(opening))
    return _advance(survey, state, effects)


def resume(survey: Survey, state: SessionState, event: Event, now: datetime) -> Step:
    """Apply one event to an active session."""
    if state.status != "active" or state.current is None:
        return Step(state, ())
    if isinstance(event, Timeout):
        return Step(replace(state, status="abandoned"), (Finish("abandoned"),))
    if survey.is_closed(now):
        closed = replace(state, status="abandoned", current=None)
        return Step(closed, (Say(closed_text(state.language)), Finish("abandoned")))
    question = survey.question(state.current)
    if question is None:  # the stored state points at a question this version lacks
        return _advance(survey, state, [])
    if isinstance(event, Repeat):
        return Step(state, (ask(survey, question, state.language),))
    if isinstance(event, SetLanguage):
        new_state = replace(state, language=survey.language_for(event.language))
        return Step(new_state, (ask(survey, question, new_state.language),))
    if isinstance(event, Skip):
        if not question.optional:
            text = t(state.language, N_("This question needs an answer."))
            return Step(state, (Say(text), ask(survey, question, state.language)))
        return _answered(survey, state, question, None, None, "skip")
    result = (
        interpret_payload(question, event.payload)
        if event.payload is not None
        else interpret(question, event.text, state.language, survey.languages)
    )
    if isinstance(result, Reask):
        tries = state.tries + 1
        hint = hint_text(question, result, state.language, tries)
        return Step(replace(state, tries=tries), (Say(hint),))
    raw = event.text if event.payload is None else event.payload
    return _answered(survey, state, question, result.value, raw, result.how)


def _answered(
    survey: Survey,
    state: SessionState,
    question: Question,
    value: AnswerValue,
    raw: str | None,
    how: str,
) -> Step:
    answers = {**state.answers, question.id: value}
    new_state = replace(state, answers=answers, tries=0)
    return _advance(survey, new_state, [Record(question.id, value, raw, how)])


def _advance(survey: Survey, state: SessionState, effects: list[Effect]) -> Step:
    """Move to the next question whose ``when`` holds, or finish."""
    nxt = next_question(survey, state)
    if nxt is None:
        effects.append(Say(thanks(survey, state.language)))
        effects.append(Finish("completed"))
        return Step(replace(state, status="completed", current=None, tries=0), tuple(effects))
    new_state = replace(state, current=nxt.id, asked=(*state.asked, nxt.id), tries=0)
    effects.append(ask(survey, nxt, state.language))
    return Step(new_state, tuple(effects))


def next_question(survey: Survey, state: SessionState) -> Question | None:
    """The first question after the current one that is unanswered and whose ``when`` holds."""
    seen_current = state.current is None
    for question in survey.questions:
        if not seen_current:
            seen_current = question.id == state.current
            continue
        if question.id in state.answers:
            continue
        if conditions_hold(question, state.answers):
            return question
    return None


def conditions_hold(question: Question, answers: Mapping[str, AnswerValue]) -> bool:
    """All of ``question.when`` holds; a condition on an unasked or skipped question is false."""
    for other_id, condition in question.when.items():
        value = answers.get(other_id)
        if value is None:
            return False
        if isinstance(condition, bool):
            if value is not condition:
                return False
        elif isinstance(condition, Range):
            if isinstance(value, bool) or not isinstance(value, int | float):
                return False
            if not condition.holds(value):
                return False
        else:
            wanted = {condition} if isinstance(condition, str) else set(condition)
            given = set(value) if isinstance(value, list) else {value}
            if not wanted & given:
                return False
    return True


# --- rendering questions and hints ---------------------------------------------------------


def ask(survey: Survey, question: Question, language: str) -> Say:
    """The question as a message: text, a short instruction where needed, and options."""
    default = survey.default_language
    text = question.text_in(language, default)
    options: tuple[Option, ...] = ()
    if question.type in ("choice", "multi"):
        options = tuple(
            Option(
                question.option_key(i),
                c.label_in(language, default),
                choice_payload(question, c.id),
            )
            for i, c in enumerate(question.choices)
        )
        if question.type == "multi":
            example = f"{options[0].key},{options[-1].key}" if len(options) > 1 else options[0].key
            text += " " + t(language, N_("(one or more, e.g. {example})"), example=example)
    elif question.type == "yesno":
        options = (
            Option("1", t(language, N_("Yes")), f"{question.id}:yes"),
            Option("2", t(language, N_("No")), f"{question.id}:no"),
        )
    elif question.type == "scale":
        low, high = int(question.min or 0), int(question.max or 0)
        ends = []
        if question.min_label:
            ends.append(f"{low} = {_pick(question.min_label, language, default)}")
        if question.max_label:
            ends.append(f"{high} = {_pick(question.max_label, language, default)}")
        text += f" ({low}-{high}" + (": " + ", ".join(ends) if ends else "") + ")"
        options = tuple(Option(str(n), str(n), f"{question.id}:{n}") for n in range(low, high + 1))
    if question.optional:
        text += " " + t(language, N_("(SKIP to skip)"))
    return Say(text, options)


def _pick(texts: Mapping[str, str], language: str, default: str) -> str:
    return texts.get(language) or texts.get(default) or next(iter(texts.values()), "")


def hint_text(question: Question, reask: Reask, language: str, tries: int) -> str:
    """A short re-ask in the citizen's language; after repeated failures, point at HELP."""
    p = reask.params
    letters = question.numbering == "letters" and question.type in ("choice", "multi")
    reason = reask.reason
    if reason == "choose_one":
        msg = (
            N_("Reply with a letter from {low} to {high}.")
            if letters
            else N_("Reply with a number from {low} to {high}.")
        )
    elif reason == "ambiguous":
        msg = (
            N_("That fits more than one answer. Reply with one letter, {low} to {high}.")
            if (letters)
            else N_("That fits more than one answer. Reply with one number, {low} to {high}.")
        )
    elif reason == "choose_many":
        msg = (
            N_("Reply with one or more letters from {low} to {high}, e.g. {low},{high}.")
            if (letters)
            else N_("Reply with one or more numbers from {low} to {high}, e.g. {low},{high}.")
        )
    elif reason == "too_few":
        msg = N_("Please choose at least {min}.")
    elif reason == "too_many":
        msg = N_("Please choose at most {max}.")
    elif reason == "yesno":
        msg = N_("Please reply YES or NO.")
    elif reason == "scale":
        msg = N_("Reply with a number from {low} to {high}.")
    elif reason == "number":
        if "low" in p and "high" in p:
            msg = N_("Reply with a number from {low} to {high}.")
        elif "low" in p:
            msg = N_("Reply with a number of at least {low}.")
        elif "high" in p:
            msg = N_("Reply with a number of at most {high}.")
        else:
            msg = N_("Please reply with a number.")
    elif reason == "integer":
        msg = N_("Please reply with a whole number.")
    elif reason == "text_empty":
        msg = N_("Please reply with a few words.")
    else:  # text_too_long
        msg = N_("Please keep it under {max} characters.")
    text = t(language, msg, **{k: _fmt(v) for k, v in p.items()})
    if tries >= TRIES_BEFORE_HELP:
        extra = (
            N_("Send HELP for help or SKIP to skip.")
            if question.optional
            else N_("Send HELP for help.")
        )
        text += " " + t(language, extra)
    return text


def _fmt(value: str | int | float) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def intro(survey: Survey, language: str) -> str | None:
    """The first message of a consultation, if its file has one."""
    if not survey.intro:
        return None
    return survey.intro.get(language) or survey.intro[survey.default_language]


def thanks(survey: Survey, language: str) -> str:
    """The last message of a completed consultation: its outro, or a plain thank-you."""
    outro = survey.outro.get(language) or survey.outro.get(survey.default_language)
    return outro or t(language, N_("Thank you for taking part!"))


def closed_text(language: str) -> str:
    return t(language, N_("Sorry, this consultation is closed. Thank you for your interest."))


def reopen(survey: Survey, state: SessionState) -> Step:
    """Make a session the citizen left active again, asking where they stopped."""
    reopened = replace(state, status="active", tries=0)
    welcome = Say(t(state.language, N_("Welcome back! Let's continue.")))
    question = survey.question(state.current) if state.current else None
    if question is None:
        return _advance(survey, reopened, [welcome])
    return Step(reopened, (welcome, ask(survey, question, state.language)))
