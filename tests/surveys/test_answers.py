"""Tables of replies and what :func:`surveys.answers.interpret` makes of them."""

from __future__ import annotations

import gc
import time

import pytest

from surveys import answers, numbers
from surveys.answers import Accepted, Reask, choice_payload, interpret, interpret_payload
from surveys.model import AnswerValue, Choice, Question
from surveys.text import normalize

LANGS = ("en", "nl", "fr", "de", "es")

FREQUENCY = (
    Choice(
        "week",
        {
            "en": "Every week",
            "nl": "Elke week",
            "fr": "Chaque semaine",
            "de": "Jede Woche",
            "es": "Cada semana",
        },
    ),
    Choice(
        "month",
        {
            "en": "Every month",
            "nl": "Elke maand",
            "fr": "Chaque mois",
            "de": "Jeden Monat",
            "es": "Cada mes",
        },
    ),
    Choice("never", {"en": "Never", "nl": "Nooit", "fr": "Jamais", "de": "Nie", "es": "Nunca"}),
)


def choice(
    *choices: Choice, numbering: str = "numbers", type: str = "choice", **kw: object
) -> Question:
    return Question(
        id="q",
        type=type,  # type: ignore[arg-type]
        text={"en": "?"},
        choices=choices or FREQUENCY,
        numbering=numbering,  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


def ok(value: AnswerValue, how: str) -> Accepted:
    return Accepted(value, how)


ONE_TO_THREE = {"low": "1", "high": "3"}
A_TO_C = {"low": "A", "high": "C"}

# --- choice ------------------------------------------------------------------------------

CHOICE_CASES: list[tuple[str, str, Accepted | Reask]] = [
    # the number shown, in every way people type it
    ("2", "en", ok("month", "number")),
    (" 2 ", "en", ok("month", "number")),
    ("2.", "en", ok("month", "number")),
    ("2)", "en", ok("month", "number")),
    ("(2)", "en", ok("month", "number")),
    ("#2", "en", ok("month", "number")),
    ("# 2", "en", ok("month", "number")),
    ("option 2", "en", ok("month", "number")),
    ("Option 2!", "en", ok("month", "number")),
    ("optie 2", "nl", ok("month", "number")),
    ("opción 2", "es", ok("month", "number")),
    ("nr 2", "nl", ok("month", "number")),
    ("nr. 2", "nl", ok("month", "number")),
    ("no. 2", "en", ok("month", "number")),
    ("No 2", "en", ok("month", "number")),
    ("nº 2", "es", ok("month", "number")),
    ("n° 2", "fr", ok("month", "number")),
    ("nummer 2", "nl", ok("month", "number")),
    ("Nummer 2", "de", ok("month", "number")),
    ("numéro 2", "fr", ok("month", "number")),
    ("number 2", "en", ok("month", "number")),
    ("02", "en", ok("month", "number")),
    ("2️⃣", "en", ok("month", "number")),
    ("٢", "en", ok("month", "number")),  # Arabic-Indic digit
    ("\u202e2", "en", ok("month", "number")),  # a stray direction mark
    # the number as a word, in all five languages, whatever the survey language
    ("one", "en", ok("week", "word")),
    ("een", "nl", ok("week", "word")),
    ("één", "nl", ok("week", "word")),
    ("un", "fr", ok("week", "word")),
    ("eins", "de", ok("week", "word")),
    ("uno", "es", ok("week", "word")),
    ("two", "en", ok("month", "word")),
    ("Twee", "nl", ok("month", "word")),
    ("deux", "fr", ok("month", "word")),
    ("zwei", "de", ok("month", "word")),
    ("dos", "es", ok("month", "word")),
    ("dos", "en", ok("month", "word")),
    ("THREE", "en", ok("never", "word")),
    ("drie", "nl", ok("never", "word")),
    ("trois", "fr", ok("never", "word")),
    ("drei", "de", ok("never", "word")),
    ("tres", "es", ok("never", "word")),
    ("optie twee", "nl", ok("month", "word")),
    ("nummer drie", "nl", ok("never", "word")),
    # the label, in the citizen's language, then in the survey's others
    ("Every week", "en", ok("week", "label")),
    ("every week", "en", ok("week", "label")),
    ("EVERY WEEK!!", "en", ok("week", "label")),
    ("  every   week  ", "en", ok("week", "label")),
    ("elke maand", "nl", ok("month", "label")),
    ("Chaque mois.", "fr", ok("month", "label")),
    ("jeden Monat", "de", ok("month", "label")),
    ("cada mes", "es", ok("month", "label")),
    ("Nooit", "en", ok("never", "label")),  # Dutch label, English citizen
    ("jamais", "de", ok("never", "label")),
    ("nie", "de", ok("never", "label")),
    # the number and its label, as copied from the message
    ("2. Every month", "en", ok("month", "number")),
    ("2 - every month", "en", ok("month", "number")),
    ("3) nooit", "nl", ok("never", "number")),
    ("3 nev", "en", ok("never", "number")),
    # a unique prefix of three letters or more
    ("nev", "en", ok("never", "prefix")),
    ("Nooi", "nl", ok("never", "prefix")),
    ("every w", "en", ok("week", "prefix")),
    ("jeden", "de", ok("month", "prefix")),
    ("cada m", "es", ok("month", "prefix")),
    ("jama", "en", ok("never", "prefix")),  # prefix of another language's label
    # one typo, when the label has five letters or more
    ("nevr", "en", ok("never", "fuzzy")),
    ("nevet", "en", ok("never", "fuzzy")),
    ("neverr", "en", ok("never", "fuzzy")),
    ("nooti", "nl", ok("never", "fuzzy")),  # neighbours swapped
    ("evrey week", "en", ok("week", "fuzzy")),
    ("elke maan", "nl", ok("month", "prefix")),
    ("elke maamd", "nl", ok("month", "fuzzy")),
    ("jamias", "fr", ok("never", "fuzzy")),
    ("nunka", "es", ok("never", "fuzzy")),
    ("chaque semanie", "fr", ok("week", "fuzzy")),
    # nothing fits
    ("4", "en", Reask("choose_one", ONE_TO_THREE)),
    ("0", "en", Reask("choose_one", ONE_TO_THREE)),
    ("- 1", "en", ok("week", "number")),  # a dash is a bullet here
    ("1.5", "en", Reask("choose_one", ONE_TO_THREE)),
    ("four", "en", Reask("choose_one", ONE_TO_THREE)),
    ("b", "en", Reask("choose_one", ONE_TO_THREE)),  # letters are not shown
    ("nei", "de", Reask("choose_one", ONE_TO_THREE)),  # "Nie" is too short for typos
    ("ne", "en", Reask("choose_one", ONE_TO_THREE)),  # too short for a prefix
    ("nevver ever", "en", Reask("choose_one", ONE_TO_THREE)),
    ("nvr", "en", Reask("choose_one", ONE_TO_THREE)),  # two edits away
    ("sometimes", "en", Reask("choose_one", ONE_TO_THREE)),
    ("2 please", "en", Reask("choose_one", ONE_TO_THREE)),
    ("no one", "en", Reask("choose_one", ONE_TO_THREE)),  # "no" numbers digits only
    ("option", "en", Reask("choose_one", ONE_TO_THREE)),
    ("#", "en", Reask("choose_one", ONE_TO_THREE)),
    ("", "en", Reask("choose_one", ONE_TO_THREE)),
    ("   ", "en", Reask("choose_one", ONE_TO_THREE)),
    ("?!", "en", Reask("choose_one", ONE_TO_THREE)),
    ("🙂", "en", Reask("choose_one", ONE_TO_THREE)),
    ("99999999999999999999", "en", Reask("choose_one", ONE_TO_THREE)),
    # several options in one reply are a doubt we do not settle
    ("1 or 2", "en", Reask("ambiguous", ONE_TO_THREE)),
    ("1 of 2", "nl", Reask("ambiguous", ONE_TO_THREE)),
    ("1 ou 2", "fr", Reask("ambiguous", ONE_TO_THREE)),
    ("1 oder 2", "de", Reask("ambiguous", ONE_TO_THREE)),
    ("1 o 2", "es", Reask("ambiguous", ONE_TO_THREE)),
    ("1 2", "en", Reask("ambiguous", ONE_TO_THREE)),
    ("1,2", "en", Reask("ambiguous", ONE_TO_THREE)),
    ("1/2", "en", Reask("ambiguous", ONE_TO_THREE)),
    ("1 and 3", "en", Reask("ambiguous", ONE_TO_THREE)),
    ("every week or never", "en", Reask("ambiguous", ONE_TO_THREE)),
    ("2 never", "en", Reask("ambiguous", ONE_TO_THREE)),  # key and label disagree
    ("every", "en", Reask("ambiguous", ONE_TO_THREE)),  # prefix of two labels
    ("elke", "nl", Reask("ambiguous", ONE_TO_THREE)),
    ("jed", "de", Reask("ambiguous", ONE_TO_THREE)),
    ("chaque", "fr", Reask("ambiguous", ONE_TO_THREE)),
    # the same option twice is still one option
    ("2, 2", "en", ok("month", "number")),
]


@pytest.mark.parametrize(("text", "language", "expected"), CHOICE_CASES)
def test_choice(text: str, language: str, expected: Accepted | Reask) -> None:
    assert interpret(choice(), text, language, LANGS) == expected


LETTER_CASES: list[tuple[str, Accepted | Reask]] = [
    ("b", ok("month", "letter")),
    ("B", ok("month", "letter")),
    ("B)", ok("month", "letter")),
    ("(b)", ok("month", "letter")),
    ("b.", ok("month", "letter")),
    ("A", ok("week", "letter")),
    ("c", ok("never", "letter")),
    ("option c", ok("never", "letter")),
    ("#c", ok("never", "letter")),
    ("B. Every month", ok("month", "letter")),
    ("never", ok("never", "label")),
    ("nooit", ok("never", "label")),
    ("2", Reask("choose_one", A_TO_C)),  # numbers are not shown
    ("d", Reask("choose_one", A_TO_C)),
    ("a or b", Reask("ambiguous", A_TO_C)),
    ("a b", Reask("ambiguous", A_TO_C)),
]


@pytest.mark.parametrize(("text", "expected"), LETTER_CASES)
def test_choice_letters(text: str, expected: Accepted | Reask) -> None:
    assert interpret(choice(numbering="letters"), text, "en", LANGS) == expected


def test_label_in_the_citizens_language_comes_first() -> None:
    # "Auto" is choice 1 in English ("automatic") and choice 2 in Dutch ("car").
    q = choice(
        Choice("automatic", {"en": "Auto", "nl": "Automatisch"}),
        Choice("car", {"en": "Car", "nl": "Auto"}),
    )
    assert interpret(q, "auto", "en", ("en", "nl")) == ok("automatic", "label")
    assert interpret(q, "auto", "nl", ("en", "nl")) == ok("car", "label")
    # no French labels: the citizen was shown the default language's
    assert interpret(q, "auto", "fr", ("en", "nl", "fr")) == ok("automatic", "label")
    assert interpret(q, "auto", "fr", ("nl", "en", "fr")) == ok("car", "label")


def test_languages_limit_the_other_labels() -> None:
    q = choice(Choice("a", {"en": "Apple", "de": "Apfel"}), Choice("b", {"en": "Pear"}))
    assert interpret(q, "apfel", "en", ()) == ok("a", "label")  # () = every label language
    assert interpret(q, "apfel", "en", ("en", "de")) == ok("a", "label")
    assert interpret(q, "apfel", "en", ("en",)) == Reask("choose_one", {"low": "1", "high": "2"})
    assert interpret(q, "appel", "en", ("en",)) == ok("a", "fuzzy")  # "apple", one swap off


def test_label_shown_from_the_default_language() -> None:
    q = choice(Choice("a", {"nl": "Fiets"}), Choice("b", {"nl": "Bus"}))
    assert interpret(q, "fiets", "fr", ("nl", "fr")) == ok("a", "label")
    assert interpret(q, "fie", "fr", ("nl", "fr")) == ok("a", "prefix")


def test_a_key_that_is_also_another_label_is_ambiguous() -> None:
    q = choice(
        Choice("none", {"en": "0"}), Choice("one", {"en": "1"}), Choice("more", {"en": "2 or more"})
    )
    high = {"low": "1", "high": "3"}
    assert interpret(q, "1", "en") == Reask("ambiguous", high)
    assert interpret(q, "option 1", "en") == ok("none", "number")
    assert interpret(q, "0", "en") == ok("none", "label")
    assert interpret(q, "2 or more", "en") == ok("more", "label")
    assert interpret(q, "3", "en") == ok("more", "number")


def test_fuzzy_matches_of_two_labels_are_ambiguous() -> None:
    q = choice(Choice("paris", {"en": "Paris"}), Choice("parts", {"en": "Parts"}))
    assert interpret(q, "parks", "en") == Reask("ambiguous", {"low": "1", "high": "2"})
    assert interpret(q, "pariss", "en") == ok("paris", "fuzzy")


def test_labels_with_punctuation_and_apostrophes() -> None:
    q = choice(
        Choice("dk", {"en": "I don't know", "fr": "Je ne sais pas"}),
        Choice("bike", {"en": "Bike/scooter"}),
        Choice("ebike", {"en": "E-bike"}),
    )
    assert interpret(q, "i dont know", "en") == ok("dk", "label")
    assert interpret(q, "I don’t know.", "en") == ok("dk", "label")
    assert interpret(q, "bike / scooter", "en") == ok("bike", "label")
    assert interpret(q, "e-bike", "en") == ok("ebike", "label")
    assert interpret(q, "ebike", "en") == ok("ebike", "fuzzy")


def test_no_choices_at_all() -> None:
    q = Question(id="q", type="choice", text={})
    assert interpret(q, "1", "en") == Reask("choose_one", {})


# --- multi -------------------------------------------------------------------------------

MEALS = (
    Choice(
        "bread", {"nl": "Brood en spelen", "en": "Bread and games", "fr": "Du pain et des jeux"}
    ),
    Choice("water", {"nl": "Water", "en": "Water", "fr": "Eau"}),
    Choice("soup", {"nl": "Soep", "en": "Soup", "fr": "Soupe", "de": "Suppe", "es": "Sopa"}),
)

MULTI_CASES: list[tuple[str, str, Accepted | Reask]] = [
    ("1", "en", ok(["week"], "number")),
    ("1 3", "en", ok(["week", "never"], "list")),
    ("1,3", "en", ok(["week", "never"], "list")),
    ("1, 3", "en", ok(["week", "never"], "list")),
    ("1;3", "en", ok(["week", "never"], "list")),
    ("1 & 3", "en", ok(["week", "never"], "list")),
    ("1+3", "en", ok(["week", "never"], "list")),
    ("1/3", "en", ok(["week", "never"], "list")),
    ("1 and 3", "en", ok(["week", "never"], "list")),
    ("1 en 3", "nl", ok(["week", "never"], "list")),
    ("1 et 3", "fr", ok(["week", "never"], "list")),
    ("1 und 3", "de", ok(["week", "never"], "list")),
    ("1 y 3", "es", ok(["week", "never"], "list")),
    ("3 1", "en", ok(["week", "never"], "list")),  # stored in the survey's order
    ("3, 1, 3", "en", ok(["week", "never"], "list")),  # duplicates dropped
    ("1,2,3", "en", ok(["week", "month", "never"], "list")),
    ("one and three", "en", ok(["week", "never"], "list")),
    ("een, drie", "nl", ok(["week", "never"], "list")),
    ("#1 #3", "en", ok(["week", "never"], "list")),
    ("option 1 and option 3", "en", ok(["week", "never"], "list")),
    ("Every week, never", "en", ok(["week", "never"], "list")),
    ("every week never", "en", ok(["week", "never"], "list")),
    ("never and every month", "en", ok(["month", "never"], "list")),
    ("elke week en nooit", "nl", ok(["week", "never"], "list")),
    ("chaque semaine et jamais", "fr", ok(["week", "never"], "list")),
    ("1 en nooit", "nl", ok(["week", "never"], "list")),
    ("evry week, nevr", "en", ok(["week", "never"], "list")),
    ("nev, 2", "en", ok(["month", "never"], "list")),
    ("1. Every week 3. Never", "en", ok(["week", "never"], "list")),
    ("every week", "en", ok(["week"], "label")),
    ("nooit", "en", ok(["never"], "label")),
    ("1, 1", "en", ok(["week"], "number")),
    ("m:week,never", "en", ok(["week", "never"], "payload")),
    # nothing, something unknown, or an unclear item
    ("", "en", Reask("choose_many", ONE_TO_THREE)),
    (",", "en", Reask("choose_many", ONE_TO_THREE)),
    ("and", "en", Reask("choose_many", ONE_TO_THREE)),
    ("1 4", "en", Reask("choose_many", ONE_TO_THREE)),
    ("1 blah", "en", Reask("choose_many", ONE_TO_THREE)),
    ("1-3", "en", Reask("choose_many", ONE_TO_THREE)),  # a range is not guessed
    ("13", "en", Reask("choose_many", ONE_TO_THREE)),
    ("1 or 3", "en", Reask("choose_many", ONE_TO_THREE)),
    ("every", "en", Reask("choose_many", ONE_TO_THREE)),  # ambiguous item
    ("2, every", "en", Reask("choose_many", ONE_TO_THREE)),
]


@pytest.mark.parametrize(("text", "language", "expected"), MULTI_CASES)
def test_multi(text: str, language: str, expected: Accepted | Reask) -> None:
    q = Question(id="m", type="multi", text={}, choices=FREQUENCY)
    assert interpret(q, text, language, LANGS) == expected


MEAL_CASES: list[tuple[str, str, Accepted | Reask]] = [
    # "en" inside a label is not a separator...
    ("brood en spelen", "nl", ok(["bread"], "label")),
    ("Brood en spelen, water", "nl", ok(["bread", "water"], "list")),
    ("water en brood en spelen", "nl", ok(["bread", "water"], "list")),
    ("brood en spelen en soep", "nl", ok(["bread", "soup"], "list")),
    ("bread and games and soup", "en", ok(["bread", "soup"], "list")),
    ("du pain et des jeux et eau", "fr", ok(["bread", "water"], "list")),
    # ...but it is one between options
    ("water en soep", "nl", ok(["water", "soup"], "list")),
    ("soep en water", "nl", ok(["water", "soup"], "list")),
    ("brood en water", "nl", ok(["bread", "water"], "list")),  # "brood": a prefix
    ("1 en 2 en 3", "nl", ok(["bread", "water", "soup"], "list")),
    ("suppe und wasser", "de", Reask("choose_many", ONE_TO_THREE)),  # no German "Wasser"
    ("sopa y water", "es", ok(["water", "soup"], "list")),
]


@pytest.mark.parametrize(("text", "language", "expected"), MEAL_CASES)
def test_multi_word_labels(text: str, language: str, expected: Accepted | Reask) -> None:
    q = Question(id="m", type="multi", text={}, choices=MEALS)
    assert interpret(q, text, language, LANGS) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", Reask("too_few", {"min": 2})),
        ("2 2", Reask("too_few", {"min": 2})),
        ("1 2", ok(["week", "month"], "list")),
        ("1 2 3", ok(["week", "month", "never"], "list")),
        ("1 2 3 4", Reask("too_many", {"max": 3})),
    ],
)
def test_multi_bounds(text: str, expected: Accepted | Reask) -> None:
    q = Question(
        id="m",
        type="multi",
        text={},
        choices=(*FREQUENCY, Choice("daily", {"en": "Daily"})),
        min_choices=2,
        max_choices=3,
        numbering="numbers",
    )
    assert interpret(q, text, "en") == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a, c", ok(["week", "never"], "list")),
        ("A and C", ok(["week", "never"], "list")),
        ("a c", ok(["week", "never"], "list")),
        ("AC", Reask("choose_many", A_TO_C)),
        ("c)", ok(["never"], "letter")),
    ],
)
def test_multi_letters(text: str, expected: Accepted | Reask) -> None:
    q = Question(id="m", type="multi", text={}, choices=FREQUENCY, numbering="letters")
    assert interpret(q, text, "en") == expected


# --- yes/no ------------------------------------------------------------------------------

YES = [
    "y", "Y", "yes", "YES", "Yes!!", "yes.", "yeah", "yep", "ok", "OK", "okay", "sure", "true",
    "ja", " Ja. ", "JA!", "j", "jawel", "oui", "Oui !", "ouais", "o", "si", "sí", "Sí!", "¡Sí!",
    "claro", "vale", "👍", "👍🏽", "👍👍", "✅", "✔️", "1", "1.", "option 1", "yes please",
    "ja graag", "ja, graag", "oui merci", "si, por favor", "of course", "yes yes", "jawohl",
    "genau", "doch", "d'accord", "natuurlijk", "bien sûr", "yes 👍",
]  # fmt: skip
NO = [
    "n", "N", "no", "NO!", "no.", "nope", "nee", "Nee.", "neen", "non", "Non merci", "nein",
    "Nein!", "👎", "❌", "2", "2)", "no thanks", "nee, bedankt", "nein danke", "no gracias",
    "no no", "of course not", "zeker niet", "pas du tout", "false",
]  # fmt: skip
NEITHER = [
    "", " ", "maybe", "misschien", "yes no", "ja nee", "oui non", "si no", "👍👎", "not sure",
    "3", "0", "1 2", "yes 2", "perhaps yes", "🙂", "yesss", "no 1",
]  # fmt: skip


@pytest.mark.parametrize("text", YES)
def test_yes(text: str) -> None:
    result = interpret(Question(id="ok", type="yesno", text={}), text, "en", LANGS)
    assert isinstance(result, Accepted)
    assert result.value is True
    assert result.how == ("number" if "1" in text else "yesno")


@pytest.mark.parametrize("text", NO)
def test_no(text: str) -> None:
    result = interpret(Question(id="ok", type="yesno", text={}), text, "en", LANGS)
    assert isinstance(result, Accepted)
    assert result.value is False


@pytest.mark.parametrize("text", NEITHER)
def test_neither_yes_nor_no(text: str) -> None:
    assert interpret(Question(id="ok", type="yesno", text={}), text, "en") == Reask("yesno")


# --- scale -------------------------------------------------------------------------------

SCALE_CASES: list[tuple[str, Accepted | Reask]] = [
    ("4", ok(4, "number")),
    (" 4. ", ok(4, "number")),
    ("1", ok(1, "number")),
    ("5", ok(5, "number")),
    ("4/5", ok(4, "number")),
    ("4 / 5", ok(4, "number")),
    ("4 out of 5", ok(4, "number")),
    ("4 of 5", ok(4, "number")),
    ("4 van 5", ok(4, "number")),
    ("4 op 5", ok(4, "number")),
    ("4 sur 5", ok(4, "number")),
    ("4 von 5", ok(4, "number")),
    ("4 de 5", ok(4, "number")),
    ("4 stars", ok(4, "number")),
    ("4 sterren", ok(4, "number")),
    ("4 étoiles", ok(4, "number")),
    ("4/5 stars", ok(4, "number")),
    ("four", ok(4, "word")),
    ("Vier", ok(4, "word")),
    ("quatre", ok(4, "word")),
    ("cuatro", ok(4, "word")),
    ("vier van vijf", ok(4, "word")),
    ("four stars", ok(4, "word")),
    ("⭐⭐⭐⭐", ok(4, "stars")),
    ("⭐️⭐️⭐️⭐️", ok(4, "stars")),  # with emoji variation selectors
    ("⭐ ⭐ ⭐", ok(3, "stars")),
    ("★★★", ok(3, "stars")),
    ("★★★☆☆", ok(3, "stars")),
    ("***", ok(3, "stars")),
    ("⭐", ok(1, "stars")),
    ("very bad", ok(1, "label")),
    ("Heel goed!", ok(5, "label")),
    ("s:3", ok(3, "payload")),
    ("6", Reask("scale", {"low": 1, "high": 5})),
    ("0", Reask("scale", {"low": 1, "high": 5})),
    ("-1", Reask("scale", {"low": 1, "high": 5})),
    ("3.5", Reask("scale", {"low": 1, "high": 5})),
    ("3,5", Reask("scale", {"low": 1, "high": 5})),
    ("4/10", Reask("scale", {"low": 1, "high": 5})),
    ("4 out of 10", Reask("scale", {"low": 1, "high": 5})),
    ("3 4", Reask("scale", {"low": 1, "high": 5})),
    ("3 or 4", Reask("scale", {"low": 1, "high": 5})),
    ("⭐⭐⭐⭐⭐⭐", Reask("scale", {"low": 1, "high": 5})),
    ("☆☆", Reask("scale", {"low": 1, "high": 5})),
    ("good", Reask("scale", {"low": 1, "high": 5})),
    ("", Reask("scale", {"low": 1, "high": 5})),
    ("4x", Reask("scale", {"low": 1, "high": 5})),
    ("99999999999", Reask("scale", {"low": 1, "high": 5})),
]


@pytest.mark.parametrize(("text", "expected"), SCALE_CASES)
def test_scale(text: str, expected: Accepted | Reask) -> None:
    q = Question(
        id="s",
        type="scale",
        text={},
        min=1,
        max=5,
        min_label={"en": "Very bad", "nl": "Heel slecht"},
        max_label={"en": "Very good", "nl": "Heel goed"},
    )
    assert interpret(q, text, "en", LANGS) == expected


@pytest.mark.parametrize(
    ("text", "low", "high", "expected"),
    [
        ("0", 0, 10, ok(0, "number")),
        ("zero", 0, 10, ok(0, "word")),
        ("nul", 0, 10, ok(0, "word")),
        ("10", 0, 10, ok(10, "number")),
        ("ten", 0, 10, ok(10, "word")),
        ("tien", 0, 10, ok(10, "word")),
        ("10/10", 0, 10, ok(10, "number")),
        ("-2", -2, 2, ok(-2, "number")),
        ("−1", -2, 2, ok(-1, "number")),
        ("+2", -2, 2, ok(2, "number")),
        ("-3", -2, 2, Reask("scale", {"low": -2, "high": 2})),
    ],
)
def test_scale_ranges(text: str, low: int, high: int, expected: Accepted | Reask) -> None:
    q = Question(id="s", type="scale", text={}, min=low, max=high)
    assert interpret(q, text, "en") == expected


# --- number ------------------------------------------------------------------------------

AGE = Question(id="age", type="number", text={}, min=0, max=120, integer=True)
KM = Question(id="km", type="number", text={}, min=0, max=10_000)
ANY = Question(id="n", type="number", text={})
TEMPERATURE = Question(id="t", type="number", text={}, min=-50, max=50)

NUMBER_CASES: list[tuple[Question, str, Accepted | Reask]] = [
    (AGE, "67", ok(67, "number")),
    (AGE, "67 years", ok(67, "number")),
    (AGE, "67 jaar", ok(67, "number")),
    (AGE, "I am 67", ok(67, "number")),
    (AGE, "ik ben 67 jaar oud", ok(67, "number")),
    (AGE, "sixty-seven", Reask("number", {"low": 0, "high": 120})),
    (AGE, "twelve", ok(12, "word")),
    (AGE, "twaalf", ok(12, "word")),
    (AGE, "douze", ok(12, "word")),
    (AGE, "zwölf", ok(12, "word")),
    (AGE, "doce", ok(12, "word")),
    (AGE, "ten", ok(10, "word")),
    (AGE, "about ten", ok(10, "word")),
    (AGE, "een", ok(1, "word")),
    (AGE, "een stuk of 5", ok(5, "number")),  # "een" here is an article
    (AGE, "un", ok(1, "word")),
    (AGE, "geen", ok(0, "word")),
    (AGE, "none", ok(0, "word")),
    (AGE, "twenty one", Reask("number", {"low": 0, "high": 120})),
    (AGE, "one or two", Reask("number", {"low": 0, "high": 120})),
    (AGE, "12.0", ok(12, "number")),
    (AGE, "12.5", Reask("integer")),
    (AGE, "12,5", Reask("integer")),
    (AGE, "121", Reask("number", {"low": 0, "high": 120})),
    (AGE, "-1", Reask("number", {"low": 0, "high": 120})),
    (AGE, "12 or 13", Reask("number", {"low": 0, "high": 120})),
    (AGE, "12-13", Reask("number", {"low": 0, "high": 120})),
    (AGE, "12 13", Reask("number", {"low": 0, "high": 120})),
    (AGE, "old", Reask("number", {"low": 0, "high": 120})),
    (AGE, "", Reask("number", {"low": 0, "high": 120})),
    (KM, "about 12", ok(12, "number")),
    (KM, "ca. 12", ok(12, "number")),
    (KM, "12 km", ok(12, "number")),
    (KM, "12km", ok(12, "number")),
    (KM, "± 12", ok(12, "number")),
    (KM, "€ 12,50", ok(12.5, "number")),
    (KM, "€12.50", ok(12.5, "number")),
    (KM, "EUR12", ok(12, "number")),
    (KM, "12,5", ok(12.5, "number")),
    (KM, "12.5", ok(12.5, "number")),
    (KM, "12,0", ok(12.0, "number")),
    (KM, "0,5", ok(0.5, "number")),
    (KM, "50 m²", ok(50, "number")),  # the unit's 2 is not a number
    (KM, "1.000", ok(1.0, "number")),  # not integer: a decimal mark
    (KM, "1,000", ok(1.0, "number")),
    (KM, "1.234,5", ok(1234.5, "number")),
    (KM, "1,234.5", ok(1234.5, "number")),
    (KM, "1.2.3", Reask("number", {"low": 0, "high": 10_000})),
    (KM, "10001", Reask("number", {"low": 0, "high": 10_000})),
    (AGE, "1.000", Reask("number", {"low": 0, "high": 120})),  # integer: one thousand
    (ANY, "1.000", ok(1.0, "number")),
    (ANY, "100000000000000000000000", Reask("number")),
    (ANY, "nothing", Reask("number")),
    (ANY, "-5", ok(-5, "number")),
    (ANY, "-0", ok(0, "number")),
    (ANY, "− 5", ok(5, "number")),  # a detached dash is a bullet, not a sign
    (ANY, "١٢", ok(12, "number")),
    (TEMPERATURE, "-5", ok(-5, "number")),
    (TEMPERATURE, "−7,5 graden", ok(-7.5, "number")),
    (TEMPERATURE, "-51", Reask("number", {"low": -50, "high": 50})),
]


@pytest.mark.parametrize(("question", "text", "expected"), NUMBER_CASES)
def test_number(question: Question, text: str, expected: Accepted | Reask) -> None:
    assert interpret(question, text, "en") == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.000", 1000),
        ("1,000", 1000),
        ("1.000.000", 1_000_000),
        ("1,000,000", 1_000_000),
        ("12.345", 12345),
        ("1.0000", 1),  # four digits after the mark: a decimal, and a whole one
        ("1.0001", Reask("integer")),
        ("1234.567", Reask("integer")),  # the head is too long for thousands
        ("1.000,5", Reask("integer")),
        ("1.000,0", 1000),
        ("1.00.000", Reask("number")),
    ],
)
def test_thousands_only_for_integers(text: str, expected: int | Reask) -> None:
    q = Question(id="n", type="number", text={}, integer=True)
    want = expected if isinstance(expected, Reask) else ok(expected, "number")
    assert interpret(q, text, "en") == want


def test_number_value_types() -> None:
    assert type(_value(interpret(KM, "12", "en"))) is int
    assert type(_value(interpret(KM, "12.0", "en"))) is float
    assert type(_value(interpret(AGE, "12.0", "en"))) is int


def test_number_reask_only_names_existing_bounds() -> None:
    low_only = Question(id="n", type="number", text={}, min=1)
    high_only = Question(id="n", type="number", text={}, max=2.5)
    assert interpret(low_only, "0", "en") == Reask("number", {"low": 1})
    assert interpret(high_only, "3", "en") == Reask("number", {"high": 2.5})


def _value(result: Accepted | Reask) -> AnswerValue:
    assert isinstance(result, Accepted), result
    return result.value


# --- text --------------------------------------------------------------------------------

SHORT = Question(id="t", type="text", text={}, max_length=10)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hello", ok("hello", "text")),
        ("  hello there \n", Reask("text_too_long", {"max": 10})),
        ("  hi there \n", ok("hi there", "text")),
        ("0123456789", ok("0123456789", "text")),
        ("01234567890", Reask("text_too_long", {"max": 10})),
        ("", Reask("text_empty")),
        ("   \n\t", Reask("text_empty")),
        ("\x00\x01", Reask("text_empty")),
        ("a\x00b", ok("ab", "text")),  # PostgreSQL cannot store NUL
        ("مرحبا", ok("مرحبا", "text")),
        ("👍", ok("👍", "text")),
        ("\ud83d\ude00", ok("😀", "text")),  # a split surrogate pair rejoined
        ("a\ud800b", ok("a\ufffdb", "text")),  # a lone half replaced
        ("1", ok("1", "text")),
        ("t:hello", ok("t:hello", "text")),  # free text is never a payload
    ],
)
def test_text(text: str, expected: Accepted | Reask) -> None:
    assert interpret(SHORT, text, "en") == expected


# --- payloads ----------------------------------------------------------------------------


def test_choice_payload_format() -> None:
    assert choice_payload(choice(), "week") == "q:week"


@pytest.mark.parametrize(
    ("question", "payload", "expected"),
    [
        (choice(), "q:month", ok("month", "payload")),
        (choice(), "q:nope", Reask("choose_one", ONE_TO_THREE)),
        (choice(), "other:month", Reask("choose_one", ONE_TO_THREE)),
        (choice(), "month", Reask("choose_one", ONE_TO_THREE)),
        (choice(type="multi"), "q:month", ok(["month"], "payload")),
        (choice(type="multi"), "q:never,week", ok(["week", "never"], "payload")),
        (choice(type="multi"), "q:never,x", Reask("choose_many", ONE_TO_THREE)),
        (choice(type="multi", min_choices=2), "q:week", Reask("too_few", {"min": 2})),
        (Question(id="ok", type="yesno", text={}), "ok:yes", ok(True, "payload")),
        (Question(id="ok", type="yesno", text={}), "ok:no", ok(False, "payload")),
        (Question(id="ok", type="yesno", text={}), "ok:maybe", Reask("yesno")),
        (Question(id="s", type="scale", text={}, min=1, max=5), "s:3", ok(3, "payload")),
        (
            Question(id="s", type="scale", text={}, min=1, max=5),
            "s:9",
            Reask("scale", {"low": 1, "high": 5}),
        ),
        (Question(id="n", type="number", text={}), "n:-2.5", ok(-2.5, "payload")),
        (Question(id="n", type="number", text={}), "n:x", Reask("number")),
        (SHORT, "t:hi", ok("hi", "payload")),
    ],
)
def test_interpret_payload(question: Question, payload: str, expected: Accepted | Reask) -> None:
    assert interpret_payload(question, payload) == expected


def test_a_typed_payload_is_accepted() -> None:
    # Some channels deliver a quick-reply's payload as the message text.
    assert interpret(choice(), " q:never ", "en") == ok("never", "payload")
    assert interpret(Question(id="ok", type="yesno", text={}), "ok:no", "en") == ok(
        False, "payload"
    )


def test_engine_payloads_round_trip() -> None:
    q = choice()
    for c in q.choices:
        assert interpret_payload(q, choice_payload(q, c.id)) == ok(c.id, "payload")


# --- odd input and caching ---------------------------------------------------------------

ODD = [
    "",
    "\x00",
    "\ud800",
    "\udfff\ud800",
    "\u202e\u200f",
    "\ufeff",
    "x" * 10_000,
    "2" * 10_000,
    "1 " * 5_000,
    "🙂" * 3_000,
    "مرحبا بالعالم",
    "שלום",
    "\n\r\t\x0b\x0c",
    "ﷺ",
    "1" + "\u0301" * 50,
    "q:" + "x" * 5000,
]
ODD_QUESTIONS = [
    choice(),
    choice(numbering="letters"),
    choice(type="multi"),
    Question(id="ok", type="yesno", text={}),
    Question(id="s", type="scale", text={}, min=1, max=5),
    AGE,
    ANY,
    SHORT,
]


@pytest.mark.parametrize("question", ODD_QUESTIONS, ids=lambda q: f"{q.type}-{q.numbering}")
@pytest.mark.parametrize("text", ODD, ids=range(len(ODD)))
def test_odd_input_never_raises(question: Question, text: str) -> None:
    result = interpret(question, text, "en", LANGS)
    assert isinstance(result, Accepted | Reask)
    if isinstance(result, Accepted):
        assert question.type == "text" or text.startswith("1")
    if isinstance(result, Accepted) and isinstance(result.value, str):
        result.value.encode("utf-8")  # storable


def test_long_reply_is_cut_short_cheaply() -> None:
    started = time.perf_counter()
    for _ in range(100):
        interpret(choice(type="multi"), "1 2 " * 250, "en")
    assert time.perf_counter() - started < 2


def test_tables_are_cached_per_question_and_released() -> None:
    q = choice()
    assert interpret(q, "every week", "en", LANGS) == ok("week", "label")
    key = id(q)
    assert key in answers._TABLES
    assert interpret(q, "nooit", "en", LANGS) == ok("never", "label")
    del q
    gc.collect()
    assert key not in answers._TABLES


def test_equal_but_distinct_questions_do_not_share_stale_tables() -> None:
    first = choice(Choice("a", {"en": "Apple"}))
    second = choice(Choice("b", {"en": "Apple"}))
    assert interpret(first, "apple", "en") == ok("a", "label")
    assert interpret(second, "apple", "en") == ok("b", "label")


def test_cheap_enough() -> None:
    # The engine budget is >= 20,000 replies/s; interpretation must be a small part of it.
    q, yn, n = choice(), Question(id="ok", type="yesno", text={}), KM
    replies = [(q, "2"), (q, "every week"), (yn, "yes"), (n, "12 km"), (q, "nevr")]
    started = time.perf_counter()
    for _ in range(2_000):
        for question, text in replies:
            interpret(question, text, "en", LANGS)
    assert time.perf_counter() - started < 5  # ~0.05 s on a laptop; only a gross regression


# --- word tables -------------------------------------------------------------------------


def test_word_tables_are_normalized() -> None:
    tables = [
        numbers.NUMBER_WORDS.keys(),
        numbers.ARTICLE_WORDS,
        numbers.NONE_WORDS,
        numbers.UNREAD_NUMBER_WORDS,
        numbers.KEY_PREFIXES,
        numbers.AND_WORDS,
        numbers.OR_WORDS,
        numbers.YES_WORDS,
        numbers.NO_WORDS,
        numbers.YES_PHRASES,
        numbers.NO_PHRASES,
        numbers.FILLER_WORDS,
    ]
    for table in tables:
        for word in table:
            assert normalize(word) == word, word
    assert not numbers.YES_WORDS & numbers.NO_WORDS
    assert not numbers.YES_PHRASES & numbers.NO_PHRASES
    assert not numbers.FILLER_WORDS & (numbers.YES_WORDS | numbers.NO_WORDS)
    assert not numbers.UNREAD_NUMBER_WORDS & numbers.NUMBER_WORDS.keys()


@pytest.mark.parametrize(
    "row",
    [
        "one two three four five six seven eight nine ten",
        "een twee drie vier vijf zes zeven acht negen tien",
        "un deux trois quatre cinq six sept huit neuf dix",
        "eins zwei drei vier fünf sechs sieben acht neun zehn",
        "uno dos tres cuatro cinco seis siete ocho nueve diez",
    ],
)
def test_number_words_one_to_ten(row: str) -> None:
    q = Question(id="n", type="number", text={})
    for value, word in enumerate(row.split(), start=1):
        assert interpret(q, word, "en") == ok(value, "word")
