"""The service: the only place where the engine's decisions meet the database and the clock.

It is built in layers, one module each: :mod:`bot.service.core` (the database, the clock,
retries, privacy), :mod:`bot.service.writing` (effects written as rows),
:mod:`bot.service.inbound` (``receive``, ``receive_press``, ``notify_ignored``,
``record_status``), :mod:`bot.service.outreach` (invitations, reminders, outcome messages) and
:mod:`bot.service.catalog` (loading and closing consultations, the simulator's transcript).
:class:`Service` is all of them together, and the one the rest of Voxpop builds.
"""

from __future__ import annotations

from bot.service.catalog import SurveyAdmin, read_survey_sources
from bot.service.core import (
    CONCURRENT_TRIES,
    PSEUDONYM_SETTING,
    Clock,
    Invitation,
    Outgoing,
    Received,
    lost_a_race,
    outgoing_of,
    simulator_address,
    utc_now,
)
from bot.service.inbound import CALLBACK_ANSWER, KEYBOARD_REMOVE, InboundHandling
from bot.service.outreach import Outreach
from bot.service.writing import results_text

__all__ = [
    "CALLBACK_ANSWER",
    "CONCURRENT_TRIES",
    "KEYBOARD_REMOVE",
    "PSEUDONYM_SETTING",
    "Clock",
    "Invitation",
    "Outgoing",
    "Received",
    "Service",
    "lost_a_race",
    "outgoing_of",
    "read_survey_sources",
    "results_text",
    "simulator_address",
    "utc_now",
]


class Service(InboundHandling, Outreach, SurveyAdmin):
    """Voxpop's use cases over one database. Build once per process: it caches surveys."""
