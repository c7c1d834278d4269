"""Planning a push to 100,000 contacts on SQLite: time and peak memory.

A fresh SQLite database gets ``contacts`` people (each with a consented SMS address, a
language, a timezone and a district), then a push to all of them with quiet hours is made and
fired in a child process, which reports its own time and peak memory (``ru_maxrss``). The
baseline, in the same run and the same kind of child process, is the least planning can cost:
one streaming SELECT of the same contacts and addresses and one bulk INSERT of as many rows
into a scratch table. Targets (issue 4): under 5 s and under 200 MB.

    python -m bench.plan_bench [--contacts 100000]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, select, text

from bot.config import Config, PushesConfig
from bot.pushes.service import Pushes, PushSpec
from bot.service import Service, read_survey_sources
from storage.db import make_engine, session_factory, transaction
from storage.migrate import upgrade
from storage.models import Address, Contact
from surveys.loader import example_paths

NOW = datetime(2026, 12, 1, 19, 0, tzinfo=UTC)  # 20:00 in Brussels: quiet hours soon
ZONES = ("Europe/Brussels", "Europe/Lisbon", "America/New_York", None)


def _populate(url: str, contacts: int) -> None:
    engine = make_engine(url)
    rng = random.Random(7)
    with engine.begin() as conn:
        for start in range(0, contacts, 10_000):
            batch = range(start, min(start + 10_000, contacts))
            conn.execute(
                insert(Contact),
                [
                    {
                        "id": i + 1,
                        "language": rng.choice(("en", "nl", "fr")),
                        "timezone": rng.choice(ZONES),
                        "attributes": {"district": rng.choice(("north", "east", "south"))},
                        "tags": [],
                        "created_at": NOW,
                        "updated_at": NOW,
                    }
                    for i in batch
                ],
            )
            conn.execute(
                insert(Address),
                [
                    {
                        "contact_id": i + 1,
                        "channel": "sms",
                        "value": f"+3247{i:07d}",
                        "created_at": NOW,
                        "consent_at": NOW,
                        "consent_source": "bench",
                    }
                    for i in batch
                ],
            )
    engine.dispose()
    sessions = session_factory(make_engine(url))
    Service(sessions, clock=lambda: NOW).load_surveys(
        read_survey_sources([str(p) for p in example_paths()])
    )


def _child(url: str, what: str) -> dict[str, float]:
    """Run ``what`` in a fresh interpreter, so its peak memory is its own."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.plan_bench", "--child", what, "--url", url],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _plan(url: str) -> int:
    sessions = session_factory(make_engine(url))
    service = Service(sessions, clock=lambda: NOW)
    config = Config(pushes=PushesConfig(quiet_hours="21:00-09:00", rate_per_second=50))
    pushes = Pushes(sessions, service, config, clock=lambda: NOW)
    push_id = pushes.create(PushSpec(survey="central-park", at=NOW))
    return pushes.fire(push_id).planned


def _baseline(url: str) -> int:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE scratch (contact_id INTEGER, value TEXT, due TEXT)"))
    sessions = session_factory(engine)
    with transaction(sessions) as s:
        rows = [
            {"contact_id": cid, "value": value, "due": str(NOW + timedelta(seconds=i / 50))}
            for i, (cid, value) in enumerate(
                s.execute(
                    select(Contact.id, Address.value)
                    .join(Address, Address.contact_id == Contact.id)
                    .order_by(Contact.id)
                    .execution_options(yield_per=5000)
                )
            )
        ]
        s.execute(text("INSERT INTO scratch VALUES (:contact_id, :value, :due)"), rows)
    return len(rows)


def child_main(what: str, url: str) -> None:
    start, cpu = time.perf_counter(), time.process_time()
    count = _plan(url) if what == "plan" else _baseline(url)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"rows": count, "seconds": seconds, "cpu": cpu, "peak_mb": peak_mb}))


def run(contacts: int = 100_000) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'plan.db'}"
        upgrade(url)
        _populate(url, contacts)
        baseline = _child(url, "baseline")
        plan = _child(url, "plan")
    assert plan["rows"] == contacts, plan
    return {
        "contacts": contacts,
        "plan_s": plan["seconds"],
        "plan_mb": plan["peak_mb"],
        "baseline_s": baseline["seconds"],
        "baseline_mb": baseline["peak_mb"],
        "ratio": plan["seconds"] / baseline["seconds"],
        # CPU time holds when other work shares the machine (SQLite runs in the process).
        "cpu_ratio": plan["cpu"] / baseline["cpu"],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--child", choices=("plan", "baseline"))
    parser.add_argument("--url")
    args = parser.parse_args(argv)
    if args.child:
        child_main(args.child, args.url)
        return
    r = run(args.contacts)
    print(
        f"planning a push to {r['contacts']:,.0f} contacts on SQLite: {r['plan_s']:.2f} s, "
        f"peak {r['plan_mb']:.0f} MB (baseline select+insert: {r['baseline_s']:.2f} s, "
        f"{r['baseline_mb']:.0f} MB; {r['ratio']:.1f}x baseline, "
        f"{r['cpu_ratio']:.1f}x in CPU time; "
        "target < 5 s and < 200 MB)"
    )


if __name__ == "__main__":
    main()
