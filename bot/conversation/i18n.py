"""System messages in the citizen's language, from gettext catalogs (Babel ``.po`` files).

Catalogs live in ``bot/conversation/locale/<lang>/LC_MESSAGES/voxpop.po`` and are compiled in memory
once per process, so a fresh checkout needs no build step. Message ids are the English
text with ``{named}`` placeholders; ``N_`` marks them for ``pybabel extract``.

>>> t("nl", N_("Please reply YES or NO."))
'Antwoord JA of NEE.'
>>> t("xx", N_("Please reply YES or NO."))
'Please reply YES or NO.'
"""

from __future__ import annotations

import gettext
import io
from functools import cache
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "voxpop"
#: Languages with a system-message catalog; English is the source language.
SUPPORTED_LANGUAGES: tuple[str, ...] = ("en", "nl", "fr", "de", "es")
LANGUAGE_NAMES: dict[str, str] = {
    "en": "English",
    "nl": "Nederlands",
    "fr": "Francais",  # ç is not GSM-7; this name goes out by SMS
    "de": "Deutsch",
    "es": "Español",
}


def N_(message: str) -> str:  # noqa: N802 - the gettext convention
    """Mark a message id for extraction without translating it."""
    return message


@cache
def _translations(language: str) -> gettext.NullTranslations:
    po_path = LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"
    if not po_path.is_file():
        return gettext.NullTranslations()
    with po_path.open("rb") as po_file:
        catalog = read_po(po_file, locale=language)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


def t(language: str, message: str, /, **params: object) -> str:
    """Translate ``message`` into ``language`` and fill in ``params``."""
    text = _translations(language).gettext(message)
    return text.format(**params) if params else text
