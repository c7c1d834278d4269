"""Pure arithmetic over counts the database has already grouped: a question's table of
counts and percentages, a number's median and mean, and the rule that hides small groups.

Nothing here sees a row per answer: the input is one ``(value, count)`` per distinct value
(a few dozen), so a consultation of 100,000 answers costs the same as one of ten.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeAlias

from bot.rates import Rate
from surveys.model import Question

#: A table's rows in the order of the file's choices, or most chosen first.
Order: TypeAlias = Literal["file", "count"]
ORDERS: Final = ("file", "count")
#: A number question with more distinct values than this is shown in ranges.
MAX_VALUES: Final = 20
#: How many ranges then.
BINS: Final = 10
SKIPPED_LABEL: Final = "Skipped"
#: The group that small groups are merged into (NUL never reaches stored text: safetext).
OTHER: Final = "\x00other"
OTHER_LABEL: Final = "Other (small groups)"
NOT_KNOWN_LABEL: Final = "Not known"


@dataclass(frozen=True)
class Count:
    """One row of a question's table. ``key`` is the choice id, ``yes``/``no``, the value
    or range, or ``None`` for skipped."""

    key: str | None
    label: str
    count: int
    #: Of the people asked (answered or skipped); for multi, each pick of the people asked.
    percent: float


@dataclass(frozen=True)
class NumberStats:
    answered: int
    median: float | None
    mean: float | None
    minimum: float | None
    maximum: float | None


def percent(count: int, base: int) -> float:
    """``count`` as a percentage of ``base``, to one decimal (0 for an empty base).

    >>> percent(2, 3), percent(1, 8), percent(0, 0)
    (66.7, 12.5, 0.0)
    """
    return Rate(count, base).percent


def number_key(value: float) -> str:
    """A number as a table shows it: whole numbers without decimals.

    >>> number_key(4), number_key(4.0), number_key(7.25)
    ('4', '4', '7.25')
    """
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def as_number(value: Any) -> float | None:
    """An answer value as a number (``None`` when it is not one).

    >>> as_number(3), as_number(2.5), as_number(True), as_number("x")
    (3.0, 2.5, None, None)
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def choice_counts(
    question: Question,
    counts: Mapping[Any, int],
    *,
    language: str,
    default: str,
    order: Order = "file",
    retired: Sequence[str] = (),
) -> tuple[tuple[Count, ...], int]:
    """The table of a choice, multi or yes/no question from ``{stored value: count}``
    (``None``: skipped; a multi's value is its list of picks, each pick counted); and the
    number of people asked (the base of every percentage).

    Choices are in the file's order (then ids only older versions had, ``retired``), or by
    count with ties in the file's order; "skipped" is always last.
    """
    asked = sum(counts.values())
    picks: dict[str, int] = {}
    for value, n in counts.items():
        if value is None:
            continue
        for pick in _picks(question, value):
            picks[pick] = picks.get(pick, 0) + n
    keys = _choice_keys(question, retired)
    keys += [k for k in sorted(picks) if k not in keys]
    labels = _labels(question, language, default)
    rows = [
        Count(k, labels.get(k, k), picks.get(k, 0), percent(picks.get(k, 0), asked)) for k in keys
    ]
    if order == "count":
        rows.sort(key=lambda row: -row.count)  # stable: ties stay in the file's order
    skipped = counts.get(None, 0)
    if skipped or question.optional:
        rows.append(Count(None, SKIPPED_LABEL, skipped, percent(skipped, asked)))
    return tuple(rows), asked


def _picks(question: Question, value: Any) -> list[str]:
    if question.type == "yesno":
        return ["yes" if value is True else "no"]
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return [str(value)]


def _choice_keys(question: Question, retired: Sequence[str]) -> list[str]:
    if question.type == "yesno":
        return ["yes", "no"]
    keys = [c.id for c in question.choices]
    return keys + [k for k in retired if k not in keys]


def _labels(question: Question, language: str, default: str) -> dict[str, str]:
    if question.type == "yesno":
        return {"yes": "Yes", "no": "No"}
    return {c.id: c.label_in(language, default) for c in question.choices}


def number_counts(
    question: Question, counts: Mapping[Any, int]
) -> tuple[tuple[Count, ...], NumberStats, int]:
    """The distribution of a scale or number question from ``{stored value: count}``:
    every scale point (none left out), a number's values (in ranges when there are more
    than :data:`MAX_VALUES`), then "skipped"; its statistics; the number of people asked.
    """
    values: dict[float, int] = {}
    for value, n in counts.items():
        number = as_number(value)
        if number is not None:
            values[number] = values.get(number, 0) + n
    asked = sum(counts.values())
    stats = number_stats(values)
    rows: list[Count]
    if question.type == "scale" and question.min is not None and question.max is not None:
        points = range(int(question.min), int(question.max) + 1)
        rows = [_count(number_key(p), values.get(float(p), 0), asked) for p in points]
        rows += [
            _count(number_key(v), n, asked) for v, n in sorted(values.items()) if v not in points
        ]
    elif len(values) <= MAX_VALUES:
        rows = [_count(number_key(v), n, asked) for v, n in sorted(values.items())]
    else:
        rows = [_count(label, n, asked) for label, n in ranges(values, integer=question.integer)]
    skipped = counts.get(None, 0)
    if skipped or question.optional:
        rows.append(Count(None, SKIPPED_LABEL, skipped, percent(skipped, asked)))
    return tuple(rows), stats, asked


def _count(label: str, n: int, base: int) -> Count:
    return Count(label, label, n, percent(n, base))


def number_stats(values: Mapping[float, int]) -> NumberStats:
    """Median, mean, smallest and largest from ``{value: how many}``.

    >>> number_stats({1.0: 1, 2.0: 1, 4.0: 2})
    NumberStats(answered=4, median=3.0, mean=2.75, minimum=1.0, maximum=4.0)
    >>> number_stats({})
    NumberStats(answered=0, median=None, mean=None, minimum=None, maximum=None)
    """
    total = sum(values.values())
    if not total:
        return NumberStats(0, None, None, None, None)
    ordered = sorted(values.items())
    mean = sum(v * n for v, n in ordered) / total
    return NumberStats(
        total,
        (_nth(ordered, (total - 1) // 2) + _nth(ordered, total // 2)) / 2,
        round(mean, 2),
        ordered[0][0],
        ordered[-1][0],
    )


def _nth(ordered: Sequence[tuple[float, int]], index: int) -> float:
    seen = 0
    for value, n in ordered:
        seen += n
        if index < seen:
            return value
    raise IndexError(index)


def ranges(values: Mapping[float, int], *, integer: bool) -> list[tuple[str, int]]:
    """Counts in :data:`BINS` ranges of equal width from the smallest value to the largest.

    >>> ranges({float(v): 1 for v in range(0, 100)}, integer=True)[:2]
    [('0 to 9', 10), ('10 to 19', 10)]
    """
    low, high = min(values), max(values)
    width = (high - low) / BINS or 1.0
    if integer:
        width = float(math.ceil(width))
    found = [0] * BINS
    for value, n in values.items():
        found[min(int((value - low) // width), BINS - 1)] += n
    out: list[tuple[str, int]] = []
    for i, n in enumerate(found):
        start = low + i * width
        end = start + width - 1 if integer else start + width
        if i == BINS - 1:
            end = max(end, high)
        label = (
            f"{number_key(start)} to {number_key(end)}"
            if integer
            else (
                f"{number_key(round(start, 2))} to {'' if i == BINS - 1 else 'under '}"
                f"{number_key(round(end, 2))}"
            )
        )
        out.append((label, n))
    return out


# --- small groups ---------------------------------------------------------------------------


def merge_small_groups(
    sizes: Mapping[str | None, int], minimum: int
) -> dict[str | None, str | None]:
    """Which group each group is shown as: itself, or :data:`OTHER` when it has fewer than
    ``minimum`` people.

    Hiding a group is not enough when the others and the total are shown: the total minus
    the shown groups would give it back. So the small groups are merged into one "other"
    group, and when that is itself smaller than ``minimum`` the smallest shown groups join
    it until it is not (or everything is in it). Every group shown then has ``minimum``
    people or more, and subtracting shown groups from any total gives only "other".

    >>> merge_small_groups({"north": 9, "south": 4, "east": 2}, 5)
    {'north': 'north', 'south': '\\x00other', 'east': '\\x00other'}
    >>> merge_small_groups({"north": 9, "south": 6, "east": 4}, 5)
    {'north': 'north', 'south': '\\x00other', 'east': '\\x00other'}
    >>> merge_small_groups({"north": 9, "south": 5}, 5)
    {'north': 'north', 'south': 'south'}
    """
    if minimum <= 1:
        return {group: group for group in sizes}
    small = {group for group, n in sizes.items() if n < minimum}
    if small:
        merged = sum(sizes[g] for g in small)
        shown = sorted((g for g in sizes if g not in small), key=lambda g: (sizes[g], str(g)))
        while merged < minimum and shown:
            group = shown.pop(0)
            small.add(group)
            merged += sizes[group]
    return {group: OTHER if group in small else group for group in sizes}


def group_label(group: str | None) -> str:
    """How a group is named on a page and in a file.

    >>> group_label("sms"), group_label(None), group_label(OTHER)
    ('sms', 'Not known', 'Other (small groups)')
    """
    if group is None:
        return NOT_KNOWN_LABEL
    if group == OTHER:
        return OTHER_LABEL
    return group


def shown_order(groups: Iterable[str | None]) -> list[str | None]:
    """Groups in the order a table shows them: by name, "not known" then "other" last.

    >>> shown_order([OTHER, None, "west", "east"])
    ['east', 'west', None, '\\x00other']
    """
    found = set(groups)
    named = sorted(g for g in found if g is not None and g != OTHER)
    return named + [g for g in (None, OTHER) if g in found]
