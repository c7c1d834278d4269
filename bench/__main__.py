"""``make bench``: every benchmark, each printing a ratio against a baseline from the same run."""

from __future__ import annotations

from bench import chat_bench, engine_bench


def main() -> None:
    engine_bench.main()
    chat_bench.main()


if __name__ == "__main__":
    main()
