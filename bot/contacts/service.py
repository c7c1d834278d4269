"""Contacts as city staff manage them: import a list, look people up, erase them.

The side effects live here (the file, the database, the clock); the file's format is checked
by the pure :mod:`bot.contacts.csv_file`, and rows are written by :mod:`storage.contacts` in bulk.
An import is ONE transaction: a crash or a fatal problem halfway imports nothing. Erasing
is exactly what a citizen's FORGET does (:meth:`bot.service.Service.forget`). Logs and the
audit log name contact ids and counts, never a phone number or a chat id.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from bot.contacts.csv_file import ContactRow, RowProblem, normalise_address, read_contacts
from bot.service import Service, utc_now
from storage import contacts as store
from storage import repo
from storage.db import transaction
from storage.models import Address, Contact

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
#: Called as the import goes: ``(line reached, lines in the file)``.
Progress = Callable[[int, int], None]
#: Rows upserted per round of statements: large enough to amortise them, small enough that
#: memory stays flat however long the file.
BATCH_SIZE = 1000
#: How long ``erase`` waits for readers before leaving the scrub to the dispatcher.
ERASE_SCRUB_WAIT_MS = 5000
_CHANNEL_PREFIX = re.compile(r"^\s*([A-Za-z]+)\s*:")


@dataclass(frozen=True)
class ImportReport:
    """What an import did. ``problems`` name every skipped row by ``file:line``."""

    #: Data rows read (blank lines not counted).
    rows: int
    counts: store.UpsertCounts
    problems: tuple[RowProblem, ...]
    #: Rows skipped because of a problem (a row may have several).
    skipped: int
    #: sha256 of the file, as recorded in the audit log.
    digest: str


@dataclass(frozen=True)
class AddressView:
    channel: str
    value: str
    consent_at: datetime | None
    consent_source: str | None
    opted_out_at: datetime | None
    invalid_at: datetime | None
    last_inbound_at: datetime | None

    @property
    def declined(self) -> bool:
        """The citizen said no to future consultations in a survey."""
        return store.declined(self.consent_at, self.consent_source)


@dataclass(frozen=True)
class ContactView:
    id: int
    language: str | None
    timezone: str | None
    attributes: Mapping[str, Any]
    tags: tuple[str, ...]
    addresses: tuple[AddressView, ...]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Consultation:
    """One consultation a contact took part in (or began)."""

    survey: str
    version: int
    channel: str
    status: str
    started_at: datetime
    completed_at: datetime | None
    simulated: bool


@dataclass(frozen=True)
class Invitation:
    """A push that planned to reach the contact."""

    push_id: int
    survey: str
    kind: str
    status: str
    channel: str
    invited_at: datetime | None


@dataclass(frozen=True)
class ContactDetails:
    """Everything Voxpop holds about one contact (``voxpop contacts show``)."""

    contact: ContactView
    consultations: tuple[Consultation, ...] = ()
    invitations: tuple[Invitation, ...] = ()
    answers: int = 0


class _DryRun(Exception):  # noqa: N818 - control flow, not an error
    def __init__(self, report: ImportReport) -> None:
        super().__init__("dry run")
        self.report = report


class Contacts:
    """The staff's contact use cases over one database; build once per command."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        service: Service,
        *,
        clock: Clock = utc_now,
        default_region: str = "",
        default_timezone: str = "UTC",
        batch_size: int = BATCH_SIZE,
    ) -> None:
        self._sessions = sessions
        self._service = service
        self._clock = clock
        self._region = default_region
        self._timezone = default_timezone
        self._batch_size = batch_size

    # --- import -------------------------------------------------------------------------------

    def import_file(
        self,
        path: str | os.PathLike[str],
        *,
        progress: Progress | None = None,
        dry_run: bool = False,
    ) -> ImportReport:
        """Upsert every valid row of a contacts file in ONE transaction; report the rest.
        ``dry_run`` does all of it, then rolls back: the report says what would happen.

        Raises :class:`bot.contacts.csv_file.ContactsFileError` (a header or encoding problem:
        nothing is imported) and :class:`OSError` (the file cannot be read).
        """
        try:
            return self._import(os.fspath(path), progress, dry_run)
        except _DryRun as done:
            return done.report

    def _import(self, source: str, progress: Progress | None, dry_run: bool) -> ImportReport:
        total, digest = _summary(source)
        problems: list[RowProblem] = []
        counts = store.UpsertCounts()
        rows = 0
        skipped: set[int] = set()
        with open(source, "rb") as lines, transaction(self._sessions) as s:
            now = self._clock()
            batch: list[ContactRow] = []
            for item in read_contacts(
                lines,
                source,
                now=now,
                default_region=self._region,
                default_timezone=self._timezone,
            ):
                if isinstance(item, RowProblem):
                    problems.append(item)
                    if item.line not in skipped:
                        skipped.add(item.line)
                        rows += 1
                else:
                    rows += 1
                    batch.append(item)
                    if len(batch) >= self._batch_size:
                        counts.add(store.upsert_contacts(s, batch, now))
                        batch = []
                if progress is not None:
                    progress(item.line, total)
            counts.add(store.upsert_contacts(s, batch, now))
            details = {
                "rows": rows,
                "created": counts.created,
                "updated": counts.updated,
                "unchanged": counts.unchanged,
                "skipped": len(skipped),
                "opted_out": counts.opted_out,
                "declined": counts.declined,
                "sha256": digest,
            }
            # Counts and the file's digest only: the file name could itself name a person.
            repo.audit(s, "staff", "contacts_import", None, details, now)
            report = ImportReport(rows, counts, tuple(problems), len(skipped), digest)
            if dry_run:
                raise _DryRun(report)  # leaves the transaction, which rolls it all back
        log.info(
            "contacts import: %d rows, %d created, %d updated, %d unchanged, %d skipped",
            rows,
            counts.created,
            counts.updated,
            counts.unchanged,
            len(skipped),
        )
        return report

    # --- look-ups -------------------------------------------------------------------------------

    def list(
        self,
        *,
        channel: str | None = None,
        language: str | None = None,
        where: Mapping[str, str] | None = None,
        tags: Sequence[str] = (),
        limit: int | None = None,
    ) -> tuple[list[ContactView], int]:
        """Contacts matching every filter, by id (at most ``limit``), and how many match."""
        with transaction(self._sessions, read_only=True) as s:
            found, total = store.list_contacts(
                s, channel=channel, language=language, where=where, tags=tags, limit=limit
            )
            addresses = store.addresses_by_contact(s, [c.id for c in found])
            return [_view(c, addresses.get(c.id, [])) for c in found], total

    def find(self, ref: str) -> int:
        """The contact id that ``ref`` names: an id (digits), or an address as in a contacts
        file (a phone number, ``whatsapp:<number>``, ``telegram:<chat id>``).

        Raises :class:`LookupError` with a message for staff.
        """
        text = ref.strip()
        if text.isdigit():
            with transaction(self._sessions, read_only=True) as s:
                contact = s.get(Contact, int(text))
            if contact is None:
                raise LookupError(
                    f"no contact {text} (a phone number needs its +, like +32470000000, "
                    "or a channel, like sms:0470000000)"
                )
            return contact.id
        explicit = _CHANNEL_PREFIX.match(text)
        channel, value, problem = normalise_address(text, self._region)
        if problem is not None:
            raise LookupError(problem)
        with transaction(self._sessions, read_only=True) as s:
            ids = store.contact_ids_at(s, value, channel if explicit else None)
            if not ids and not explicit:
                ids = store.contact_ids_at(s, value)
            if len(ids) > 1:
                channels = sorted(
                    {a.channel for i in ids for a in repo.addresses_of(s, i) if a.value == value}
                )
                raise LookupError(
                    "several contacts have this number ("
                    + ", ".join(channels)
                    + "): name the channel, like "
                    + " or ".join(f"{c}:{value}" for c in channels)
                )
        if not ids:
            raise LookupError("no contact has this address")
        return ids[0]

    def details(self, contact_id: int) -> ContactDetails:
        """Everything held about a contact; :class:`LookupError` if none (or erased)."""
        with transaction(self._sessions, read_only=True) as s:
            contact = _live(s, contact_id)
            addresses = repo.addresses_of(s, contact_id)
            consultations = tuple(
                Consultation(
                    survey=slug,
                    version=version,
                    channel=row.channel,
                    status=row.status,
                    started_at=row.started_at,
                    completed_at=row.completed_at,
                    simulated=row.simulated,
                )
                for row, slug, version in store.sessions_of(s, contact_id)
            )
            invitations = tuple(
                Invitation(
                    push_id=push.id,
                    survey=push.survey_slug,
                    kind=push.kind,
                    status=recipient.status,
                    channel=recipient.channel,
                    invited_at=recipient.invited_at,
                )
                for recipient, push in store.invitations_of(s, contact_id)
            )
            answers = store.count_answers(s, contact_id)
            return ContactDetails(_view(contact, addresses), consultations, invitations, answers)

    # --- erase --------------------------------------------------------------------------------

    def erase(self, contact_id: int) -> bool:
        """Erase a contact exactly as their FORGET would (no goodbye is sent): addresses
        deleted, messages blanked, free text gone, other answers kept anonymous.
        :class:`LookupError` if none. Whether old copies are gone from SQLite's write-ahead
        log already (else the dispatcher scrubs them when the reader holding them is done)."""
        with transaction(self._sessions) as s:
            contact = _live(s, contact_id)
            self._service.forget(s, contact, self._clock(), actor="staff")
        log.info("contact %d erased by staff", contact_id)
        # Staff can wait a few seconds for a reader to finish; a webhook cannot.
        return self._service.scrub(wait_ms=ERASE_SCRUB_WAIT_MS)


def _live(s: Session, contact_id: int) -> Contact:
    contact = s.get(Contact, contact_id)
    if contact is None:
        raise LookupError(f"no contact {contact_id}")
    if contact.forgotten_at is not None:
        raise LookupError(
            f"contact {contact_id} was erased on {contact.forgotten_at:%Y-%m-%d %H:%M} UTC"
        )
    return contact


def _view(contact: Contact, addresses: Sequence[Address]) -> ContactView:
    return ContactView(
        id=contact.id,
        language=contact.language,
        timezone=contact.timezone,
        attributes=dict(contact.attributes or {}),
        tags=tuple(contact.tags or ()),
        addresses=tuple(
            AddressView(
                channel=a.channel,
                value=a.value,
                consent_at=a.consent_at,
                consent_source=a.consent_source,
                opted_out_at=a.opted_out_at,
                invalid_at=a.invalid_at,
                last_inbound_at=a.last_inbound_at,
            )
            for a in addresses
        ),
        created_at=contact.created_at,
        updated_at=contact.updated_at,
    )


def _summary(path: str) -> tuple[int, str]:
    """Lines in the file and its sha256, in one pass over the bytes."""
    digest = hashlib.sha256()
    lines = 0
    last = b"\n"
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    return lines + (last != b"\n"), digest.hexdigest()
