"""Every column of every table, sorted into what can identify a citizen and what cannot.

FORGET (and ``voxpop contacts erase``) must reach every column in :data:`PERSONAL`; the
erasure itself is :func:`storage.repo.forget_contact` (with the service, which knows which
answers are free text). A test checks that each column of :mod:`storage.models` is in
exactly one of the two maps, so a new column cannot hold personal data unnoticed: whoever
adds one must say here what FORGET does with it, and docs/conversation.md lists them.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Final

__all__ = ["NOT_PERSONAL", "PERSONAL", "Erasure"]


class Erasure(Enum):
    """What FORGET does to a personal column in the citizen's rows."""

    #: The whole row is deleted.
    DELETED = "row deleted"
    #: Set to NULL (or empty: ``{}``, ``[]``, ``""``; an unsent message's error says only
    #: ``contact forgotten``).
    CLEARED = "cleared"
    #: The link to the contact is set to NULL: the row stays, belonging to nobody.
    UNLINKED = "unlinked"
    #: Replaced by a value that links to nothing (a random respondent id, the contact's
    #: tombstone reference).
    REPLACED = "replaced"
    #: Only what the citizen typed freely goes (text answers); choices, numbers and yes/no
    #: stay for the results.
    FREE_TEXT = "free text cleared"
    #: Cleared where it contains one of the citizen's addresses (a Telegram ``chat:message``
    #: id); an opaque provider id (a Twilio SID) stays, so a late report finds its row.
    IF_NAMING = "cleared where it names the address"


_ADDRESS_ROW = {
    column: Erasure.DELETED
    for column in (
        "id",
        "contact_id",
        "channel",
        "value",
        "consent_at",
        "consent_source",
        "opted_out_at",
        "invalid_at",
        "created_at",
        "last_inbound_at",
        "next_send_at",
    )
}

#: ``table -> column -> what FORGET does to it``.
PERSONAL: Final[Mapping[str, Mapping[str, Erasure]]] = {
    "contacts": {
        "language": Erasure.CLEARED,
        "timezone": Erasure.CLEARED,
        "attributes": Erasure.CLEARED,
        "tags": Erasure.CLEARED,
        "pending": Erasure.CLEARED,
        "last_help_at": Erasure.CLEARED,
    },
    "addresses": _ADDRESS_ROW,
    "sessions": {
        "contact_id": Erasure.UNLINKED,
        "respondent": Erasure.REPLACED,
        "state": Erasure.FREE_TEXT,
    },
    "answers": {
        "value": Erasure.FREE_TEXT,
        "raw": Erasure.CLEARED,
    },
    "messages": {
        # The goodbye keeps its address until the dispatcher records its outcome.
        "address": Erasure.CLEARED,
        "contact_id": Erasure.UNLINKED,
        "session_id": Erasure.UNLINKED,
        "text": Erasure.CLEARED,
        "payload": Erasure.CLEARED,
        "error": Erasure.CLEARED,
        "provider_id": Erasure.IF_NAMING,
    },
    "push_recipients": {
        "contact_id": Erasure.UNLINKED,
        "address": Erasure.CLEARED,
    },
    "audit_log": {
        # The pseudonym exports carry becomes the tombstone's "contact:<id>".
        "subject": Erasure.REPLACED,
    },
}

_STAFF_FILE = "written by staff (a consultation, a push, an outcome), not by a citizen"

#: ``table -> column -> why it cannot identify anyone`` (kept as it is by FORGET).
NOT_PERSONAL: Final[Mapping[str, Mapping[str, str]]] = {
    "contacts": {
        "id": "the tombstone's key; the row holds nothing else",
        "created_at": "when the tombstone's row was made",
        "updated_at": "when the tombstone's row last changed",
        "forgotten_at": "when FORGET happened",
    },
    "surveys": {
        column: _STAFF_FILE
        for column in (
            "id",
            "slug",
            "version",
            "digest",
            "source",
            "title",
            "keywords",
            "closes_at",
            "loaded_at",
        )
    },
    "sessions": {
        "id": "a row number",
        "survey_id": "which consultation version",
        "channel": "sms, whatsapp or telegram: a count in the results, not an address",
        "language": "a count in the results",
        "status": "completed, abandoned...",
        "state_version": "a counter",
        "started_at": "in the export; times alone name nobody",
        "updated_at": "in the export; times alone name nobody",
        "completed_at": "in the export; times alone name nobody",
        "simulated": "a flag",
    },
    "answers": {
        "id": "a row number",
        "session_id": "the anonymous session",
        "question_id": "the consultation's own id",
        "how": "how a reply was understood (label, number...); 'erased' after FORGET",
        "answered_at": "times alone name nobody",
    },
    "messages": {
        "id": "a row number",
        "direction": "in or out",
        "channel": "sms, whatsapp or telegram",
        "kind": "reply, push...",
        "priority": "the dispatcher's order",
        "status": "the delivery outcome, for the counts",
        "attempts": "a counter",
        "next_attempt_at": "the dispatcher's schedule",
        "lease_until": "the dispatcher's lease",
        "segments": "SMS parts billed",
        "created_at": "times alone name nobody",
        "sent_at": "times alone name nobody",
        "recipient_id": "a push's delivery counts; the recipient row holds no address",
    },
    "send_budgets": {
        "key": "the city's own sender (its number or the bot)",
        "next_free_at": "pacing",
    },
    "status_reports": {
        "id": "a row number",
        "channel": "sms or whatsapp",
        "provider_id": "an opaque Twilio message id (Telegram sends no reports)",
        "status": "delivered, failed...",
        "error_code": "a Twilio error number",
        "received_at": "a time",
    },
    "pushes": {
        column: _STAFF_FILE
        for column in (
            "id",
            "survey_slug",
            "kind",
            "status",
            "scheduled_at",
            "created_at",
            "created_by",
            "audience",
            "channels",
            "timezone",
            "quiet_hours",
            "rate_per_second",
            "variants",
            "reminders",
            "message",
            "fired_at",
            "finished_at",
            "planned",
            "note",
        )
    },
    "push_recipients": {
        "id": "a row number",
        "push_id": "which push",
        "channel": "a count per channel",
        "language": "a count per language",
        "variant": "the A/B wording, for the counts",
        "status": "invited, skipped ('forgotten')...",
        "due_at": "a time",
        "invited_at": "a time",
        "session_id": "the anonymous session: a push's response counts",
        "reminders_sent": "a counter",
        "next_reminder_at": "cleared by FORGET so no reminder goes; a time",
        "reason": "why skipped ('forgotten')",
    },
    "outcomes": {
        column: _STAFF_FILE
        for column in ("id", "survey_slug", "published_at", "message", "source", "push_id")
    },
    "apscheduler_jobs": {
        "id": "a job name (a push id)",
        "next_run_time": "a time",
        "job_state": "which push to fire, pickled by APScheduler",
    },
    "audit_log": {
        "id": "a row number",
        "at": "a time",
        "actor": "citizen, system, or the staff member who acted",
        "action": "what was done",
        "details": "counts, survey ids, channel names; never an address",
    },
    "staff_accounts": {
        column: "a member of staff's account, not a citizen's data"
        for column in (
            "id",
            "email",
            "password_hash",
            "role",
            "created_at",
            "disabled_at",
            "last_sign_in_at",
            "totp_secret",
            "totp_confirmed_at",
            "recovery_codes",
        )
    },
    "staff_sessions": {
        column: "a member of staff's signed-in browser, not a citizen's data"
        for column in (
            "id",
            "staff_id",
            "created_at",
            "last_seen_at",
            "expires_at",
            "revoked_at",
            "stage",
            "user_agent",
        )
    },
    "sign_in_failures": {
        "id": "a row number",
        "at": "a time",
        "account_key": "a keyed hash of the email typed at the console's sign-in",
        "address_key": "a keyed hash of the address the sign-in came from",
    },
    "settings": {
        "key": "a setting's name",
        "value": "generated secrets and markers of the deployment",
    },
}
