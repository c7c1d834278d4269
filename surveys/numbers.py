"""Word tables for answer interpretation in en, nl, fr, de and es.

Every entry is already in :func:`surveys.text.normalize` form (casefolded, no accents), so
lookups are plain set and dict hits. Words shared by several languages must mean the same
thing in all of them; a word that does not (Spanish ``once`` = 11, English ``once`` = 1) is
left out rather than guessed.

>>> NUMBER_WORDS["twee"], NUMBER_WORDS["deux"], NUMBER_WORDS["funf"]
(2, 2, 5)
>>> "oui" in YES_WORDS and "nee" in NO_WORDS
True
"""

from __future__ import annotations

from collections.abc import Mapping


def _set(text: str) -> frozenset[str]:
    return frozenset(text.split())


def _table(*rows: tuple[int, str]) -> dict[str, int]:
    table: dict[str, int] = {}
    for value, words in rows:
        for word in words.split():
            assert table.get(word, value) == value, word  # a word must not mean two numbers
            table[word] = value
    return table


#: Cardinal words 0..12. Spanish ``once`` (11) is missing on purpose: it is English for 1×.
NUMBER_WORDS: Mapping[str, int] = _table(
    (0, "zero nul zero null cero"),
    (1, "one een un une eins ein eine uno una"),
    (2, "two twee deux zwei zwo dos"),
    (3, "three drie trois drei tres"),
    (4, "four vier quatre cuatro"),
    (5, "five vijf cinq funf fuenf cinco"),
    (6, "six zes sechs seis"),
    (7, "seven zeven sept sieben siete"),
    (8, "eight acht huit ocho"),
    (9, "nine negen neuf neun nueve"),
    (10, "ten tien dix zehn diez"),
    (11, "eleven elf onze"),
    (12, "twelve twaalf douze zwolf zwoelf doce"),
)

#: Number words that are also articles ("een stuk of 5", "un peu"): they count as a number
#: only when they are the whole reply.
ARTICLE_WORDS: frozenset[str] = _set("een un une ein eine una")

#: "None" for a count question ("How many children?" "geen").
NONE_WORDS: frozenset[str] = _set(
    "none geen aucun aucune kein keine keiner keins ninguno ninguna ningun"
)

#: Number words we do not read (teens, tens, hundreds): seeing one means the reply holds a
#: number we cannot parse, so "twenty one" is not mistaken for 1.
UNREAD_NUMBER_WORDS: frozenset[str] = _set("""
    thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty thirty forty fourty
    fifty sixty seventy eighty ninety hundred thousand million half dozen
    dertien veertien vijftien zestien zeventien achttien negentien twintig dertig veertig
    vijftig zestig zeventig tachtig negentig honderd duizend miljoen halve
    treize quatorze quinze seize vingt trente quarante cinquante soixante cent cents mille
    million demi demie
    dreizehn vierzehn funfzehn sechzehn siebzehn achtzehn neunzehn zwanzig dreissig vierzig
    funfzig sechzig siebzig achtzig neunzig hundert tausend halb halbe
    trece catorce quince dieciseis diecisiete dieciocho diecinueve veinte treinta cuarenta
    cincuenta sesenta setenta ochenta noventa cien ciento mil millon medio media once
    """)

#: Words that introduce an option number: "option 2", "nummer twee", "numero 3", "#2".
KEY_PREFIXES: tuple[str, ...] = (
    "option", "optie", "opcion", "choice", "choix", "keuze", "keus", "wahl", "auswahl",
    "answer", "antwoord", "reponse", "antwort", "respuesta", "number", "nummer", "numero",
    "num", "nro", "nr",
)  # fmt: skip
#: Short prefixes that are also ordinary words ("no one"): only allowed before digits.
DIGIT_PREFIXES: tuple[str, ...] = ("n°", "no", "n")

#: Words joining several options in a multi-choice reply: "1 and 3", "fiets en bus".
AND_WORDS: frozenset[str] = _set("and en et und y")
#: Words offering alternatives: "1 or 2" to a single choice is a doubt, not an answer.
OR_WORDS: frozenset[str] = _set("or of ou oder o")

#: Between the value and the top of a scale: "4 out of 5", "4 van 5", "4 sur 5".
OUT_OF_WORDS: tuple[str, ...] = (
    "out of", "of", "van", "op", "uit", "sur", "de", "von", "aus", "auf",
)  # fmt: skip
#: Units people add to a scale rating: "4 stars", "4 sterren", "4 points".
SCALE_UNITS: tuple[str, ...] = (
    "stars", "star", "sterren", "ster", "etoiles", "etoile", "sterne", "stern", "estrellas",
    "estrella", "points", "point", "pts", "punten", "punt", "punkte", "punkt", "puntos",
    "punto",
)  # fmt: skip

YES_WORDS: frozenset[str] = _set("""
    y yes yeah yea yeh ya yah yep yup yas ok okay oke okey okido okidoki sure true agreed
    absolutely certainly definitely indeed correct
    ja j jawel jazeker jep jup jaja zeker natuurlijk tuurlijk uiteraard akkoord prima goed
    oui ouais ouai ouaip o certes certainement absolument evidemment daccord dac dacc
    si claro vale sip cierto correcto
    genau jawohl klar naturlich sicher doch jo richtig selbstverstandlich einverstanden
    """)
NO_WORDS: frozenset[str] = _set("""
    n no nope nah nay nop false
    nee neen neenee nein nix non
    """)
#: Whole replies that mean yes or no but are not made of the single words above.
YES_PHRASES: frozenset[str] = frozenset(
    {
        "of course", "ofcourse", "yes i do", "yes i am", "yes i have", "yes i will",
        "ja hoor", "ja zeker", "ja graag", "ja natuurlijk", "ja wel", "bien sur", "bien sure",
        "oui bien sur", "d accord", "por supuesto", "claro que si", "desde luego",
        "na klar", "auf jeden fall", "ja klar", "ja bitte",
    }
)  # fmt: skip
NO_PHRASES: frozenset[str] = frozenset(
    {
        "no i dont", "no i do not", "no i am not", "no i havent", "no i wont", "of course not",
        "absolutely not", "certainly not", "definitely not", "not at all", "no way",
        "zeker niet", "helemaal niet", "echt niet", "natuurlijk niet", "absoluut niet",
        "pas du tout", "absolument pas", "certainement pas", "bien sur que non",
        "claro que no", "en absoluto", "de ninguna manera", "para nada",
        "auf keinen fall", "keinesfalls", "naturlich nicht", "gar nicht", "nein danke",
    }
)  # fmt: skip
#: Politeness around a yes or no that does not change it: "yes please", "nee, bedankt".
FILLER_WORDS: frozenset[str] = _set("""
    please pls plz thanks thank you thx ty
    graag dank je jij u bedankt hoor alsjeblieft alstublieft
    merci beaucoup svp stp sil vous te plait
    danke bitte schon sehr
    gracias por favor muchas
    """)
#: Emoji answers; variation selectors and skin tones are removed before lookup.
YES_EMOJI: frozenset[str] = frozenset("👍✅✔☑👌🙆🆗✓")
NO_EMOJI: frozenset[str] = frozenset("👎❌✖❎🚫🙅✗✘")

#: Rating stars: filled ones count, empty ones are ignored ("★★★☆☆" = 3).
FILLED_STARS: frozenset[str] = frozenset("★⭐🌟✭✮✯✪*")
EMPTY_STARS: frozenset[str] = frozenset("☆✩")
