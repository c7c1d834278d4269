"""Interpret a citizen's reply to one question: a mistake is data, not an exception.

``interpret(question, text, language)`` returns :class:`Accepted` with a typed value, or
:class:`Reask` with a reason code the engine turns into a short localized hint. It is pure,
never raises for any ``str``, and is cheap: per-question lookup tables are built once.

>>> from surveys.model import Choice, Question
>>> q = Question(id="often", type="choice", text={"en": "How often?"}, choices=(
...     Choice("week", {"en": "Every week", "nl": "Elke week"}),
...     Choice("never", {"en": "Never", "nl": "Nooit"})))
>>> interpret(q, "2)", "en")
Accepted(value='never', how='number')
>>> interpret(q, "ELKE WEEK!", "en", ("en", "nl"))
Accepted(value='week', how='label')
>>> interpret(q, "twee", "en")
Accepted(value='never', how='word')
>>> interpret(q, "1 or 2", "en")
Reask(reason='ambiguous', params={'low': '1', 'high': '2'})
>>> interpret(Question(id="ok", type="yesno", text={}), " Ja. ", "nl")
Accepted(value=True, how='yesno')
>>> interpret(Question(id="km", type="number", text={}, max=100), "about 12,5 km", "en")
Accepted(value=12.5, how='number')
>>> interpret_payload(q, choice_payload(q, "week"))
Accepted(value='week', how='payload')
"""

from __future__ import annotations

import math
import re
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from rapidfuzz.distance import OSA

from surveys import numbers as words
from surveys.model import AnswerValue, Question
from surveys.text import normalize, strip_accents

__all__ = [
    "Accepted",
    "Interpretation",
    "Reask",
    "ReaskReason",
    "choice_payload",
    "interpret",
    "interpret_payload",
]

ReaskReason: TypeAlias = Literal[
    "choose_one",  # params: low, high (keys as shown: "1".."3" or "A".."C")
    "ambiguous",  # several options match; params: low, high
    "choose_many",  # params: low, high
    "too_few",  # params: min
    "too_many",  # params: max
    "yesno",
    "scale",  # params: low, high
    "number",  # params: low, high (may be absent when unbounded)
    "integer",
    "text_empty",
    "text_too_long",  # params: max
]


@dataclass(frozen=True)
class Accepted:
    value: AnswerValue
    #: How the reply was understood, kept with the answer for audit: "number", "word",
    #: "letter", "label", "prefix", "fuzzy", "yesno", "stars", "text", "payload", "list".
    how: str


@dataclass(frozen=True)
class Reask:
    reason: ReaskReason
    params: Mapping[str, str | int | float] = field(default_factory=dict)


Interpretation: TypeAlias = Accepted | Reask


def choice_payload(question: Question, choice_id: str) -> str:
    """The button data for one option: ``"<question id>:<choice id>"``.

    Yes/no buttons carry ``q:yes`` / ``q:no`` and scale buttons ``q:3``.
    """
    return f"{question.id}:{choice_id}"


def interpret(
    question: Question, text: str, language: str, languages: tuple[str, ...] = ()
) -> Interpretation:
    """Interpret ``text`` as an answer to ``question`` (labels in ``language`` first,
    then in the other ``languages`` of the survey; all label languages when empty).

    Choice labels match exactly, then by a unique prefix of 3+ letters, then with one typo
    (an edit or a swap of neighbours) when the label has 5+ letters.

    Numbers: the reply must hold exactly one number. ``1.000`` and ``1,000`` are thousands
    only when ``question.integer`` (one separator followed by exactly three digits that end
    the number, after 1-3 digits); otherwise ``,`` and ``.`` are decimal marks. ``1.000.000``
    and ``1.000,50`` are read as grouped. A space never groups: ``1 000`` is two numbers. A
    minus counts only when attached (``-5``, not ``- 5``); digits glued after a letter
    (``m2``, ``CO2``) are ignored unless nothing else is there (``EUR12``). Number words
    count only when there are no digits. The value is an ``int`` when the question is
    integer or the reply had no decimal part, else a ``float``.
    """
    if question.type == "text":
        return _free_text(question, text, "text")
    tables = _tables(question)
    if len(text) > _MAX_REPLY:
        # Nobody answers a closed question with a page of text; don't spend time on it.
        return _retry(question, tables)
    if ":" in text:
        stripped = text.strip()
        if stripped.startswith(tables.payload_prefix):
            answer = interpret_payload(question, stripped)
            # Real options but too few or many is an answer to that payload, not a typo.
            if isinstance(answer, Accepted) or answer.reason in ("too_few", "too_many"):
                return answer
    if question.type == "choice":
        return _choice(tables, text, language, languages)
    if question.type == "multi":
        return _multi(question, tables, text, language, languages)
    if question.type == "yesno":
        return _yesno(text)
    if question.type == "scale":
        return _scale(tables, text)
    return _number(question, text)


def interpret_payload(question: Question, payload: str) -> Interpretation:
    """Interpret button data made by :func:`choice_payload` (or ``q:yes``, ``q:3``).

    Multi-choice payloads may list several ids: ``q:bus,tram``.
    """
    tables = _tables(question)
    if not payload.startswith(tables.payload_prefix):
        return _retry(question, tables)
    value = payload[len(tables.payload_prefix) :]
    kind = question.type
    if kind == "choice":
        if value in tables.index_of:
            return Accepted(value, "payload")
    elif kind == "multi":
        ids = [value] if value in tables.index_of else value.split(",")
        if ids and all(i in tables.index_of for i in ids):
            return _bounded(question, tables, {tables.index_of[i] for i in ids}, "payload")
    elif kind == "yesno":
        if value in ("yes", "no"):
            return Accepted(value == "yes", "payload")
    elif kind == "scale":
        if _PAYLOAD_INT.fullmatch(value):
            return _in_scale(tables, int(value), "payload")
    elif kind == "number":
        if _PAYLOAD_NUMBER.fullmatch(value):
            number: int | float = float(value) if "." in value else int(value)
            return _in_number(question, number, "." in value, "payload")
    else:
        return _free_text(question, value, "payload")
    return _retry(question, tables)


# --- shared text handling ------------------------------------------------------------------

#: Longest reply worth interpreting for a closed question (free text has max_length).
_MAX_REPLY = 1000
#: Most words a multi-choice reply may have before we stop trying to split it.
_MAX_TOKENS = 60

_INVISIBLE: dict[int, str | None] = {
    # Variation selectors, joiners, direction marks, BOM and skin tones: phones add them to
    # emoji and RTL text, but they never change what the reply means.
    **{cp: None for cp in range(0xFE00, 0xFE10)},
    **{cp: None for cp in range(0x200B, 0x2010)},
    **{cp: None for cp in range(0x202A, 0x202F)},
    **{cp: None for cp in range(0x2060, 0x206A)},
    **{cp: None for cp in range(0x1F3FB, 0x1F400)},
    0xFEFF: None,
    0x20E3: None,  # the keycap of "2️⃣"
    # Control characters are separators at worst.
    **{cp: " " for cp in [*range(0x20), *range(0x7F, 0xA0)]},
}
_HARD_SEPARATORS = frozenset(",;&+/")
_CANON: dict[int, str | None] = {
    # People drop apostrophes: "dont", "daccord".
    **{ord(c): None for c in "'’‘´`ʼ"},
    # Punctuation inside a reply is noise for matching: "no. 2", "(b)", "Mr. X".
    **{ord(c): " " for c in '.:!?¡¿"“”„«»()[]{}<>*~|\\=_'},
    # One kind of dash, so a single check finds the dash-only tokens.
    **{ord(c): "-" for c in "–—"},
    # Separators become tokens of their own, so "1,3" and "1 , 3" read alike.
    **{ord(c): f" {c} " for c in _HARD_SEPARATORS},
    # Emoji answers may stick to words: "yes👍".
    **{ord(c): f" {c} " for c in words.YES_EMOJI | words.NO_EMOJI},
}


def _canon(text: str) -> str:
    """``normalize`` plus: invisible characters gone, inner punctuation spaced out."""
    spaced = normalize(text.translate(_INVISIBLE)).translate(_CANON)
    tokens = spaced.split()
    if "-" in spaced:  # a lone dash is a bullet or a pause: "2 - every week"
        tokens = [t for t in tokens if t.strip("-")]
    return " ".join(tokens)


#: What ``normalize`` strips from both ends (a copy: that constant is private to the module).
_EDGE = " \t\r\n.,;:!?¡¿'\"`´‘’“”«»()[]{}<>-–—_*~/\\|"
_EDGE_LEFT = _EDGE.replace("-", "")  # ...but a leading minus is a sign for numbers


def _numeric_text(text: str) -> str:
    """Like ``normalize`` but keeps a leading sign and inner ``.``/``,``."""
    folded = strip_accents(text.translate(_INVISIBLE)).casefold()
    return " ".join(folded.split()).lstrip(_EDGE_LEFT).rstrip(_EDGE)


# --- per-question tables -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Label:
    text: str
    index: int
    letters: int  # prefix and typo matching need enough letters to be safe


@dataclass(frozen=True, slots=True)
class _LabelGroup:
    exact: Mapping[str, frozenset[int]]
    labels: tuple[_Label, ...]
    longest: int


_Groups: TypeAlias = tuple[_LabelGroup, _LabelGroup]


def _letters(text: str) -> int:
    return sum(ch.isalpha() for ch in text)


def _group(entries: list[tuple[str, int]]) -> _LabelGroup:
    exact: dict[str, set[int]] = {}
    for text, index in entries:
        exact.setdefault(text, set()).add(index)
    labels = tuple(_Label(t, i, _letters(t)) for t, i in dict.fromkeys(entries))
    return _LabelGroup(
        {t: frozenset(i) for t, i in exact.items()},
        labels,
        max((len(t) for t, _ in entries), default=0),
    )


class _Tables:
    """What interpretation needs about one question, computed once."""

    __slots__ = (
        "_groups",
        "choices",
        "first_key",
        "high",
        "high_labels",
        "ids",
        "index_of",
        "last_key",
        "letter_keys",
        "letters",
        "low",
        "low_labels",
        "max_tokens",
        "payload_prefix",
    )

    def __init__(self, question: Question) -> None:
        self.payload_prefix = f"{question.id}:"
        self.choices = question.choices
        self.ids = tuple(c.id for c in question.choices)
        self.index_of = {cid: i for i, cid in reversed(list(enumerate(self.ids)))}
        count = len(self.ids)
        self.letters = question.numbering == "letters"
        self.first_key = question.option_key(0)
        self.last_key = question.option_key(count - 1) if count else self.first_key
        self.letter_keys: dict[str, int] = {}
        if self.letters:
            for i in range(count):
                key = normalize(question.option_key(i))
                if key:
                    self.letter_keys.setdefault(key, i)
        if question.type == "scale":
            self.low = _bound(question.min, 1)
            self.high = _bound(question.max, 5)
            self.low_labels = frozenset(_canon(t) for t in question.min_label.values()) - {""}
            self.high_labels = frozenset(_canon(t) for t in question.max_label.values()) - {""}
        else:
            self.low, self.high = 1, count
            self.low_labels = self.high_labels = frozenset()
        all_labels = [_canon(t) for c in question.choices for t in c.label.values()]
        # A prefixed key ("option 2") plus a label can be one item: "2. every week".
        self.max_tokens = max((t.count(" ") + 1 for t in all_labels), default=0) + 2
        self._groups: dict[tuple[str, tuple[str, ...]], _Groups] = {}

    def choice_params(self) -> dict[str, str | int | float]:
        return {"low": self.first_key, "high": self.last_key} if self.ids else {}

    def groups(self, language: str, languages: tuple[str, ...]) -> _Groups:
        """Labels as shown in ``language``, and labels in the survey's other languages."""
        cache_key = (language, languages)
        found = self._groups.get(cache_key)
        if found is not None:
            return found
        default = languages[0] if languages else language
        shown = [(_canon(c.label_in(language, default)), i) for i, c in enumerate(self.choices)]
        others = [
            (_canon(text), i)
            for i, c in enumerate(self.choices)
            for lang, text in c.label.items()
            if lang != language and (not languages or lang in languages)
        ]
        groups = (_group([e for e in shown if e[0]]), _group([e for e in others if e[0]]))
        if len(self._groups) < 32:  # callers pass a handful of languages; stay bounded anyway
            self._groups[cache_key] = groups
        return groups


def _bound(value: float | None, default: int) -> int:
    if value is None or not math.isfinite(value):
        return default
    return int(value)


_TABLES: dict[int, tuple[weakref.ref[Question], _Tables]] = {}


def _forget(key: int) -> Callable[[weakref.ref[Question]], None]:
    def callback(ref: weakref.ref[Question]) -> None:
        entry = _TABLES.get(key)
        if entry is not None and entry[0] is ref:
            del _TABLES[key]

    return callback


def _tables(question: Question) -> _Tables:
    """Tables for ``question``, cached by identity (Question holds dicts: not hashable).

    A weak reference drops the entry when the question goes, so a new question that gets
    the same ``id()`` can never see stale tables.
    """
    key = id(question)
    entry = _TABLES.get(key)
    if entry is not None and entry[0]() is question:
        return entry[1]
    tables = _Tables(question)
    try:
        ref = weakref.ref(question, _forget(key))
    except TypeError:  # a Question subclass without __weakref__: correct, just uncached
        return tables
    _TABLES[key] = (ref, tables)
    return tables


def _retry(question: Question, tables: _Tables) -> Reask:
    """The generic hint for a reply we could not use."""
    kind = question.type
    if kind == "choice":
        return Reask("choose_one", tables.choice_params())
    if kind == "multi":
        return Reask("choose_many", tables.choice_params())
    if kind == "yesno":
        return Reask("yesno")
    if kind == "scale":
        return Reask("scale", {"low": tables.low, "high": tables.high})
    if kind == "number":
        return _number_reask(question)
    return Reask("text_empty")


# --- choice and multi ----------------------------------------------------------------------

_Match: TypeAlias = tuple[frozenset[int], str]  # matching option indices, how


def _alternation(items: list[str]) -> str:
    return "|".join(re.escape(w) for w in sorted(items, key=len, reverse=True))


_PREFIXED_KEY = re.compile(
    rf"(?:{_alternation([*words.KEY_PREFIXES, '#'])})\s*(\w+)"
    rf"|(?:{_alternation(list(words.DIGIT_PREFIXES))})\s*(\d+)"
)


def _key(tables: _Tables, text: str) -> tuple[int, str] | None:
    """The option a key reply names: ``2``, ``option 2``, ``#2``, ``twee``, ``b``."""
    m = _PREFIXED_KEY.fullmatch(text)
    if m is not None:
        token = m.group(1) or m.group(2)
    elif " " in text:
        return None
    else:
        token = text
    count = len(tables.ids)
    if tables.letters:
        index = tables.letter_keys.get(token)
        return None if index is None else (index, "letter")
    if token.isdecimal():
        n = int(token) if len(token) <= 4 else 0
        how = "number"
    else:
        n = words.NUMBER_WORDS.get(token, 0)
        how = "word"
    return (n - 1, how) if 1 <= n <= count else None


def _fits(groups: _Groups, index: int, text: str) -> bool:
    """Whether ``text`` is, nearly, a label of option ``index`` (confirms a typed key)."""
    enough = _letters(text) >= 3
    for group in groups:
        for label in group.labels:
            if label.index != index:
                continue
            if label.text == text or (enough and label.text.startswith(text)):
                return True
            if label.letters >= 5 and OSA.distance(text, label.text, score_cutoff=1) <= 1:
                return True
    return False


def _exact(tables: _Tables, groups: _Groups, text: str) -> _Match | None:
    found: set[int] = set()
    how = "label"
    key = _key(tables, text)
    if key is not None:
        found.add(key[0])
        how = key[1]
    found |= groups[0].exact.get(text, frozenset())
    if found:
        return frozenset(found), how
    other = groups[1].exact.get(text)
    if other:
        return other, "label"
    # "2 every week", "B) Nooit": a key and its own label, as copied from the message.
    tokens = text.split(" ")
    for size in (1, 2):
        if len(tokens) > size:
            key = _key(tables, " ".join(tokens[:size]))
            if key is not None and _fits(groups, key[0], " ".join(tokens[size:])):
                return frozenset({key[0]}), key[1]
    return None


def _prefix(groups: _Groups, text: str) -> _Match | None:
    if _letters(text) < 3:
        return None
    for group in groups:
        found = {label.index for label in group.labels if label.text.startswith(text)}
        if found:
            return frozenset(found), "prefix"
    return None


def _fuzzy(groups: _Groups, text: str) -> _Match | None:
    size = len(text)
    if size < 4:
        return None
    for group in groups:
        if size > group.longest + 1:
            continue
        found = {
            label.index
            for label in group.labels
            if label.letters >= 5
            and abs(len(label.text) - size) <= 1
            and OSA.distance(text, label.text, score_cutoff=1) <= 1
        }
        if found:
            return frozenset(found), "fuzzy"
    return None


def _match(tables: _Tables, groups: _Groups, text: str, exact_only: bool = False) -> _Match | None:
    """Options matching ``text`` in the first tier that has any: exact, prefix, one typo."""
    found = _exact(tables, groups, text)
    if found is not None or exact_only:
        return found
    return _prefix(groups, text) or _fuzzy(groups, text)


def _segment(
    tables: _Tables, groups: _Groups, text: str, joiners: frozenset[str]
) -> list[tuple[int, str]] | None:
    """Split a reply into options, ``None`` if it can't be split without leftovers.

    Each option is the longest span that matches exactly one option *and* leaves a rest
    that splits too, so "1 every month" is not cut as "1 every" + "month". A span holding a
    separator or a joining word ("en") only matches a label exactly: "brood en spelen" is
    one label, "brood en water" two options.
    """
    tokens = text.split(" ")
    n = len(tokens)
    if n > _MAX_TOKENS:
        return None
    # rest[i]: how tokens[i:] split, filled from the end so each span is tried once.
    rest: list[list[tuple[int, str]] | None] = [None] * n + [[]]
    for i in range(n - 1, -1, -1):
        token = tokens[i]
        if token in _HARD_SEPARATORS:
            rest[i] = rest[i + 1]
            continue
        for j in range(min(n, i + tables.max_tokens), i, -1):
            after = rest[j]
            if after is None or tokens[j - 1] in _HARD_SEPARATORS:
                continue
            span = tokens[i:j]
            joined = any(t in joiners or t in _HARD_SEPARATORS for t in span)
            found = _match(tables, groups, " ".join(span), exact_only=joined)
            if found is not None and len(found[0]) == 1:
                rest[i] = [(next(iter(found[0])), found[1]), *after]
                break
        else:
            if token in joiners:
                rest[i] = rest[i + 1]
    return rest[0]


_CHOICE_JOINERS = words.AND_WORDS | words.OR_WORDS


def _choice(
    tables: _Tables, text: str, language: str, languages: tuple[str, ...]
) -> Reask | Accepted:
    canon = _canon(text)
    if not canon or not tables.ids:
        return Reask("choose_one", tables.choice_params())
    groups = tables.groups(language, languages)
    found = _match(tables, groups, canon)
    if found is not None:
        indices, how = found
        if len(indices) == 1:
            return Accepted(tables.ids[next(iter(indices))], how)
        return Reask("ambiguous", tables.choice_params())
    # "1 or 2", "1,2": several options in one reply is a doubt we must not settle.
    items = _segment(tables, groups, canon, _CHOICE_JOINERS)
    if items:
        distinct = {index for index, _ in items}
        if len(distinct) > 1:
            return Reask("ambiguous", tables.choice_params())
        return Accepted(tables.ids[items[0][0]], items[0][1])  # "2, 2" or "2 of"
    return Reask("choose_one", tables.choice_params())


def _multi(
    question: Question, tables: _Tables, text: str, language: str, languages: tuple[str, ...]
) -> Reask | Accepted:
    canon = _canon(text)
    items = None
    if canon and tables.ids:
        items = _segment(tables, tables.groups(language, languages), canon, words.AND_WORDS)
    if not items:
        return Reask("choose_many", tables.choice_params())
    indices = {index for index, _ in items}
    return _bounded(question, tables, indices, items[0][1] if len(indices) == 1 else "list")


def _bounded(question: Question, tables: _Tables, indices: set[int], how: str) -> Reask | Accepted:
    if len(indices) < question.min_choices:
        return Reask("too_few", {"min": question.min_choices})
    if question.max_choices is not None and len(indices) > question.max_choices:
        return Reask("too_many", {"max": question.max_choices})
    return Accepted([tables.ids[i] for i in sorted(indices)], how)


# --- yes/no --------------------------------------------------------------------------------

_YES = words.YES_WORDS | words.YES_EMOJI
_NO = words.NO_WORDS | words.NO_EMOJI
_SKIP = words.FILLER_WORDS | _HARD_SEPARATORS


def _yesno(text: str) -> Reask | Accepted:
    canon = _canon(text)
    if canon in words.YES_PHRASES:
        return Accepted(True, "yesno")
    if canon in words.NO_PHRASES:
        return Accepted(False, "yesno")
    m = _PREFIXED_KEY.fullmatch(canon)
    # Not after "no"/"n": "no 1" may well mean no.
    key = m.group(1) if m is not None else canon
    if key in ("1", "2"):  # shown as "1 Yes / 2 No"
        return Accepted(key == "1", "number")
    votes: set[bool] = set()
    for token in canon.split(" "):
        if token in _YES:
            votes.add(True)
        elif token in _NO:
            votes.add(False)
        elif token not in _SKIP:
            return Reask("yesno")
    if len(votes) == 1:
        return Accepted(votes.pop(), "yesno")
    return Reask("yesno")  # nothing, or "yes no"


# --- scale ---------------------------------------------------------------------------------

_SCALE_NUMBER = r"[-−+]?\d{1,6}|[^\W\d_]+"
_SCALE = re.compile(
    rf"(?P<n>{_SCALE_NUMBER})"
    rf"(?:\s*(?:/|{_alternation(list(words.OUT_OF_WORDS))})\s*(?P<top>{_SCALE_NUMBER}))?"
    rf"(?:\s*(?:{_alternation(list(words.SCALE_UNITS))}))?"
)
_STARS = words.FILLED_STARS | words.EMPTY_STARS
_EDGE_NO_STAR = _EDGE.replace("*", "")


def _scale_value(token: str, expected: int | None = None) -> tuple[int, str] | None:
    """The number a scale token stands for (digits or a word); ``None`` if none, or not
    ``expected``."""
    if token.isalpha():
        n, how = words.NUMBER_WORDS.get(token), "word"
    else:
        try:
            n, how = int(token.replace("−", "-")), "number"
        except ValueError:  # a digit-like symbol the pattern let through ("²")
            return None
    if n is None or (expected is not None and n != expected):
        return None
    return n, how


def _scale(tables: _Tables, text: str) -> Reask | Accepted:
    compact = "".join(text.translate(_INVISIBLE).split()).strip(_EDGE_NO_STAR)
    if compact and all(c in _STARS for c in compact):
        return _in_scale(tables, sum(c in words.FILLED_STARS for c in compact), "stars")
    m = _SCALE.fullmatch(_numeric_text(text))
    if m is not None:
        value = _scale_value(m.group("n"))
        top = m.group("top")
        # "4/5", "vier van vijf": the top, when given, must be the top of this scale.
        if value is not None and (top is None or _scale_value(top, tables.high) is not None):
            return _in_scale(tables, *value)
    canon = _canon(text)
    low, high = canon in tables.low_labels, canon in tables.high_labels
    if low != high:
        return Accepted(tables.low if low else tables.high, "label")
    return Reask("scale", {"low": tables.low, "high": tables.high})


def _in_scale(tables: _Tables, value: int, how: str) -> Reask | Accepted:
    if tables.low <= value <= tables.high:
        return Accepted(value, how)
    return Reask("scale", {"low": tables.low, "high": tables.high})


# --- number --------------------------------------------------------------------------------

# A sign counts only when it is attached and not after a word: "-5" but not "12-13".
_NUMBER = re.compile(r"(?:(?<![\w.,])(?P<sign>[-−+]))?(?P<digits>\d+(?:[.,]\d+)*)")
_SEPARATOR = re.compile(r"[.,]")
_WORD = re.compile(r"[^\W\d_]+")
_MAX_DIGITS = 15  # beyond this a float is no longer exact, and nobody types it
_PAYLOAD_INT = re.compile(r"-?[0-9]{1,9}")
_PAYLOAD_NUMBER = re.compile(r"-?[0-9]{1,15}(?:\.[0-9]{1,15})?")


def _parse_digits(digits: str, integer: bool) -> tuple[int | float, bool] | None:
    """``(value, had a decimal part)`` for ``12``, ``12,5``, ``1.000`` or ``1.234,5``."""
    groups = _SEPARATOR.split(digits)
    if sum(len(g) for g in groups) > _MAX_DIGITS:
        return None
    seps = _SEPARATOR.findall(digits)
    if not seps:
        return int(digits), False
    head, *rest = groups
    thousands_head = 1 <= len(head) <= 3
    if len(seps) == 1:
        if integer and thousands_head and len(rest[0]) == 3:
            return int(head + rest[0]), False
        return float(f"{int(head)}.{rest[0]}"), True
    # Several separators: all but the last are thousands; the last one too if it is the
    # same mark (1.000.000), else it is the decimal mark (1.000,50).
    *inner, last = seps
    if not thousands_head or len(set(inner)) != 1 or any(len(g) != 3 for g in rest[:-1]):
        return None
    whole = head + "".join(rest[:-1])
    if last == inner[0]:
        return (int(whole + rest[-1]), False) if len(rest[-1]) == 3 else None
    return float(f"{int(whole)}.{rest[-1]}"), True


def _number(question: Question, text: str) -> Reask | Accepted:
    cleaned = _numeric_text(text)
    found = list(_NUMBER.finditer(cleaned))
    # Digits glued after a letter are part of a unit or a name ("50 m2", "CO2"); they
    # count only when nothing else does ("EUR12").
    free = [m for m in found if m.start() == 0 or not cleaned[m.start() - 1].isalpha()]
    candidates = free or found
    if len(candidates) > 1:
        return _number_reask(question)
    if candidates:
        m = candidates[0]
        parsed = _parse_digits(m.group("digits"), question.integer)
        if parsed is None:
            return _number_reask(question)
        value, fractional = parsed
        if m.group("sign") in ("-", "−"):
            value = -value
        return _in_number(question, value, fractional, "number")
    tokens = _WORD.findall(cleaned)
    if any(t in words.UNREAD_NUMBER_WORDS for t in tokens):
        return _number_reask(question)  # "twenty one" must not read as 1
    if len(tokens) == 1 and tokens[0] in words.ARTICLE_WORDS:
        hits = [words.NUMBER_WORDS[tokens[0]]]
    else:
        hits = [
            0 if t in words.NONE_WORDS else words.NUMBER_WORDS[t]
            for t in tokens
            if t not in words.ARTICLE_WORDS and (t in words.NUMBER_WORDS or t in words.NONE_WORDS)
        ]
    if len(hits) != 1:
        return _number_reask(question)
    return _in_number(question, hits[0], False, "word")


def _in_number(
    question: Question, value: int | float, fractional: bool, how: str
) -> Reask | Accepted:
    if fractional and question.integer:
        if not float(value).is_integer():
            return Reask("integer")
        value, fractional = int(value), False
    if not math.isfinite(value):
        return _number_reask(question)
    if (question.min is not None and value < question.min) or (
        question.max is not None and value > question.max
    ):
        return _number_reask(question)
    if fractional:
        return Accepted(float(value), how)
    return Accepted(int(value), how)


def _number_reask(question: Question) -> Reask:
    params: dict[str, str | int | float] = {}
    for name, bound in (("low", question.min), ("high", question.max)):
        if bound is not None:
            params[name] = int(bound) if math.isfinite(bound) and bound == int(bound) else bound
    return Reask("number", params)


# --- free text -----------------------------------------------------------------------------

_SURROGATE = re.compile("[\ud800-\udfff]")
#: NUL can't be stored in PostgreSQL text; other controls are never meant. Keep \t \n \r.
_CONTROLS: dict[int, None] = {
    cp: None for cp in [*range(0x20), *range(0x7F, 0xA0)] if chr(cp) not in "\t\n\r"
}


def _free_text(question: Question, text: str, how: str) -> Reask | Accepted:
    if _SURROGATE.search(text):
        # Rejoin split pairs and replace lone halves: the value must encode as UTF-8.
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    cleaned = text.translate(_CONTROLS).strip()
    if not cleaned:
        return Reask("text_empty")
    if len(cleaned) > question.max_length:
        return Reask("text_too_long", {"max": question.max_length})
    return Accepted(cleaned, how)
