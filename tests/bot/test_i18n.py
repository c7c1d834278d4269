"""The system-message catalogs in ``bot/conversation/locale``, checked against the code.

Message ids are extracted from ``bot/`` with ``babel.cfg``, the way ``pybabel extract`` does;
nothing in ``bot.conversation.engine`` or ``bot.conversation.router`` is imported. Every id
must be translated in every language, keep its placeholders, name only command words the bot
understands in that language, and fit in one GSM-7 SMS segment with the longest realistic
values filled in.

To refresh the catalogs after changing a message, see ``bot/conversation/locale/README.md``.
"""

from __future__ import annotations

import configparser
import re
import string
from collections import Counter
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from bot.conversation.commands import recognize
from bot.conversation.i18n import DOMAIN, LANGUAGE_NAMES, LOCALE_DIR, SUPPORTED_LANGUAGES, t
from surveys.sms import sms_cost

ROOT = Path(__file__).resolve().parents[2]
TRANSLATED = tuple(lang for lang in SUPPORTED_LANGUAGES if lang != "en")

#: The longest values the code realistically fills in, by placeholder name.
WORST_CASE: dict[str, str] = {
    "example": "1,12",  # first and last key of a multi-choice question
    "choices": ", ".join(f"LANG {code.upper()}" for code in SUPPORTED_LANGUAGES),
    "language": max(LANGUAGE_NAMES.values(), key=len),  # longer than INFO's "EN"
    "low": "1000",  # number questions may have bounds like years
    "high": "9999",
    "min": "10",
    "max": "1000",  # the default max_length of a text answer
    "keywords": "PARK, PARC, LIGHTS",
    "title": "Central Park consultation",
    "current": "Central Park consultation",
    "new": "Street lights consultation",
    "channel": "whatsapp",
    "answers": "999",
    "surveys": "999",
    "count": "12345",  # people who took part in a city-wide consultation
    "label": "Play with children",  # a choice's label, as staff write them
    "share": "100",
}

#: Messages that bot.conversation.engine.hint_text may follow with one of HELP_SUFFIXES.
HINTS: tuple[str, ...] = (
    "Reply with a letter from {low} to {high}.",
    "Reply with a number from {low} to {high}.",
    "That fits more than one answer. Reply with one letter, {low} to {high}.",
    "That fits more than one answer. Reply with one number, {low} to {high}.",
    "Reply with one or more letters from {low} to {high}, e.g. {low},{high}.",
    "Reply with one or more numbers from {low} to {high}, e.g. {low},{high}.",
    "Please choose at least {min}.",
    "Please choose at most {max}.",
    "Please reply YES or NO.",
    "Reply with a number of at least {low}.",
    "Reply with a number of at most {high}.",
    "Please reply with a number.",
    "Please reply with a whole number.",
    "Please reply with a few words.",
    "Please keep it under {max} characters.",
)
HELP_SUFFIXES: tuple[str, ...] = ("Send HELP for help or SKIP to skip.", "Send HELP for help.")
#: bot.conversation.router sends it in the new language with that language's own name.
LANGUAGE_SET = "Language set to {language}."

#: The capitalised word each language uses for each command (bot/conversation/commands.py)
#: and for yes/no (surveys/numbers.py). A translation may name no other capitalised word
#: except NOT_COMMANDS.
COMMAND_WORDS: dict[str, dict[str, str]] = {
    "en": {
        "help": "HELP", "skip": "SKIP", "repeat": "REPEAT", "lang": "LANG", "info": "INFO",
        "forget": "FORGET", "stop": "STOP", "start": "START", "yes": "YES", "no": "NO",
    },
    "nl": {
        "help": "HULP", "skip": "OVERSLAAN", "repeat": "HERHAAL", "lang": "TAAL", "info": "INFO",
        "forget": "VERGEET", "stop": "STOP", "start": "START", "yes": "JA", "no": "NEE",
    },
    "fr": {
        "help": "AIDE", "skip": "PASSER", "repeat": "RÉPÉTER", "lang": "LANGUE", "info": "INFO",
        "forget": "OUBLIER", "stop": "STOP", "start": "START", "yes": "OUI", "no": "NON",
    },
    "de": {
        "help": "HILFE", "skip": "ÜBERSPRINGEN", "repeat": "WIEDERHOLEN", "lang": "SPRACHE",
        "info": "INFO", "forget": "VERGESSEN", "stop": "STOPP", "start": "START", "yes": "JA",
        "no": "NEIN",
    },
    "es": {
        "help": "AYUDA", "skip": "SALTAR", "repeat": "REPETIR", "lang": "IDIOMA", "info": "INFO",
        "forget": "OLVIDAR", "stop": "STOP", "start": "START", "yes": "SI", "no": "NO",
    },
}  # fmt: skip
NOT_COMMANDS = frozenset({"OK"})
YES_NO = {"yes": True, "no": False}


def _code_msgids() -> frozenset[str]:
    # babel.cfg sections are "[method: pattern]", as pybabel reads them.
    config = configparser.ConfigParser()
    config.read(ROOT / "babel.cfg", encoding="utf-8")
    method_map = [
        (pattern.strip(), method.strip())
        for method, pattern in (section.split(":", 1) for section in config.sections())
    ]
    found = extract_from_dir(ROOT, method_map, keywords={"N_": None})
    return frozenset(message for _, _, message, _, _ in found if isinstance(message, str))


def _read(path: Path, language: str | None = None) -> Catalog:
    with path.open("rb") as po_file:
        return read_po(po_file, locale=language)


def _catalog(language: str) -> Catalog:
    return _read(LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po", language)


MSGIDS = sorted(_code_msgids())
CATALOGS = {lang: _catalog(lang) for lang in SUPPORTED_LANGUAGES}
CASES = [
    pytest.param(lang, msgid, id=f"{lang}:{msgid[:40]}")
    for lang in SUPPORTED_LANGUAGES
    for msgid in MSGIDS
]


def _fields(text: str) -> Counter[str]:
    return Counter(name for _, name, _, _ in string.Formatter().parse(text) if name is not None)


def _params(msgid: str) -> dict[str, str]:
    missing = set(_fields(msgid)) - set(WORST_CASE)
    assert not missing, f"{msgid!r}: add a worst-case value for {sorted(missing)} to WORST_CASE"
    return {name: WORST_CASE[name] for name in _fields(msgid)}


def _msgstr(language: str, msgid: str) -> str:
    message = CATALOGS[language].get(msgid)
    assert message is not None, f"{language}: {msgid!r} is missing from the catalog"
    assert isinstance(message.string, str)
    return message.string or msgid  # an empty English msgstr sends the id


def _assert_one_segment(language: str, msgid: str, text: str) -> None:
    cost = sms_cost(text)
    assert cost.encoding == "GSM-7", f"{language} {msgid!r} -> {text!r}: not GSM-7: {cost.non_gsm}"
    assert cost.segments == 1, (
        f"{language} {msgid!r} -> {text!r}: {cost.characters} GSM-7 characters in "
        f"{cost.segments} segments; one segment holds 160"
    )


# --- (a) everything the code marks is translated ---------------------------------------------


def test_code_has_messages() -> None:
    assert len(MSGIDS) > 20, f"extraction found only {MSGIDS}: is babel.cfg right?"


def test_template_is_up_to_date() -> None:
    template = _read(LOCALE_DIR / f"{DOMAIN}.pot")
    in_template = {m.id for m in template if m.id}
    assert in_template == set(MSGIDS), (
        f"voxpop.pot is stale: re-extract (bot/conversation/locale/README.md). "
        f"Missing: {sorted(set(MSGIDS) - in_template)}; gone from the code: "
        f"{sorted(in_template - set(MSGIDS))}"
    )


@pytest.mark.parametrize("language", SUPPORTED_LANGUAGES)
def test_catalog_has_exactly_the_code_messages(language: str) -> None:
    in_catalog = {m.id for m in CATALOGS[language] if m.id}
    assert set(MSGIDS) <= in_catalog, (
        f"{language}: missing {sorted(set(MSGIDS) - in_catalog)}: run pybabel update"
    )
    assert in_catalog <= set(MSGIDS), (
        f"{language}: no longer in the code: {sorted(in_catalog - set(MSGIDS))}"
    )


@pytest.mark.parametrize(("language", "msgid"), CASES)
def test_translated_and_not_fuzzy(language: str, msgid: str) -> None:
    message = CATALOGS[language].get(msgid)
    assert message is not None, f"{language}: {msgid!r} is missing"
    # gettext skips fuzzy entries, so the citizen would silently get English.
    assert not message.fuzzy, f"{language}: {msgid!r} is fuzzy; review it and drop the flag"
    if language != "en":
        assert message.string, f"{language}: {msgid!r} has no translation"


@pytest.mark.parametrize(("language", "msgid"), CASES)
def test_t_sends_the_catalog_text(language: str, msgid: str) -> None:
    params = _params(msgid)
    expected = _msgstr(language, msgid).format(**params)
    assert t(language, msgid, **params) == expected, f"{language} {msgid!r}"


# --- (b) placeholders ----------------------------------------------------------------------


@pytest.mark.parametrize(("language", "msgid"), CASES)
def test_placeholders_are_kept(language: str, msgid: str) -> None:
    translation = _msgstr(language, msgid)
    assert _fields(translation) == _fields(msgid), (
        f"{language} {msgid!r}: placeholders {dict(_fields(translation))} in {translation!r}, "
        f"expected {dict(_fields(msgid))}"
    )


# --- (c) one SMS ---------------------------------------------------------------------------


@pytest.mark.parametrize(("language", "msgid"), CASES)
def test_fits_one_gsm7_segment(language: str, msgid: str) -> None:
    _assert_one_segment(language, msgid, t(language, msgid, **_params(msgid)))


@pytest.mark.parametrize("suffix", HELP_SUFFIXES)
@pytest.mark.parametrize("hint", HINTS)
@pytest.mark.parametrize("language", SUPPORTED_LANGUAGES)
def test_hint_with_help_fits_one_gsm7_segment(language: str, hint: str, suffix: str) -> None:
    assert {hint, suffix} <= set(MSGIDS), f"{hint!r} or {suffix!r} is no longer in the code"
    text = t(language, hint, **_params(hint)) + " " + t(language, suffix)
    _assert_one_segment(language, f"{hint} {suffix}", text)


@pytest.mark.parametrize("language", SUPPORTED_LANGUAGES)
def test_language_confirmation_in_its_own_name_fits(language: str) -> None:
    assert LANGUAGE_SET in MSGIDS, f"{LANGUAGE_SET!r} is no longer in the code"
    # A dict, as in the other tests: t's own first parameter is also called `language`.
    params = {"language": LANGUAGE_NAMES[language]}
    text = t(language, LANGUAGE_SET, **params)
    _assert_one_segment(language, LANGUAGE_SET, text)


# --- (d) fallback --------------------------------------------------------------------------


@pytest.mark.parametrize("msgid", [pytest.param(m, id=m[:40]) for m in MSGIDS])
def test_unknown_language_falls_back_to_english(msgid: str) -> None:
    params = _params(msgid)
    assert t("xx", msgid, **params) == msgid.format(**params), f"xx {msgid!r}"


# --- (e) command words ---------------------------------------------------------------------


def _capitalised_words(text: str) -> list[str]:
    without_fields = re.sub(r"\{[^{}]*\}", " ", text)
    return [w for w in re.findall(r"\w+", without_fields) if len(w) > 1 and w.isupper()]


def _roles(language: str, msgid: str, text: str) -> Counter[str]:
    by_word = {word: role for role, word in COMMAND_WORDS[language].items()}
    roles: Counter[str] = Counter()
    for word in _capitalised_words(text):
        if word in NOT_COMMANDS:
            continue
        assert word in by_word, (
            f"{language} {msgid!r}: {word!r} in {text!r} is not this language's word for any "
            f"command or yes/no; expected one of {sorted(by_word)}"
        )
        roles[by_word[word]] += 1
    return roles


@pytest.mark.parametrize(("language", "msgid"), CASES)
def test_command_words_are_this_languages(language: str, msgid: str) -> None:
    translation = _msgstr(language, msgid)
    expected = _roles("en", msgid, msgid)
    assert _roles(language, msgid, translation) == expected, (
        f"{language} {msgid!r}: {translation!r} should name the commands {dict(expected)}"
    )


COMMAND_CASES = [
    (lang, role, word)
    for lang, words in COMMAND_WORDS.items()
    for role, word in words.items()
    if role not in YES_NO
]
YES_NO_CASES = [
    (lang, role, word)
    for lang, words in COMMAND_WORDS.items()
    for role, word in words.items()
    if role in YES_NO
]


def test_every_language_has_command_words() -> None:
    assert set(COMMAND_WORDS) == set(SUPPORTED_LANGUAGES)


@pytest.mark.parametrize(("language", "role", "word"), COMMAND_CASES)
def test_command_word_is_recognised(language: str, role: str, word: str) -> None:
    command = recognize(word)
    assert command is not None, f"{language}: {word!r} is not recognised as a command"
    assert (command.name, command.argument) == (role, None), f"{language}: {word!r} is {command}"


@pytest.mark.parametrize(("language", "role", "word"), YES_NO_CASES)
def test_yes_no_word_is_understood(language: str, role: str, word: str) -> None:
    # Imported here: answer interpretation is a large module that the other checks don't need.
    from surveys.answers import Accepted, interpret
    from surveys.model import Question

    question = Question(id="confirm", type="yesno", text={})
    result = interpret(question, word, language, SUPPORTED_LANGUAGES)
    assert isinstance(result, Accepted), f"{language}: {word!r} is not understood as {role}"
    assert result.value is YES_NO[role], f"{language}: {word!r} means {result.value}, not {role}"
