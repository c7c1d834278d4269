"""A push's funnel (planned, sent, delivered, started, completed), each stage's share with
its 95% interval (:class:`bot.rates.Rate`, as the Results pages use it). Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from bot.rates import Rate
from messages import channel_label


class Counts(Protocol):
    """A push's counts, overall or for one channel or variant (``storage.pushes.PushCounts``)."""

    @property
    def planned(self) -> int: ...
    @property
    def invited(self) -> int: ...
    @property
    def waiting(self) -> int: ...
    @property
    def skipped(self) -> int: ...
    @property
    def sent(self) -> int: ...
    @property
    def delivered(self) -> int: ...
    @property
    def failed(self) -> int: ...
    @property
    def started(self) -> int: ...
    @property
    def completed(self) -> int: ...


#: A push's funnel, each stage a subset of the one before.
STAGES = ("planned", "sent", "delivered", "started", "completed")


@dataclass(frozen=True)
class Stage:
    """One step of the funnel: how many got that far, as a share of those planned."""

    name: str
    count: int
    share: Rate


@dataclass(frozen=True)
class FunnelRow:
    """The funnel of all recipients (``group`` ``"all"``), of one channel or of one variant."""

    group: str
    label: str
    counts: Counts
    stages: tuple[Stage, ...]
    #: Started, and completed, out of those invited: the rates to compare variants by.
    started: Rate
    response: Rate

    @property
    def title(self) -> str:
        """The row as staff read it: ``Everyone``, ``SMS``, ``Wording A``.

        >>> from storage.pushes import PushCounts
        >>> none = PushCounts(0, 0, 0, 0, 0, 0, 0, 0, 0)
        >>> [funnel_row(g, n, none).title for g, n in (("all", "all"), ("channel", "sms"))]
        ['Everyone', 'SMS']
        """
        if self.group == "all":
            return "Everyone"
        if self.group == "channel":
            return channel_label(self.label)
        return f"Wording {self.label}"

    def to_json(self) -> dict[str, Any]:
        c = self.counts
        return {
            "group": self.group,
            "label": self.label,
            "title": self.title,
            "stages": [
                {"name": s.name, "count": s.count, "share": s.share.to_json()} for s in self.stages
            ],
            "invited": c.invited,
            "waiting": c.waiting,
            "skipped": c.skipped,
            "failed": c.failed,
            "started_rate": self.started.to_json(),
            "response_rate": self.response.to_json(),
        }


def funnel_row(group: str, label: str, counts: Counts) -> FunnelRow:
    """The funnel of ``counts``: planned, sent, delivered, started, completed, each with its
    share of planned and that share's 95% interval.

    >>> from storage.pushes import PushCounts
    >>> counts = PushCounts(20, 20, 0, 0, sent=20, delivered=18, failed=2, started=10, completed=8)
    >>> row = funnel_row("all", "all", counts)
    >>> [(s.name, s.count, str(s.share)) for s in row.stages][-1], str(row.response)
    (('completed', 8, '40% (22-61%)'), '40% (22-61%)')
    """
    stages = tuple(
        Stage(name, getattr(counts, name), Rate(getattr(counts, name), counts.planned))
        for name in STAGES
    )
    return FunnelRow(
        group,
        label,
        counts,
        stages,
        Rate(counts.started, counts.invited),
        Rate(counts.completed, counts.invited),
    )


def funnel(
    total: Counts, by_channel: Mapping[str, Counts], by_variant: Mapping[str, Counts]
) -> list[FunnelRow]:
    """A push's funnel: all recipients, then each channel, then each variant (A/B wordings)
    by name. What ``voxpop push show`` prints and the console's push page shows."""
    rows = [funnel_row("all", "all", total)]
    rows += [funnel_row("channel", name, c) for name, c in sorted(by_channel.items())]
    rows += [funnel_row("variant", name or "-", c) for name, c in sorted(by_variant.items())]
    return rows
