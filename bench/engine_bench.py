"""How many replies per second the pure engine resumes on one core.

One "reply" is what the engine does per inbound text: interpret it against the current
question, record it, and pick and render the next question (no I/O). The baseline, measured in
the same run, is the least any bot must do per reply: normalise the text and look it up in a
dict. The ratio says how many baseline replies one engine reply costs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from bot.conversation import engine
from surveys.loader import example_paths, load_survey
from surveys.text import normalize

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
#: Replies cycled through: numbers, words, labels, typos, re-asks, in several languages.
REPLIES = ("1", "two", "Elke week", "every wek", "3", "4/5", "yes", "nee", "42", "blah", "1,3")


def _timed(fn: Callable[[int], None], n: int) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        fn(n)
        best = min(best, time.perf_counter() - start)
    return best


def run(n: int = 60_000) -> dict[str, float]:
    survey = next(load_survey(p) for p in example_paths() if p.stem == "central-park")
    first = engine.start(survey, "en", NOW).state

    def engine_loop(count: int) -> None:
        state = first
        for i in range(count):
            step = engine.resume(survey, state, engine.Reply(REPLIES[i % len(REPLIES)]), NOW)
            state = step.state if step.state.status == "active" else first

    table = {normalize(r): i for i, r in enumerate(REPLIES)}

    def baseline_loop(count: int) -> None:
        for i in range(count):
            table.get(normalize(REPLIES[i % len(REPLIES)]))

    engine_s = _timed(engine_loop, n)
    baseline_s = _timed(baseline_loop, n)
    return {
        "replies": n,
        "engine_replies_per_s": n / engine_s,
        "baseline_replies_per_s": n / baseline_s,
        "ratio": engine_s / baseline_s,
    }


def main() -> None:
    r = run()
    print(
        f"engine: {r['engine_replies_per_s']:,.0f} replies/s on one core "
        f"(baseline normalise+lookup {r['baseline_replies_per_s']:,.0f}/s; "
        f"engine costs {r['ratio']:.1f}x baseline; target >= 20,000/s)"
    )


if __name__ == "__main__":
    main()
