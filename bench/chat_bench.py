"""A ``voxpop chat`` script of 1,000 replies on SQLite, end to end through the CLI.

Each line is one inbound message through the service and gets at least one reply: one write
transaction with the inbound row, the session state and the outbound rows. The baseline,
measured in the same run, is the same command with no input (start-up, config, database
open), so the ratio shows what the replies themselves cost on top of starting the program.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(str(p) for p in (ROOT / "surveys" / "examples").glob("*.toml"))
#: Start a consultation, answer two questions, then keep talking at the scale question:
#: re-asks, commands and language switches, so that every line gets a reply and a write.
OPENING = ["LIGHTS", "yes", "Station road"]
ROUND = ["9", "REPEAT", "LANG NL", "HELP", "LANG EN", "maybe", "INFO"]


def _voxpop(args: list[str], env: dict[str, str], stdin: str = "") -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "bot.cli.main", *args],
        input=stdin,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    return time.perf_counter() - start


def run(replies: int = 1000) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "VOXPOP_DATABASE__URL": f"sqlite:///{tmp}/bench.db",
            "VOXPOP_LOGGING__LEVEL": "WARNING",
        }
        _voxpop(["db", "upgrade"], env)
        _voxpop(["survey", "load", *EXAMPLES], env)
        lines = OPENING + [ROUND[i % len(ROUND)] for i in range(replies - len(OPENING))]
        script = "\n".join(lines) + "\n"
        baseline = min(_voxpop(["chat"], env, "") for _ in range(3))
        elapsed = _voxpop(["chat"], env, script)
    return {
        "replies": replies,
        "seconds": elapsed,
        "baseline_seconds": baseline,
        "ms_per_reply": (elapsed - baseline) / replies * 1000,
        "ratio": elapsed / baseline,
    }


def main() -> None:
    r = run()
    print(
        f"chat: {r['replies']:.0f} replies on SQLite in {r['seconds']:.2f} s "
        f"({r['ms_per_reply']:.2f} ms/reply beyond start-up; start-up alone "
        f"{r['baseline_seconds']:.2f} s; ratio {r['ratio']:.1f}x; target < 5 s)"
    )


if __name__ == "__main__":
    main()
