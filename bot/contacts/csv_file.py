"""Read a contacts file (CSV) into normalised rows, or say what is wrong and where.

Pure: no database, no clock (``now`` is a parameter), no file opening; it takes the file's
lines as bytes and streams, so a 100,000-row city list never sits in memory at once. Each
data row becomes a :class:`ContactRow` or a :class:`RowProblem` (``file:line: what``); a
header that cannot be used raises :class:`ContactsFileError`. The format is documented for
staff in ``docs/contacts.md``.

>>> from datetime import UTC, datetime
>>> lines = [b"address;language;district\\n", b"+32 470 00 00 01;NL;north\\n", b"0470;xx;\\n"]
>>> for item in read_contacts(lines, "city.csv", now=datetime(2026, 11, 1, tzinfo=UTC)):
...     print(item)
city.csv:2: sms +32470000001 (nl) {'district': 'north'}
city.csv:3: address: no country code: write the number as +32..., or set [contacts] default_region
city.csv:3: language 'xx' is not one Voxpop speaks (en, nl, fr, de, es)
"""

from __future__ import annotations

import codecs
import csv
import itertools
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

import phonenumbers
from babel import Locale, UnknownLocaleError
from babel.dates import get_date_format
from phonenumbers import NumberParseException

from bot.conversation.i18n import SUPPORTED_LANGUAGES
from channels.addresses import address_problem, usable_number
from messages import CHANNEL_NAMES
from safetext import clean_text

__all__ = [
    "COLUMNS",
    "ContactRow",
    "ContactsFileError",
    "RowProblem",
    "column_key",
    "normalise_address",
    "read_contacts",
]

#: The columns with a meaning; every other column is a free attribute.
COLUMNS = ("address", "channel", "language", "timezone", "consent_source", "consent_at", "tags")
#: Longest consent source the database keeps (``addresses.consent_source``).
MAX_CONSENT_SOURCE = 64
#: Headers people give the address column; named in the error when ``address`` is missing.
_ADDRESS_LOOKALIKES = (
    "phone",
    "phone_number",
    "number",
    "mobile",
    "gsm",
    "telephone",
    "tel",
    "msisdn",
    "chat_id",
    "telegram",
    "whatsapp",
    # the same in nl, fr, de, es (as _folded writes them)
    "telefoon",
    "telefoonnummer",
    "mobiel",
    "gsm_nummer",
    "nummer",
    "telephone",
    "numero",
    "portable",
    "telefon",
    "telefonnummer",
    "handy",
    "handynummer",
    "telefono",
    "movil",
    "celular",
)
#: The usual names of each column in the languages Voxpop speaks (en, nl, fr, de, es), as
#: :func:`_folded` writes them: a Dutch or French spreadsheet's header works as it is.
_TRANSLATED = {
    "address": ("adres", "adresse", "direccion"),
    "channel": ("kanaal", "canal", "kanal"),
    "language": ("taal", "langue", "sprache", "idioma"),
    "timezone": ("time_zone", "tijdzone", "fuseau_horaire", "zeitzone", "zona_horaria"),
    "consent_source": (
        "bron_toestemming",
        "toestemmingsbron",
        "source_consentement",
        "source_du_consentement",
        "einwilligungsquelle",
        "quelle_der_einwilligung",
        "origen_consentimiento",
        "origen_del_consentimiento",
    ),
    "consent_at": (
        "consent_date",
        "datum_toestemming",
        "toestemmingsdatum",
        "date_consentement",
        "date_du_consentement",
        "einwilligungsdatum",
        "datum_der_einwilligung",
        "fecha_consentimiento",
        "fecha_del_consentimiento",
    ),
    "tags": ("labels", "etiquettes", "schlagworter", "etiquetas"),
}
_COLUMN_NAMES = {alias: column for column, aliases in _TRANSLATED.items() for alias in aliases}
_SEPARATORS = (",", ";", "\t")
_PREFIX = re.compile(r"^([A-Za-z]+):(.*)$", re.DOTALL)
_TAG_SEPARATORS = re.compile(r"[;|]")
_SCIENTIFIC = re.compile(r"^\d+(?:[.,]\d+)?[eE]\+?\d+$")
#: A consent date this far ahead is a typo, not a promise.
_FUTURE_SLACK = timedelta(days=1)


class ContactsFileError(Exception):
    """A file that cannot be imported at all (its header, its encoding); nothing is."""


@dataclass(frozen=True)
class ContactRow:
    """One valid row, normalised: the address in E.164 (or a chat id), codes checked."""

    line: int
    channel: str
    value: str
    language: str | None = None
    timezone: str | None = None
    consent_at: datetime | None = None
    consent_source: str | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    source: str = ""

    def __str__(self) -> str:
        language = f" ({self.language})" if self.language else ""
        extra = f" {dict(self.attributes)}" if self.attributes else ""
        return f"{self.source}:{self.line}: {self.channel} {self.value}{language}{extra}"


@dataclass(frozen=True)
class RowProblem:
    """Why a row was skipped, as ``file:line: what is wrong`` (never the phone number)."""

    source: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.message}"


def read_contacts(
    lines: Iterable[bytes],
    source: str,
    *,
    now: datetime,
    default_region: str = "",
    default_timezone: str = "UTC",
) -> Iterator[ContactRow | RowProblem]:
    """Each data row of a contacts file as a :class:`ContactRow` or :class:`RowProblem`(s).

    ``lines`` are the file's raw lines (a file opened in binary mode will do): UTF-8, with or
    without a byte order mark. The separator is the most frequent of ``,`` ``;`` and tab in
    the header line (spreadsheets in many European locales export ``;``). Blank lines are
    passed over. Within the file an address may appear once; a repeat is a problem that
    names the earlier line.

    Raises :class:`ContactsFileError` for an unusable header or text that is not UTF-8.
    """
    text = _decoded(lines, source)
    peeked: list[str] = []
    for line in text:
        peeked.append(line)
        if line.strip():
            break
    if not peeked or not peeked[-1].strip():
        raise ContactsFileError(
            f"{source}: the file is empty: it needs a header row with 'address'"
        )
    header_line = len(peeked)
    delimiter = _delimiter(peeked[-1])
    reader = csv.reader(itertools.chain(peeked, text), delimiter=delimiter, strict=True)
    header: list[str] = []
    for cells in reader:
        if any(cell.strip() for cell in cells):
            header = cells
            break
    columns = _columns(header, source, header_line)
    checker = _RowChecker(source, columns, now, default_region, default_timezone)
    end = reader.line_num
    while True:
        start = end + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            if "end of data" in str(exc):
                # A quote left open swallowed the rest of the file: nothing after it is sure.
                raise ContactsFileError(
                    f'{source}:{start}: a quote (") opens here and is never closed; '
                    "nothing was imported"
                ) from None
            end = reader.line_num
            yield RowProblem(source, start, f"cannot read this row as CSV ({exc})")
            continue
        end = reader.line_num
        if not any(cell.strip() for cell in cells):
            continue
        yield from checker.check(start, cells)


def _decoded(lines: Iterable[bytes], source: str) -> Iterator[str]:
    """The lines as text, decoded one by one so an encoding error names its line.

    UTF-8 (with or without a byte order mark), or Windows-1252, what Excel's plain "CSV"
    writes on a Western European Windows: a line that is not UTF-8, when no line before it
    had an accent, switches the rest of the file to Windows-1252. (Plain ASCII lines read the
    same in both; real UTF-8 accents are never valid Windows-1252 text by accident.)
    """
    encoding = "utf-8"
    accents = False
    for number, raw in enumerate(lines, start=1):
        if number == 1 and raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8) :]
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            fallback = _windows_1252(raw) if encoding == "utf-8" and not accents else None
            if fallback is None:
                raise ContactsFileError(
                    f"{source}:{number}: this is not UTF-8 text: save the file as "
                    '"CSV UTF-8" (in Excel: File > Save As > CSV UTF-8) and import it again'
                ) from None
            text, encoding = fallback, "cp1252"
        accents = accents or not text.isascii()
        # NUL and other control characters can be in a file; no database column takes them.
        yield clean_text(text)


def _windows_1252(raw: bytes) -> str | None:
    try:
        return raw.decode("cp1252")
    except UnicodeDecodeError:  # bytes Windows-1252 leaves undefined: neither encoding
        return None


def _delimiter(header: str) -> str:
    """The separator of a header line: the most frequent of ``,`` ``;`` and tab.

    >>> _delimiter("address;language;district"), _delimiter("address,language"), _delimiter("a")
    (';', ',', ',')
    """
    counts = {sep: header.count(sep) for sep in _SEPARATORS}
    best = max(_SEPARATORS, key=lambda sep: counts[sep])  # a tie keeps the first: ","
    return best if counts[best] else ","


def column_key(name: str) -> str:
    """How a header cell is known: lowercase, spaces and dashes as ``_``.

    >>> column_key(" Consent source "), column_key("Age-band"), column_key("District")
    ('consent_source', 'age_band', 'district')
    """
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


def _folded(key: str) -> str:
    """A column key without accents, to compare with the usual names of columns.

    >>> _folded("téléphone"), _folded("dirección")
    ('telephone', 'direccion')
    """
    decomposed = unicodedata.normalize("NFKD", key)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _column(name: str) -> str:
    """The column a header cell names: one of :data:`COLUMNS` in any of the five languages,
    else a free attribute under its own :func:`column_key`.

    >>> _column("Adres"), _column("Fuseau horaire"), _column("Taal"), _column("Wijk")
    ('address', 'timezone', 'language', 'wijk')
    """
    key = column_key(name)
    return _COLUMN_NAMES.get(_folded(key), key)


def _columns(header: list[str], source: str, line: int) -> list[str]:
    keys: list[str] = []
    seen: dict[str, int] = {}
    for index, name in enumerate(header, start=1):
        key = _column(name)
        if not key:
            raise ContactsFileError(
                f"{source}:{line}: column {index} has no name: give it one, or delete the column"
            )
        if key in seen:
            raise ContactsFileError(
                f"{source}:{line}: columns {seen[key]} and {index} are both '{key}': "
                "rename or delete one"
            )
        seen[key] = index
        keys.append(key)
    if "address" not in seen:
        near = next((k for k in keys if _folded(k) in _ADDRESS_LOOKALIKES), None)
        hint = f" (rename '{near}' to 'address')" if near else ""
        raise ContactsFileError(
            f"{source}:{line}: no 'address' column{hint}: the header row must name one column "
            "'address' (a phone number, telegram:<chat id> or whatsapp:<number>)"
        )
    return keys


class _RowChecker:
    """Checks rows one by one and remembers the addresses seen, for duplicates."""

    def __init__(
        self,
        source: str,
        columns: list[str],
        now: datetime,
        default_region: str,
        default_timezone: str,
    ) -> None:
        self.source = source
        self.columns = columns
        self.now = now
        self.region = default_region.strip().upper()
        self.default_timezone = default_timezone
        self.seen: dict[tuple[str, str], int] = {}

    def check(self, line: int, cells: list[str]) -> Iterator[ContactRow | RowProblem]:
        problems: list[str] = []
        if any(cell.strip() for cell in cells[len(self.columns) :]):
            extra = len(cells) - len(self.columns)
            problems.append(
                f"{len(cells)} cells but the header has {len(self.columns)} columns "
                f"({extra} too many: is a value with a separator missing its quotes?)"
            )
        values = {
            column: cell.strip()
            for column, cell in zip(self.columns, cells, strict=False)
            if cell.strip()
        }
        channel, value, problem = normalise_address(
            values.get("address", ""), self.region, values.get("channel")
        )
        if problem:
            problems.append(problem)
        language = _language(values.get("language"), problems)
        timezone = _timezone(values.get("timezone"), problems)
        region = self.region or _region_of(channel, value)
        consent_at = self._consent_at(values.get("consent_at"), timezone, region, problems)
        consent_source = values.get("consent_source")
        if consent_source is not None and len(consent_source) > MAX_CONSENT_SOURCE:
            problems.append(
                f"consent_source is {len(consent_source)} characters long; at most "
                f"{MAX_CONSENT_SOURCE} are kept: shorten it"
            )
        if consent_at is not None and consent_source is None:
            problems.append(
                "consent_at without consent_source: say where consent was given, "
                "like 'paper form, town hall 2026-10'"
            )
        if channel and value and not problems:
            earlier = self.seen.get((channel, value))
            if earlier is not None:
                problems.append(f"address repeats line {earlier} (one row per address)")
            else:
                self.seen[(channel, value)] = line
        if problems:
            for message in problems:
                yield RowProblem(self.source, line, message)
            return
        attributes = {k: v for k, v in values.items() if k not in COLUMNS}
        tags = tuple(
            dict.fromkeys(
                tag.strip() for tag in _TAG_SEPARATORS.split(values.get("tags", "")) if tag.strip()
            )
        )
        yield ContactRow(
            line=line,
            channel=channel,
            value=value,
            language=language,
            timezone=timezone,
            consent_at=consent_at,
            consent_source=consent_source,
            attributes=attributes,
            tags=tags,
            source=self.source,
        )

    def _consent_at(
        self, raw: str | None, timezone: str | None, region: str, problems: list[str]
    ) -> datetime | None:
        if raw is None:
            return None
        parsed = read_date(raw, region)
        if parsed is None:
            order = _date_order(region) if region else None
            usual = f", or as in {region}: {_EXAMPLE[order]}" if order else ""
            problems.append(
                f"consent_at '{raw}' is not a date: use 2026-10-12, 2026-10-12 14:30 or "
                f"2026-10-12T14:30+02:00{usual}"
            )
            return None
        if parsed.tzinfo is None:
            # A date or time without an offset is the contact's own local time.
            parsed = parsed.replace(tzinfo=ZoneInfo(timezone or self.default_timezone))
        if parsed > self.now + _FUTURE_SLACK:
            problems.append(f"consent_at '{raw}' is in the future")
            return None
        return parsed


_LOCAL_DATE = re.compile(
    r"^(\d{1,4})([./-])(\d{1,2})\2(\d{1,4})\.?(?:[ T]+(\d{1,2})[:.h](\d{2})(?::(\d{2}))?)?$"
)
#: 12 October 2026 in each order of day (d), month (m) and year (y).
_EXAMPLE = {"dmy": "12/10/2026", "mdy": "10/12/2026", "ymd": "2026/10/12"}


def read_date(raw: str, region: str = "") -> datetime | None:
    """A date (and time) as staff's spreadsheets write it, or None.

    ISO 8601 always (``2026-10-12``, ``2026-10-12 14:30``, ``2026-10-12T14:30+02:00``), and
    a year first (``2026/10/12``). Day and month in another order are read in the order
    ``region``'s dates are written, from the Unicode CLDR (through Babel): ``12/10/2026`` is
    12 October in BE, NL, FR, DE, ES or GB, and 10 December in the US. Without a region such
    a date is not read: it means different days in different countries. Two-digit years are
    20xx; ``-``, ``.`` or ``/`` separate.

    >>> read_date("12/10/2026", "BE"), read_date("12.10.2026 14:30", "DE")
    (datetime.datetime(2026, 10, 12, 0, 0), datetime.datetime(2026, 10, 12, 14, 30))
    >>> read_date("12/10/26", "US"), read_date("12/10/2026"), read_date("31/12/2026", "US")
    (datetime.datetime(2026, 12, 10, 0, 0), None, None)
    """
    text = raw.strip()
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        pass
    match = _LOCAL_DATE.match(text)
    if match is None:
        return None
    first, _, second, third, hour, minute, seconds = match.groups()
    if len(first) == 4:
        order = "ymd"
    else:  # day and month, in the region's order; a year-first region wrote no such date
        order = (_date_order(region) if region else None) or ""
        if order not in ("dmy", "mdy") or len(third) not in (2, 4):
            return None
    numbers = dict(zip(order, (first, second, third), strict=True))
    year = int(numbers["y"]) + (2000 if len(numbers["y"]) == 2 else 0)
    try:
        return datetime(  # noqa: DTZ001 - local time: the caller knows whose
            year,
            int(numbers["m"]),
            int(numbers["d"]),
            int(hour or 0),
            int(minute or 0),
            int(seconds or 0),
        )
    except ValueError:  # 31/02, 25/13, 24:00...
        return None


@cache
def _date_order(region: str) -> str | None:
    """How ``region`` orders day, month and year in a short date (``"dmy"``, ``"mdy"`` or
    ``"ymd"``), from its usual locale's CLDR pattern; None for an unknown region.

    >>> [_date_order(r) for r in ("BE", "NL", "FR", "DE", "ES", "US", "JP", "XX")]
    ['dmy', 'dmy', 'dmy', 'dmy', 'dmy', 'mdy', 'ymd', None]
    """
    try:
        locale = Locale.parse(f"und_{region}")
    except (UnknownLocaleError, ValueError):
        return None
    if locale.territory != region:
        return None
    pattern = str(get_date_format("short", locale=locale).pattern)
    letters = {"d": "d", "M": "m", "L": "m", "y": "y"}
    order = "".join(dict.fromkeys(letters[c] for c in pattern if c in letters))
    return order if order in _EXAMPLE else None


def _region_of(channel: str, value: str) -> str:
    """The country of a phone address, for reading its row's dates; ``""`` for others."""
    if channel == "telegram" or not value.startswith("+"):
        return ""
    try:
        region = phonenumbers.region_code_for_number(phonenumbers.parse(value, None))
    except NumberParseException:
        return ""
    return region if region and region != "ZZ" else ""


def normalise_address(
    raw: str, region: str = "", channel: str | None = None
) -> tuple[str, str, str | None]:
    """``(channel, value, problem)`` for an address as staff write it.

    A phone number in any common notation becomes E.164 (``region`` is where numbers
    without a country code are from); ``telegram:<chat id>``, ``whatsapp:<number>`` and
    ``sms:<number>`` name the channel, as does ``channel`` (a column of its own) when given.
    Problems never repeat the number: it is personal data, and the line says where it is.

    >>> normalise_address("0470 00 00 12", "BE")
    ('sms', '+32470000012', None)
    >>> normalise_address("whatsapp: +32 (0)470 00.00.12")
    ('whatsapp', '+32470000012', None)
    >>> normalise_address("telegram:4242")
    ('telegram', '4242', None)
    >>> print(normalise_address("signal:+32470000012")[2])
    address: unknown channel 'signal:' (use a phone number, whatsapp:<number> or telegram:...)
    """
    text = raw.strip()
    if not text:
        return "", "", "address is empty"
    named = channel.strip().lower() if channel else None
    if named is not None and named not in CHANNEL_NAMES:
        return "", "", f"channel '{channel}' is not one of {', '.join(CHANNEL_NAMES)}"
    prefixed = _PREFIX.match(text)
    if prefixed:
        prefix, text = prefixed.group(1).lower(), prefixed.group(2).strip()
        if prefix not in CHANNEL_NAMES:
            return (
                "",
                "",
                f"address: unknown channel '{prefixed.group(1)}:' (use a phone number, "
                "whatsapp:<number> or telegram:...)",
            )
        if named is not None and named != prefix:
            return "", "", f"address says {prefix}: but the channel column says {named}"
        named = prefix
    chosen = named or "sms"
    if chosen == "telegram":
        if address_problem("telegram", text) is not None:
            return "", "", "address: a Telegram address is a numeric chat id, like telegram:100000"
        return "telegram", text, None
    number, problem = _phone(text, region)
    return chosen, number, problem


def _phone(text: str, region: str) -> tuple[str, str | None]:
    if _SCIENTIFIC.match(text):
        return "", (
            "address: a spreadsheet turned this number into 3.2E+10 notation: format the "
            "column as text and export again"
        )
    if text.startswith("00"):
        # The international prefix of most of the world, with or without a default region.
        text = "+" + text[2:]
    hint = ""
    if not text.startswith("+") and _valid("+" + re.sub(r"\D", "", text)):
        hint = " (it would be one with a '+' in front: did a spreadsheet drop it?)"
    try:
        parsed = phonenumbers.parse(text, region or None)
    except NumberParseException as exc:
        return "", _parse_problem(exc, text, region) + hint
    if not usable_number(parsed):
        where = phonenumbers.region_code_for_number(parsed)
        in_region = f" in {where}" if where and where != "ZZ" else ""
        return "", f"address: not a valid phone number{in_region}{hint}"
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164), None


def _valid(text: str) -> bool:
    try:
        return usable_number(phonenumbers.parse(text, None))
    except NumberParseException:
        return False


def _parse_problem(exc: NumberParseException, text: str, region: str) -> str:
    kind = exc.error_type
    if kind == NumberParseException.INVALID_COUNTRY_CODE:
        if not region and not text.startswith("+"):
            return (
                "address: no country code: write the number as +32..., or set "
                "[contacts] default_region"
            )
        return "address: unknown country code"
    if kind == NumberParseException.NOT_A_NUMBER:
        return "address: not a phone number"
    if kind in (NumberParseException.TOO_SHORT_NSN, NumberParseException.TOO_SHORT_AFTER_IDD):
        return "address: too short for a phone number"
    if kind == NumberParseException.TOO_LONG:
        return "address: too long for a phone number"
    return "address: not a phone number"  # pragma: no cover - no other error types exist


def _language(raw: str | None, problems: list[str]) -> str | None:
    """A supported language code; ``NL`` and ``nl-BE`` are read as ``nl``."""
    if raw is None:
        return None
    code = re.split(r"[-_]", raw.strip().lower(), maxsplit=1)[0]
    if code in SUPPORTED_LANGUAGES:
        return code
    problems.append(f"language '{raw}' is not one Voxpop speaks ({', '.join(SUPPORTED_LANGUAGES)})")
    return None


@cache
def _timezones() -> Mapping[str, str]:
    """IANA names by their lowercase form, so ``europe/brussels`` is understood."""
    return {name.lower(): name for name in available_timezones()}


def _timezone(raw: str | None, problems: list[str]) -> str | None:
    if raw is None:
        return None
    name = _timezones().get(raw.strip().lower().replace(" ", "_"))
    if name is None:
        problems.append(f"timezone '{raw}' is not an IANA timezone name, like Europe/Brussels")
    return name
