"""No cell of an export that holds text runs as a spreadsheet formula, in CSV or XLSX: a
text answer, a choice, and the cell that joins a multi-choice answer's picks alike; numbers
stay numbers, even negative ones."""

from __future__ import annotations

import csv
import io
from typing import Any

import openpyxl
import pytest

from bot.results.export import RECORD_COLUMNS, chunks

QUESTIONS = ["transport", "colour", "remark", "km"]
STARTS = ["=", "+", "-", "@"]


def record(start: str) -> dict[str, Any]:
    """A response whose choices and text begin with ``start`` (as an older file's choice id,
    or whatever a citizen typed, could)."""
    return {
        "response_id": 1,
        "survey_version": 1,
        "respondent": "r-1",
        "channel": "sms",
        "language": "en",
        "status": "completed",
        "started_at": "2026-12-01T10:00:00+00:00",
        "completed_at": None,
        "simulated": False,
        "answers": {
            "transport": [f"{start}HYPERLINK(1)", "bus"],
            "colour": f"{start}red",
            "remark": f'{start}cmd|" /C calc"!A0',
            "km": -3,
        },
    }


def _file(fmt: str, start: str) -> bytes:
    return b"".join(chunks(fmt, QUESTIONS, [record(start)]))


@pytest.mark.parametrize("start", STARTS)
def test_csv_quotes_every_text_cell_a_spreadsheet_would_run(start: str) -> None:
    header, row = list(csv.reader(io.StringIO(_file("csv", start).decode())))
    cells = dict(zip(header, row, strict=True))
    assert cells["transport"] == f"'{start}HYPERLINK(1);bus"  # the joined picks
    assert cells["colour"] == f"'{start}red"
    assert cells["remark"] == f'\'{start}cmd|" /C calc"!A0'
    assert cells["km"] == "-3"  # a number, not text
    assert header == [*RECORD_COLUMNS, *QUESTIONS]


@pytest.mark.parametrize("start", STARTS)
def test_xlsx_keeps_every_such_cell_text_even_when_edited(start: str) -> None:
    book = openpyxl.load_workbook(io.BytesIO(_file("xlsx", start)))
    try:
        header, row = list(book["responses"].iter_rows())
        cells = {str(name.value): cell for name, cell in zip(header, row, strict=True)}
        for question, value in [
            ("transport", f"{start}HYPERLINK(1);bus"),
            ("colour", f"{start}red"),
            ("remark", f'{start}cmd|" /C calc"!A0'),
        ]:
            cell = cells[question]
            # A string cell, with the quote prefix Excel gives text typed after a "'".
            assert (cell.value, cell.data_type, cell.quotePrefix) == (value, "s", True)
        assert (cells["km"].value, cells["km"].data_type, cells["km"].quotePrefix) == (
            -3,
            "n",
            False,
        )
        assert not cells["respondent"].quotePrefix  # plain text is left alone
    finally:
        book.close()
