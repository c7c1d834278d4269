"""Validation: every class of mistake is reported once, at the right file:line, readably.

Each case is a whole survey file. The line marked ``# <-`` is where the problem must be
reported; a case without a marker expects a problem without a line.
"""

from __future__ import annotations

import hashlib
import textwrap
import tomllib
from pathlib import Path

import pytest

from surveys.loader import example_paths
from surveys.model import Question, Range, Survey
from surveys.text import normalize
from surveys.validate import (
    RESERVED_WORDS,
    KeyLines,
    Problem,
    validate_bytes,
    validate_file,
    validate_text,
)

BASE = """\
id = "park"
title = { en = "Park", nl = "Park" }
languages = ["en", "nl"]
keywords = ["PARK"]

[[questions]]
id = "visits"
type = "choice"
text = { en = "How often?", nl = "Hoe vaak?" }
choices = [
  { id = "weekly", label = { en = "Weekly", nl = "Wekelijks" } },
  { id = "never", label = { en = "Never", nl = "Nooit" } },
]
"""

YESNO = """
[[questions]]
id = "likes"
type = "yesno"
text = { en = "Like it?", nl = "Leuk?" }
"""

SCALE = """
[[questions]]
id = "clean"
type = "scale"
min = 1
max = 5
text = { en = "Clean?", nl = "Schoon?" }
"""


def case(text: str) -> str:
    return textwrap.dedent(text)


def marked_line(text: str) -> int | None:
    lines = [n for n, line in enumerate(text.splitlines(), 1) if "# <-" in line]
    assert len(lines) <= 1, "one marker per case"
    return lines[0] if lines else None


def only_error(text: str) -> Problem:
    report = validate_text(text, "park.toml")
    assert len(report.errors) == 1, "\n".join(map(str, report.problems))
    assert report.survey is None
    return report.errors[0]


ERROR_CASES = [
    pytest.param(
        BASE.replace('{ en = "Park", nl = "Park" }', '{ en = "Park",  # <-\n nl = "Park" }'),
        "TOML syntax: a { ... } table must be on one line: close it with } on this line, or write "
        'one line per language, like text.en = "..."',
        id="syntax-inline-table-over-lines",
    ),
    pytest.param(
        BASE.replace('keywords = ["PARK"]', "keywords = [PARK]  # <-"),
        'TOML syntax: text needs double quotes around it, like "PARK"',
        id="syntax-unquoted-text",
    ),
    pytest.param(
        BASE + "optional = True  # <-\n",
        "TOML syntax: write true or false, in lowercase and without quotes",
        id="syntax-capital-true",
    ),
    pytest.param(
        BASE.replace('nl = "Park" }', 'nl = "Park", }  # <-'),
        "remove the comma before '}'",
        id="syntax-trailing-comma",
    ),
    pytest.param(
        BASE + 'id = "again"  # <-\n',
        "TOML syntax: 'id' is already set on line 7, in the same table: remove one (if they "
        "belong to two questions, a [[questions]] line is missing between them)",
        id="syntax-key-twice",
    ),
    pytest.param(
        'titel = "Park"  # <-\n' + BASE,
        "unknown key 'titel'; did you mean 'title'?",
        id="unknown-top-level-key",
    ),
    pytest.param(
        BASE + "choises = []  # <-\n",
        "unknown key 'choises' in a question; did you mean 'choices'?",
        id="unknown-question-key",
    ),
    pytest.param(
        BASE + 'question = { en = "x", nl = "y" }  # <-\n',
        "unknown key 'question' in a question; did you mean 'text'?",
        id="unknown-question-key-alias",
    ),
    pytest.param(
        BASE.replace('{ id = "never",', '{ id = "never", value = 2,').replace(
            'nl = "Nooit" } },', 'nl = "Nooit" } },  # <-'
        ),
        "unknown key 'value' in a choice of question 'visits'; did you mean 'id'?",
        id="unknown-choice-key",
    ),
    pytest.param(
        BASE + 'keywords = ["PARC"]  # <-\n',
        "unknown key 'keywords' in a question; 'keywords' belongs at the top of the file, "
        "above the first [[questions]]",
        id="survey-key-after-questions",
    ),
    pytest.param(
        case("""\
            id = "park"
            title = { en = "Park" }
            languages = ["en"]
            [[questions]]
            id = "visits"
            type = "choice"
            text = { en = "How often?" }
            [[questions.choices]]
            id = "weekly"
            label = { en = "Weekly" }
            optional = true  # <-
            """),
        "unknown key 'optional' in a choice of question 'visits'; 'optional' belongs to the "
        "question: put it above its choices",
        id="question-key-after-choice-table",
    ),
    pytest.param(
        BASE + 'optional = "yes"  # <-\n',
        "'optional' in question 'visits' must be true or false (no quotes), not text",
        id="wrong-type-bool",
    ),
    pytest.param(
        BASE.replace('"choice"', '"multi"') + 'min_choices = "2"  # <-\n',
        "min_choices in question 'visits' must be a whole number, not text",
        id="wrong-type-int",
    ),
    pytest.param(
        BASE.replace('languages = ["en", "nl"]', 'languages = "en"  # <-'),
        'languages must be a list of language codes, like ["en", "nl"]',
        id="wrong-type-languages",
    ),
    pytest.param(
        BASE.replace('id = "park"\n', ""),
        "missing 'id' (survey id)",
        id="missing-survey-id",
    ),
    pytest.param(
        BASE.replace('title = { en = "Park", nl = "Park" }\n', ""),
        "missing 'title'",
        id="missing-title",
    ),
    pytest.param(
        BASE.replace("[[questions]]", "[[questions]]  # <-").replace(
            'text = { en = "How often?", nl = "Hoe vaak?" }\n', ""
        ),
        "question 'visits' has no 'text'",
        id="missing-question-text",
    ),
    pytest.param(
        BASE.replace("[[questions]]", "[[questions]]  # <-").replace('type = "choice"\n', ""),
        "question 'visits' has no 'type' (one of choice, multi, yesno, scale, number, text)",
        id="missing-type",
    ),
    pytest.param(
        BASE.replace(
            'text = { en = "How often?", nl = "Hoe vaak?" }', 'text = { en = "How often?" }  # <-'
        ),
        "question 'visits' text has no 'nl' translation",
        id="missing-translation-question",
    ),
    pytest.param(
        BASE.replace('title = { en = "Park", nl = "Park" }', 'title = { nl = "Park" }  # <-'),
        "title has no 'en' translation",
        id="missing-translation-title",
    ),
    pytest.param(
        BASE.replace(
            '{ id = "never", label = { en = "Never", nl = "Nooit" } },',
            '{ id = "never", label = { en = "Never" } },  # <-',
        ),
        "question 'visits' choice 'never' label has no 'nl' translation",
        id="missing-translation-choice-label",
    ),
    pytest.param(
        BASE + SCALE + 'min_label = { en = "Dirty" }  # <-\n',
        "question 'clean' min_label has no 'nl' translation",
        id="missing-translation-min-label",
    ),
    pytest.param(
        BASE.replace(
            "title = {", 'intro = { en = "Hi", nl = "Hoi", de = "Hallo" }  # <-\ntitle = {'
        ),
        "intro has a 'de' translation, but languages are en, nl",
        id="undeclared-language",
    ),
    pytest.param(
        BASE.replace('nl = "Park" }', 'nl = "Park", NL = "Park" }  # <-'),
        "title has a 'NL' translation, but languages are en, nl; did you mean 'nl'?",
        id="undeclared-language-case",
    ),
    pytest.param(
        BASE.replace(
            'title = { en = "Park", nl = "Park" }', 'title = { en = "Park", nl = "" }  # <-'
        ),
        "title in 'nl' is empty",
        id="empty-translation",
    ),
    pytest.param(
        BASE + YESNO.replace('id = "likes"', 'id = "visits"  # <-'),
        "question 'visits' is defined twice (ids must be unique)",
        id="duplicate-question-id",
    ),
    pytest.param(
        BASE.replace('{ id = "never",', '{ id = "weekly",').replace(
            'nl = "Nooit" } },', 'nl = "Nooit" } },  # <-'
        ),
        "question 'visits' has choice 'weekly' twice (choice ids must be unique)",
        id="duplicate-choice-id",
    ),
    pytest.param(
        BASE + YESNO + 'when = { visit = "never" }  # <-\n',
        "when in question 'likes' refers to unknown question 'visit'; did you mean 'visits'?",
        id="when-unknown-question",
    ),
    pytest.param(
        BASE.replace('type = "choice"', 'type = "choice"\nwhen = { likes = true }  # <-') + YESNO,
        "when in question 'visits' refers to 'likes', which is asked later; a condition can only "
        "use earlier questions",
        id="when-later-question",
    ),
    pytest.param(
        BASE + 'when = { visits = "never" }  # <-\n',
        "when in question 'visits' refers to the question itself",
        id="when-itself",
    ),
    pytest.param(
        BASE + YESNO + 'when = { visits = "nevr" }  # <-\n',
        "when in question 'likes': 'visits' has no choice 'nevr'; did you mean 'never'?",
        id="when-unknown-choice",
    ),
    pytest.param(
        BASE + YESNO + 'when = { visits = [\n  "weekly",\n  "sometimes",  # <-\n] }\n',
        "when in question 'likes': 'visits' has no choice 'sometimes'",
        id="when-unknown-choice-in-list",
    ),
    pytest.param(
        BASE + YESNO + "when = { visits = true }  # <-\n",
        "when in question 'likes': 'visits' is a choice question: use a choice id like "
        '"weekly" or a list of choice ids',
        id="when-wrong-kind-choice",
    ),
    pytest.param(
        BASE + YESNO + SCALE + 'when = { likes = "yes" }  # <-\n',
        "when in question 'clean': 'likes' is a yes/no question: use true or false (no quotes)",
        id="when-wrong-kind-yesno",
    ),
    pytest.param(
        BASE + SCALE + YESNO + "when = { clean = 4 }  # <-\n",
        "when in question 'likes': 'clean' is a scale question: use a range like "
        "{ min = 4, max = 5 }",
        id="when-wrong-kind-scale",
    ),
    pytest.param(
        BASE + SCALE + YESNO + "when = { clean = { min = 4, max = 2 } }  # <-\n",
        "when in question 'likes': 'clean': min (4) is more than max (2)",
        id="when-range-min-above-max",
    ),
    pytest.param(
        BASE + SCALE + YESNO + "when = { clean = { minimum = 4 } }  # <-\n",
        "unknown key 'minimum' in a range; did you mean 'min'?",
        id="when-range-unknown-key",
    ),
    pytest.param(
        BASE
        + '[[questions]]\nid = "why"\ntype = "text"\ntext = { en = "Why?", nl = "Waarom?" }\n'
        + YESNO
        + 'when = { why = "because" }  # <-\n',
        "when in question 'likes': 'why' is a free text question; a condition cannot use its "
        "answer",
        id="when-on-text-question",
    ),
    pytest.param(
        case("""\
            id = "park"
            title = { en = "Park" }
            languages = ["en"]
            [[questions]]
            id = "visits"
            type = "choice"
            text = { en = "How often?" }
            choices = []  # <-
            """),
        "question 'visits' has an empty list of choices",
        id="empty-choices",
    ),
    pytest.param(
        case("""\
            id = "park"
            title = { en = "Park" }
            languages = ["en"]
            [[questions]]  # <-
            id = "visits"
            type = "choice"
            text = { en = "How often?" }
            """),
        "question 'visits' has no choices",
        id="missing-choices",
    ),
    pytest.param(
        BASE.replace('"choice"', '"multi"') + "min_choices = 2  # <-\nmax_choices = 1\n",
        "min_choices (2) is more than max_choices (1) in question 'visits'",
        id="min-choices-above-max-choices",
    ),
    pytest.param(
        BASE.replace('"choice"', '"multi"') + "max_choices = 3  # <-\n",
        "max_choices in question 'visits' is 3, but there are only 2 choices",
        id="max-choices-above-choice-count",
    ),
    pytest.param(
        BASE.replace('"choice"', '"multi"') + "min_choices = 0  # <-\n",
        "min_choices in question 'visits' must be at least 1; to let people skip the question, "
        "use optional = true",
        id="min-choices-zero",
    ),
    pytest.param(
        BASE + SCALE.replace("min = 1", "min = 5  # <-").replace("max = 5", "max = 1"),
        "min (5) must be less than max (1) in question 'clean'",
        id="scale-min-above-max",
    ),
    pytest.param(
        BASE + SCALE.replace("[[questions]]", "[[questions]]  # <-").replace("min = 1\n", ""),
        "scale question 'clean' needs 'min', like min = 1 and max = 5",
        id="scale-without-min",
    ),
    pytest.param(
        BASE + SCALE.replace("max = 5", "max = 5.5  # <-"),
        "max of scale question 'clean' must be a whole number, not 5.5",
        id="scale-non-integer-bound",
    ),
    pytest.param(
        BASE + SCALE.replace("max = 5", "max = true  # <-"),
        "max of scale question 'clean' must be a whole number, not True",
        id="scale-bool-bound",
    ),
    pytest.param(
        BASE
        + '[[questions]]\nid = "age"\ntype = "number"\ntext = { en = "Age?", nl = "Leeftijd?" }\n'
        + "min = 120  # <-\nmax = 0\n",
        "min (120) is more than max (0) in question 'age'",
        id="number-min-above-max",
    ),
    pytest.param(
        BASE + YESNO + "choices = []  # <-\n",
        "'choices' does nothing in question 'likes', a yesno question (it is for: choice, multi)",
        id="key-for-another-type",
    ),
    pytest.param(
        BASE.replace('type = "choice"', 'type = "single"  # <-'),
        "question 'visits' has unknown type 'single' (use one of choice, multi, yesno, scale, "
        "number, text); did you mean 'choice'?",
        id="unknown-type",
    ),
    pytest.param(
        BASE.replace('id = "park"', 'id = "Central Park"  # <-'),
        "survey id 'Central Park' may only use lowercase letters, digits and '-'",
        id="bad-survey-slug",
    ),
    pytest.param(
        BASE.replace('id = "park"', 'id = "central_park"  # <-'),
        "survey id 'central_park' may only use lowercase letters, digits and '-'",
        id="underscore-in-survey-slug",
    ),
    pytest.param(
        BASE.replace('id = "visits"', 'id = "Visits"  # <-'),
        "question id 'Visits' may only use lowercase letters, digits and '-' or '_'",
        id="bad-question-slug",
    ),
    pytest.param(
        BASE.replace('{ id = "never",', '{ id = "not ever",').replace(
            'nl = "Nooit" } },', 'nl = "Nooit" } },  # <-'
        ),
        "choice id in question 'visits' 'not ever' may only use lowercase letters, digits and "
        "'-' or '_'",
        id="bad-choice-slug",
    ),
    pytest.param(
        'id = "park"\ntitle = { en = "Park" }\nlanguages = ["en"]\nquestions = []  # <-\n',
        "the survey has no questions",
        id="no-questions",
    ),
    pytest.param(
        'id = "park"\ntitle = { en = "Park" }\nlanguages = ["en"]\n',
        "missing 'questions': add at least one [[questions]] table",
        id="missing-questions",
    ),
    pytest.param(
        BASE.replace("choices = [", 'numbering = "letters"  # <-\nchoices = [').replace(
            '  { id = "never"',
            "".join(
                f'  {{ id = "c{i}", label = {{ en = "C{i}", nl = "K{i}" }} }},\n' for i in range(25)
            )
            + '  { id = "never"',
        ),
        "question 'visits' has 27 choices, but letters stop at Z (26)",
        id="too-many-letters",
    ),
    pytest.param(
        BASE.replace("choices = [", 'numbering = "roman"  # <-\nchoices = ['),
        "numbering in question 'visits' must be \"numbers\" or \"letters\", not 'roman'",
        id="unknown-numbering",
    ),
    pytest.param(
        BASE.replace('keywords = ["PARK"]', "closes_at = 2030-03-01T00:00:00  # <-"),
        "closes_at needs an offset from UTC so it means one moment, like 2030-03-01T00:00:00+01:00",
        id="closes-at-local-datetime",
    ),
    pytest.param(
        BASE.replace('keywords = ["PARK"]', 'closes_at = "2030-03-01 00:00"  # <-'),
        "closes_at needs an offset from UTC",
        id="closes-at-string-without-offset",
    ),
    pytest.param(
        BASE.replace('keywords = ["PARK"]', "closes_at = 2030-03-01  # <-"),
        "closes_at must be a date, a time and an offset from UTC",
        id="closes-at-date-only",
    ),
    pytest.param(
        BASE.replace('keywords = ["PARK"]', 'closes_at = "next march"  # <-'),
        "closes_at 'next march' is not a date and time like 2030-03-01T00:00:00+01:00",
        id="closes-at-garbage",
    ),
    pytest.param(
        BASE.replace('["en", "nl"]', '["en", "xx"]  # <-').replace('nl = "', 'xx = "'),
        "unknown language code 'xx': use a two-letter code like 'nl'",
        id="unknown-language",
    ),
    pytest.param(
        BASE.replace('["en", "nl"]', '["en", "nl-BE"]  # <-').replace('nl = "', '"nl-BE" = "'),
        "unknown language code 'nl-BE': use a two-letter code like 'nl'; use 'nl'",
        id="regional-language-code",
    ),
    pytest.param(
        BASE.replace('["en", "nl"]', '["EN", "nl"]  # <-').replace('en = "', 'EN = "'),
        "unknown language code 'EN': use a two-letter code like 'nl'; use 'en'",
        id="uppercase-language-code",
    ),
    pytest.param(
        BASE.replace('["en", "nl"]', '["en", "nl", "en"]  # <-'),
        "language 'en' is listed twice",
        id="duplicate-language",
    ),
    pytest.param(
        BASE.replace('["PARK"]', '["PARK", "Stop"]  # <-'),
        "keyword 'Stop' is a command word citizens type (like STOP, HELP, YES); pick a word "
        "that is not a command",
        id="keyword-is-command",
    ),
    pytest.param(
        BASE.replace('["PARK"]', '["ARRÊT"]  # <-'),
        "keyword 'ARRÊT' is a command word",
        id="keyword-is-command-with-accent",
    ),
    pytest.param(
        BASE.replace('["PARK"]', '["PARK", "Oui"]  # <-'),
        "keyword 'Oui' is a command word",
        id="keyword-is-yes-word",
    ),
    pytest.param(
        BASE.replace('["PARK"]', '["PARK", "park!"]  # <-'),
        "keyword 'park!' is listed twice",
        id="keyword-duplicate",
    ),
    pytest.param(
        BASE.replace('["PARK"]', '["PARK", "2"]  # <-'),
        "keyword '2' is a number, and numbers answer questions; use a word",
        id="keyword-number",
    ),
    pytest.param(
        BASE.replace('keywords = ["PARK"]', 'keywords = [\n  "PARK",\n  "",  # <-\n]'),
        "empty keyword",
        id="keyword-empty-in-multiline-array",
    ),
    pytest.param(
        BASE
        + '[[questions]]\nid = "why"\ntype = "text"\ntext = { en = "Why?", nl = "Waarom?" }\n'
        + "max_length = 0  # <-\n",
        "max_length in question 'why' must be a positive whole number",
        id="max-length-zero",
    ),
]


@pytest.mark.parametrize(("text", "message"), ERROR_CASES)
def test_each_mistake_is_one_error_at_its_line(text: str, message: str) -> None:
    problem = only_error(text)
    line = marked_line(text)
    prefix = "park.toml" if line is None else f"park.toml:{line}"
    assert str(problem).startswith(f"{prefix}: error: "), str(problem)
    assert message in problem.message


#: Common TOML mistakes: each said in plain words, on the line to fix (marked ``# <-``), not
#: where the parser gave up (for a text left open: the end of the line, or of the file).
SYNTAX_CASES = [
    pytest.param(
        'id = "park"\ntitle = "Central Park  # <-\nlanguages = ["en"]\n',
        'the text "Central Park  # <- is not closed: add the closing " at its end, on this same '
        "line",
        id="closing-quote-missing",
    ),
    pytest.param(
        'id = \'park  # <-\ntitle = "Park"\n',
        "the text 'park  # <- is not closed: add the closing ' at its end",
        id="closing-single-quote-missing",
    ),
    pytest.param(
        'id = "park"\nintro = """Hello  # <-\n\nlanguages = ["en"]\n',
        'the text that starts with """ on this line is never closed: end it with """',
        id="long-text-never-closed",
    ),
    pytest.param(
        'id = "park"\ntitle = Park"  # <-\n',
        'this text is missing its opening quote: write "Park"',
        id="opening-quote-missing",
    ),
    pytest.param(
        'id = "park"\ntitle = "Say "yes" now"  # <-\n',
        'to put a double quote inside a text, write \\" (like "say \\"yes\\"")',
        id="quote-inside-text",
    ),
    pytest.param(
        'id = "park"\n[[questions]\n# <- above\n'.replace("]\n# <- above", "]  # <-"),
        "a question starts with [[questions]], with two brackets on each side",
        id="question-header-one-bracket",
    ),
    pytest.param(
        'id = "park"\n[questions  # <-\n',
        "a table line needs its closing bracket, like [questions]",
        id="table-header-unclosed",
    ),
    pytest.param(
        'id = "park"\n[[questions]]\nid = "a"\ntext.en = "A"\ntext.en = "B"  # <-\n',
        "'text.en' is already set on line 4, in the same table",
        id="duplicate-key-names-the-first",
    ),
    pytest.param(
        'id = "park"\n[title]\nen = "P"\n[title]  # <-\n',
        "the table [title] is already declared on line 2",
        id="duplicate-table",
    ),
    pytest.param(
        'id = "park"\ntitle: "Park"  # <-\n',
        "write = between the key and its value, not :",
        id="colon-for-equals",
    ),
    pytest.param(
        'id = "park"\ntitle = "C:\\quay"  # <-\n',
        "a backslash \\ in text starts a code like \\n: write \\\\ for a backslash",
        id="backslash",
    ),
]


@pytest.mark.parametrize(("text", "message"), SYNTAX_CASES)
def test_a_toml_mistake_is_said_plainly_on_its_line(text: str, message: str) -> None:
    problem = only_error(text)
    assert problem.line == marked_line(text), str(problem)
    assert problem.message.startswith("TOML syntax: ")
    assert message in problem.message
    # Never the parser's words, which point elsewhere ("illegal character '\n'").
    assert "illegal character" not in problem.message.lower()


def test_unknown_keys_are_found_at_every_level() -> None:
    text = BASE.replace('{ id = "never",', '{ idd = "x", id = "never",') + "txt = 1\n"
    messages = [p.message for p in validate_text("tilte = 1\n" + text).errors]
    assert messages == [
        "unknown key 'tilte'; did you mean 'title'?",
        "unknown key 'idd' in a choice of question 'visits'; did you mean 'id'?",
        "unknown key 'txt' in a question; did you mean 'text'?",
    ]


def test_not_utf8_is_reported_at_its_line() -> None:
    data = BASE.replace("Nooit", "Jamais").encode("utf-8").replace(b"Jamais", b"Jam\xe9is")
    report = validate_bytes(data, "park.toml")
    assert [str(p) for p in report.problems] == [
        "park.toml:12: error: not UTF-8 text (byte 0xe9); save the file as UTF-8"
    ]


def test_a_byte_order_mark_is_accepted() -> None:
    report = validate_bytes(b"\xef\xbb\xbf" + BASE.encode(), "park.toml")
    assert report.ok
    assert report.survey is not None


def test_a_list_never_closed_is_named_on_the_line_it_opens() -> None:
    report = validate_text('id = "x"\nkeywords = [\n"A",\n', "park.toml")
    assert [str(p) for p in report.problems] == [
        "park.toml:2: error: TOML syntax: the list that starts with [ on this line is never "
        "closed: add ] after its last item"
    ]


def test_missing_file_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    report = validate_file(tmp_path / "nope.toml")
    assert not report.ok
    assert report.errors[0].message.startswith("cannot read: ")


def test_several_errors_are_all_reported_in_line_order() -> None:
    text = BASE.replace('id = "park"', 'id = "Park"') + 'when = { visits = "x" }\noptional = 1\n'
    lines = [p.line for p in validate_text(text).problems]
    assert lines == [1, 14, 15]


# --- warnings -------------------------------------------------------------------------------


def warnings_of(text: str) -> list[str]:
    report = validate_text(text, "park.toml")
    assert report.errors == [], report.errors
    assert report.survey is not None  # warnings never block a survey
    return [str(p) for p in report.warnings]


def test_curly_quotes_warn_that_sms_sends_a_replacement() -> None:
    text = BASE.replace('nl = "Hoe vaak?"', 'nl = "Hoe vaak…"')
    assert warnings_of(text) == [
        "park.toml:9: warning: question 'visits' (nl): SMS will send U+2026 HORIZONTAL "
        'ELLIPSIS … as "..." (not in the GSM-7 alphabet)'
    ]


def test_emoji_warns_about_ucs2_at_the_choice_that_has_it() -> None:
    text = BASE.replace('en = "Never"', 'en = "Never 🌳"')
    assert warnings_of(text) == [
        "park.toml:12: warning: question 'visits' (en): U+1F333 DECIDUOUS TREE 🌳 is not in the "
        "GSM-7 alphabet, so this message goes as UCS-2: 30 characters in 1 SMS, where one SMS "
        "holds 70 instead of 160"
    ]


def test_non_gsm_letter_names_the_character() -> None:
    text = BASE.replace('nl = "Hoe vaak?"', 'nl = "Hoe vaak, ça?"')
    (warning,) = warnings_of(text)
    assert "U+00E7 LATIN SMALL LETTER C WITH CEDILLA ç is not in the GSM-7 alphabet" in warning


def test_long_question_warns_about_segments() -> None:
    long = "Tell us. " * 35  # 315 characters
    text = BASE.replace('en = "How often?"', f'en = "{long.strip()}"')
    assert warnings_of(text) == [
        "park.toml:9: warning: question 'visits' (en) needs 3 SMS (331 GSM-7 characters with "
        "its options); keep a question within 2 SMS (306 characters)"
    ]


def test_two_segment_question_is_fine() -> None:
    text = BASE.replace('en = "How often?"', f'en = "{"x" * 250}"')
    assert warnings_of(text) == []


def test_long_intro_is_not_a_question_and_does_not_warn() -> None:
    text = BASE.replace("title =", f'intro = {{ en = "{"x" * 400}", nl = "y" }}\ntitle =')
    report = validate_text(text)
    assert report.warnings == []
    (intro,) = [c for c in report.costs if c.where == "intro" and c.language == "en"]
    assert intro.cost.segments == 3


def test_same_label_twice_is_ambiguous() -> None:
    text = BASE.replace('nl = "Nooit"', 'nl = "wekelijks"')
    assert warnings_of(text) == [
        "park.toml:12: warning: question 'visits': choices 'weekly' and 'never' have the same nl "
        "label 'wekelijks', so a reply with that label is ambiguous"
    ]


def test_choice_label_that_is_a_command_word() -> None:
    text = BASE.replace('en = "Never"', 'en = "Skip"').replace('nl = "Nooit"', 'nl = "Nee"')
    assert warnings_of(text) == [
        "park.toml:12: warning: question 'visits': the en label 'Skip' is a command word, so "
        "typing it runs the command; people must answer with its number or letter"
    ]


def test_range_outside_the_scale_never_holds() -> None:
    text = BASE + SCALE + YESNO + "when = { clean = { min = 6 } }\n"
    assert warnings_of(text) == [
        "park.toml:26: warning: when in question 'likes': 'clean' goes from 1 to 5, so this "
        "condition never holds"
    ]


# --- what a valid file becomes ----------------------------------------------------------------


def test_when_values_map_to_model_conditions() -> None:
    text = (
        BASE
        + SCALE
        + YESNO
        + 'when = { visits = ["weekly", "never"], clean = { min = 4 } }\n'
        + '[[questions]]\nid = "why"\ntype = "text"\ntext = { en = "Why?", nl = "Waarom?" }\n'
        + 'when = { likes = false, visits = "never" }\n'
    )
    survey = validate_text(text).survey
    assert survey is not None
    likes, why = survey.questions[2], survey.questions[3]
    assert likes.when == {"visits": ("weekly", "never"), "clean": Range(min=4, max=None)}
    assert why.when == {"likes": False, "visits": "never"}


def test_single_language_survey_may_use_plain_strings() -> None:
    text = case("""\
        id = "bins"
        title = "Bins"
        languages = ["en"]
        [[questions]]
        id = "enough"
        type = "yesno"
        text = "Enough bins?"
        """)
    survey = validate_text(text).survey
    assert survey is not None
    assert survey.title == {"en": "Bins"}
    assert survey.questions[0].text == {"en": "Enough bins?"}


def test_digest_is_sha256_of_the_bytes() -> None:
    report = validate_text(BASE)
    assert report.survey is not None
    assert report.survey.digest == hashlib.sha256(BASE.encode()).hexdigest()


# --- SMS costs --------------------------------------------------------------------------------


def test_costs_cover_every_message_in_every_language() -> None:
    text = BASE.replace("title =", 'outro = { en = "Thanks", nl = "Bedankt" }\ntitle =')
    report = validate_text(text)
    assert [(c.where, c.language) for c in report.costs] == [
        ("question 'visits'", "en"),
        ("outro", "en"),
        ("question 'visits'", "nl"),
        ("outro", "nl"),
    ]
    visits_nl = report.costs[2]
    assert visits_nl.text == "Hoe vaak?\n1 Wekelijks\n2 Nooit"
    assert (visits_nl.cost.encoding, visits_nl.cost.characters, visits_nl.cost.segments) == (
        "GSM-7",
        29,
        1,
    )


def test_letters_numbering_shows_letters() -> None:
    text = BASE.replace("choices = [", 'numbering = "letters"\nchoices = [')
    report = validate_text(text)
    assert report.costs[0].text == "How often?\nA Weekly\nB Never"


def test_scale_message_shows_range_and_end_labels() -> None:
    text = BASE + SCALE + 'max_label = { en = "Spotless", nl = "Brandschoon" }\n'
    report = validate_text(text)
    (clean_nl,) = [c for c in report.costs if c.where == "question 'clean'" and c.language == "nl"]
    assert clean_nl.text == "Schoon? (1-5: 5 = Brandschoon)"


def test_a_given_renderer_is_what_gets_priced() -> None:
    # The engine adds localized instructions; the CLI can price its exact messages.
    def render(survey: Survey, question: Question, language: str) -> str:
        return f"{question.text_in(language, survey.default_language)} (SKIP to skip) " + "x" * 300

    report = validate_text(BASE, "park.toml", render=render)
    assert report.costs[0].text.startswith("How often? (SKIP to skip) xxx")
    assert [str(p) for p in report.warnings] == [
        "park.toml:9: warning: question 'visits' (en) needs 3 SMS (326 GSM-7 characters with "
        "its options); keep a question within 2 SMS (306 characters)",
        "park.toml:9: warning: question 'visits' (nl) needs 3 SMS (325 GSM-7 characters with "
        "its options); keep a question within 2 SMS (306 characters)",
    ]


def test_costs_are_for_the_text_as_sent() -> None:
    text = BASE.replace('en = "How often?"', 'en = "How often…"')
    cost = validate_text(text).costs[0]
    assert cost.text.startswith("How often...\n")
    assert cost.cost.encoding == "GSM-7"


def test_sms_false_skips_costs_and_their_warnings() -> None:
    text = BASE.replace('en = "Never"', 'en = "Never 🌳"')
    report = validate_text(text, sms=False)
    assert report.costs == []
    assert report.problems == []


# --- the line locator -------------------------------------------------------------------------

LOCATOR_SOURCE = '''\
# comment with [[questions]] and id = "nope"
id = "x"  # trailing [comment]
intro.en = """
A multi-line text with [[brackets]],
id = "inside a string" and # hash
"""
"quoted key" = 'literal [ ] { }'

[title]
en = "T"

[[questions]]
id = "a"
when = { b = ["x",
  "y"] }
choices = [
  { id = "c1", label = { en = "One" } },

  # a comment between elements
  { id = "c2", label = { en = "Two" } },
]

[[questions]]
id = "b"

[[questions.choices]]
id = "d1"

[[questions.choices]]
id = "d2"
label.en = "Two"

[questions.when]
a = "c1"
'''


@pytest.mark.parametrize(
    ("path", "line"),
    [
        (("id",), 2),
        (("intro",), 3),
        (("intro", "en"), 3),
        (("quoted key",), 7),
        (("title",), 9),
        (("title", "en"), 10),
        (("questions",), 12),
        (("questions", 0), 12),
        (("questions", 0, "id"), 13),
        (("questions", 0, "when", "b", 1), 15),
        (("questions", 0, "choices", 0), 17),
        (("questions", 0, "choices", 0, "label", "en"), 17),
        (("questions", 0, "choices", 1, "id"), 20),
        (("questions", 0, "choices", 1, "label", "en"), 20),
        (("questions", 1), 23),
        (("questions", 1, "id"), 24),
        (("questions", 1, "choices", 0, "id"), 27),
        (("questions", 1, "choices", 1), 29),
        (("questions", 1, "choices", 1, "label", "en"), 31),
        (("questions", 1, "when", "a"), 34),
        # not in the file: the closest enclosing key or table
        (("questions", 0, "text"), 12),
        (("questions", 1, "choices", 1, "label", "nl"), 31),
        (("title", "nl"), 9),
        (("outro",), None),
    ],
)
def test_key_lines(path: tuple[str | int, ...], line: int | None) -> None:
    assert KeyLines(LOCATOR_SOURCE).line(path) == line


def test_locator_source_is_valid_toml() -> None:
    data = tomllib.loads(LOCATOR_SOURCE)
    assert data["questions"][1]["choices"][1]["label"] == {"en": "Two"}


def test_locator_survives_text_it_cannot_follow() -> None:
    lines = KeyLines('id = "x"\n[[questions]]\nid = @@@\n')
    assert lines.line(("id",)) == 1
    assert lines.line(("questions", 0, "id")) == 3


# --- reserved words and examples --------------------------------------------------------------


def test_reserved_words_are_normalised() -> None:
    assert {normalize(w) for w in RESERVED_WORDS} == RESERVED_WORDS
    assert {"stop", "help", "taal", "arreter", "uberspringen", "si", "yes"} <= RESERVED_WORDS


@pytest.mark.parametrize("path", example_paths(), ids=lambda p: p.name)
def test_examples_validate_without_any_problem(path: Path) -> None:
    report = validate_file(path)
    assert report.problems == []
    assert report.survey is not None
    assert all(c.cost.encoding == "GSM-7" for c in report.costs)
    questions = [c for c in report.costs if c.where.startswith("question")]
    assert questions
    assert all(c.cost.segments <= 2 for c in questions)


def test_curly_quotes_around_text_get_a_hint() -> None:
    report = validate_text('id = "x"\ntitle = { en = “Street lighting” }\n', "paste.toml")
    assert [str(p) for p in report.errors] == [
        'paste.toml:2: error: TOML syntax: put text in straight double quotes ("), not curly ones'
    ]


def test_question_id_k_is_reserved_for_telegram_buttons() -> None:
    text = (
        'id = "x"\ntitle = { en = "X" }\nlanguages = ["en"]\n\n[[questions]]\nid = "k"\n'
        'type = "yesno"\ntext = { en = "OK?" }\n'
    )
    report = validate_text(text, "k.toml")
    assert [str(p) for p in report.errors] == [
        "k.toml:6: error: question id 'k' is reserved; pick another id"
    ]
