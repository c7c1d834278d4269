"""``consent = true``: a yes/no question whose answer is recorded as consent to future
consultations. Only on yes/no questions, at most once per survey, reported at its line."""

from __future__ import annotations

import pytest

from surveys.loader import EXAMPLES_DIR, load_survey
from surveys.validate import validate_text
from tests.surveys.test_validate import BASE, YESNO, marked_line

CONSENT = """
[[questions]]
id = "again"
type = "yesno"
consent = true
text = { en = "Again?", nl = "Nog eens?" }
"""


def test_a_yesno_question_may_ask_for_consent() -> None:
    report = validate_text(BASE + YESNO + CONSENT, "park.toml")
    assert report.problems == []
    assert report.survey is not None
    assert [q.consent for q in report.survey.questions] == [False, False, True]
    assert report.survey.consent_question is not None
    assert report.survey.consent_question.id == "again"


def test_no_consent_question_by_default() -> None:
    survey = validate_text(BASE + YESNO, "park.toml").survey
    assert survey is not None
    assert survey.consent_question is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            BASE.replace('type = "choice"', 'type = "choice"\nconsent = true  # <-'),
            "'consent' does nothing in question 'visits', a choice question (it is for: yesno)",
            id="not-yesno",
        ),
        pytest.param(
            BASE + CONSENT.replace("consent = true", 'consent = "yes"  # <-'),
            "'consent' in question 'again' must be true or false (no quotes), not text",
            id="not-a-bool",
        ),
        pytest.param(
            BASE
            + CONSENT
            + CONSENT.replace('"again"', '"twice"').replace(
                "consent = true", "consent = true # <-"
            ),
            "question 'twice' asks for consent too, but question 'again' already does: a "
            "survey asks for it once",
            id="twice",
        ),
    ],
)
def test_consent_mistakes_are_one_error_at_their_line(text: str, message: str) -> None:
    errors = validate_text(text, "park.toml").errors
    assert [(e.line, e.message) for e in errors] == [(marked_line(text), message)]


def test_the_park_example_ends_with_its_consent_question() -> None:
    survey = load_survey(EXAMPLES_DIR / "central-park.toml")
    assert survey.questions[-1].consent
    assert set(survey.questions[-1].text) == set(survey.languages)
