"""A push's preview on 100,000 contacts, on SQLite and PostgreSQL: the console counts the
audience again on every change of its form, so it must answer well within a keystroke's pause.

The contacts are varied as a city's are: a language, a district, a tag for one in ten, an SMS
number for most (some without consent, some opted out), a Telegram chat for a third, nothing
on the chosen channels for a few. Each audience below is previewed ``runs`` times; the figure
is the 95th percentile. The baseline, in the same run, is the least such a count can cost:
one ``SELECT count(*)`` joining the same contacts and addresses. Target: under 300 ms.

    python -m bench.preview_bench [--contacts 100000] [--database sqlite|postgresql|both]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial

from sqlalchemy import func, insert, select, text

from bench.harness import database
from bot.config import Config, PushesConfig
from bot.pushes.audience import Audience
from bot.pushes.service import Pushes, PushSpec
from bot.service import Service
from storage.db import make_engine, session_factory, transaction
from storage.models import Address, Contact

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
AUDIENCES = {
    "everyone": Audience(),
    "district=north,east": Audience(where={"district": ("north", "east")}),
    "tag panel, language nl": Audience(tags=("panel",), languages=("nl",)),
    "not answered central-park, sms": Audience(not_answered=("central-park",), channels=("sms",)),
}


def populate(url: str, contacts: int) -> None:
    rng = random.Random(11)
    engine = make_engine(url)
    with engine.begin() as conn:
        for start in range(0, contacts, 10_000):
            batch = range(start + 1, min(start + 10_000, contacts) + 1)
            conn.execute(
                insert(Contact),
                [
                    {
                        "id": i,
                        "language": rng.choice(("en", "nl", "fr", None)),
                        "timezone": None,
                        "attributes": {"district": rng.choice(("north", "east", "south"))},
                        "tags": ["panel"] if i % 10 == 0 else [],
                        "created_at": NOW,
                        "updated_at": NOW,
                    }
                    for i in batch
                ],
            )
            addresses = []
            for i in batch:
                roll = rng.random()
                if roll < 0.9:
                    addresses.append(
                        {
                            "contact_id": i,
                            "channel": "sms",
                            "value": f"+3247{i:07d}",
                            "created_at": NOW,
                            "consent_at": None if 0.5 < roll < 0.6 else NOW,
                            "opted_out_at": NOW if roll < 0.03 else None,
                        }
                    )
                if roll > 0.6:
                    addresses.append(
                        {
                            "contact_id": i,
                            "channel": "telegram",
                            "value": str(10_000_000 + i),
                            "created_at": NOW,
                            "consent_at": NOW,
                            "opted_out_at": None,
                        }
                    )
            conn.execute(insert(Address), addresses)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        # As autovacuum (PostgreSQL) or a first query (SQLite) soon would after an import.
        conn.execute(text("ANALYZE"))
    engine.dispose()


def p95(fn: Callable[[], object], runs: int) -> float:
    fn()  # warm: the first run pays for compiling the statement and filling caches
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.quantiles(times, n=20)[-1] if runs >= 2 else times[0]


def measure(url: str, runs: int) -> dict[str, float]:
    engine = make_engine(url)
    sessions = session_factory(engine)
    service = Service(sessions, clock=lambda: NOW)
    pushes = Pushes(sessions, service, Config(pushes=PushesConfig()), clock=lambda: NOW)

    def baseline() -> None:
        with transaction(sessions, read_only=True) as s:
            s.scalar(
                select(func.count())
                .select_from(Contact)
                .join(Address, Address.contact_id == Contact.id)
            )

    figures = {"baseline": p95(baseline, runs)}
    for name, audience in AUDIENCES.items():
        spec = PushSpec(survey="central-park", at=NOW, audience=audience)
        figures[name] = p95(partial(pushes.preview, spec), runs)
    engine.dispose()
    return figures


def main(argv: list[str] | None = None) -> None:
    pages(argv, "push preview on {contacts:,} contacts", "count", populate, measure, runs=20)


def pages(
    argv: list[str] | None,
    title: str,
    baseline: str,
    fill: Callable[[str, int], None],
    timed: Callable[[str, int], dict[str, float]],
    *,
    runs: int,
) -> None:
    """A console page's bench on each database: ``fill`` a fresh one, then print what
    ``timed`` measured (its ``baseline`` first) as p95 and as a ratio to the baseline."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=runs)
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    args = parser.parse_args(argv)
    kinds = ("sqlite", "postgresql") if args.database == "both" else (args.database,)
    for kind in kinds:
        with tempfile.TemporaryDirectory() as tmp, database(kind, tmp) as url:
            fill(url, args.contacts)
            figures = timed(url, args.runs)
        base = figures.pop("baseline")
        print(
            f"{title.format(contacts=args.contacts)}, {kind}, p95 of {args.runs} "
            f"(baseline {baseline}: {base * 1000:.0f} ms; target < 300 ms):"
        )
        for name, seconds in figures.items():
            print(f"  {name:<34} {seconds * 1000:6.0f} ms  ({seconds / base:.1f}x baseline)")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
