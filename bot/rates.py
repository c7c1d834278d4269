"""Honest numbers for small samples: ``hits`` out of ``total`` as a rate, a percentage and
a 95% confidence interval. The one rule for every share staff read: a push's funnel
(:mod:`bot.pushes.stats`), the Results pages' percentages and funnel
(:mod:`bot.results.tables`), ``voxpop push show`` and ``voxpop results``. Pure."""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

#: The z-score of a two-sided 95% interval.
_Z95 = NormalDist().inv_cdf(0.975)


@dataclass(frozen=True)
class Rate:
    """``hits`` out of ``total``, with the Wilson score interval (good for small samples and
    rates near 0 or 1, where the textbook ``p ± z·se`` goes below 0 or above 1)."""

    hits: int
    total: int

    @property
    def value(self) -> float:
        return self.hits / self.total if self.total else 0.0

    @property
    def percent(self) -> float:
        """The rate as a percentage, to one decimal (0 when there is nothing to count).

        >>> Rate(2, 3).percent, Rate(1, 8).percent, Rate(0, 0).percent
        (66.7, 12.5, 0.0)
        """
        return round(100 * self.value, 1)

    @property
    def interval(self) -> tuple[float, float]:
        """The 95% interval, as fractions.

        >>> low, high = Rate(8, 20).interval
        >>> round(low, 3), round(high, 3)
        (0.219, 0.613)
        >>> Rate(0, 0).interval
        (0.0, 1.0)
        """
        n = self.total
        if n == 0:
            return (0.0, 1.0)
        p, z = self.hits / n, _Z95
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        return (max(0.0, centre - half), min(1.0, centre + half))

    def __str__(self) -> str:
        """``40% (22-61%)``; ``-`` when there is nothing to count.

        >>> str(Rate(8, 20)), str(Rate(0, 0))
        ('40% (22-61%)', '-')
        """
        if not self.total:
            return "-"
        low, high = self.interval
        return f"{self.value:.0%} ({low * 100:.0f}-{high * 100:.0f}%)"

    def to_json(self) -> dict[str, float | int]:
        low, high = self.interval
        return {
            "hits": self.hits,
            "total": self.total,
            "value": self.value,
            "low": low,
            "high": high,
        }
