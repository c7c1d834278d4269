"""Loading survey files into the model; errors come back as file:line problems."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from surveys.loader import (
    EXAMPLES_DIR,
    SurveyError,
    example_paths,
    load_many,
    load_survey,
    parse_survey,
)
from surveys.model import Range

FIXTURES = Path(__file__).parent / "fixtures"

MINIMAL = """\
id = "bins"
title = { en = "Bins" }
languages = ["en"]
keywords = ["BINS"]

[[questions]]
id = "enough"
type = "yesno"
text = { en = "Enough bins in your street?" }
"""


def test_examples_are_shipped() -> None:
    names = [p.name for p in example_paths()]
    assert names == ["central-park.toml", "street-lighting.toml"]


def test_central_park_example() -> None:
    survey = load_survey(EXAMPLES_DIR / "central-park.toml")
    assert survey.id == "central-park"
    assert survey.languages == ("en", "nl", "fr")
    assert survey.keywords == ("PARK", "PARC")
    assert survey.closes_at == datetime(2030, 3, 1, tzinfo=timezone(timedelta(hours=1)))
    assert survey.intro["nl"].startswith("Hallo!")
    types = {q.id: q.type for q in survey.questions}
    assert set(types.values()) == {"choice", "multi", "yesno", "scale", "number", "text"}
    visits = survey.question("visits")
    assert visits is not None
    assert [c.id for c in visits.choices] == ["weekly", "monthly", "rarely", "never"]
    assert visits.choices[0].label == {
        "en": "Every week",
        "nl": "Elke week",
        "fr": "Chaque semaine",
    }
    why_not, activities, clean, more_bins, birth_year = (
        survey.question(i) for i in ("why_not", "activities", "clean", "more_bins", "birth_year")
    )
    assert why_not is not None
    assert why_not.when == {"visits": "never"}
    assert why_not.optional
    assert activities is not None
    assert activities.when == {"visits": ("weekly", "monthly", "rarely")}
    assert (activities.min_choices, activities.max_choices) == (1, 3)
    assert clean is not None
    assert (clean.min, clean.max, clean.min_label["fr"]) == (1, 5, "Très sale")
    assert more_bins is not None
    assert more_bins.when == {"clean": Range(max=2)}
    assert birth_year is not None
    assert (birth_year.integer, birth_year.min, birth_year.max) == (True, 1900, 2030)


def test_street_lighting_example() -> None:
    survey = load_survey(EXAMPLES_DIR / "street-lighting.toml")
    assert survey.keywords == ("LIGHTS", "LICHT")
    where = survey.question("where")
    assert where is not None
    assert where.when == {"too_dark": True}
    assert where.max_length == 200


def test_errors_raise_with_every_problem_and_its_line() -> None:
    path = FIXTURES / "bad-park.toml"
    with pytest.raises(SurveyError) as caught:
        load_survey(path)
    assert [(p.line, p.message) for p in caught.value.errors] == [
        (
            5,
            "keyword 'HELP' is a command word citizens type (like STOP, HELP, YES); pick a word "
            "that is not a command",
        ),
        (13, "question 'visits' choice 'never' label has no 'nl' translation"),
        (19, "when in question 'why_not': 'visits' has no choice 'nevr'; did you mean 'never'?"),
    ]
    assert str(caught.value).splitlines()[0].startswith(f"{path}:5: error: keyword 'HELP'")


def test_syntax_error_points_at_the_line() -> None:
    path = FIXTURES / "syntax-error.toml"
    with pytest.raises(SurveyError) as caught:
        load_survey(path)
    assert str(caught.value) == (
        f"{path}:2: error: TOML syntax: a {{ ... }} table must be on one line: close it with }} "
        'on this line, or write one line per language, like text.en = "..."'
    )


def test_missing_file() -> None:
    with pytest.raises(SurveyError, match=r"nope\.toml: error: cannot read: "):
        load_survey(FIXTURES / "nope.toml")


def test_parse_survey_names_the_source() -> None:
    with pytest.raises(SurveyError, match=r"^<string>:1: error: survey id 'Bins'"):
        parse_survey(MINIMAL.replace('"bins"', '"Bins"'))
    with pytest.raises(SurveyError, match=r"^bins v2:1: error: "):
        parse_survey(MINIMAL.replace('"bins"', '"Bins"'), "bins v2")


def test_warnings_do_not_stop_loading() -> None:
    survey = parse_survey(MINIMAL.replace("Enough", "Enough 🗑️"))
    assert survey.questions[0].text["en"].startswith("Enough 🗑")


def test_digest_is_the_sha256_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bins.toml"
    path.write_text(MINIMAL, encoding="utf-8")
    survey = load_survey(path)
    assert survey.digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert parse_survey(MINIMAL) == survey  # same text, same survey, wherever it came from


def test_an_edited_file_is_a_new_version(tmp_path: Path) -> None:
    path = tmp_path / "bins.toml"
    path.write_text(MINIMAL, encoding="utf-8")
    first = load_survey(path)
    assert load_survey(path) is first  # parsed once per version
    path.write_text(MINIMAL.replace("Enough", "Are there enough"), encoding="utf-8")
    second = load_survey(path)
    assert second.digest != first.digest
    assert second.questions[0].text["en"] == "Are there enough bins in your street?"


def _write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def test_load_many_in_order() -> None:
    surveys = load_many(example_paths())
    assert [s.id for s in surveys] == ["central-park", "street-lighting"]


def test_load_many_rejects_a_shared_id(tmp_path: Path) -> None:
    first = _write(tmp_path, "a.toml", MINIMAL)
    second = _write(tmp_path, "b.toml", MINIMAL.replace('"BINS"', '"TRASH"'))
    with pytest.raises(SurveyError) as caught:
        load_many([first, second])
    assert [str(p) for p in caught.value.problems] == [
        f"{second}:1: error: survey id 'bins' is also used by {first}"
    ]


def test_load_many_rejects_a_shared_keyword(tmp_path: Path) -> None:
    first = _write(tmp_path, "a.toml", MINIMAL)
    other = MINIMAL.replace('"bins"', '"trash"').replace('["BINS"]', '[\n  "TRASH",\n  "bins",\n]')
    second = _write(tmp_path, "b.toml", other)
    with pytest.raises(SurveyError) as caught:
        load_many([first, second])
    assert [str(p) for p in caught.value.problems] == [
        f"{second}:6: error: keyword 'bins' also starts survey 'bins' ({first})"
    ]


def test_load_many_reports_all_files_at_once(tmp_path: Path) -> None:
    good = _write(tmp_path, "good.toml", MINIMAL)
    with pytest.raises(SurveyError) as caught:
        load_many([FIXTURES / "bad-park.toml", good, FIXTURES / "syntax-error.toml"])
    files = [Path(p.file).name for p in caught.value.errors]
    assert files == ["bad-park.toml"] * 3 + ["syntax-error.toml"]
