"""Global commands are recognised only when the whole message is the command."""

from __future__ import annotations

import pytest

from bot.conversation.commands import COMMAND_WORDS, Command, recognize
from surveys.validate import RESERVED_WORDS


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("STOP", Command("stop")),
        ("stop", Command("stop")),
        ("  Stop. ", Command("stop")),
        ("STOPALL", Command("stop")),
        ("unsubscribe", Command("stop")),
        ("Afmelden", Command("stop")),
        ("arrêter", Command("stop")),
        ("Abmelden!", Command("stop")),
        ("baja", Command("stop")),
        ("/stop", Command("stop")),
        ("START", Command("start")),
        ("help", Command("help")),
        ("HULP", Command("help")),
        ("aide", Command("help")),
        ("Hilfe", Command("help")),
        ("ayuda", Command("help")),
        ("LANG nl", Command("lang", "nl")),
        ("language FR", Command("lang", "fr")),
        ("taal en", Command("lang", "en")),
        ("langue de", Command("lang", "de")),
        ("LANG", Command("lang")),
        ("repeat", Command("repeat")),
        ("herhaal", Command("repeat")),
        ("répéter", Command("repeat")),
        ("skip", Command("skip")),
        ("overslaan", Command("skip")),
        ("überspringen", Command("skip")),
        ("info", Command("info")),
        ("forget", Command("forget")),
        ("vergeet", Command("forget")),
        ("oublier", Command("forget")),
        ("olvidar", Command("forget")),
    ],
)
def test_whole_message_commands(text: str, expected: Command) -> None:
    assert recognize(text) == expected


@pytest.mark.parametrize(
    "text",
    ["please stop", "stop it now", "help me", "I need help", "", "   ", "lang nl fr", "2", "yes"],
)
def test_commands_inside_sentences_are_not_commands(text: str) -> None:
    assert recognize(text) is None


def test_every_command_word_is_reserved_for_survey_keywords() -> None:
    # A survey keyword equal to a command could never start the survey.
    words = {w for ws in COMMAND_WORDS.values() for w in ws if w.isalpha()}
    missing = sorted(words - {w.lower() for w in RESERVED_WORDS})
    assert missing == []
