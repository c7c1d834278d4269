"""``make bench``: every benchmark, each printing a ratio against a baseline from the same run.

``python -m bench --quick`` runs smaller sizes (about half the time); ``--only NAME`` runs
one of: engine, chat, webhook, dispatch, latency, plan, preview, results.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from bench import (
    chat_bench,
    dispatch_bench,
    engine_bench,
    latency_bench,
    plan_bench,
    preview_bench,
    results_bench,
    webhook_bench,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs, for a quick look")
    parser.add_argument(
        "--only",
        choices=(
            "engine",
            "chat",
            "webhook",
            "dispatch",
            "latency",
            "plan",
            "preview",
            "results",
        ),
    )
    args = parser.parse_args()
    benches: dict[str, Callable[[], None]] = {
        "engine": engine_bench.main,
        "chat": chat_bench.main,
        "webhook": lambda: webhook_bench.main([], quick=args.quick),
        "dispatch": lambda: dispatch_bench.main([], quick=args.quick),
        "latency": lambda: latency_bench.main([], quick=args.quick),
        "plan": lambda: plan_bench.main(["--contacts", "20000" if args.quick else "100000"]),
        "preview": lambda: preview_bench.main(["--contacts", "20000" if args.quick else "100000"]),
        "results": lambda: results_bench.main(["--contacts", "20000" if args.quick else "100000"]),
    }
    for name, bench in benches.items():
        if args.only in (None, name):
            bench()


if __name__ == "__main__":
    main()
