"""Contacts as city staff manage them: import a list, look people up, erase them.

The side effects live here (the file, the database, the clock); the file's format is checked
by the pure :mod:`bot.contacts.csv_file`, and rows are written by :mod:`storage.contacts` in bulk.
The CLI and the console call the same methods.

Two ways to import, one walk through the file (:meth:`Contacts._walk`):

- :meth:`Contacts.import_file` (the CLI): ONE transaction; a crash or a fatal problem halfway
  imports nothing; ``dry_run`` rolls it all back.
- A staged import (the console): :meth:`~Contacts.stage` stores the upload in
  ``contact_imports``; :meth:`~Contacts.process` (on a worker thread, :mod:`bot.contacts.worker`)
  first checks it (each chunk written inside a savepoint that is rolled back: the dry run, with
  its problems by line and its counts) and, once staff :meth:`~Contacts.confirm`, imports it in
  chunks of :data:`BATCH_SIZE` rows, one short transaction each that also records the progress.
  A web worker is never held for the whole file, other writers (webhooks) get the database
  between chunks, a page polls :meth:`~Contacts.job`, and a worker that dies leaves a lease
  that runs out: the next one resumes after the last committed chunk.

Erasing is exactly what a citizen's FORGET does (:meth:`bot.service.Service.forget`). Logs and
the audit log name contact ids and counts, never a phone number or a chat id.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config
from bot.contacts.csv_file import (
    ContactRow,
    ContactsFileError,
    RowProblem,
    column_key,
    normalise_address,
    read_contacts,
)
from bot.contacts.masking import mask, mask_numbers_in
from bot.log_privacy import log_failure
from bot.service import Clock, Service, utc_now
from safetext import whole_number
from storage import contacts as store
from storage import repo
from storage.db import transaction
from storage.models import Address, AuditEntry, Contact, ContactImport, Message
from storage.pushes import QUEUED_STATUSES
from surveys.model import Question, Survey

log = logging.getLogger(__name__)

#: Called as the import goes: ``(line reached, lines in the file)``.
Progress = Callable[[int, int], None]
#: Rows upserted per round of statements: large enough to amortise them, small enough that
#: memory stays flat however long the file.
BATCH_SIZE = 1000
#: How long ``erase`` waits for readers before leaving the scrub to the dispatcher.
ERASE_SCRUB_WAIT_MS = 5000
#: A worker's claim on a staged import; renewed at every chunk, so only a dead worker's runs out.
LEASE: Final = timedelta(seconds=60)
#: Problems kept with a staged import (the page lists them); the rest are counted.
MAX_STORED_PROBLEMS: Final = 500
#: A staged import not confirmed within this time is dropped with its file.
UNCONFIRMED_TTL: Final = timedelta(hours=24)
#: The file name the problems of a staged import are reported under (never the real one:
#: it could name a person).
UPLOAD_NAME: Final = "upload.csv"
#: The consent filters of :class:`ContactFilter`, with their meaning for staff.
CONSENT_FILTERS: Final = store.CONSENT_FILTERS
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
class ImportCounts:
    """What a check found or an import did, in numbers (kept as JSON with a staged import)."""

    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    #: Rows whose address opted out earlier (STOP): they stay opted out.
    opted_out: int = 0
    #: Rows whose consent the citizen withdrew in a survey: the file's is not applied.
    declined: int = 0

    def to_json(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in _COUNT_NAMES}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> ImportCounts:
        data = data or {}
        return cls(**{name: int(data.get(name) or 0) for name in _COUNT_NAMES})

    @classmethod
    def of(cls, rows: int, skipped: int, counts: store.UpsertCounts) -> ImportCounts:
        return cls(
            rows=rows,
            created=counts.created,
            updated=counts.updated,
            unchanged=counts.unchanged,
            skipped=skipped,
            opted_out=counts.opted_out,
            declined=counts.declined,
        )

    def upserts(self) -> store.UpsertCounts:
        return store.UpsertCounts(
            self.created, self.updated, self.unchanged, self.opted_out, self.declined
        )


_COUNT_NAMES: Final = (
    "rows",
    "created",
    "updated",
    "unchanged",
    "skipped",
    "opted_out",
    "declined",
)
#: The statuses of a staged import a worker is moving forward.
WORKING: Final = ("checking", "importing")


@dataclass(frozen=True)
class ImportJob:
    """A staged import as its page shows it (:meth:`Contacts.job`)."""

    id: int
    status: str
    created_by: str
    created_at: datetime
    updated_at: datetime
    #: Lines in the file; lines the current step (check or import) has reached.
    lines: int
    line: int
    #: What the check found; ``None`` until it is done.
    checked: ImportCounts | None
    #: What the import did; ``None`` until it is done.
    imported: ImportCounts | None
    #: The first problems, by line (at most :data:`MAX_STORED_PROBLEMS`).
    problems: tuple[RowProblem, ...]
    problem_count: int
    error: str | None
    finished_at: datetime | None
    digest: str

    @property
    def working(self) -> bool:
        """A worker is checking or importing it: the page shows progress."""
        return self.status in WORKING

    @property
    def rows(self) -> int:
        """Rows in the file, as the summary counts them: the header is no row."""
        return max(self.lines - 1, 0)

    @property
    def row(self) -> int:
        """Rows the current step has reached (all of them once it is done)."""
        if self.status in ("checked", "done"):
            return self.rows
        return min(max(self.line - 1, 0), self.rows)

    @property
    def percent(self) -> int:
        """How far the current step is, 0 to 100."""
        if self.status in ("checked", "done"):
            return 100
        return min(100, self.line * 100 // max(self.lines, 1))

    def problem_kinds(self, top: int = 5) -> list[tuple[str, int]]:
        """The most frequent problems among those kept, without what varies by row."""
        return problem_kinds(self.problems, top)


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

    @property
    def masked(self) -> str:
        """The address as a page or a terminal shows it (:func:`bot.contacts.masking.mask`)."""
        return mask(self.channel, self.value)


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
class ContactFilter:
    """What staff search contacts by; every filter given must hold (``None``: any)."""

    channel: str | None = None
    language: str | None = None
    #: Attribute values, like ``{"district": "north"}``.
    where: Mapping[str, str] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    #: One of :data:`CONSENT_FILTERS`, on the same address as ``channel``.
    consent: str | None = None

    @property
    def empty(self) -> bool:
        return not (self.channel or self.language or self.where or self.tags or self.consent)


@dataclass(frozen=True)
class ContactPage:
    """One page of a search: the contacts on it, and how many match in all."""

    contacts: tuple[ContactView, ...]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


@dataclass(frozen=True)
class AnswerView:
    """One answer as staff read it: the question in words, the answer in words."""

    question_id: str
    question: str
    answer: str
    answered_at: datetime


@dataclass(frozen=True)
class Consultation:
    """One consultation a contact took part in (or began), with their answers."""

    survey: str
    version: int
    channel: str
    status: str
    started_at: datetime
    completed_at: datetime | None
    simulated: bool
    answers: tuple[AnswerView, ...] = ()


@dataclass(frozen=True)
class Invitation:
    """A push that planned to reach the contact."""

    push_id: int
    survey: str
    kind: str
    status: str
    channel: str
    invited_at: datetime | None
    #: Invited, but the invitation still waits in the outbox: nothing received yet.
    unsent: bool = False


@dataclass(frozen=True)
class ConsentEvent:
    """One step in a contact's consent history, in plain words."""

    at: datetime
    #: The channel it concerns, or ``None`` for every address of the contact.
    channel: str | None
    what: str
    #: Where it came from: a file's ``consent_source``, a survey...
    source: str | None = None


@dataclass(frozen=True)
class ContactDetails:
    """Everything Voxpop holds about one contact (``voxpop contacts show``, its page)."""

    contact: ContactView
    consultations: tuple[Consultation, ...] = ()
    invitations: tuple[Invitation, ...] = ()
    answers: int = 0
    consent_history: tuple[ConsentEvent, ...] = ()


#: Audit actions that belong in a consent history, in words.
_CONSENT_ACTIONS: Final = {
    "opted out": "opted out (STOP)",
    "opted in": "opted in again (START)",
    "consent given": "said yes to future consultations",
    "consent withdrawn": "said no to future consultations",
}


class _DryRun(Exception):  # noqa: N818 - control flow, not an error
    def __init__(self, report: ImportReport) -> None:
        super().__init__("dry run")
        self.report = report


class _Fields(Protocol):
    """A contact's own columns, from an ORM row or a Core one."""

    @property
    def id(self) -> int: ...
    @property
    def language(self) -> str | None: ...
    @property
    def timezone(self) -> str | None: ...
    @property
    def attributes(self) -> Mapping[str, Any] | None: ...
    @property
    def tags(self) -> Sequence[str] | None: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def updated_at(self) -> datetime: ...


@dataclass
class _Tally:
    """What a walk through a file found besides its valid rows."""

    problems: list[RowProblem] = field(default_factory=list)
    skipped: set[int] = field(default_factory=set)
    rows: int = 0

    def counts(self, upserts: store.UpsertCounts) -> ImportCounts:
        return ImportCounts.of(self.rows, len(self.skipped), upserts)


@dataclass
class _Claim:
    """A worker's hold on a staged import: what it read when it claimed it, and its lease."""

    status: str
    data: bytes
    line: int
    imported: ImportCounts
    created_by: str
    lines: int
    digest: str
    lease: datetime


class _Lost(Exception):  # noqa: N818 - control flow, not an error
    """The import was discarded, dropped by a FORGET, or taken over by another worker."""


class Contacts:
    """The staff's contact use cases over one database; build once per command or app."""

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

    @classmethod
    def from_config(
        cls,
        config: Config,
        sessions: sessionmaker[Session],
        service: Service,
        *,
        clock: Clock = utc_now,
    ) -> Contacts:
        """Contacts with the config's region and timezone; :class:`ValueError` with a
        sentence for staff when either is not one."""
        region = config.contacts.default_region.strip().upper()
        if region and region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(
                f"[contacts] default_region {config.contacts.default_region!r} is not a region "
                "code like BE, NL or FR"
            )
        try:
            ZoneInfo(config.pushes.timezone)
        except (ValueError, ZoneInfoNotFoundError):
            raise ValueError(
                f"[pushes] timezone {config.pushes.timezone!r} is not an IANA timezone name, "
                "like Europe/Brussels"
            ) from None
        return cls(
            sessions,
            service,
            clock=clock,
            default_region=region,
            default_timezone=config.pushes.timezone,
        )

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

    def _walk(
        self,
        lines: Iterable[bytes],
        source: str,
        now: datetime,
        tally: _Tally,
        progress: Progress | None = None,
        total: int = 0,
    ) -> Iterator[tuple[list[ContactRow], int]]:
        """The valid rows of a file in batches, each with the line it ends on (the last
        batch may be empty); problems go to ``tally``. The one reading of a file, for the
        CLI's import and the console's."""
        batch: list[ContactRow] = []
        line = 0
        for item in read_contacts(
            lines,
            source,
            now=now,
            default_region=self._region,
            default_timezone=self._timezone,
        ):
            if isinstance(item, RowProblem):
                tally.problems.append(item)
                if item.line not in tally.skipped:
                    tally.skipped.add(item.line)
                    tally.rows += 1
            else:
                tally.rows += 1
                batch.append(item)
            line = item.line
            if len(batch) >= self._batch_size:
                yield batch, line
                batch = []
            if progress is not None:
                progress(line, total)
        yield batch, line

    def _import(self, source: str, progress: Progress | None, dry_run: bool) -> ImportReport:
        with open(source, "rb") as stream:
            total, digest = _summary(iter(lambda: stream.read(1 << 20), b""))
        tally = _Tally()
        counts = store.UpsertCounts()
        with open(source, "rb") as lines, transaction(self._sessions) as s:
            now = self._clock()
            for batch, _line in self._walk(lines, source, now, tally, progress, total):
                counts.add(store.upsert_contacts(s, batch, now))
            found = tally.counts(counts)
            _audit_import(s, "staff", "contacts imported", found, digest, now)
            report = ImportReport(found.rows, counts, tuple(tally.problems), found.skipped, digest)
            if dry_run:
                raise _DryRun(report)  # leaves the transaction, which rolls it all back
        _log_import(found)
        return report

    # --- staged imports (the console) -----------------------------------------------------------

    def stage(self, data: bytes, *, actor: str) -> int:
        """Keep an uploaded contacts file for checking; its import's id. Nothing else is
        written: a worker checks it next (:meth:`process`). ``actor`` is who uploaded it,
        like ``staff:ana@city.example``."""
        now = self._clock()
        lines, digest = _summary([data])
        with transaction(self._sessions) as s:
            self._expire(s, now)
            job = ContactImport(
                status="checking",
                created_by=actor,
                created_at=now,
                updated_at=now,
                data=data,
                digest=digest,
                lines=lines,
                line=0,
                problems=[],
                problem_count=0,
            )
            s.add(job)
            s.flush()
            return job.id

    def job(self, job_id: int) -> ImportJob:
        """A staged import as it stands; :class:`LookupError` if there is none."""
        with transaction(self._sessions, read_only=True) as s:
            row = s.get(ContactImport, job_id)
            if row is None:
                raise LookupError(f"no import {job_id}")
            return _job_view(row)

    def jobs(self, limit: int = 10) -> list[ImportJob]:
        """The latest staged imports, newest first."""
        with transaction(self._sessions, read_only=True) as s:
            rows = s.scalars(select(ContactImport).order_by(ContactImport.id.desc()).limit(limit))
            return [_job_view(row) for row in rows]

    def confirm(self, job_id: int, *, actor: str) -> ImportJob:
        """Staff saw the check: import the file (a worker does it next). :class:`ValueError`
        when it is not waiting for that (imported already, discarded, refused...). Audited
        as ``contacts imported`` by ``actor`` (the staff action); the worker adds
        ``contacts import finished`` with what it wrote."""
        now = self._clock()
        with transaction(self._sessions) as s:
            moved = (
                s.connection()
                .execute(
                    update(ContactImport)
                    .where(
                        ContactImport.id == job_id,
                        ContactImport.status == "checked",
                        ContactImport.data.is_not(None),
                    )
                    .values(status="importing", line=0, lease_until=None, updated_at=now)
                )
                .rowcount
            )
            row = s.get(ContactImport, job_id) if moved else None
            if row is not None:
                # What the check found and the file's digest: never the file's name.
                checked = ImportCounts.from_json(row.checked)
                details = {"import": job_id, "sha256": row.digest, **checked.to_json()}
                repo.audit(s, actor, "contacts imported", None, details, now)
        job = self.job(job_id)
        if not moved and job.status != "importing":
            raise ValueError(f"this file cannot be imported now: it is {job.status}")
        return job

    def discard(self, job_id: int) -> ImportJob:
        """Drop a staged import that was not confirmed, and its file."""
        now = self._clock()
        with transaction(self._sessions) as s:
            s.execute(
                update(ContactImport)
                .where(
                    ContactImport.id == job_id,
                    ContactImport.status.in_(("checking", "checked", "refused")),
                )
                .values(
                    status="discarded", data=None, lease_until=None, finished_at=now, updated_at=now
                ),
                execution_options={"synchronize_session": False},
            )
        return self.job(job_id)

    def stalled(self) -> list[int]:
        """Staged imports being checked or imported that no worker holds (none was started,
        or its lease ran out): a worker may take them."""
        now = self._clock()
        with transaction(self._sessions, read_only=True) as s:
            return list(
                s.scalars(
                    select(ContactImport.id)
                    .where(
                        ContactImport.status.in_(WORKING),
                        ContactImport.data.is_not(None),
                        (ContactImport.lease_until.is_(None)) | (ContactImport.lease_until < now),
                    )
                    .order_by(ContactImport.id)
                )
            )

    def process(self, job_id: int, *, progress: Progress | None = None) -> ImportJob | None:
        """Move a staged import forward on this thread to where it waits or ends: check it
        (then it waits for :meth:`confirm`), or import it. ``None`` when there is nothing to
        do, or another worker holds it. ``progress`` is called as rows are read, as by
        :meth:`import_file` (the page reads the progress from the database instead)."""
        claim = self._claim(job_id)
        if claim is None:
            return None
        try:
            if claim.status == "checking":
                self._check(job_id, claim, progress)
            else:
                self._import_staged(job_id, claim, progress)
        except _Lost:
            pass
        except Exception as exc:
            log_failure(f"contacts import {job_id}", exc, log)
            self._stop(job_id, claim, "failed", _UNEXPECTED.format(line=claim.line))
        return self.job(job_id)

    def _claim(self, job_id: int) -> _Claim | None:
        now = self._clock()
        with transaction(self._sessions) as s:
            row = s.scalars(
                select(ContactImport).where(ContactImport.id == job_id).with_for_update()
            ).first()
            if row is None or row.status not in WORKING or row.data is None:
                return None
            if row.lease_until is not None and row.lease_until > now:
                return None
            row.lease_until = now + LEASE
            row.updated_at = now
            return _Claim(
                status=row.status,
                data=row.data,
                line=row.line if row.status == "importing" else 0,
                imported=ImportCounts.from_json(row.imported),
                created_by=row.created_by,
                lines=row.lines,
                digest=row.digest,
                lease=row.lease_until,
            )

    def _advance(self, s: Session, job_id: int, claim: _Claim, **values: Any) -> None:
        """Renew the lease and record ``values``, in the chunk's own transaction; raises
        :class:`_Lost` when the import is no longer this worker's to move."""
        now = self._clock()
        lease = now + LEASE
        moved = (
            s.connection()
            .execute(
                update(ContactImport)
                .where(
                    ContactImport.id == job_id,
                    ContactImport.status == claim.status,
                    ContactImport.lease_until == claim.lease,
                    ContactImport.data.is_not(None),
                )
                .values({"lease_until": lease, "updated_at": now, **values})
            )
            .rowcount
        )
        if not moved:
            raise _Lost
        claim.lease = values.get("lease_until", lease)

    def _stop(self, job_id: int, claim: _Claim, status: str, error: str) -> None:
        now = self._clock()
        with transaction(self._sessions) as s, contextlib.suppress(_Lost):
            self._advance(
                s,
                job_id,
                claim,
                status=status,
                error=error,
                data=None,
                lease_until=None,
                finished_at=now,
            )

    def _check(self, job_id: int, claim: _Claim, progress: Progress | None) -> None:
        """The dry run, chunk by chunk: each chunk upserted inside a savepoint that is
        rolled back, so the counts are what an import would do and nothing stays."""
        counts = store.UpsertCounts()
        now = self._clock()

        def chunk(batch: list[ContactRow], line: int, _tally: _Tally) -> None:
            with transaction(self._sessions) as s:
                self._advance(s, job_id, claim, line=line)
                if batch:
                    savepoint = s.begin_nested()
                    counts.add(store.upsert_contacts(s, batch, now))
                    savepoint.rollback()

        tally = self._chunks(job_id, claim, now, progress, chunk, refused="refused")
        if tally is None:
            return
        with transaction(self._sessions) as s:
            self._finish(s, job_id, claim, tally, "checked", checked=tally.counts(counts).to_json())

    def _import_staged(self, job_id: int, claim: _Claim, progress: Progress | None) -> None:
        """The import, one committed transaction per chunk with its progress; a chunk an
        earlier worker committed (``line`` reached) is not written again."""
        counts = claim.imported.upserts()
        now = self._clock()

        def chunk(batch: list[ContactRow], line: int, tally: _Tally) -> None:
            if line <= claim.line:
                return  # committed before this worker took over
            with transaction(self._sessions) as s:
                self._advance(s, job_id, claim)
                counts.add(store.upsert_contacts(s, batch, now))
                partial = ImportCounts.of(tally.rows, len(tally.skipped), counts)
                self._advance(s, job_id, claim, line=line, imported=partial.to_json())

        tally = self._chunks(job_id, claim, now, progress, chunk, refused="failed")
        if tally is None:
            return
        found = tally.counts(counts)
        with transaction(self._sessions) as s:
            self._finish(
                s,
                job_id,
                claim,
                tally,
                "done",
                data=None,
                imported=found.to_json(),
                finished_at=now,
            )
            # The worker's, not a member of staff's: who asked is on ``contacts imported``.
            _audit_import(s, "system", "contacts import finished", found, claim.digest, now, job_id)
        _log_import(found)

    def _chunks(
        self,
        job_id: int,
        claim: _Claim,
        now: datetime,
        progress: Progress | None,
        chunk: Callable[[list[ContactRow], int, _Tally], None],
        *,
        refused: str,
    ) -> _Tally | None:
        """Read the staged file, handing each chunk (its rows, the line it ends on) to
        ``chunk``; what was read, or ``None`` when the file could not be read (the import
        then ends with status ``refused``)."""
        tally = _Tally()
        try:
            for batch, line in self._walk(
                io.BytesIO(claim.data), UPLOAD_NAME, now, tally, progress, claim.lines
            ):
                chunk(batch, line, tally)
        except ContactsFileError as exc:
            self._stop(job_id, claim, refused, _file_error(exc))
            return None
        return tally

    def _finish(
        self, s: Session, job_id: int, claim: _Claim, tally: _Tally, status: str, **values: Any
    ) -> None:
        """The step ends as ``status``: the whole file read, its problems kept, the lease let go."""
        self._advance(
            s,
            job_id,
            claim,
            status=status,
            line=claim.lines,
            problems=_stored(tally.problems),
            problem_count=len(tally.problems),
            lease_until=None,
            **values,
        )

    def _expire(self, s: Session, now: datetime) -> None:
        """Drop the files of staged imports nobody confirmed in time: personal data is not
        kept for a page someone left."""
        s.execute(
            update(ContactImport)
            .where(
                ContactImport.status.in_(("checked", "refused")),
                ContactImport.updated_at < now - UNCONFIRMED_TTL,
            )
            .values(
                status="discarded",
                data=None,
                error="not confirmed within a day",
                finished_at=now,
                updated_at=now,
            ),
            execution_options={"synchronize_session": False},
        )

    # --- look-ups -------------------------------------------------------------------------------

    def _matching(
        self, filters: ContactFilter, *, offset: int = 0, limit: int | None = None
    ) -> tuple[list[ContactView], int]:
        """The contacts matching ``filters``, by id (``limit`` of them from ``offset``), and
        how many match in all: the database filters, counts and pages."""
        with transaction(self._sessions, read_only=True) as s:
            found, total = store.list_contacts(
                s,
                channel=filters.channel,
                language=filters.language,
                where=filters.where,
                tags=filters.tags,
                consent=filters.consent,
                offset=offset,
                limit=limit,
            )
            addresses = store.addresses_by_contact(s, [c.id for c in found])
            return [_view(c, addresses.get(c.id, [])) for c in found], total

    def search(self, filters: ContactFilter, *, page: int = 1, per_page: int = 50) -> ContactPage:
        """One page of the contacts matching ``filters``, by id, and how many match; the
        database filters, counts and pages (never every contact in memory)."""
        page = max(page, 1)
        views, total = self._matching(filters, offset=(page - 1) * per_page, limit=per_page)
        return ContactPage(tuple(views), total, page, per_page)

    def list(
        self,
        *,
        channel: str | None = None,
        language: str | None = None,
        where: Mapping[str, str] | None = None,
        tags: Sequence[str] = (),
        consent: str | None = None,
        limit: int | None = None,
    ) -> tuple[list[ContactView], int]:
        """Contacts matching every filter, by id (at most ``limit``), and how many match."""
        filters = ContactFilter(channel, language, dict(where or {}), tuple(tags), consent)
        return self._matching(filters, limit=limit)

    def find(self, ref: str) -> int:
        """The contact id that ``ref`` names: an id (digits), or an address as in a contacts
        file (a phone number, ``whatsapp:<number>``, ``telegram:<chat id>``).

        Raises :class:`LookupError` with a message for staff.
        """
        text = ref.strip()
        number = whole_number(text)
        if number is not None or (text.isdigit() and len(text) > 9):
            with transaction(self._sessions, read_only=True) as s:
                # An id longer than any the database holds names nobody.
                contact = s.get(Contact, number) if number is not None else None
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
        # Not read-only: the pseudonym key may be generated on first use.
        with transaction(self._sessions) as s:
            contact = _live(s, contact_id)
            addresses = repo.addresses_of(s, contact_id)
            sessions = store.sessions_of(s, contact_id)
            answers: dict[int, list[AnswerView]] = {}
            surveys = {row.id: self._service.survey_of(s, row) for row, _slug, _v in sessions}
            for answer in store.answers_of(s, [row.id for row, _slug, _v in sessions]):
                survey = surveys[answer.session_id]
                answers.setdefault(answer.session_id, []).append(
                    _answer_view(survey, answer.question_id, answer.value, answer.answered_at)
                )
            consultations = tuple(
                Consultation(
                    survey=slug,
                    version=version,
                    channel=row.channel,
                    status=row.status,
                    started_at=row.started_at,
                    completed_at=row.completed_at,
                    simulated=row.simulated,
                    answers=tuple(answers.get(row.id, ())),
                )
                for row, slug, version in sessions
            )
            pushed = list(store.invitations_of(s, contact_id))
            waiting = set(
                s.scalars(
                    select(Message.recipient_id).where(
                        Message.recipient_id.in_([r.id for r, _ in pushed]),
                        Message.direction == "out",
                        Message.status.in_(QUEUED_STATUSES),
                    )
                )
            )
            invitations = tuple(
                Invitation(
                    push_id=push.id,
                    survey=push.survey_slug,
                    kind=push.kind,
                    status=recipient.status,
                    channel=recipient.channel,
                    invited_at=recipient.invited_at,
                    unsent=recipient.id in waiting,
                )
                for recipient, push in pushed
            )
            count = store.count_answers(s, contact_id)
            entries = store.audit_of(s, self._service.pseudonym(s, contact_id), _CONSENT_ACTIONS)
            history = _consent_history(addresses, entries)
            return ContactDetails(
                _view(contact, addresses), consultations, invitations, count, history
            )

    # --- erase --------------------------------------------------------------------------------

    def erase(self, contact_id: int, *, actor: str = "staff") -> bool:
        """Erase a contact exactly as their FORGET would (no goodbye is sent): addresses
        deleted, messages blanked, free text gone, other answers kept anonymous; audited as
        ``contact erased`` by ``actor``. :class:`LookupError` if none. Whether old copies are gone
        from SQLite's write-ahead log already (else the dispatcher scrubs them when the
        reader holding them is done)."""
        with transaction(self._sessions) as s:
            contact = _live(s, contact_id)
            self._service.forget(s, contact, self._clock(), actor=actor)
        log.info("contact %d erased by staff", contact_id)
        # Staff can wait a few seconds for a reader to finish; a webhook cannot.
        return self._service.scrub(wait_ms=ERASE_SCRUB_WAIT_MS)


_UNEXPECTED: Final = (
    "an unexpected error stopped the import after line {line} (the server's log says more); "
    "the rows before it are imported: upload the file again to import the rest"
)


def parse_where(items: Iterable[str]) -> dict[str, str]:
    """``ATTRIBUTE=VALUE`` filters as staff type them, by the attribute's column key (as in a
    contacts file: ``Age band=65+`` is ``age_band``); :class:`ValueError` with a sentence.

    >>> parse_where(["District = north", "age band=65+"])
    {'district': 'north', 'age_band': '65+'}
    """
    where: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{item!r}: use ATTRIBUTE=VALUE, like district=north")
        key = column_key(key)
        if '"' in key or "\\" in key:
            raise ValueError(f"{item!r}: no quotes in attribute names")
        where[key] = value.strip()
    return where


def problem_kind(message: str) -> str:
    """A problem without the parts that vary from row to row (quoted values, numbers).

    >>> problem_kind("language 'xx' is not one Voxpop speaks (en, nl, fr, de, es)")
    "language '...' is not one Voxpop speaks (en, nl, fr, de, es)"
    """
    return re.sub(r"(?<![+\w])\d+(?!\w)", "N", re.sub(r"'[^']*'", "'...'", message))


def problem_kinds(problems: Iterable[RowProblem], top: int = 5) -> list[tuple[str, int]]:
    """The ``top`` most frequent kinds of problem, with how many of each."""
    return Counter(problem_kind(p.message) for p in problems).most_common(top)


def _file_error(exc: ContactsFileError) -> str:
    """The problem as a page says it: the upload has no name, its lines have numbers."""
    text = re.sub(rf"^{re.escape(UPLOAD_NAME)}:(\d+): ", r"line \1: ", str(exc))
    return text.removeprefix(f"{UPLOAD_NAME}: ") + "; nothing was imported"


def _stored(problems: Sequence[RowProblem]) -> list[list[Any]]:
    return [[p.line, p.message] for p in problems[:MAX_STORED_PROBLEMS]]


def _job_view(row: ContactImport) -> ImportJob:
    return ImportJob(
        id=row.id,
        status=row.status,
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
        lines=row.lines,
        line=row.line,
        checked=ImportCounts.from_json(row.checked) if row.checked is not None else None,
        imported=(
            ImportCounts.from_json(row.imported)
            if row.imported is not None and row.status == "done"
            else None
        ),
        problems=tuple(RowProblem(UPLOAD_NAME, int(line), str(msg)) for line, msg in row.problems),
        problem_count=row.problem_count,
        error=row.error,
        finished_at=row.finished_at,
        digest=row.digest,
    )


def _audit_import(
    s: Session,
    actor: str,
    action: str,
    found: ImportCounts,
    digest: str,
    now: datetime,
    job_id: int | None = None,
) -> None:
    details: dict[str, Any] = {**found.to_json(), "sha256": digest}
    if job_id is not None:
        details["import"] = job_id
    # Counts and the file's digest only: the file name could itself name a person.
    repo.audit(s, actor, action, None, details, now)


def _log_import(found: ImportCounts) -> None:
    log.info(
        "contacts import: %d rows, %d created, %d updated, %d unchanged, %d skipped",
        found.rows,
        found.created,
        found.updated,
        found.unchanged,
        found.skipped,
    )


def _answer_view(survey: Survey, question_id: str, value: Any, at: datetime) -> AnswerView:
    question = survey.question(question_id)
    language = "en" if "en" in survey.languages else survey.default_language
    if question is None:
        return AnswerView(question_id, question_id, _shown_value(None, value, language), at)
    text = question.text_in(language, survey.default_language)
    return AnswerView(question_id, text, _shown_value(question, value, language), at)


def _shown_value(question: Question | None, value: Any, language: str) -> str:
    """An answer in words: a choice's label, yes or no, a number; typed text with any long
    number in it masked."""
    if value is None:
        return "skipped"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str | list) and question is not None and question.choices:
        labels = {c.id: c.label_in(language, language) for c in question.choices}
        chosen = value if isinstance(value, list) else [value]
        return ", ".join(labels.get(str(v), str(v)) for v in chosen)
    if isinstance(value, str):
        return mask_numbers_in(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return mask_numbers_in(str(value))


def _consent_history(
    addresses: Sequence[Address], entries: Sequence[AuditEntry]
) -> tuple[ConsentEvent, ...]:
    """Consent recorded from a file (on the address), then what the citizen said (the audit
    log: STOP, START, a survey's consent question), in time order."""
    events: list[ConsentEvent] = []
    for address in addresses:
        source = address.consent_source or ""
        if address.consent_at is not None and not source.startswith("survey "):
            events.append(
                ConsentEvent(address.consent_at, address.channel, "consent recorded", source)
            )
    for entry in entries:
        details = entry.details or {}
        channel = details.get("channel")
        survey = details.get("survey")
        events.append(
            ConsentEvent(
                entry.at,
                str(channel) if channel else None,
                _CONSENT_ACTIONS[entry.action],
                f"survey {survey}" if survey else None,
            )
        )
    return tuple(sorted(events, key=lambda e: e.at))


def _live(s: Session, contact_id: int) -> Contact:
    contact = s.get(Contact, contact_id)
    if contact is None:
        raise LookupError(f"no contact {contact_id}")
    if contact.forgotten_at is not None:
        raise LookupError(
            f"contact {contact_id} was erased on {contact.forgotten_at:%Y-%m-%d %H:%M} UTC"
        )
    return contact


def _view(contact: _Fields, addresses: Sequence[Address]) -> ContactView:
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


def _summary(chunks: Iterable[bytes]) -> tuple[int, str]:
    """Lines in a file and its sha256, in one pass over its bytes."""
    digest = hashlib.sha256()
    lines = 0
    last = b"\n"
    for chunk in chunks:
        if not chunk:
            continue
        digest.update(chunk)
        lines += chunk.count(b"\n")
        last = chunk[-1:]
    return lines + (last != b"\n"), digest.hexdigest()
