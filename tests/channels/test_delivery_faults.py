"""The delivery acceptance run: a provider failing 20% of sends (5xx, 429, timeouts) and the
dispatcher killed with SIGKILL 10 times during a 5,000-message run. Every message ends
``sent``, ``failed`` or ``unknown``; none is lost; duplicates are counted and bounded by what
can be in flight when a dispatcher dies (docs/delivery.md)."""

from __future__ import annotations

from bench.delivery_faults import FINAL, run
from bot.config import DispatchConfig
from bot.delivery.sending import DispatchSettings


def test_nothing_is_lost_through_faults_and_kills(db_url: str) -> None:
    report = run(db_url, messages=5000, kills=10, failure_rate=0.2, seed=7)
    print(f"\n{report}")  # the figures, for the record (pytest -s shows them)
    assert report.lost == 0
    assert set(report.statuses) <= set(FINAL)
    assert sum(report.statuses.values()) == 5000
    # The faults and kills really happened, and most messages still went out.
    assert report.faults > 0.1 * report.provider_calls
    assert report.statuses["sent"] > 0.8 * 5000
    # A duplicate needs a send in flight when a dispatcher dies: sends under way (at most the
    # concurrency) plus accepted ones whose group is not committed yet (sends wait while
    # twice record_group are): docs/delivery.md, "The guarantee".
    window = DispatchConfig().concurrency + 2 * DispatchSettings().record_group
    assert report.duplicates <= report.kills * window
