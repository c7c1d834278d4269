"""Text normalisation shared by answer interpretation and command recognition.

>>> normalize("  Élke   Week!! ")
'elke week'
>>> normalize("¿Sí?")
'si'
"""

from __future__ import annotations

import unicodedata

#: Characters stripped from both ends of a reply (punctuation people add out of habit).
_EDGE_PUNCTUATION = " \t\r\n.,;:!?¡¿'\"`´‘’“”«»()[]{}<>-–—_*~/\\|"


def strip_accents(text: str) -> str:
    """Remove combining marks: 'é' -> 'e'. Keeps non-Latin letters as they are."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def normalize(text: str) -> str:
    """Casefold, drop accents, collapse inner whitespace, strip edge punctuation."""
    folded = strip_accents(text).casefold()
    collapsed = " ".join(folded.split())
    return collapsed.strip(_EDGE_PUNCTUATION)
