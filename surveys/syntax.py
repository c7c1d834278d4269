"""A TOML syntax error in a consultation file said in plain words, on the line to fix.

tomllib names the place where it gave up, in a parser's words ("illegal character '\\n'" for a
text without its closing quote, reported where the line ends). Staff need what is wrong and
where it started: :func:`syntax_problem` reads tomllib's message, looks at the line (and, for
something left open, scans the file for where it was opened) and says what to do.

>>> line, said = syntax_problem("Illegal character '\\\\n' (at line 1, column 14)", 'a = "Park\\n')
>>> print(line, said.removesuffix(" (a text cannot go on to the next line)"))
1 TOML syntax: the text "Park is not closed: add the closing " at its end, on this same line
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

__all__ = ["syntax_problem"]

_POSITION: Final = re.compile(r"\s*\(at (?:line (\d+), column (\d+)|end of document)\)$")
#: tomllib's complaints about a text that is not closed where it should be.
_STRING_ERRORS: Final = ("Illegal character", "Unterminated string", 'Expected "\'"')
_CURLY: Final = "“”„«»‘’"
_PREFIX: Final = "TOML syntax: "


def syntax_problem(message: str, text: str) -> tuple[int, str]:
    """The line to fix and what is wrong, in plain words, from tomllib's ``message``
    ("... (at line 3, column 5)") about ``text``.

    >>> syntax_problem("Invalid value (at line 1, column 5)", "a = b")
    (1, 'TOML syntax: text needs double quotes around it, like "b"')
    """
    match = _POSITION.search(message)
    base = message[: match.start()] if match else message
    lines = text.splitlines()
    if match and match.group(1):
        line, column = int(match.group(1)), int(match.group(2))
    else:
        line, column = max(len(lines), 1), 0
    row = lines[line - 1] if 0 < line <= len(lines) else ""
    found = _explain(base, line, column, row, lines, _scan(text))
    if found is None:
        where = f" (column {column})" if column else " (at the end of the file)"
        found = line, f"{base[:1].lower()}{base[1:]}{where}"
    at, said = found
    return at, _PREFIX + said


@dataclass
class _Scan:
    """What the file leaves open: a one-line text without its closing quote, a text in
    triple quotes never closed, a list never closed (each with the line it opened on)."""

    string: tuple[int, str, str] | None = None  # line, quote, the text as far as it went
    long_string: tuple[int, str] | None = None  # line, quotes
    array: int | None = None


def _scan(text: str) -> _Scan:
    """A light walk over the TOML text: strings, comments, table lines and brackets."""
    found = _Scan()
    stack: list[tuple[str, int]] = []  # open "[" and "{" in values, with their lines
    line, i, n = 1, 0, len(text)
    in_value = False  # after "=" on this line, or inside brackets
    while i < n:
        ch = text[i]
        if ch == "\n":
            line, in_value = line + 1, bool(stack)
            i += 1
        elif ch == "#":
            end = text.find("\n", i)
            i = n if end == -1 else end
        elif text.startswith(('"""', "'''"), i):
            quotes = text[i : i + 3]
            end = _find_close(text, i + 3, quotes)
            if end == -1:
                found.long_string = found.long_string or (line, quotes)
                break
            line += text.count("\n", i, end)
            i = end + 3
        elif ch in "\"'":
            end = _find_close(text, i + 1, ch, stop="\n")
            if end == -1:
                stop = text.find("\n", i)
                stop = n if stop == -1 else stop
                if found.string is None:
                    found.string = (line, ch, text[i:stop].rstrip())
                i = stop
            else:
                i = end + 1
        elif ch == "[" and not in_value and not stack:
            # A [table] or [[table]] line: nothing on it opens a value.
            end = text.find("\n", i)
            i = n if end == -1 else end
        elif ch in "[{" and in_value:
            stack.append((ch, line))
            i += 1
        elif ch in "]}" and stack:
            stack.pop()
            i += 1
        else:
            if ch == "=":
                in_value = True
            i += 1
    arrays = [opened for kind, opened in stack if kind == "["]
    found.array = arrays[0] if arrays else None
    return found


def _find_close(text: str, start: int, quote: str, stop: str = "") -> int:
    """Where ``quote`` closes a text opened before ``start`` (``\\`` escapes in "..."),
    or -1; a one-line text stops at the end of its line."""
    i = start
    while i < len(text):
        if text.startswith(quote, i):
            return i
        if stop and text[i] == stop:
            return -1
        i += 2 if text[i] == "\\" and quote[0] == '"' else 1
    return -1


def _explain(
    base: str, line: int, column: int, row: str, lines: list[str], scan: _Scan
) -> tuple[int, str] | None:
    """The line to fix and what to do, or None when there is nothing better to say."""
    before, at = row[: column - 1], row[column - 1 : column] if column else ""
    rest = row[column - 1 :] if column else ""
    if base.startswith(_STRING_ERRORS) or (not column and (scan.string or scan.long_string)):
        if scan.long_string and (scan.string is None or scan.long_string[0] < scan.string[0]):
            opened, quotes = scan.long_string
            return opened, (
                f"the text that starts with {quotes} on this line is never closed: "
                f"end it with {quotes}"
            )
        if scan.string and scan.string[0] <= line:
            opened, quote, started = scan.string
            shown = started if len(started) <= 30 else started[:27] + "..."
            return opened, (
                f"the text {shown} is not closed: add the closing {quote} at its end, on this "
                "same line (a text cannot go on to the next line)"
            )
    if base.startswith("Unescaped '\\'"):
        return line, "a backslash \\ in text starts a code like \\n: write \\\\ for a backslash"
    if base.startswith("Cannot overwrite a value") or base.startswith("Cannot mutate"):
        return line, _twice(row, line, lines)
    if base.startswith("Cannot declare"):
        header = row.split("#", 1)[0].strip()
        first = _earlier(lines, line, lambda other: other.split("#", 1)[0].strip() == header)
        where = f" on line {first}" if first else " above"
        return line, (
            f"the table {header} is already declared{where}: declare each table once "
            "(each question starts with [[questions]], with two brackets)"
        )
    if base.startswith("Expected ']]'"):
        return line, "a question starts with [[questions]], with two brackets on each side"
    if base.startswith("Expected ']'"):
        name = row.split("#", 1)[0].strip().lstrip("[").split("]", 1)[0].strip() or "name"
        return line, f"a table line needs its closing bracket, like [{name}]"
    unclosed_brace = before.count("{") > before.count("}")
    if unclosed_brace and at == "}" and before.rstrip().endswith(","):
        return line, "remove the comma before '}'"
    if (unclosed_brace and at in ("", "#")) or base.startswith("Unclosed inline table"):
        return line, (
            "a { ... } table must be on one line: close it with } on this line, or "
            'write one line per language, like text.en = "..."'
        )
    if base.startswith("Unclosed array") or (not column and scan.array):
        opened = scan.array or line
        return opened, (
            "the list that starts with [ on this line is never closed: add ] after its last item"
        )
    if base.startswith("Invalid value") and at and at in _CURLY:
        # Text pasted from a word processor: its quotes are not TOML's.
        return line, 'put text in straight double quotes ("), not curly ones'
    if base.startswith("Invalid value") and at.isalpha():
        return line, _unquoted(row, column, rest)
    if base.startswith("Expected newline or end of document"):
        if '"' in rest or "'" in rest:
            return line, (
                "more follows after the closing quote of the text: to put a double "
                'quote inside a text, write \\" (like "say \\"yes\\"")'
            )
        return line, (
            "put one key = value on each line; anything after the value must be a "
            "comment starting with #"
        )
    if base.startswith("Expected '=' after a key"):
        if ":" in row:
            return line, 'write = between the key and its value, not :, like title = "Park"'
        return line, 'after a key come = and its value, like title = "Park"'
    if base.startswith("Invalid statement"):
        return line, (
            "each line is a key = value, a [table] line or a # comment; is this text "
            'missing its key, like text.en = "..."?'
        )
    return None


def _unquoted(row: str, column: int, rest: str) -> str:
    """Text written without quotes (or with only the closing one)."""
    word = re.match(r"[A-Za-z]*", rest)
    if word and word.group().lower() in ("true", "false", "yes", "no"):
        return "write true or false, in lowercase and without quotes"
    value = re.match(r"[^,\]}#]*", rest)
    shown = (value.group() if value else "").strip()
    if shown.endswith(('"', "'")):
        return f'this text is missing its opening quote: write "{shown.strip(chr(34) + chr(39))}"'
    return f'text needs double quotes around it, like "{shown or "Yes"}"'


def _twice(row: str, line: int, lines: list[str]) -> str:
    """A key set twice in one table: which key, and where it was set first."""
    key = row.split("=", 1)[0].strip()
    if not key:
        return "this key is already set above"
    pattern = re.compile(rf"\s*{re.escape(key)}\s*=")
    first = _earlier(lines, line, lambda other: bool(pattern.match(other)), stop_at_table=True)
    where = f"on line {first}" if first else "above"
    return (
        f"'{key}' is already set {where}, in the same table: remove one (if they belong to two "
        "questions, a [[questions]] line is missing between them)"
    )


def _earlier(
    lines: list[str], line: int, matches: Callable[[str], bool], *, stop_at_table: bool = False
) -> int | None:
    """The last line before ``line`` that ``matches``; with ``stop_at_table``, only in the
    same table (up to the [table] line above)."""
    for number in range(line - 1, 0, -1):
        other = lines[number - 1]
        if matches(other):
            return number
        if stop_at_table and other.lstrip().startswith("["):
            return None
    return None
