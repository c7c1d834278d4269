"""Words that agree with their numbers, for every page and message staff read."""

from __future__ import annotations


def plural(count: int, noun: str, many: str | None = None) -> str:
    """A number and its noun, agreeing (the console's ``plural`` filter).

    >>> plural(1, "response"), plural(1234, "response"), plural(2, "person", "people")
    ('1 response', '1,234 responses', '2 people')
    """
    return f"{count:,} {noun if count == 1 else (many or noun + 's')}"
