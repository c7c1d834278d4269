"""Check a consultation file and say what is wrong and where, like a compiler.

Every problem names the file and, whenever the TOML has one, the line of the offending key.
Messages also get an SMS price: encoding, length and segments per language.

>>> report = validate_text('id = "Park"\\ntitle = { en = "Park" }\\n', "park.toml")
>>> for problem in report.problems:
...     print(problem)
park.toml: error: missing 'languages' (default first), like languages = ["en", "nl"]
park.toml: error: missing 'questions': add at least one [[questions]] table
park.toml:1: error: survey id 'Park' may only use lowercase letters, digits and '-'
>>> report.survey is None
True
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import json
import os
import re
import tomllib
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, Literal, TypeAlias, TypeGuard

from babel import localedata

from safetext import clean_json
from surveys.model import (
    QUESTION_TYPES,
    Choice,
    Condition,
    Numbering,
    Question,
    QuestionType,
    Range,
    Survey,
    pick,
)
from surveys.sms import SmsCost, gsm_replacement, render_question, sms_cost, to_gsm
from surveys.syntax import syntax_problem
from surveys.text import normalize

Severity: TypeAlias = Literal["error", "warning"]
#: Renders a question as one SMS in a language; the default is :func:`render_question`.
Renderer: TypeAlias = Callable[[Survey, Question, str], str]
#: Where a value sits in the TOML document: keys, and indexes into arrays.
KeyPath: TypeAlias = tuple[str | int, ...]

#: Words citizens type as global commands (STOP, HELP, LANG...), normalised (lowercase, no
#: accents). A survey keyword may not be one of them, or the command would never reach the
#: survey. bot/conversation/commands.py must stay in sync with this list.
RESERVED_WORDS: frozenset[str] = frozenset(
    {
        # en
        "stop", "stopall", "unsubscribe", "cancel", "end", "quit", "optout", "start", "unstop",
        "subscribe", "help", "lang", "language", "repeat", "skip", "info", "forget", "results",
        # nl
        "afmelden", "uitschrijven", "stoppen", "aanmelden", "hulp", "taal", "herhaal",
        "herhalen", "overslaan", "gegevens", "vergeet", "vergeten", "resultaten",
        # fr
        "arret", "arreter", "desabonner", "desinscrire", "demarrer", "commencer", "aide",
        "langue", "repeter", "passer", "donnees", "oublier", "resultats",
        # de
        "abmelden", "stopp", "beenden", "ende", "abbestellen", "anmelden", "hilfe", "sprache",
        "wiederholen", "uberspringen", "daten", "vergessen", "ergebnisse",
        # es
        "parar", "baja", "cancelar", "salir", "detener", "empezar", "alta", "ayuda", "idioma",
        "repetir", "saltar", "datos", "olvidar", "resultados",
        # answers to yes/no questions
        "yes", "no", "ja", "nee", "nein", "oui", "non", "si",
    }
)  # fmt: skip

# Yes/no words are reserved because confirmations use them, but they are fine as answers.
_YES_NO_WORDS = frozenset({"yes", "no", "ja", "nee", "nein", "oui", "non", "si"})
_COMMAND_WORDS = RESERVED_WORDS - _YES_NO_WORDS

#: A question message longer than this many SMS segments gets a warning.
MAX_QUESTION_SEGMENTS = 2

_SURVEY_ID = re.compile(r"[a-z0-9][a-z0-9-]*")
_ITEM_ID = re.compile(r"[a-z0-9][a-z0-9_-]*")
_LANGUAGE = re.compile(r"[a-z]{2}")
_NUMBER = re.compile(r"[+-]?\d+(?:[.,]\d+)?")

_SURVEY_KEYS = ("id", "title", "languages", "keywords", "intro", "outro", "closes_at", "questions")
_COMMON_QUESTION_KEYS = ("id", "type", "text", "optional", "when")
_TYPE_KEYS: dict[QuestionType, tuple[str, ...]] = {
    "choice": ("choices", "numbering"),
    "multi": ("choices", "numbering", "min_choices", "max_choices"),
    "yesno": ("consent",),
    "scale": ("min", "max", "min_label", "max_label"),
    "number": ("min", "max", "integer"),
    "text": ("max_length",),
}
_QUESTION_KEYS = _COMMON_QUESTION_KEYS + tuple(
    dict.fromkeys(k for keys in _TYPE_KEYS.values() for k in keys)
)
_CHOICE_KEYS = ("id", "label")
_RANGE_KEYS = ("min", "max")

# Words people reach for that difflib would not match to the right key.
_SURVEY_ALIASES = {"name": "title", "language": "languages", "keyword": "keywords"}
_QUESTION_ALIASES = {
    "question": "text",
    "label": "text",
    "options": "choices",
    "answers": "choices",
    "kind": "type",
    "required": "optional",
    "if": "when",
    "condition": "when",
}
_CHOICE_ALIASES = {"text": "label", "name": "label", "title": "label", "value": "id"}
_TYPE_ALIASES: dict[str, QuestionType] = {
    "single": "choice",
    "radio": "choice",
    "select": "choice",
    "multiple": "multi",
    "checkbox": "multi",
    "checkboxes": "multi",
    "boolean": "yesno",
    "bool": "yesno",
    "yes/no": "yesno",
    "rating": "scale",
    "stars": "scale",
    "integer": "number",
    "numeric": "number",
    "open": "text",
    "free": "text",
    "string": "text",
}


@dataclass(frozen=True)
class Problem:
    """One finding, printed the way editors and CI logs understand.

    >>> print(Problem("park.toml", 12, "error", "unknown key 'titel'"))
    park.toml:12: error: unknown key 'titel'
    >>> print(Problem("park.toml", None, "warning", "no keywords"))
    park.toml: warning: no keywords
    """

    file: str
    line: int | None
    severity: Severity
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.severity}: {self.message}"


@dataclass(frozen=True)
class MessageCost:
    """The SMS price of one message in one language, as it will be sent."""

    where: str  # "intro", "outro" or "question '<id>'"
    language: str
    cost: SmsCost
    text: str = ""  # the message after to_gsm, as an SMS shows it


@dataclass(frozen=True)
class ValidationReport:
    """The outcome of validating one file; ``survey`` is None when there is an error."""

    survey: Survey | None
    problems: list[Problem] = field(default_factory=list)
    costs: list[MessageCost] = field(default_factory=list)
    source: str = ""  # the file name problems use
    #: The survey as far as it could be read, even with errors (None when the TOML itself is
    #: broken): its id and valid keywords are still checked against other consultations.
    draft: Survey | None = None

    @property
    def has_errors(self) -> bool:
        return any(p.severity == "error" for p in self.problems)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.has_errors

    def adding(self, problems: Iterable[Problem]) -> ValidationReport:
        """This report with more problems about its file (others are left out): a file that
        clashes with another is no longer ok."""
        mine = [p for p in problems if p.file == self.source]
        if not mine:
            return self
        merged = sorted([*self.problems, *mine], key=lambda p: p.line or 0)
        survey = None if any(p.severity == "error" for p in merged) else self.survey
        return replace(self, survey=survey, problems=merged)


def validate_file(
    path: str | os.PathLike[str], *, sms: bool = True, render: Renderer | None = None
) -> ValidationReport:
    """Validate the survey file at ``path``; an unreadable file is a problem, not a crash."""
    source = os.fspath(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        problem = Problem(source, None, "error", f"cannot read: {exc}")
        return ValidationReport(None, [problem], source=source)
    return validate_bytes(data, source, sms=sms, render=render)


def validate_text(
    text: str, source: str = "<string>", *, sms: bool = True, render: Renderer | None = None
) -> ValidationReport:
    """Validate survey TOML given as text; ``source`` names it in problems."""
    return validate_bytes(text.encode("utf-8"), source, sms=sms, render=render)


def validate_bytes(
    data: bytes, source: str, *, sms: bool = True, render: Renderer | None = None
) -> ValidationReport:
    """Validate the raw bytes of a survey file (the digest is over these bytes).

    With ``sms=False`` the SMS costs and their warnings are skipped (the loader needs
    only the errors). ``render`` turns a question into the SMS text to price; the
    default, :func:`~surveys.sms.render_question`, is the question and its options.
    """
    try:
        # utf-8-sig: Windows editors like to start UTF-8 files with a byte-order mark.
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        message = f"not UTF-8 text (byte 0x{data[exc.start]:02x}); save the file as UTF-8"
        return ValidationReport(None, [Problem(source, line, "error", message)], source=source)
    try:
        # A TOML escape can write NUL (\u0000); no database column takes it.
        document = clean_json(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        line, message = syntax_problem(str(exc), text)
        problem = Problem(source, line, "error", message)
        return ValidationReport(None, [problem], source=source)
    checker = _Checker(source, KeyLines(text))
    draft = checker.survey(document, hashlib.sha256(data).hexdigest())
    costs: list[MessageCost] = []
    if sms:
        costs = checker.sms_costs(draft, render or _render_default)
    problems = sorted(checker.problems, key=lambda p: p.line or 0)
    survey = None if any(p.severity == "error" for p in problems) else draft
    return ValidationReport(survey, problems, costs, source, draft)


# --- Line locator --------------------------------------------------------------------------


class KeyLines:
    """Line numbers of keys and values in a TOML text, looked up by key path.

    tomllib reports no positions, so this scans the (already valid) text once. A path that
    was not found falls back to its nearest enclosing key or table.

    >>> lines = KeyLines('id = "x"\\n[[questions]]\\nid = "a"\\n'
    ...                  'choices = [\\n  { id = "b" },\\n]\\n[[questions]]\\nid = "c"\\n')
    >>> lines.line(("questions", 0, "choices", 0, "id")), lines.line(("questions", 1, "id"))
    (5, 8)
    >>> lines.line(("questions", 1, "text")), lines.line(("title",))
    (7, None)
    """

    def __init__(self, text: str) -> None:
        scanner = _Scanner(text)
        # On a surprise, keep what was found; lookups fall back to enclosing tables.
        with contextlib.suppress(_ScanError):
            scanner.document()
        self._lines = scanner.lines

    def line(self, path: KeyPath) -> int | None:
        """The line of ``path``, else of its closest enclosing key, else None."""
        for end in range(len(path), 0, -1):
            found = self._lines.get(path[:end])
            if found is not None:
                return found
        return None


class _ScanError(Exception):
    pass


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


class _Scanner:
    """A small TOML walker that records where each key path starts."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.lineno = 1
        self.lines: dict[KeyPath, int] = {}
        self.array_tables: dict[KeyPath, int] = {}  # [[x]] path -> elements seen so far

    def peek(self, ahead: int = 0) -> str:
        index = self.pos + ahead
        return self.text[index] if index < len(self.text) else ""

    def advance(self, count: int = 1) -> None:
        end = min(self.pos + count, len(self.text))
        self.lineno += self.text.count("\n", self.pos, end)
        self.pos = end

    def skip_blank(self, newlines: bool) -> None:
        while self.pos < len(self.text):
            char = self.peek()
            if char in " \t" or (newlines and char in "\r\n"):
                self.advance()
            elif char == "#":
                end = self.text.find("\n", self.pos)
                self.advance((len(self.text) if end < 0 else end) - self.pos)
            else:
                return

    def mark(self, path: KeyPath, line: int) -> None:
        self.lines.setdefault(path, line)

    def document(self) -> None:
        table: KeyPath = ()
        while True:
            self.skip_blank(newlines=True)
            if self.pos >= len(self.text):
                return
            start = self.pos
            if self.peek() == "[":
                table = self.header()
            else:
                self.keyval(table)
            if self.pos == start:
                raise _ScanError(self.lineno)

    def header(self) -> KeyPath:
        line = self.lineno
        is_array = self.peek(1) == "["
        self.advance(2 if is_array else 1)
        keys = self.key()
        self.skip_blank(newlines=False)
        self.advance(2 if is_array else 1)
        path: KeyPath = ()
        for index, key in enumerate(keys):
            path = (*path, key)
            self.mark(path, line)
            last = index == len(keys) - 1
            if is_array and last:
                count = self.array_tables.get(path, 0)
                self.array_tables[path] = count + 1
                path = (*path, count)
                self.mark(path, line)
            elif path in self.array_tables:
                # [[questions.choices]] extends the latest [[questions]] element
                path = (*path, self.array_tables[path] - 1)
        return path

    def keyval(self, table: KeyPath) -> None:
        line = self.lineno
        keys = self.key()
        for end in range(1, len(keys) + 1):
            self.mark((*table, *keys[:end]), line)
        self.skip_blank(newlines=False)
        if self.peek() != "=":
            raise _ScanError(self.lineno)
        self.advance()
        self.skip_blank(newlines=False)
        self.value((*table, *keys))

    def key(self) -> list[str]:
        keys: list[str] = []
        while True:
            self.skip_blank(newlines=False)
            char = self.peek()
            if char in "\"'":
                start = self.pos
                self.string()
                keys.append(_unquote(self.text[start : self.pos]))
            else:
                match = _BARE_KEY.match(self.text, self.pos)
                if not match:
                    raise _ScanError(self.lineno)
                keys.append(match.group())
                self.advance(match.end() - self.pos)
            self.skip_blank(newlines=False)
            if self.peek() != ".":
                return keys
            self.advance()

    def value(self, path: KeyPath) -> None:
        char = self.peek()
        if char == "{":
            self.advance()
            self.items(path, "}", lambda: self.keyval(path))
        elif char == "[":
            self.advance()
            index = 0

            def element() -> None:
                nonlocal index
                self.mark((*path, index), self.lineno)
                self.value((*path, index))
                index += 1

            self.items(path, "]", element)
        elif char in "\"'":
            self.string()
        else:  # number, bool, date: runs up to a separator
            while self.pos < len(self.text) and self.peek() not in ",]}#\r\n":
                self.advance()

    def items(self, path: KeyPath, close: str, item: Callable[[], None]) -> None:
        while True:
            self.skip_blank(newlines=True)
            if self.peek() == close:
                self.advance()
                return
            start = self.pos
            item()
            self.skip_blank(newlines=True)
            if self.peek() == ",":
                self.advance()
            elif self.peek() != close or self.pos == start:
                raise _ScanError(self.lineno)

    def string(self) -> None:
        quote = self.peek()
        triple = self.text.startswith(quote * 3, self.pos)
        self.advance(3 if triple else 1)
        while self.pos < len(self.text):
            char = self.peek()
            if char == "\\" and quote == '"':
                self.advance(2)
            elif triple and self.text.startswith(quote * 3, self.pos):
                self.advance(3)
                while self.peek() == quote:  # up to two quotes may end the content
                    self.advance()
                return
            elif not triple and char == quote:
                self.advance()
                return
            else:
                self.advance()
        raise _ScanError(self.lineno)


def _unquote(raw: str) -> str:
    """The key a quoted TOML key stands for (tomllib does the escapes)."""
    try:
        value = tomllib.loads(f"k = {raw}")["k"]
    except tomllib.TOMLDecodeError:
        return raw[1:-1]
    return value if isinstance(value, str) else raw[1:-1]


# --- The checks ---------------------------------------------------------------------------


@dataclass
class _Earlier:
    """What a `when` needs to know about a question asked before."""

    index: int
    type: QuestionType | None
    choice_ids: tuple[str, ...]
    min: float | None
    max: float | None


def _kind(value: object) -> str:
    """How a TOML value looks to the person who wrote it."""
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, datetime | date | time):
        return "a date or time"
    return type(value).__name__


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _suggest(word: str, known: Iterable[str], aliases: Mapping[str, str] | None = None) -> str:
    """'; did you mean 'x'?' or nothing.

    >>> _suggest("choises", ["id", "choices"]), _suggest("zzz", ["id"])
    ("; did you mean 'choices'?", '')
    """
    candidates = list(known)
    alias = (aliases or {}).get(word.lower())
    if alias in candidates:
        return f"; did you mean '{alias}'?"
    close = difflib.get_close_matches(word.lower(), candidates, n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def _render_default(survey: Survey, question: Question, language: str) -> str:
    return render_question(question, language, survey.default_language)


def _listed(items: list[str]) -> str:
    """
    >>> _listed(["1"]), _listed(["1", "2", "3"])
    ('1', '1, 2 and 3')
    """
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _toml_string(text: str) -> str:
    """``text`` as a TOML basic string (JSON's escapes are TOML's too)."""
    return json.dumps(text, ensure_ascii=False)


def _quoted(text: str) -> str:
    return f"'{text}'" if '"' in text else f'"{text}"'


def character_name(char: str) -> str:
    """A character as staff can find it in their text, with its code and Unicode name.

    >>> character_name("’")
    'U+2019 RIGHT SINGLE QUOTATION MARK ’'
    """
    name = unicodedata.name(char, "")
    glyph = char if char.isprintable() else ""
    return " ".join(part for part in (f"U+{ord(char):04X}", name, glyph) if part)


class _Checker:
    def __init__(self, source: str, lines: KeyLines) -> None:
        self.source = source
        self.lines = lines
        self.problems: list[Problem] = []
        self.languages: tuple[str, ...] = ()
        self.languages_known = False  # whether `languages` was valid enough to check against

    def error(self, path: KeyPath, message: str) -> None:
        self.problems.append(Problem(self.source, self.lines.line(path), "error", message))

    def warning(self, path: KeyPath, message: str) -> None:
        self.problems.append(Problem(self.source, self.lines.line(path), "warning", message))

    def unknown_keys(
        self,
        table: Mapping[str, Any],
        path: KeyPath,
        known: tuple[str, ...],
        where: str,
        aliases: Mapping[str, str] | None,
    ) -> None:
        for key in table:
            if key in known:
                continue
            hint = _suggest(key, known, aliases)
            # TOML puts every key after a [[table]] line into that table, so a key meant
            # for the survey or the question often lands one level too deep.
            if path and key in _SURVEY_KEYS:
                hint = f"; '{key}' belongs at the top of the file, above the first [[questions]]"
            elif len(path) > 2 and key in _QUESTION_KEYS:
                hint = f"; '{key}' belongs to the question: put it above its choices"
            self.error((*path, key), f"unknown key '{key}'{where}{hint}")

    # survey ------------------------------------------------------------------------------

    def survey(self, doc: dict[str, Any], digest: str) -> Survey:
        self.unknown_keys(doc, (), _SURVEY_KEYS, "", _SURVEY_ALIASES)
        self.languages = self.check_languages(doc.get("languages"))
        survey_id = self.check_id(doc, (), _SURVEY_ID, "survey id", "'-'", required=True)
        title = self.translations(doc, ("title",), "title", required=True)
        intro = self.translations(doc, ("intro",), "intro")
        outro = self.translations(doc, ("outro",), "outro")
        keywords = self.check_keywords(doc.get("keywords"))
        closes_at = self.check_closes_at(doc.get("closes_at"))
        questions = self.check_questions(doc.get("questions"))
        return Survey(
            id=survey_id,
            title=title,
            languages=self.languages or ("en",),
            questions=questions,
            keywords=keywords,
            intro=intro,
            outro=outro,
            closes_at=closes_at,
            digest=digest,
        )

    def check_languages(self, value: object) -> tuple[str, ...]:
        if value is None:
            example = 'languages = ["en", "nl"]'
            self.error(
                (),
                f"missing 'languages' (default first), like {example}",
            )
            return ()
        if not isinstance(value, list) or not value:
            self.error(
                ("languages",), 'languages must be a list of language codes, like ["en", "nl"]'
            )
            return ()
        seen: list[str] = []
        valid = True
        for index, code in enumerate(value):
            path: KeyPath = ("languages", index)
            if not isinstance(code, str):
                self.error(path, f'a language code is text in quotes, like "en", not {_kind(code)}')
                valid = False
            elif code in seen:
                self.error(path, f"language '{code}' is listed twice")
            elif not _LANGUAGE.fullmatch(code) or not localedata.exists(code):
                short = code[:2].lower()
                hint = f"; use '{short}'" if short != code and localedata.exists(short) else ""
                self.error(
                    path,
                    f"unknown language code '{code}': use a two-letter code like 'nl'{hint}",
                )
                valid = False
            else:
                seen.append(code)
        self.languages_known = valid and bool(seen)
        return tuple(seen)

    def check_id(
        self,
        table: Mapping[str, Any],
        path: KeyPath,
        pattern: re.Pattern[str],
        what: str,
        allowed: str,
        *,
        required: bool,
    ) -> str:
        value = table.get("id")
        if value is None:
            if required:
                self.error(path, f"missing 'id' ({what})")
            return ""
        if not isinstance(value, str):
            self.error((*path, "id"), f"{what} must be text in quotes, not {_kind(value)}")
            return ""
        if not pattern.fullmatch(value):
            self.error(
                (*path, "id"),
                f"{what} '{value}' may only use lowercase letters, digits and {allowed}",
            )
        return value

    def translations(
        self, table: Mapping[str, Any], path: KeyPath, what: str, *, required: bool = False
    ) -> dict[str, str]:
        """A ``{ en = "...", nl = "..." }`` field: every declared language, no others."""
        value = table.get(str(path[-1]))
        if value is None:
            if required:
                key = str(path[-1])
                owner = what.removesuffix(f" {key}")
                message = f"missing '{key}'" if owner == what else f"{owner} has no '{key}'"
                self.error(path[:-1], message)
            return {}
        if isinstance(value, str) and len(self.languages) == 1:
            value = {self.languages[0]: value}  # one language: a plain string is clear enough
        if not isinstance(value, dict):
            example = ", ".join(f'{code} = "..."' for code in self.languages or ("en", "nl"))
            self.error(path, f"{what} must be a table of translations, like {{ {example} }}")
            return {}
        texts: dict[str, str] = {}
        for language, text in value.items():
            if self.languages_known and language not in self.languages:
                known = ", ".join(self.languages)
                hint = _suggest(language, self.languages)
                self.error(
                    (*path, language),
                    f"{what} has a '{language}' translation, but languages are {known}{hint}",
                )
            elif not isinstance(text, str):
                self.error(
                    (*path, language),
                    f"{what} in '{language}' must be text in quotes, not {_kind(text)}",
                )
            elif not text.strip():
                self.error((*path, language), f"{what} in '{language}' is empty")
            else:
                texts[language] = text.strip()
        missing = [code for code in self.languages if code not in value]
        if self.languages_known and missing:
            names = ", ".join(f"'{code}'" for code in missing)
            self.error(path, f"{what} has no {names} translation")
        return texts

    def check_keywords(self, value: object) -> tuple[str, ...]:
        if value is None:
            return ()
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            self.error(("keywords",), f'keywords must be a list, like ["PARK"], not {_kind(value)}')
            return ()
        keywords: list[str] = []
        seen: set[str] = set()
        for index, keyword in enumerate(value):
            path: KeyPath = ("keywords", index)
            if not isinstance(keyword, str):
                self.error(path, f"a keyword is text in quotes, not {_kind(keyword)}")
                continue
            word = normalize(keyword)
            if not word:
                self.error(path, "empty keyword")
            elif word in RESERVED_WORDS:
                self.error(
                    path,
                    f"keyword '{keyword}' is a command word citizens type (like STOP, HELP, YES); "
                    "pick a word that is not a command",
                )
            elif _NUMBER.fullmatch(word):
                self.error(
                    path,
                    f"keyword '{keyword}' is a number, and numbers answer questions; use a word",
                )
            elif word in seen:
                self.error(path, f"keyword '{keyword}' is listed twice")
            else:
                seen.add(word)
                keywords.append(keyword)
        return tuple(keywords)

    def check_closes_at(self, value: object) -> datetime | None:
        example = "like 2030-03-01T00:00:00+01:00"
        path: KeyPath = ("closes_at",)
        if value is None:
            return None
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value)
            except ValueError:
                self.error(path, f"closes_at '{value}' is not a date and time {example}")
                return None
        if not isinstance(value, datetime):
            self.error(path, f"closes_at must be a date, a time and an offset from UTC, {example}")
            return None
        if value.tzinfo is None:
            self.error(
                path, f"closes_at needs an offset from UTC so it means one moment, {example}"
            )
            return None
        return value

    # questions ---------------------------------------------------------------------------

    def check_questions(self, value: object) -> tuple[Question, ...]:
        if value is None:
            self.error((), "missing 'questions': add at least one [[questions]] table")
            return ()
        if not isinstance(value, list) or not all(isinstance(q, dict) for q in value):
            self.error(("questions",), "questions must be [[questions]] tables")
            return ()
        if not value:
            self.error(("questions",), "the survey has no questions")
            return ()
        ids = [q.get("id") for q in value]
        earlier: dict[str, _Earlier] = {}
        questions: list[Question] = []
        consent_question: str | None = None
        for index, table in enumerate(value):
            question = self.check_question(table, index, ids, earlier)
            questions.append(question)
            if question.consent:
                if consent_question is not None:
                    self.error(
                        ("questions", index, "consent"),
                        f"question '{question.id}' asks for consent too, but question "
                        f"'{consent_question}' already does: a survey asks for it once",
                    )
                else:
                    consent_question = question.id
            if question.id and question.id not in earlier:
                earlier[question.id] = _Earlier(
                    index,
                    question.type if table.get("type") in QUESTION_TYPES else None,
                    tuple(c.id for c in question.choices),
                    question.min,
                    question.max,
                )
        return tuple(questions)

    def check_question(
        self,
        table: dict[str, Any],
        index: int,
        ids: list[object],
        earlier: Mapping[str, _Earlier],
    ) -> Question:
        path: KeyPath = ("questions", index)
        self.unknown_keys(table, path, _QUESTION_KEYS, " in a question", _QUESTION_ALIASES)
        qid = self.check_id(table, path, _ITEM_ID, "question id", "'-' or '_'", required=True)
        name = f"question '{qid}'" if qid else f"question {index + 1}"
        if qid and qid in ids[:index]:
            self.error((*path, "id"), f"{name} is defined twice (ids must be unique)")
        if qid == "k":
            # Telegram button data "k:<key>" stands for a typed key (data is at most 64 bytes).
            self.error((*path, "id"), "question id 'k' is reserved; pick another id")
        checked_type = self.check_type(table, path, name)
        qtype: QuestionType = checked_type or "text"
        for key in table:
            applies = key not in _QUESTION_KEYS or key in _COMMON_QUESTION_KEYS
            if checked_type and not applies and key not in _TYPE_KEYS[checked_type]:
                users = ", ".join(t for t, keys in _TYPE_KEYS.items() if key in keys)
                self.error(
                    (*path, key),
                    f"'{key}' does nothing in {name}, a {qtype} question (it is for: {users})",
                )
        text = self.translations(table, (*path, "text"), f"{name} text", required=True)
        optional = self.check_bool(table, path, "optional", name, default=False)
        when = self.check_when(table.get("when"), path, qid, name, ids, earlier)
        choices: tuple[Choice, ...] = ()
        numbering: Numbering = "numbers"
        min_choices, max_choices = 1, None
        low: float | None = None
        high: float | None = None
        min_label: dict[str, str] = {}
        max_label: dict[str, str] = {}
        integer = False
        max_length = 1000
        if qtype in ("choice", "multi"):
            choices = self.check_choices(table.get("choices"), path, name)
            numbering = self.check_numbering(table.get("numbering"), path, name, len(choices))
        if qtype == "multi":
            min_choices, max_choices = self.check_min_max_choices(table, path, name, len(choices))
        if qtype == "scale":
            low, high = self.check_scale(table, path, name)
            min_label = self.translations(table, (*path, "min_label"), f"{name} min_label")
            max_label = self.translations(table, (*path, "max_label"), f"{name} max_label")
        if qtype == "number":
            low, high = self.check_bounds(table, path, name)
            integer = self.check_bool(table, path, "integer", name, default=False)
        if qtype == "text":
            max_length = self.check_max_length(table.get("max_length"), path, name)
        consent = False
        if qtype == "yesno":
            consent = self.check_bool(table, path, "consent", name, default=False)
        return Question(
            id=qid,
            type=qtype,
            text=text,
            optional=optional,
            when=when,
            choices=choices,
            numbering=numbering,
            min_choices=min_choices,
            max_choices=max_choices,
            min=low,
            max=high,
            min_label=min_label,
            max_label=max_label,
            integer=integer,
            max_length=max_length,
            consent=consent,
        )

    def check_type(self, table: Mapping[str, Any], path: KeyPath, name: str) -> QuestionType | None:
        value = table.get("type")
        kinds = ", ".join(QUESTION_TYPES)
        if value is None:
            self.error(path, f"{name} has no 'type' (one of {kinds})")
            return None
        for qtype in QUESTION_TYPES:
            if value == qtype:
                return qtype
        hint = ""
        if isinstance(value, str):
            hint = _suggest(value, QUESTION_TYPES, _TYPE_ALIASES)
        self.error((*path, "type"), f"{name} has unknown type {value!r} (use one of {kinds}){hint}")
        return None

    def check_bool(
        self, table: Mapping[str, Any], path: KeyPath, key: str, name: str, *, default: bool
    ) -> bool:
        value = table.get(key, default)
        if not isinstance(value, bool):
            self.error(
                (*path, key),
                f"'{key}' in {name} must be true or false (no quotes), not {_kind(value)}",
            )
            return default
        return value

    def check_choices(self, value: object, path: KeyPath, name: str) -> tuple[Choice, ...]:
        if value is None:
            self.error(path, f"{name} has no choices")
            return ()
        if not isinstance(value, list) or not all(isinstance(c, dict) for c in value):
            example = '{ id = "weekly", label = { en = "Every week" } }'
            self.error(
                (*path, "choices"), f"choices in {name} must be a list of tables like {example}"
            )
            return ()
        if not value:
            self.error((*path, "choices"), f"{name} has an empty list of choices")
            return ()
        choices: list[Choice] = []
        start = len(self.problems)
        found: list[tuple[int, str, list[Problem]]] = []  # (index, reference, its problems)
        for index, table in enumerate(value):
            before = len(self.problems)
            choice_path: KeyPath = (*path, "choices", index)
            self.unknown_keys(
                table, choice_path, _CHOICE_KEYS, f" in a choice of {name}", _CHOICE_ALIASES
            )
            cid = self.check_id(
                table, choice_path, _ITEM_ID, f"choice id in {name}", "'-' or '_'", required=True
            )
            label_name = (
                f"{name} choice '{cid}' label" if cid else f"{name} choice {index + 1} label"
            )
            label = self.translations(table, (*choice_path, "label"), label_name, required=True)
            if cid and any(c.id == cid for c in choices):
                self.error(
                    (*choice_path, "id"),
                    f"{name} has choice '{cid}' twice (choice ids must be unique)",
                )
            for language, text in label.items():
                if normalize(text) in _COMMAND_WORDS:
                    self.warning(
                        (*choice_path, "label", language),
                        f"{name}: the {language} label '{text}' is a command word, so typing "
                        "it runs the command; people must answer with its number or letter",
                    )
            for other in choices:
                for language, text in label.items():
                    if normalize(other.label.get(language, "")) == normalize(text):
                        self.warning(
                            (*choice_path, "label", language),
                            f"{name}: choices '{other.id}' and '{cid}' have the same {language} "
                            f"label '{text}', so a reply with that label is ambiguous",
                        )
            choices.append(Choice(cid, label))
            found.append((index, f"'{cid}'" if cid else str(index + 1), self.problems[before:]))
        del self.problems[start:]
        self.problems += self.collapse_choices(value, path, name, found)
        return tuple(choices)

    def collapse_choices(
        self,
        tables: list[dict[str, Any]],
        path: KeyPath,
        name: str,
        found: list[tuple[int, str, list[Problem]]],
    ) -> list[Problem]:
        """The problems of choices, one message per kind and line: choices written on one line
        share their mistakes, and the same message once per choice buries the others."""
        kept: list[Problem] = []
        by_line: dict[int | None, list[tuple[int, str, list[Problem]]]] = {}
        for entry in found:
            by_line.setdefault(self.lines.line((*path, "choices", entry[0])), []).append(entry)
        for line, entries in by_line.items():
            # Choices without an id or a label are not written as choices at all: say once
            # what the right form is, built from what was written.
            shapeless = [e for e in entries if not {"id", "label"} <= tables[e[0]].keys()]
            if shapeless:
                numbers = _listed([str(index + 1) for index, _, _ in shapeless])
                used = sorted({k for i, _, _ in shapeless for k in tables[i]} - {"id", "label"})
                example = self.choice_example(tables[shapeless[0][0]])
                if len(shapeless) > 1:
                    wrote = f" (they use {_listed([repr(k) for k in used])})" if used else ""
                    what = f"choices {numbers} of {name} need an id and a label each{wrote}"
                    what += "; write them like"
                else:
                    wrote = f" (it uses {_listed([repr(k) for k in used])})" if used else ""
                    what = f"choice {numbers} of {name} needs an id and a label{wrote}"
                    what += "; write it like"
                message = f"{what} choices = [{example}, ...]"
                kept.append(Problem(self.source, line, "error", message))
                entries = [e for e in entries if e not in shapeless]
            # The same mistake in several choices of one line: one message naming them all.
            same: dict[tuple[str, str], list[tuple[str, Problem]]] = {}
            for _, ref, problems in entries:
                for problem in problems:
                    key = (problem.severity, problem.message.replace(f"choice {ref}", "choice ?"))
                    same.setdefault(key, []).append((ref, problem))
            for group in same.values():
                first_ref, first = group[0]
                others = list(dict.fromkeys(ref for ref, _ in group[1:] if ref != first_ref))
                plural = "s" if len(others) > 1 else ""
                also = f" (choice{plural} {_listed(others)} too)" if others else ""
                kept.append(replace(first, message=first.message + also))
        return kept

    def choice_example(self, table: Mapping[str, Any]) -> str:
        """A choice written right, with the words of a wrongly written one when it has them:
        ``{ en = "Bins" }`` becomes ``{ id = "bins", label = { en = "Bins" } }``."""
        label: dict[str, str] = {}
        for key in ("label", *_CHOICE_ALIASES):
            value = table.get(key)
            if isinstance(value, dict):
                label = {k: v for k, v in value.items() if isinstance(v, str)}
            elif isinstance(value, str) and _CHOICE_ALIASES.get(key) != "id":
                label = {(self.languages or ("en",))[0]: value}
            if label:
                break
        if not label:
            label = {
                k: v for k, v in table.items() if _LANGUAGE.fullmatch(k) and isinstance(v, str)
            }
        # every language of the survey, or the next check finds a missing translation
        label = {code: label.get(code, "...") for code in self.languages} or label or {"en": "..."}
        cid = table.get("id", table.get("value"))
        if not isinstance(cid, str) or not _ITEM_ID.fullmatch(cid):
            words = re.sub(r"[^a-z0-9]+", "-", normalize(next(iter(label.values())))).strip("-")
            cid = words[:20].strip("-") or "first"
        texts = ", ".join(f"{code} = {_toml_string(text)}" for code, text in label.items())
        return f"{{ id = {_toml_string(cid)}, label = {{ {texts} }} }}"

    def check_numbering(self, value: object, path: KeyPath, name: str, count: int) -> Numbering:
        if value is None or value == "numbers":
            return "numbers"
        if value == "letters":
            if count > 26:
                self.error(
                    (*path, "numbering"), f"{name} has {count} choices, but letters stop at Z (26)"
                )
            return "letters"
        self.error(
            (*path, "numbering"),
            f'numbering in {name} must be "numbers" or "letters", not {value!r}',
        )
        return "numbers"

    def check_min_max_choices(
        self, table: Mapping[str, Any], path: KeyPath, name: str, count: int
    ) -> tuple[int, int | None]:
        bounds: dict[str, int | None] = {"min_choices": 1, "max_choices": None}
        for key in bounds:
            value = table.get(key)
            if value is None:
                continue
            if not _is_int(value):
                self.error(
                    (*path, key), f"{key} in {name} must be a whole number, not {_kind(value)}"
                )
            elif value < 1:
                hint = (
                    "; to let people skip the question, use optional = true"
                    if key == "min_choices"
                    else ""
                )
                self.error((*path, key), f"{key} in {name} must be at least 1{hint}")
            elif count and value > count:
                self.error(
                    (*path, key), f"{key} in {name} is {value}, but there are only {count} choices"
                )
            else:
                bounds[key] = value
        low, high = bounds["min_choices"] or 1, bounds["max_choices"]
        if high is not None and low > high:
            self.error(
                (*path, "min_choices"),
                f"min_choices ({low}) is more than max_choices ({high}) in {name}",
            )
        return low, high

    def check_scale(
        self, table: Mapping[str, Any], path: KeyPath, name: str
    ) -> tuple[int | None, int | None]:
        bounds: list[int | None] = []
        for key in ("min", "max"):
            value = table.get(key)
            if value is None:
                self.error(path, f"scale {name} needs '{key}', like min = 1 and max = 5")
                bounds.append(None)
            elif not _is_int(value):
                self.error(
                    (*path, key), f"{key} of scale {name} must be a whole number, not {value!r}"
                )
                bounds.append(None)
            else:
                bounds.append(value)
        low, high = bounds
        if low is not None and high is not None and low >= high:
            self.error((*path, "min"), f"min ({low}) must be less than max ({high}) in {name}")
        return low, high

    def check_bounds(
        self, table: Mapping[str, Any], path: KeyPath, name: str
    ) -> tuple[float | None, float | None]:
        bounds: list[float | None] = []
        for key in ("min", "max"):
            value = table.get(key)
            if value is not None and not _is_number(value):
                self.error((*path, key), f"{key} in {name} must be a number, not {_kind(value)}")
                value = None
            bounds.append(value)
        low, high = bounds
        if low is not None and high is not None and low > high:
            self.error((*path, "min"), f"min ({low}) is more than max ({high}) in {name}")
        return low, high

    def check_max_length(self, value: object, path: KeyPath, name: str) -> int:
        if value is None:
            return 1000
        if not _is_int(value) or value < 1:
            self.error(
                (*path, "max_length"), f"max_length in {name} must be a positive whole number"
            )
            return 1000
        return value

    # when ----------------------------------------------------------------------------------

    def check_when(
        self,
        value: object,
        path: KeyPath,
        qid: str,
        name: str,
        ids: list[object],
        earlier: Mapping[str, _Earlier],
    ) -> dict[str, Condition]:
        if value is None:
            return {}
        when_path: KeyPath = (*path, "when")
        if not isinstance(value, dict):
            self.error(when_path, f'when in {name} must be a table, like {{ visits = "never" }}')
            return {}
        conditions: dict[str, Condition] = {}
        for ref, condition in value.items():
            ref_path: KeyPath = (*when_path, ref)
            if ref == qid:
                self.error(ref_path, f"when in {name} refers to the question itself")
            elif ref in earlier:
                checked = self.check_condition(condition, ref_path, name, ref, earlier[ref])
                if checked is not None:
                    conditions[ref] = checked
            elif ref in ids:
                self.error(
                    ref_path,
                    f"when in {name} refers to '{ref}', which is asked later; "
                    "a condition can only use earlier questions",
                )
            else:
                hint = _suggest(ref, earlier)
                self.error(ref_path, f"when in {name} refers to unknown question '{ref}'{hint}")
        return conditions

    def check_condition(
        self, value: object, path: KeyPath, name: str, ref: str, target: _Earlier
    ) -> Condition | None:
        prefix = f"when in {name}: '{ref}'"
        if target.type is None:
            return None  # its missing type is reported already
        if target.type in ("choice", "multi"):
            raw: list[object] = value if isinstance(value, list) else [value]
            values = [v for v in raw if isinstance(v, str)]
            if not values or len(values) != len(raw):
                example = target.choice_ids[0] if target.choice_ids else "weekly"
                self.error(
                    path,
                    f'{prefix} is a {target.type} question: use a choice id like "{example}" '
                    "or a list of choice ids",
                )
                return None
            ok = True
            for index, choice_id in enumerate(values):
                if target.choice_ids and choice_id not in target.choice_ids:
                    where = (*path, index) if isinstance(value, list) else path
                    hint = _suggest(choice_id, target.choice_ids)
                    self.error(where, f"{prefix} has no choice '{choice_id}'{hint}")
                    ok = False
            if not ok:
                return None
            return tuple(values) if isinstance(value, list) else str(value)
        if target.type == "yesno":
            if not isinstance(value, bool):
                self.error(path, f"{prefix} is a yes/no question: use true or false (no quotes)")
                return None
            return value
        if target.type in ("scale", "number"):
            return self.check_range(value, path, prefix, target)
        self.error(path, f"{prefix} is a free text question; a condition cannot use its answer")
        return None

    def check_range(
        self, value: object, path: KeyPath, prefix: str, target: _Earlier
    ) -> Range | None:
        example = "{ min = 4, max = 5 }"
        if not isinstance(value, dict) or not value:
            self.error(path, f"{prefix} is a {target.type} question: use a range like {example}")
            return None
        self.unknown_keys(value, path, _RANGE_KEYS, " in a range", None)
        if any(not _is_number(value[key]) for key in _RANGE_KEYS if key in value):
            self.error(path, f"{prefix}: min and max must be numbers, like {example}")
            return None
        low, high = value.get("min"), value.get("max")
        if low is not None and high is not None and low > high:
            self.error(path, f"{prefix}: min ({low}) is more than max ({high})")
            return None
        outside = (low is not None and target.max is not None and low > target.max) or (
            high is not None and target.min is not None and high < target.min
        )
        if outside:
            self.warning(
                path,
                f"{prefix} goes from {target.min} to {target.max}, so this condition never holds",
            )
        return Range(low, high)

    # SMS -----------------------------------------------------------------------------------

    def sms_costs(self, survey: Survey, render: Renderer) -> list[MessageCost]:
        costs: list[MessageCost] = []
        default = survey.default_language
        for language in survey.languages:
            if survey.intro:
                text = pick(survey.intro, language, default)
                costs.append(
                    self.price("intro", language, text, [(("intro", language), text)], False)
                )
            for index, question in enumerate(survey.questions):
                base: KeyPath = ("questions", index)
                parts = [((*base, "text", language), question.text_in(language, default))]
                parts += [
                    ((*base, "choices", i, "label", language), c.label_in(language, default))
                    for i, c in enumerate(question.choices)
                ]
                if question.type == "scale":
                    for key in ("min_label", "max_label"):
                        labels: Mapping[str, str] = getattr(question, key)
                        parts.append(((*base, key, language), pick(labels, language, default)))
                message = render(survey, question, language)
                costs.append(
                    self.price(f"question '{question.id}'", language, message, parts, True)
                )
            if survey.outro:
                text = pick(survey.outro, language, default)
                costs.append(
                    self.price("outro", language, text, [(("outro", language), text)], False)
                )
        return costs

    def price(
        self,
        where: str,
        language: str,
        message: str,
        parts: list[tuple[KeyPath, str]],
        is_question: bool,
    ) -> MessageCost:
        """Price ``message`` as the SMS channel sends it, warning about what costs more."""
        sent = to_gsm(message)
        cost = sms_cost(sent)

        def located(chars: Iterable[str]) -> KeyPath:
            wanted = set(chars)
            return next((p for p, text in parts if wanted & set(text)), parts[0][0])

        replaced = [ch for ch in dict.fromkeys(message) if gsm_replacement(ch) is not None]
        if replaced:
            listed = ", ".join(
                f"{character_name(ch)} as {_quoted(gsm_replacement(ch) or '')}" for ch in replaced
            )
            self.warning(
                located(replaced),
                f"{where} ({language}): SMS will send {listed} (not in the GSM-7 alphabet)",
            )
        if cost.non_gsm:
            listed = ", ".join(character_name(ch) for ch in cost.non_gsm)
            self.warning(
                located(cost.non_gsm),
                f"{where} ({language}): {listed} is not in the GSM-7 alphabet, so this message "
                f"goes as UCS-2: {cost.characters} characters in {cost.segments} SMS, "
                "where one SMS holds 70 instead of 160",
            )
        if is_question and cost.segments > MAX_QUESTION_SEGMENTS:
            room = 306 if cost.encoding == "GSM-7" else 134
            self.warning(
                parts[0][0],
                f"{where} ({language}) needs {cost.segments} SMS "
                f"({cost.characters} {cost.encoding} characters with its options); "
                f"keep a question within {MAX_QUESTION_SEGMENTS} SMS ({room} characters)",
            )
        return MessageCost(where, language, cost, sent)
