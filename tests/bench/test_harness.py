"""The benchmarks' made-up citizens must be people Voxpop answers: ``make bench`` is not run
by the suite, and a bench whose senders Voxpop refuses measures nothing (it broke once when
the phone rule became ``phonenumbers``')."""

from __future__ import annotations

import pytest

from bench import harness
from channels.addresses import address_problem


@pytest.mark.parametrize("i", [0, 1, 99, 100, 12_345, 999_999, 9_999_999])
def test_every_bench_sender_is_a_number_voxpop_answers(i: int) -> None:
    assert address_problem("sms", harness.phone(i)) is None
    assert address_problem("whatsapp", harness.phone(i)) is None


def test_bench_senders_are_distinct() -> None:
    numbers = {harness.phone(i) for i in range(10_000)}
    assert len(numbers) == 10_000
