"""Text from outside made safe to store and to log, on SQLite and PostgreSQL alike.

Everything Voxpop receives (webhook bodies, the simulator's JSON, contacts files, consultation
and outcome files) passes :func:`clean_text` (or :func:`clean_json` for whole documents) where
it comes in. Two things would otherwise fail in the database: a NUL character (PostgreSQL:
"text fields cannot contain NUL") and a lone surrogate (neither engine can encode it). The
other C0 control characters carry no meaning in a message and would reach logs and exports.
A ``limit`` cuts a value to the length of the column it goes into.

>>> clean_text("Ja\\x00\\x07 graag\\ud800!")
'Ja graag\\ufffd!'
>>> clean_text("two\\r\\nlines\\tand a tab"), clean_text("two\\nlines", single_line=True)
('two\\r\\nlines\\tand a tab', 'twolines')
>>> clean_text("SM" + "0" * 40, 34)
'SM00000000000000000000000000000000'
>>> clean_json({"a\\x00": ["b\\udfff", 1, None, {"c": "\\x1b[31m"}]})
{'a': ['b\\ufffd', 1, None, {'c': '[31m'}]}

:func:`printable` is for logs: it shows control characters as escapes instead of removing
them, so a log line stays one line and what arrived can still be told.

>>> printable("PARK\\n2026-01-01 INFO forged line\\x1b[2J\\ud800")
'PARK\\\\n2026-01-01 INFO forged line\\\\x1b[2J\\\\ud800'
"""

from __future__ import annotations

import logging
import re
from typing import Any

__all__ = [
    "SafeLogFormatter",
    "clean_json",
    "clean_text",
    "printable",
    "whole_number",
]

#: C0 controls but tab, line feed and carriage return; DEL. Lone surrogates are found apart.
_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_LINE_CONTROLS = re.compile("[\t\n\r]")
_SURROGATES = re.compile("[\ud800-\udfff]")
#: What :func:`printable` escapes: every control character (C0, DEL, C1), the line and
#: paragraph separators (they end a line in many viewers), and lone surrogates.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_UNPRINTABLE_BUT_NEWLINE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def clean_text(value: str, limit: int | None = None, *, single_line: bool = False) -> str:
    """``value`` without NUL and the other C0 control characters (tab, line feed and carriage
    return stay unless ``single_line``), lone surrogates replaced by U+FFFD, and cut to
    ``limit`` characters (a column's length) when given."""
    cleaned = _CONTROLS.sub("", value)
    if single_line:
        cleaned = _LINE_CONTROLS.sub("", cleaned)
    cleaned = _SURROGATES.sub("\ufffd", cleaned)
    return cleaned if limit is None else cleaned[:limit]


def clean_json(value: Any) -> Any:
    """A parsed JSON or TOML document with every string in it (keys too) cleaned as by
    :func:`clean_text`; numbers, dates, booleans and ``None`` pass through.

    Iterative, not recursive: a document nested as deep as its parser allows must not make
    this raise :class:`RecursionError`. Two keys that become equal keep the later value.
    """
    root: list[Any] = [value]
    # Each entry: a container already copied, and where its copy goes.
    stack: list[tuple[Any, list[Any] | dict[str, Any], Any]] = [(value, root, 0)]
    while stack:
        item, parent, key = stack.pop()
        if isinstance(item, str):
            parent[key] = clean_text(item)
        elif isinstance(item, dict):
            copy: dict[str, Any] = {}
            parent[key] = copy
            named = [(clean_text(k) if isinstance(k, str) else k, v) for k, v in item.items()]
            for name, _ in named:
                copy[name] = None  # in the document's order
            # Reversed: the stack takes the last first, so a later duplicate is set last.
            stack.extend((child, copy, name) for name, child in reversed(named))
        elif isinstance(item, list | tuple):
            items: list[Any] = [None] * len(item)
            parent[key] = items
            stack.extend((child, items, index) for index, child in enumerate(item))
        else:
            parent[key] = item
    return root[0]


def printable(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with control characters, line separators and lone surrogates shown as Python
    escapes (``\\n``, ``\\x1b``, ``\\ud800``): for log lines that quote outside input."""
    pattern = _UNPRINTABLE_BUT_NEWLINE if keep_newlines else _UNPRINTABLE
    return pattern.sub(_escape, text)


def _escape(found: re.Match[str]) -> str:
    char = found.group()
    named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


class SafeLogFormatter(logging.Formatter):
    """A formatter whose lines never carry raw control characters from input: the message
    (with its arguments) is escaped by :func:`printable`, a traceback keeps its own line
    breaks but nothing else.

    Installed on the process's log handlers by ``bot.runtime.configure_logging``.
    """

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        saved = record.message
        record.message = printable(saved)
        try:
            return super().formatMessage(record)
        finally:
            record.message = saved

    def formatException(self, ei: Any) -> str:  # noqa: N802 - logging's name
        return printable(super().formatException(ei), keep_newlines=True)

    def formatStack(self, stack_info: str) -> str:  # noqa: N802 - logging's name
        return printable(super().formatStack(stack_info), keep_newlines=True)


_WHOLE_NUMBER = re.compile(r"[0-9]{1,9}")


def whole_number(text: str) -> int | None:
    """``text`` as a whole number when it is one to nine ASCII digits, else ``None``.

    ``str.isdigit`` also says yes to ``²`` and to numbers no database column holds, which
    ``int()`` or the database then refuse: a query string is read with this instead.

    >>> whole_number("42"), whole_number("²"), whole_number("99999999999999999999")
    (42, None, None)
    >>> whole_number(" 7"), whole_number("")
    (None, None)
    """
    return int(text) if _WHOLE_NUMBER.fullmatch(text) else None
