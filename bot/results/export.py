"""Results as files: CSV, JSONL and XLSX, one row per response (docs/results.md).

The records are pseudonymous: a respondent is a keyed hash, never an address. The same
function (:func:`chunks`) makes the bytes that ``voxpop results export`` writes to a file and
that the console sends to a browser, so both give the same file.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import IO, Any, Final

import xlsxwriter

FORMATS: Final = ("csv", "jsonl", "xlsx")
MEDIA_TYPES: Final = {
    "csv": "text/csv; charset=utf-8",
    "jsonl": "application/x-ndjson; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
#: The record's own columns, before one column per question (CSV and XLSX).
RECORD_COLUMNS: Final = (
    "response_id",
    "survey_version",
    "respondent",
    "channel",
    "language",
    "status",
    "started_at",
    "completed_at",
    "simulated",
)
#: Rows written between two chunks of a CSV or JSONL download.
ROWS_PER_CHUNK: Final = 500
#: An XLSX file is made in memory up to this size, on disk beyond it.
_SPOOL_BYTES: Final = 8 * 1024 * 1024
_TIMES: Final = ("started_at", "completed_at")

Record = dict[str, Any]


def chunks(fmt: str, questions: Sequence[str], records: Iterable[Record]) -> Iterator[bytes]:
    """The file in ``fmt`` as pieces of bytes, made while ``records`` are read: CSV and
    JSONL every :data:`ROWS_PER_CHUNK` rows; XLSX (a zip, whole only at its end) once made.
    """
    if fmt == "csv":
        yield from _csv_chunks(questions, records)
    elif fmt == "jsonl":
        yield from _jsonl_chunks(records)
    elif fmt == "xlsx":
        yield from _xlsx_chunks(questions, records)
    else:
        raise ValueError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")


def write(fmt: str, out: IO[bytes], questions: Sequence[str], records: Iterable[Record]) -> None:
    """Write the whole file to ``out``."""
    for chunk in chunks(fmt, questions, records):
        out.write(chunk)


def _csv_chunks(questions: Sequence[str], records: Iterable[Record]) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([csv_value(name) for name in (*RECORD_COLUMNS, *questions)])
    for n, record in enumerate(records, start=1):
        answers = record["answers"]
        writer.writerow(
            [csv_value(record[c]) for c in RECORD_COLUMNS]
            + [csv_value(answers.get(q)) for q in questions]
        )
        if n % ROWS_PER_CHUNK == 0:
            yield _drain(buffer)
    yield _drain(buffer)


def _jsonl_chunks(records: Iterable[Record]) -> Iterator[bytes]:
    buffer = io.StringIO()
    for n, record in enumerate(records, start=1):
        buffer.write(json.dumps(record, ensure_ascii=False) + "\n")
        if n % ROWS_PER_CHUNK == 0:
            yield _drain(buffer)
    yield _drain(buffer)


def _drain(buffer: io.StringIO) -> bytes:
    data = buffer.getvalue().encode("utf-8")
    buffer.seek(0)
    buffer.truncate()
    return data


#: A cell starting with one of these is a formula to a spreadsheet (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def is_formula_like(text: str) -> bool:
    """Whether a spreadsheet would take ``text`` for a formula (CSV injection).

    >>> [is_formula_like(t) for t in ("=1+1", "+32", "-x", "@SUM(A1)", "a=b", "")]
    [True, True, True, True, False, False]
    """
    return text.startswith(_FORMULA_START)


def cell_text(value: Any) -> str | None:
    """The text of a cell that holds text (a multi's picks joined with ``;``), or ``None``
    for one that does not (nothing, yes/no, a number): the one place a cell becomes text,
    so the formula guard sees every such cell, in CSV and XLSX alike.

    >>> cell_text(["a", "b"]), cell_text("x"), cell_text(True), cell_text(-3), cell_text(None)
    ('a;b', 'x', None, None, None)
    """
    if value is None or isinstance(value, bool | int | float):
        return None
    if isinstance(value, list):
        return ";".join(str(v) for v in value)
    return str(value)


def csv_value(value: Any) -> str:
    r"""One CSV cell; citizens' text, a choice or a joined list of them, can never run as a
    spreadsheet formula: text that would starts with ``'``, as spreadsheets read it.

    >>> csv_value(["a", "b"]), csv_value(True), csv_value(None), csv_value(2.5), csv_value(-3)
    ('a;b', 'true', '', '2.5', '-3')
    >>> csv_value('=HYPERLINK("http://x")'), csv_value(["-1", "b"])
    ('\'=HYPERLINK("http://x")', "'-1;b")
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = cell_text(value)
    if text is None:
        return str(value)  # a number
    return "'" + text if is_formula_like(text) else text


def _xlsx_chunks(questions: Sequence[str], records: Iterable[Record]) -> Iterator[bytes]:
    # XlsxWriter's constant_memory mode writes each row out as it comes, so memory stays flat
    # however many responses; the finished zip goes to a spooled file, then out in pieces.
    with tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES) as spool:
        workbook = xlsxwriter.Workbook(
            spool,
            {"constant_memory": True, "strings_to_numbers": False, "strings_to_formulas": False},
        )
        sheet = workbook.add_worksheet("responses")
        bold = workbook.add_format({"bold": True})
        when = workbook.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
        # Excel's own guard: a quote-prefixed cell stays text even when someone edits it.
        quoted = workbook.add_format({"quote_prefix": True})
        header = [*RECORD_COLUMNS, *questions]
        for col, name in enumerate(header):
            sheet.write_string(0, col, name, bold)
        sheet.freeze_panes(1, 0)
        for row, record in enumerate(records, start=1):
            answers = record["answers"]
            for col, name in enumerate(RECORD_COLUMNS):
                value = record[name]
                if name in _TIMES and value is not None:
                    # Times in UTC (a spreadsheet has no time zones), as in the header's doc.
                    stamp = datetime.fromisoformat(value).replace(tzinfo=None)
                    sheet.write_datetime(row, col, stamp, when)
                else:
                    _xlsx_cell(sheet, row, col, value, quoted)
            for offset, question in enumerate(questions, start=len(RECORD_COLUMNS)):
                _xlsx_cell(sheet, row, offset, answers.get(question), quoted)
        workbook.close()
        spool.seek(0)
        while piece := spool.read(64 * 1024):
            yield piece


def _xlsx_cell(sheet: Any, row: int, col: int, value: Any, quoted: Any) -> None:
    """A typed cell: numbers as numbers, yes/no as booleans, text always as a string cell
    (never a formula), a multi's picks joined with ``;``, nothing as blank. Text a
    spreadsheet would take for a formula is also ``quoted``: it stays text when edited."""
    text = cell_text(value)
    if text is not None:
        if is_formula_like(text):
            sheet.write_string(row, col, text, quoted)
        else:
            sheet.write_string(row, col, text)
    elif isinstance(value, bool):
        sheet.write_boolean(row, col, value)
    elif isinstance(value, int | float):
        sheet.write_number(row, col, value)


def filename(slug: str, fmt: str, *, free_text: bool) -> str:
    """The name a download is saved as.

    >>> filename("central-park", "xlsx", free_text=False)
    'central-park-results-no-free-text.xlsx'
    """
    return f"{slug}-results{'' if free_text else '-no-free-text'}.{fmt}"
