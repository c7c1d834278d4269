"""The consultations as the service knows them: loading new versions, closing, listing, and
the simulator's test conversations."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Collection, Iterable
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.consultations.catalog import CATALOG_SETTING, LoadedSurvey, loaded_keywords
from bot.service.core import ServiceCore, simulator_address
from messages import Address
from storage import repo
from storage.db import transaction
from storage.models import Message, SurveyRow
from surveys.model import Survey

log = logging.getLogger(__name__)


class SurveyAdmin(ServiceCore):
    """Loading, closing and listing consultations; the simulator's transcript and reset."""

    def close_survey(self, slug: str, at: datetime, actor: str = "staff") -> int:
        """Close every version of ``slug`` at ``at`` (now, or later): from then on nobody is
        invited or reminded, and late replies hear it is closed. How many versions."""
        with transaction(self._sessions) as s:
            now = self._clock()
            rows = repo.all_versions(s, slug)
            if not rows:
                raise LookupError(f"no survey {slug!r} is loaded")
            for row in rows:
                row.closes_at = at
            repo.set_setting(s, CATALOG_SETTING, f"{now.isoformat()} {secrets.token_hex(4)}")
            details = {"at": at.isoformat(), "versions": len(rows)}
            repo.audit(s, actor, "consultation closed", slug, details, now)
        self._catalog.changed()
        return len(rows)

    def load_surveys(
        self, sources: Iterable[tuple[str, str]], actor: str = "staff"
    ) -> list[LoadedSurvey]:
        """Store parsed ``(source_name, toml_text)`` pairs; a changed text is a new version.

        The caller validates first; this raises :class:`surveys.loader.SurveyError` otherwise.
        """
        with transaction(self._sessions) as s:
            return self._catalog.store(s, sources, self._clock(), actor)

    def loaded_keywords(self, replaced: Collection[str]) -> dict[str, str]:
        """Keywords of the stored consultations but ``replaced`` (see
        :func:`bot.consultations.catalog.loaded_keywords`)."""
        with transaction(self._sessions, read_only=True) as s:
            return loaded_keywords(s, replaced)

    def survey_rows(self) -> list[tuple[SurveyRow, Survey, int, int]]:
        """Current version of each survey, its responses, and the simulator's test runs."""
        with transaction(self._sessions, read_only=True) as s:
            return [
                (row, self._catalog.version(s, row.id), *repo.count_by_origin(s, row.slug))
                for row in repo.latest_surveys(s)
            ]

    def transcript(
        self, address: Address, *, simulated: bool = False, limit: int = 500
    ) -> list[Message]:
        """The last ``limit`` messages to and from ``address`` (in the simulators' space when
        ``simulated``), oldest first."""
        if simulated:
            address = simulator_address(address)
        with transaction(self._sessions, read_only=True) as s:
            rows = s.scalars(
                select(Message)
                .where(Message.channel == address.channel, Message.address == address.value)
                .order_by(Message.id.desc())
                .limit(limit)
            )
            return list(reversed(rows.all()))

    def reset_simulated(self, address: Address) -> bool:
        """Start the simulated conversation of ``address`` over: its simulated contact is
        erased as FORGET would (its test runs stay, anonymous), so the next message begins
        a new one. Whether there was one."""
        address = simulator_address(address)

        def reset(s: Session) -> bool:
            found = repo.find_contact(s, address.channel, address.value)
            if found is None:
                return False
            self.forget(s, found[0], self._clock(), actor="simulator")
            return True

        if not self._write_retrying(reset):
            return False
        log.info("simulator: a %s conversation started over", address.channel)
        return True


def read_survey_sources(paths: Iterable[str], *, read: bool = True) -> list[tuple[str, str]]:
    """``(name, text)`` for each file, folders expanded to their ``*.toml`` files
    (``read=False`` leaves the text empty, to list the files only)."""
    found: list[tuple[str, str]] = []
    for raw in paths:
        path = Path(raw)
        files = sorted(path.glob("*.toml")) if path.is_dir() else [path]
        for file in files:
            found.append((str(file), file.read_text(encoding="utf-8") if read else ""))
    return found
