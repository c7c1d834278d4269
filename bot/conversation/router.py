"""Routing one inbound message for one contact: global commands, confirmations, keywords,
and the active survey. Pure, like the engine: the service loads a :class:`Context`, calls
:func:`handle`, and carries out the effects in order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, TypeAlias

from bot.conversation import engine
from bot.conversation.commands import Command, recognize
from bot.conversation.engine import Say, SessionState, Step
from bot.conversation.i18n import LANGUAGE_NAMES, N_, SUPPORTED_LANGUAGES, t
from surveys.answers import Accepted, interpret
from surveys.model import Question, Survey
from surveys.text import normalize

#: The unprompted help for an unmatched message goes out at most this often per contact,
#: so two auto-responders cannot ping-pong.
HELP_INTERVAL = timedelta(days=1)
#: How long after a consultation closes a stray answer to it hears that it closed.
LATE_ANSWERS = timedelta(days=7)

_CONFIRM = Question(id="confirm", type="yesno", text={})


@dataclass(frozen=True)
class ContactView:
    language: str | None
    opted_out: bool = False
    pending: Mapping[str, Any] | None = None
    last_help_at: datetime | None = None


@dataclass(frozen=True)
class SessionView:
    """A stored session with the survey version it answers."""

    session_id: int
    survey: Survey
    state: SessionState


@dataclass(frozen=True)
class Context:
    contact: ContactView
    now: datetime
    #: Latest survey version by normalised keyword.
    keywords: Mapping[str, Survey]
    active: SessionView | None = None
    #: The latest finished session per survey id, to resume or to say "already answered".
    previous: Mapping[str, SessionView] = field(default_factory=dict)
    default_language: str = "en"


# --- effects for the service ---------------------------------------------------------------


@dataclass(frozen=True)
class UpdateSession:
    """Store ``step`` on a session: ``session_id=None`` creates a new one for ``survey``."""

    session_id: int | None
    survey: Survey
    step: Step


@dataclass(frozen=True)
class ChangeLanguage:
    language: str


@dataclass(frozen=True)
class SetPending:
    pending: Mapping[str, Any] | None


@dataclass(frozen=True)
class OptOut:
    pass


@dataclass(frozen=True)
class OptIn:
    pass


@dataclass(frozen=True)
class Forget:
    pass


@dataclass(frozen=True)
class ReportInfo:
    """Tell the citizen what we hold; the service knows the counts."""

    language: str


@dataclass(frozen=True)
class MarkHelped:
    pass


@dataclass(frozen=True)
class ReportResults:
    """Tell the citizen the latest published outcome, or how the consultation is going; the
    service knows both."""

    language: str


Effect: TypeAlias = (
    Say
    | UpdateSession
    | ChangeLanguage
    | SetPending
    | OptOut
    | OptIn
    | Forget
    | ReportInfo
    | MarkHelped
    | ReportResults
)


def handle(ctx: Context, text: str, payload: str | None = None) -> tuple[Effect, ...]:
    """Decide what one inbound message does."""
    lang = language_of(ctx)
    command = recognize(text) if payload is None else None
    contact = ctx.contact
    if contact.opted_out:
        # Nothing goes to an opted-out contact except what they explicitly ask for: a keyword
        # (typed, or a Telegram /start link) asks to take part, so it opts them in again.
        survey = ctx.keywords.get(normalize(text)) if command is None and payload is None else None
        if survey is not None and contact.pending is None:
            return (OptIn(), *_keyword(ctx, survey, lang))
        if command is None or command.name not in ("start", "help", "info", "forget"):
            if contact.pending and contact.pending.get("kind") == "forget":
                return _confirm_pending(ctx, text, lang)
            return ()
        if command.name == "start":
            return (OptIn(), Say(t(lang, N_("Welcome back! Send HELP for help."))))
    if contact.pending is not None and command is None:
        return _confirm_pending(ctx, text, lang)
    effects: tuple[Effect, ...] = ()
    if contact.pending is not None:
        effects = (SetPending(None),)  # a command overrides the open question
    if command is not None:
        return effects + _command(ctx, command, lang)
    survey = ctx.keywords.get(normalize(text)) if payload is None else None
    if survey is not None:
        return _keyword(ctx, survey, lang)
    if ctx.active is not None:
        return _resume(ctx.active, engine.Reply(text, payload), ctx.now)
    return _unmatched(ctx, lang)


def is_go_ahead(ctx: Context, text: str, payload: str | None = None) -> bool:
    """Whether a message can be the citizen's reply to an invitation template: anything but
    a command or a keyword, which mean something of their own.

    >>> ctx = Context(ContactView(None), datetime(2026, 1, 1), keywords={})
    >>> is_go_ahead(ctx, "OK"), is_go_ahead(ctx, "STOP")
    (True, False)
    """
    if payload is not None:
        return True
    return recognize(text) is None and normalize(text) not in ctx.keywords


def language_of(ctx: Context) -> str:
    """The language of Voxpop's own messages to a contact (help, commands, "already took
    part"): the one they chose; else the one of the consultation they are answering, or last
    answered; else ``[conversation] default_language``.

    >>> park = Survey("park", {}, ("nl", "en"), ())
    >>> ended = SessionView(7, park, engine.SessionState("park", "", "nl", status="completed"))
    >>> new = Context(ContactView(None), datetime(2026, 1, 1), keywords={}, default_language="en")
    >>> language_of(new), language_of(replace(new, previous={"park": ended}))
    ('en', 'nl')
    """
    if ctx.contact.language:
        return ctx.contact.language
    if ctx.active is not None:
        return ctx.active.state.language
    latest = max(ctx.previous.values(), key=lambda view: view.session_id, default=None)
    if latest is not None:
        return latest.state.language
    return ctx.default_language


def _resume(active: SessionView, event: engine.Event, now: datetime) -> tuple[Effect, ...]:
    step = engine.resume(active.survey, active.state, event, now)
    return (UpdateSession(active.session_id, active.survey, step), *step.says)


def _command(ctx: Context, command: Command, lang: str) -> tuple[Effect, ...]:
    active = ctx.active
    name = command.name
    if name == "stop":
        effects: tuple[Effect, ...] = ()
        if active is not None:
            effects = _resume(active, engine.Timeout(), ctx.now)
        stop = t(lang, N_("You will get no more messages from us. Send START to join again."))
        return (*effects, OptOut(), Say(stop))
    if name == "lang":
        return _switch_language(ctx, command.argument, lang)
    if name == "repeat" and active is not None:
        return _resume(active, engine.Repeat(), ctx.now)
    if name == "skip" and active is not None:
        return _resume(active, engine.Skip(), ctx.now)
    if name == "info":
        return (ReportInfo(lang),)
    if name == "forget":
        ask = t(
            lang,
            N_(
                "Erase your data? Your choices stay, without your number; what you typed "
                "goes. Reply YES to erase or NO to keep it."
            ),
        )
        return (SetPending({"kind": "forget"}), Say(ask))
    if name == "results":
        return (ReportResults(lang),)
    # help, start, and repeat/skip with nothing to repeat or skip
    return _help(ctx, lang)


def _help(ctx: Context, lang: str) -> tuple[Effect, ...]:
    says: list[Effect] = [
        Say(
            t(
                lang,
                N_(
                    "Reply with the number of your answer. REPEAT: ask again, SKIP: skip, LANG: "
                    "language, INFO: your data, STOP: no more messages."
                ),
            )
        )
    ]
    if ctx.active is None:
        says.append(_open_keywords(ctx, lang))
    return tuple(says)


def _open_keywords(ctx: Context, lang: str) -> Say:
    done = {sid for sid, view in ctx.previous.items() if view.state.status == "completed"}
    keywords = sorted(
        {
            s.keywords[0]
            for s in ctx.keywords.values()
            if s.keywords and not s.is_closed(ctx.now) and s.id not in done
        }
    )
    if not keywords:
        return Say(t(lang, N_("There is no open consultation right now.")))
    return Say(t(lang, N_("To take part, send: {keywords}"), keywords=", ".join(keywords)))


def _switch_language(ctx: Context, code: str | None, lang: str) -> tuple[Effect, ...]:
    active = ctx.active
    available = active.survey.languages if active is not None else SUPPORTED_LANGUAGES
    if code is None or code not in available:
        choices = ", ".join(f"LANG {c.upper()}" for c in available)
        return (Say(t(lang, N_("Choose a language: {choices}"), choices=choices)),)
    name = LANGUAGE_NAMES.get(code, code)
    effects: tuple[Effect, ...] = (
        ChangeLanguage(code),
        Say(t(code, N_("Language set to {language}."), language=name)),
    )
    if active is not None:
        effects += _resume(active, engine.SetLanguage(code), ctx.now)
    return effects


def _keyword(ctx: Context, survey: Survey, lang: str) -> tuple[Effect, ...]:
    active = ctx.active
    if active is not None:
        if active.survey.id == survey.id:
            return _resume(active, engine.Repeat(), ctx.now)
        current = _title(active.survey, lang)
        ask = t(
            lang,
            N_(
                "You are answering {current}. Reply YES to switch to {new} (your "
                "answers are kept) or NO to go on."
            ),
            current=current,
            new=_title(survey, lang),
        )
        return (SetPending({"kind": "switch", "survey": survey.id}), Say(ask))
    return begin(ctx, survey)


def begin(ctx: Context, survey: Survey) -> tuple[Effect, ...]:
    """Start ``survey`` for the contact (by keyword, invitation or the simulator). It speaks
    the contact's own language if it has it, else its first: ``[conversation]
    default_language`` plays no part (:meth:`Survey.language_for`)."""
    language = survey.language_for(ctx.contact.language)
    if survey.is_closed(ctx.now):
        return (Say(engine.closed_text(language)),)
    previous = ctx.previous.get(survey.id)
    if previous is not None and previous.state.status == "completed":
        said = language_of(ctx)
        title = _title(survey, said)
        return (Say(t(said, N_("You already took part in {title}. Thank you!"), title=title)),)
    if previous is not None and previous.survey.digest == survey.digest:
        step = engine.reopen(previous.survey, previous.state)
        return (UpdateSession(previous.session_id, previous.survey, step), *step.says)
    step = engine.start(survey, language, ctx.now)
    return (UpdateSession(None, survey, step), *step.says)


def _confirm_pending(ctx: Context, text: str, lang: str) -> tuple[Effect, ...]:
    pending = ctx.contact.pending or {}
    answer = interpret(_CONFIRM, text, lang, SUPPORTED_LANGUAGES)
    if not isinstance(answer, Accepted):
        return (Say(t(lang, N_("Please reply YES or NO."))),)
    kind = pending.get("kind")
    if kind == "forget":
        if answer.value is True:
            done = t(lang, N_("Your data has been erased. Goodbye."))
            return (SetPending(None), Forget(), Say(done))
        return (SetPending(None), Say(t(lang, N_("OK, nothing was erased."))))
    target = next((s for s in ctx.keywords.values() if s.id == pending.get("survey")), None)
    if answer.value is True and target is not None:
        effects: tuple[Effect, ...] = (SetPending(None),)
        after = ctx
        if ctx.active is not None:
            effects += _resume(ctx.active, engine.Timeout(), ctx.now)
            after = replace(
                ctx,
                active=None,
                previous={
                    **ctx.previous,
                    ctx.active.survey.id: ctx.active,
                },
            )
        return effects + begin(after, target)
    effects = (SetPending(None),)
    if ctx.active is not None:
        effects += (Say(t(lang, N_("OK, let's go on."))),)
        effects += _resume(ctx.active, engine.Repeat(), ctx.now)
    return effects


def _unmatched(ctx: Context, lang: str) -> tuple[Effect, ...]:
    """One short pointer to the open consultations: it may go to an auto-responder. A late
    answer to a consultation that closed under the citizen hears that it closed instead."""
    last = ctx.contact.last_help_at
    if last is not None and ctx.now - last < HELP_INTERVAL:
        return ()
    closed = [
        view
        for view in ctx.previous.values()
        if view.state.status == "abandoned"
        and view.survey.closes_at is not None
        and timedelta(0) <= ctx.now - view.survey.closes_at < LATE_ANSWERS
    ]
    if closed:
        return (MarkHelped(), Say(engine.closed_text(closed[0].survey.language_for(lang))))
    return (MarkHelped(), _open_keywords(ctx, lang))


def _title(survey: Survey, lang: str) -> str:
    return survey.title.get(lang) or survey.title.get(survey.default_language) or survey.id
