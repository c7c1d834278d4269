"""SMS cost: what the network will bill, and the GSM-7 look-alikes we send instead."""

from __future__ import annotations

import pytest

from surveys.model import Choice, Question
from surveys.sms import SmsCost, gsm_replacement, render_question, sms_cost, to_gsm


@pytest.mark.parametrize(
    ("text", "encoding", "characters", "segments"),
    [
        pytest.param("Hello", "GSM-7", 5, 1, id="plain"),
        pytest.param("a" * 160, "GSM-7", 160, 1, id="exactly-160-is-one-sms"),
        pytest.param("a" * 161, "GSM-7", 161, 2, id="161-is-two"),
        pytest.param("a" * 306, "GSM-7", 306, 2, id="two-parts-of-153"),
        pytest.param("a" * 307, "GSM-7", 307, 3, id="307-is-three"),
        pytest.param("Prijs: 5€", "GSM-7", 10, 1, id="euro-counts-two"),
        pytest.param("[x]", "GSM-7", 5, 1, id="brackets-count-two"),
        pytest.param("{}^~|\\", "GSM-7", 12, 1, id="all-extension-chars"),
        pytest.param("€" * 80, "GSM-7", 160, 1, id="80-euros-fill-one-sms"),
        pytest.param("a" * 159 + "€", "GSM-7", 161, 2, id="euro-pushes-over-160"),
        # An escape sequence never straddles two parts, so the first part holds 152
        # septets and the message needs a third part although 306 = 2 x 153.
        pytest.param("a" * 152 + "€" + "a" * 152, "GSM-7", 306, 3, id="euro-not-split"),
        pytest.param("élève à Bruxelles ÄÖÜ ß ñ", "GSM-7", 25, 1, id="gsm-accents"),
        pytest.param("Ça va\nOui", "GSM-7", 9, 1, id="capital-c-cedilla-and-newline"),
        pytest.param("ж" * 70, "UCS-2", 70, 1, id="ucs2-70-is-one-sms"),
        pytest.param("ж" * 71, "UCS-2", 71, 2, id="ucs2-71-is-two"),
        pytest.param("ж" * 134, "UCS-2", 134, 2, id="ucs2-two-parts-of-67"),
        pytest.param("ж" * 135, "UCS-2", 135, 3, id="ucs2-135-is-three"),
        pytest.param("😀" * 35, "UCS-2", 70, 1, id="emoji-counts-two"),
        pytest.param("😀" * 36, "UCS-2", 72, 2, id="36-emoji-are-two-sms"),
        # A surrogate pair is not split either: 66 + (2 + 65) + 1
        pytest.param("ж" * 66 + "😀" + "ж" * 66, "UCS-2", 134, 3, id="emoji-not-split"),
        pytest.param("a" * 69 + "ç", "UCS-2", 70, 1, id="one-non-gsm-letter-makes-ucs2"),
        pytest.param("a" * 70 + "ç", "UCS-2", 71, 2, id="so-71-characters-are-two"),
        pytest.param("", "GSM-7", 0, 0, id="empty-sends-nothing"),
    ],
)
def test_sms_cost(text: str, encoding: str, characters: int, segments: int) -> None:
    cost = sms_cost(text)
    assert (cost.encoding, cost.characters, cost.segments) == (encoding, characters, segments)


def test_non_gsm_characters_are_listed_once_in_order() -> None:
    assert sms_cost("ça, ça 🌳 ça’").non_gsm == ("ç", "🌳", "’")
    assert sms_cost("Price [5€]").non_gsm == ()


def test_curly_quote_alone_forces_ucs2() -> None:
    # This is why the SMS channel sends to_gsm(text), not the text as typed.
    assert sms_cost("It’s").encoding == "UCS-2"
    assert sms_cost(to_gsm("It’s")) == SmsCost("GSM-7", 4, 1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("‘single’ “double” „low“", '\'single\' "double" "low"'),
        ("it´s and it`s", "it's and it's"),
        ("en – dash, em — dash, minus −5", "en - dash, em - dash, minus -5"),
        ("wait…", "wait..."),
        ("5\u00a0km, 10\u202f000, thin\u2009space", "5 km, 10 000, thin space"),
        ("ça, 🌳, «guillemets», ê", "ça, 🌳, «guillemets», ê"),
        ("Plain GSM-7 text: 1 Every week", "Plain GSM-7 text: 1 Every week"),
    ],
)
def test_to_gsm(text: str, expected: str) -> None:
    assert to_gsm(text) == expected


def test_gsm_replacement_matches_to_gsm() -> None:
    assert gsm_replacement("—") == "-"
    assert gsm_replacement("…") == "..."
    assert gsm_replacement("ç") is None


WEEKLY = Choice("weekly", {"en": "Every week", "nl": "Elke week"})
NEVER = Choice("never", {"en": "Never"})


def test_choice_question_is_a_numbered_list() -> None:
    q = Question(
        "visits", "choice", {"en": "How often?", "nl": "Hoe vaak?"}, choices=(WEEKLY, NEVER)
    )
    # The missing nl label falls back to the default language.
    assert render_question(q, "nl", "en") == "Hoe vaak?\n1 Elke week\n2 Never"


def test_letters_numbering() -> None:
    q = Question("visits", "multi", {"en": "Which?"}, choices=(WEEKLY, NEVER), numbering="letters")
    assert render_question(q, "en", "en") == "Which?\nA Every week\nB Never"


def test_scale_shows_bounds_and_labels() -> None:
    q = Question("clean", "scale", {"en": "Clean?"}, min=0, max=10, max_label={"en": "Spotless"})
    assert render_question(q, "en", "en") == "Clean? (0-10: 10 = Spotless)"
    plain = Question("clean", "scale", {"en": "Clean?"}, min=1, max=5)
    assert render_question(plain, "en", "en") == "Clean? (1-5)"


@pytest.mark.parametrize("qtype", ["yesno", "number", "text"])
def test_other_questions_are_just_the_text(qtype: str) -> None:
    q = Question("q", qtype, {"en": "Your age?"}, min=0, max=120)  # type: ignore[arg-type]
    assert render_question(q, "en", "en") == "Your age?"
