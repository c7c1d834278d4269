"""Staged contact imports run on background threads of the serving process.

A console request only stores the upload (:meth:`bot.contacts.service.Contacts.stage`) or
flips its status (``confirm``), then asks this worker to move it forward and answers at once:
no web worker waits for a file of 100,000 rows. The thread runs
:meth:`~bot.contacts.service.Contacts.process`, which records its progress in the database
chunk by chunk, so the browser may go away and come back (any process can read the
progress), and a process that stops mid-file leaves a lease that runs out: the next
:meth:`ImportWorker.resume` (every poll of an import's progress calls it) takes it over
after the last committed chunk.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

from bot.contacts.service import Contacts, Progress
from bot.log_privacy import log_failure

__all__ = ["ImportWorker"]

log = logging.getLogger(__name__)


class ImportWorker:
    """At most one thread per staged import in this process; another process's lease is
    respected by the claim in the database."""

    def __init__(self, contacts: Contacts, *, progress: Progress | None = None) -> None:
        self._contacts = contacts
        self._progress = progress
        self._lock = threading.Lock()
        self._threads: dict[int, threading.Thread] = {}

    def start(self, job_id: int) -> None:
        """Move ``job_id`` forward on a thread of its own, unless one here already does."""
        with self._lock:
            running = self._threads.get(job_id)
            if running is not None and running.is_alive():
                return
            thread = threading.Thread(
                target=self._run, args=(job_id,), name=f"contacts-import-{job_id}", daemon=True
            )
            self._threads[job_id] = thread
            thread.start()

    def resume(self, job_ids: Iterable[int] | None = None) -> None:
        """Start the staged imports no worker holds (all, or those of ``job_ids``)."""
        stalled = set(self._contacts.stalled())
        wanted = stalled if job_ids is None else stalled & set(job_ids)
        for job_id in sorted(wanted):
            self.start(job_id)

    def join(self, timeout: float | None = None) -> None:
        """Wait for this process's import threads (tests, and a clean shutdown)."""
        with self._lock:
            threads = list(self._threads.values())
        for thread in threads:
            thread.join(timeout)

    def _run(self, job_id: int) -> None:
        try:
            self._contacts.process(job_id, progress=self._progress)
        except Exception as exc:  # a thread's exception would otherwise vanish
            log_failure(f"contacts import {job_id}", exc, log)
        finally:
            with self._lock:
                if self._threads.get(job_id) is threading.current_thread():
                    del self._threads[job_id]
