"""Properties of :func:`surveys.answers.interpret` for any text, found by hypothesis."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import get_args

from hypothesis import given, settings
from hypothesis import strategies as st

from surveys import numbers
from surveys.answers import (
    Accepted,
    Reask,
    ReaskReason,
    choice_payload,
    interpret,
    interpret_payload,
)
from surveys.model import AnswerValue, Choice, Question

LANGS = ("en", "nl", "fr", "de", "es")
REASONS = set(get_args(ReaskReason))

CHOICES = (
    Choice("week", {"en": "Every week", "nl": "Elke week", "fr": "Chaque semaine"}),
    Choice("month", {"en": "Every month", "nl": "Elke maand", "fr": "Chaque mois"}),
    Choice("never", {"en": "Never", "nl": "Nooit", "fr": "Jamais"}),
    Choice("bread", {"en": "Bread and games", "nl": "Brood en spelen"}),
    Choice("zero", {"en": "0", "nl": "1"}),  # labels that look like keys
)

QUESTIONS = [
    Question(id="c", type="choice", text={}, choices=CHOICES),
    Question(id="l", type="choice", text={}, choices=CHOICES, numbering="letters"),
    Question(id="m", type="multi", text={}, choices=CHOICES),
    Question(id="b", type="multi", text={}, choices=CHOICES, min_choices=2, max_choices=3),
    Question(id="ml", type="multi", text={}, choices=CHOICES, numbering="letters"),
    Question(id="y", type="yesno", text={}),
    Question(id="s", type="scale", text={}, min=1, max=5, max_label={"en": "Great"}),
    Question(id="z", type="scale", text={}, min=-2, max=2),
    Question(id="n", type="number", text={}),
    Question(id="a", type="number", text={}, min=0, max=120, integer=True),
    Question(id="f", type="number", text={}, min=-10.5, max=10.5),
    Question(id="t", type="text", text={}, max_length=20),
]

FRAGMENTS = [
    *"0123456789",
    "10", "-3", "12,5", "1.000", "/", ",", ";", "&", "+", "#", "(", ")", ".", "-", "−",
    "a", "b", "c", "A", "B", "and", "en", "et", "und", "y", "or", "of", "o",
    "option", "nr", "no", "nummer", "numéro", "out of", "van", "sur",
    "every", "week", "month", "never", "nooit", "elke", "maand", "brood", "spelen", "bread",
    "games", "nev", "evry", "great", "stars",
    "yes", "ja", "oui", "sí", "nee", "non", "nein", "please", "graag", "👍", "👎", "✅",
    "★", "⭐", "☆", "\ufe0f", "\u200b", "\u202e", "\x00", "\ud800", "\ud83d", "\ude00",
    "one", "twee", "deux", "zwei", "dos", "twenty", "geen", "een",
    "é", "É", "ß", "İ", "ﬁ", "²", "½", "٣", "ǅ", "c:week", "m:week,never", "y:yes", "s:3",
]  # fmt: skip

#: Any text, including lone surrogates, and texts built from pieces that mean something.
texts = st.one_of(
    st.text(alphabet=st.characters(), max_size=60),
    st.lists(st.sampled_from(FRAGMENTS), max_size=8).flatmap(
        lambda parts: st.sampled_from(["", " ", ", "]).map(lambda sep: sep.join(parts))
    ),
    st.lists(st.sampled_from(FRAGMENTS), max_size=12).map("".join),
)


def check(question: Question, result: Accepted | Reask) -> None:
    """The invariants every interpretation keeps."""
    if isinstance(result, Reask):
        assert result.reason in REASONS
        for param in result.params.values():
            assert isinstance(param, str | int | float)
        return
    assert isinstance(result, Accepted)
    assert isinstance(result.how, str)
    assert result.how
    value = result.value
    ids = [c.id for c in question.choices]
    if question.type == "choice":
        assert isinstance(value, str)
        assert value in ids
    elif question.type == "multi":
        assert isinstance(value, list)
        assert value == sorted(set(value), key=ids.index)  # unique, in the survey's order
        assert question.min_choices <= len(value)
        assert question.max_choices is None or len(value) <= question.max_choices
    elif question.type == "yesno":
        assert isinstance(value, bool)
    elif question.type == "scale":
        assert type(value) is int
        assert question.min is not None
        assert question.max is not None
        assert question.min <= value <= question.max
    elif question.type == "number":
        assert type(value) in (int, float)
        assert isinstance(value, int | float)
        assert math.isfinite(value)
        assert question.min is None or value >= question.min
        assert question.max is None or value <= question.max
        if question.integer:
            assert type(value) is int
    else:
        assert isinstance(value, str)
        assert 0 < len(value) <= question.max_length
        assert value == value.strip()
        assert "\x00" not in value
        value.encode("utf-8")  # storable: no lone surrogates


@settings(deadline=None, max_examples=400)
@given(question=st.sampled_from(QUESTIONS), text=texts, language=st.sampled_from(LANGS))
def test_any_text_gives_a_valid_interpretation(
    question: Question, text: str, language: str
) -> None:
    result = interpret(question, text, language, LANGS)
    check(question, result)
    # pure: the same reply means the same thing every time
    assert interpret(question, text, language, LANGS) == result


@settings(deadline=None, max_examples=200)
@given(question=st.sampled_from(QUESTIONS), payload=st.text(alphabet=st.characters(), max_size=30))
def test_any_payload_gives_a_valid_interpretation(question: Question, payload: str) -> None:
    check(question, interpret_payload(question, payload))
    check(question, interpret_payload(question, f"{question.id}:{payload}"))


@settings(deadline=None)
@given(question=st.sampled_from(QUESTIONS), padding=st.text(alphabet=" .!?", max_size=3))
def test_every_button_means_its_option(question: Question, padding: str) -> None:
    ids = [c.id for c in question.choices]
    table: dict[str, list[tuple[str, AnswerValue]]] = {
        "choice": [(cid, cid) for cid in ids],
        "multi": [(cid, [cid]) for cid in ids],
        "yesno": [("yes", True), ("no", False)],
        "scale": [(str(n), n) for n in range(int(question.min or 0), int(question.max or 0) + 1)],
    }
    for data, value in table.get(question.type, []):
        payload = choice_payload(question, data)
        result = interpret_payload(question, payload)
        if question.type == "multi" and question.min_choices > 1:
            assert result == Reask("too_few", {"min": question.min_choices})
        else:
            assert result == Accepted(value, "payload")
        assert interpret(question, f" {payload}", "en") == result


CASINGS: list[Callable[[str], str]] = [str.lower, str.upper, str.title, str.strip]


def _punctuated(text: str) -> st.SearchStrategy[str]:
    """``text`` as a phone might send it: other case, spaces, habit punctuation."""
    return st.tuples(
        st.sampled_from(["", " ", "  ", "(", "¡", "\u200b"]),
        st.sampled_from(CASINGS),
        st.sampled_from(["", ".", "!", "!!", " ", ")", "?", "\ufe0f"]),
    ).map(lambda t: t[0] + t[1](text) + t[2])


@st.composite
def choice_replies(draw: st.DrawFn) -> tuple[Question, str, str]:
    letters = draw(st.booleans())
    q = Question(
        id="c",
        type="choice",
        text={},
        choices=CHOICES[:4],
        numbering="letters" if letters else "numbers",
    )
    index = draw(st.integers(0, 3))
    words = [w for w, n in numbers.NUMBER_WORDS.items() if n == index + 1]
    labels = list(q.choices[index].label.values())
    forms = [q.option_key(index), *labels]
    if not letters:
        forms += [f"option {index + 1}", f"#{index + 1}", f"nr. {index + 1}", *words]
    form = draw(st.sampled_from(forms))
    return q, draw(_punctuated(form)), q.choices[index].id


@settings(deadline=None, max_examples=300)
@given(case=choice_replies(), language=st.sampled_from(LANGS))
def test_each_shown_form_picks_its_option(case: tuple[Question, str, str], language: str) -> None:
    question, text, expected = case
    result = interpret(question, text, language, LANGS)
    assert isinstance(result, Accepted), (text, result)
    assert result.value == expected


SEPARATORS = [" ", ",", ", ", ";", " & ", "+", "/", " and ", " en ", " et ", " und ", " y "]


@settings(deadline=None, max_examples=300)
@given(
    picks=st.lists(st.integers(0, 3), min_size=1, max_size=6),
    separator=st.sampled_from(SEPARATORS),
    by_label=st.lists(st.booleans(), min_size=6, max_size=6),
)
def test_multi_keys_and_labels_in_any_order(
    picks: list[int], separator: str, by_label: list[bool]
) -> None:
    q = Question(id="m", type="multi", text={}, choices=CHOICES[:4])
    parts = [
        q.choices[i].label["en"] if label else q.option_key(i)
        for i, label in zip(picks, by_label, strict=False)
    ]
    result = interpret(q, separator.join(parts), "en", LANGS)
    assert result == Accepted(
        [c.id for i, c in enumerate(q.choices) if i in set(picks)],
        result.how if isinstance(result, Accepted) else "?",
    ), (separator.join(parts), result)


@settings(deadline=None)
@given(
    value=st.integers(-2, 2),
    form=st.sampled_from(["{}", "{}/2", "{} out of 2", "{} van 2", " {}. "]),
)
def test_scale_round_trip(value: int, form: str) -> None:
    q = Question(id="z", type="scale", text={}, min=-2, max=2)
    result = interpret(q, form.format(value), "en")
    assert result == Accepted(value, "number")


@settings(deadline=None)
@given(stars=st.integers(1, 5), empty=st.integers(0, 4), selector=st.sampled_from(["", "\ufe0f"]))
def test_stars_count(stars: int, empty: int, selector: str) -> None:
    q = Question(id="s", type="scale", text={}, min=1, max=5)
    result = interpret(q, ("⭐" + selector) * stars + "☆" * empty, "en")
    assert result == Accepted(stars, "stars")


@settings(deadline=None)
@given(
    value=st.integers(-10_000, 10_000),
    cents=st.none() | st.integers(1, 99),
    mark=st.sampled_from([",", "."]),
    form=st.sampled_from(["{}", "about {}", "{} km", "€ {}", "ca. {} euro", "{}!"]),
)
def test_number_round_trip(value: int, cents: int | None, mark: str, form: str) -> None:
    q = Question(id="n", type="number", text={})
    if cents is None:
        text, expected = str(value), Accepted(value, "number")
    else:
        sign = "-" if value < 0 else ""
        text = f"{sign}{abs(value)}{mark}{cents:02d}"
        expected = Accepted(float(f"{sign}{abs(value)}.{cents:02d}"), "number")
    result = interpret(q, form.format(text), "en")
    assert isinstance(result, Accepted), (text, result)
    assert result.value == expected.value
    assert type(result.value) is type(expected.value)


@settings(deadline=None)
@given(
    word=st.sampled_from(sorted(numbers.YES_WORDS | numbers.NO_WORDS)),
    dressed=st.data(),
)
def test_yes_and_no_words(word: str, dressed: st.DataObject) -> None:
    q = Question(id="y", type="yesno", text={})
    text = dressed.draw(_punctuated(word))
    assert interpret(q, text, "en") == Accepted(word in numbers.YES_WORDS, "yesno")


@settings(deadline=None)
@given(text=st.text(alphabet=st.characters(), max_size=40))
def test_free_text_keeps_what_was_said(text: str) -> None:
    q = Question(id="t", type="text", text={}, max_length=20)
    result = interpret(q, text, "en")
    check(q, result)
    if isinstance(result, Accepted):
        assert isinstance(result.value, str)
        assert result.value in text or "\ufffd" in result.value or len(result.value) < len(text)
