"""What a text costs as SMS, and how a question reads on a basic phone.

An SMS is GSM-7 (160 characters, or 153 per segment when split) unless one character
is outside the GSM-7 alphabet; then the whole message is UCS-2 (70, or 67 per segment).
The GSM-7 extension characters (``€ [ ] { } ^ ~ | \\``) take two of the 160.

>>> sms_cost("Hello")
SmsCost(encoding='GSM-7', characters=5, segments=1, non_gsm=())
>>> sms_cost("Price: 5€")
SmsCost(encoding='GSM-7', characters=10, segments=1, non_gsm=())
>>> sms_cost("Park 🌳")
SmsCost(encoding='UCS-2', characters=7, segments=1, non_gsm=('🌳',))
>>> to_gsm("It’s “great” — really…")
'It\\'s "great" - really...'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeAlias

# smsutil is small and does the one thing we need right (checked in tests/surveys/test_sms.py):
# extension characters count 2 septets, astral characters (emoji) count 2 UTF-16 units,
# and neither is split across segments. It has no type hints, hence the narrow wrapper.
import smsutil
from smsutil.codecs import GSM_CHARSET as _SMSUTIL_GSM_CHARSET

from surveys.model import Question, pick

Encoding: TypeAlias = Literal["GSM-7", "UCS-2"]

#: Every character GSM-7 can send (basic table plus the extension table).
GSM_CHARSET: frozenset[str] = frozenset(str(_SMSUTIL_GSM_CHARSET))
#: Characters from the extension table, each sent as two septets (escape + code).
GSM_EXTENSION: frozenset[str] = frozenset(str(smsutil.GSM_EXT_CHARSET))


@dataclass(frozen=True)
class SmsCost:
    """The encoding, length and number of segments of one message.

    ``characters`` is the length the network counts: GSM-7 septets (an extension character
    counts 2) or UCS-2 16-bit units (an emoji counts 2). ``non_gsm`` lists, once each, the
    characters that forced UCS-2.
    """

    encoding: Encoding
    characters: int
    segments: int
    non_gsm: tuple[str, ...] = ()


def sms_cost(text: str) -> SmsCost:
    """Encoding, length and segment count of ``text`` sent as one SMS.

    >>> sms_cost("a" * 160).segments, sms_cost("a" * 161).segments
    (1, 2)
    >>> sms_cost("")
    SmsCost(encoding='GSM-7', characters=0, segments=0, non_gsm=())
    """
    if not text:
        # Nothing is sent; smsutil would call the empty string UCS-2.
        return SmsCost("GSM-7", 0, 0)
    non_gsm = tuple(dict.fromkeys(ch for ch in text if ch not in GSM_CHARSET))
    result = smsutil.split(text)
    segments = len(result.parts)
    total_bytes = int(result.total_bytes)
    if non_gsm:
        return SmsCost("UCS-2", total_bytes // 2, segments, non_gsm)
    return SmsCost("GSM-7", total_bytes, segments)


# Typography that word processors insert, with the GSM-7 character that says the same.
_TO_GSM: dict[str, str] = {
    **dict.fromkeys("‘’‚‛′`´", "'"),
    **dict.fromkeys("“”„‟″", '"'),
    **dict.fromkeys("‐‑‒–—―−", "-"),
    "…": "...",
    # no-break, figure, thin, hair, narrow no-break and the other fixed-width spaces
    **dict.fromkeys("\u00a0\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009", " "),
    **dict.fromkeys("\u200a\u202f\u205f\u3000", " "),
}
_TO_GSM_TABLE = str.maketrans(_TO_GSM)


def to_gsm(text: str) -> str:
    """Replace typographic quotes, dashes, ellipses and special spaces by GSM-7 ones.

    Other characters are left alone, so the result may still need UCS-2.

    >>> to_gsm("5\u00a0km – ‘ça va’")
    "5 km - 'ça va'"
    """
    return text.translate(_TO_GSM_TABLE)


def gsm_replacement(char: str) -> str | None:
    """What :func:`to_gsm` sends instead of ``char``, or None when it keeps it.

    >>> gsm_replacement("’"), gsm_replacement("🌳")
    ("'", None)
    """
    return _TO_GSM.get(char)


def render_question(question: Question, language: str, default: str) -> str:
    """The question as an SMS shows it: text, then one line per option.

    The conversation engine may add a short instruction in the citizen's language (such
    as "(SKIP to skip)"); validation can be given that exact rendering instead.

    >>> from surveys.model import Choice
    >>> q = Question(id="v", type="choice", text={"en": "Visits?"}, choices=(
    ...     Choice("w", {"en": "Weekly"}), Choice("n", {"en": "Never"})))
    >>> print(render_question(q, "en", "en"))
    Visits?
    1 Weekly
    2 Never
    >>> s = Question(id="s", type="scale", text={"en": "Clean?"}, min=1, max=5,
    ...     min_label={"en": "Dirty"}, max_label={"en": "Spotless"})
    >>> print(render_question(s, "en", "en"))
    Clean? (1-5: 1 = Dirty, 5 = Spotless)
    """
    lines = [question.text_in(language, default)]
    if question.type in ("choice", "multi"):
        lines += [
            f"{question.option_key(i)} {c.label_in(language, default)}"
            for i, c in enumerate(question.choices)
        ]
    elif question.type == "scale" and question.min is not None and question.max is not None:
        low, high = _number(question.min), _number(question.max)
        ends = [
            f"{end} = {pick(labels, language, default)}"
            for end, labels in ((low, question.min_label), (high, question.max_label))
            if labels
        ]
        lines[0] += f" ({low}-{high}" + (": " + ", ".join(ends) if ends else "") + ")"
    return "\n".join(lines)


def _number(value: float) -> str:
    """``5`` rather than ``5.0``."""
    return str(int(value)) if float(value).is_integer() else str(value)
