"""Global commands: recognised only when the whole message is the command, in any language.

>>> recognize("Stop!")
Command(name='stop', argument=None)
>>> recognize("taal nl")
Command(name='lang', argument='nl')
>>> recognize("please stop sending") is None
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeAlias

from surveys.text import normalize

CommandName: TypeAlias = Literal[
    "stop", "start", "help", "lang", "repeat", "skip", "info", "forget", "results"
]

# Keep in sync with surveys.validate.RESERVED_WORDS: a survey keyword may not be a command.
COMMAND_WORDS: dict[CommandName, frozenset[str]] = {
    "stop": frozenset(
        {
            "stop",
            "stopall",
            "unsubscribe",
            "cancel",
            "end",
            "quit",
            "optout",
            "opt-out",
            "afmelden",
            "uitschrijven",
            "stoppen",
            "arret",
            "arreter",
            "desabonner",
            "desinscrire",
            "stopp",
            "abmelden",
            "beenden",
            "ende",
            "abbestellen",
            "parar",
            "baja",
            "cancelar",
            "salir",
            "detener",
        }
    ),
    "start": frozenset(
        {
            "start",
            "unstop",
            "subscribe",
            "aanmelden",
            "demarrer",
            "commencer",
            "anmelden",
            "empezar",
            "alta",
        }
    ),
    "help": frozenset({"help", "hulp", "aide", "hilfe", "ayuda", "?"}),
    "lang": frozenset({"lang", "language", "taal", "langue", "sprache", "idioma"}),
    "repeat": frozenset({"repeat", "herhaal", "herhalen", "repeter", "wiederholen", "repetir"}),
    "skip": frozenset({"skip", "overslaan", "passer", "uberspringen", "saltar"}),
    "info": frozenset({"info", "gegevens", "donnees", "daten", "datos"}),
    "forget": frozenset({"forget", "vergeet", "vergeten", "oublier", "vergessen", "olvidar"}),
    "results": frozenset({"results", "resultaten", "resultats", "ergebnisse", "resultados"}),
}

_BY_WORD: dict[str, CommandName] = {
    word: name for name, words in COMMAND_WORDS.items() for word in words
}


@dataclass(frozen=True)
class Command:
    name: CommandName
    argument: str | None = None


def recognize(text: str) -> Command | None:
    """The command this whole message is, or ``None``. Only LANG takes an argument."""
    words = normalize(text).lstrip("/").split()
    if not words:
        return None
    name = _BY_WORD.get(words[0])
    if name is None:
        return None
    if len(words) == 1:
        return Command(name)
    if name == "lang" and len(words) == 2 and words[1].isalpha():
        return Command(name, words[1])
    return None
