"""Reading a contacts file: every row becomes a normalised contact or a ``file:line`` problem.

Pure: no database. Each case is a whole file (a header and rows) and what must come out.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from bot.contacts.csv_file import ContactRow, ContactsFileError, RowProblem, read_contacts

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
HEADER = "address,language,timezone,consent_source,consent_at"


def read(text: str | bytes, region: str = "", timezone: str = "UTC") -> list[str]:
    """What comes out of a file, as printed (rows and problems alike)."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    lines = data.splitlines(keepends=True)
    return [
        str(item)
        for item in read_contacts(
            lines, "city.csv", now=NOW, default_region=region, default_timezone=timezone
        )
    ]


def rows(text: str | bytes, region: str = "") -> list[ContactRow]:
    data = text.encode("utf-8") if isinstance(text, str) else text
    items = list(
        read_contacts(data.splitlines(keepends=True), "city.csv", now=NOW, default_region=region)
    )
    assert all(isinstance(i, ContactRow) for i in items), [str(i) for i in items]
    return [i for i in items if isinstance(i, ContactRow)]


# --- addresses ------------------------------------------------------------------------------

ADDRESS_CASES = [
    # (cell, default region, (channel, value))
    ("+32 470 00 00 12", "", ("sms", "+32470000012")),
    ("+32470000012", "", ("sms", "+32470000012")),
    ("+32 (0)470 00.00.12", "", ("sms", "+32470000012")),
    ("0470 00 00 12", "BE", ("sms", "+32470000012")),
    ("0032 470 00 00 12", "BE", ("sms", "+32470000012")),
    ("0032 470 00 00 12", "", ("sms", "+32470000012")),  # 00: international, anywhere
    ("00 33 6 12 34 56 78", "", ("sms", "+33612345678")),
    ("whatsapp:0032470000012", "", ("whatsapp", "+32470000012")),
    ("06 12345678", "NL", ("sms", "+31612345678")),
    ("+33 6 12 34 56 78", "BE", ("sms", "+33612345678")),
    ("whatsapp:+32 470 00 00 12", "", ("whatsapp", "+32470000012")),
    ("WhatsApp: 0470 000 012", "BE", ("whatsapp", "+32470000012")),
    ("sms:+32470000012", "", ("sms", "+32470000012")),
    ("telegram:4242", "", ("telegram", "4242")),
    ("telegram: -100123", "", ("telegram", "-100123")),
    # The 555-01xx fiction range: not "valid" to the phone library, but kept for examples.
    ("+1 555 555 0110", "", ("sms", "+15555550110")),
    ("whatsapp:+1 555-555-0111", "", ("whatsapp", "+15555550111")),
]


@pytest.mark.parametrize(("cell", "region", "expected"), ADDRESS_CASES)
def test_addresses_are_normalised(cell: str, region: str, expected: tuple[str, str]) -> None:
    (row,) = rows(f'address\n"{cell}"\n', region)
    assert (row.channel, row.value) == expected


PROBLEM_CASES = [
    # (a file, the problems it must give, exactly)
    pytest.param(
        "address\n0470 00 00 12\n",
        [
            "city.csv:2: address: no country code: write the number as +32..., or set "
            "[contacts] default_region"
        ],
        id="no-country-code",
    ),
    pytest.param(
        "address\nhello\n", ["city.csv:2: address: not a phone number"], id="not-a-number"
    ),
    pytest.param(
        "address\n+32 470\n", ["city.csv:2: address: not a valid phone number in BE"], id="short"
    ),
    pytest.param(
        "address\n+999 470 00 00 12\n", ["city.csv:2: address: unknown country code"], id="country"
    ),
    pytest.param(
        "address\n+32 1234 5678 9012 3456 789\n",
        ["city.csv:2: address: too long for a phone number"],
        id="too-long",
    ),
    pytest.param(
        "address\n32470000012\n",
        [
            "city.csv:2: address: no country code: write the number as +32..., or set "
            "[contacts] default_region (it would be one with a '+' in front: did a "
            "spreadsheet drop it?)"
        ],
        id="plus-dropped",
    ),
    pytest.param(
        "address\n3.2470000012E+10\n",
        [
            "city.csv:2: address: a spreadsheet turned this number into 3.2E+10 notation: "
            "format the column as text and export again"
        ],
        id="scientific",
    ),
    pytest.param(
        "address\nsignal:+32470000012\n",
        [
            "city.csv:2: address: unknown channel 'signal:' (use a phone number, "
            "whatsapp:<number> or telegram:...)"
        ],
        id="wrong-prefix",
    ),
    pytest.param(
        "address\ntelegram:+32470000012\n",
        ["city.csv:2: address: a Telegram address is a numeric chat id, like telegram:100000"],
        id="telegram-phone",
    ),
    pytest.param(
        "address,channel\n+32470000012,fax\n",
        ["city.csv:2: channel 'fax' is not one of sms, whatsapp, telegram"],
        id="channel-column",
    ),
    pytest.param(
        "address,channel\ntelegram:4242,sms\n",
        ["city.csv:2: address says telegram: but the channel column says sms"],
        id="channel-clash",
    ),
    pytest.param(
        "address,district\n,north\n", ["city.csv:2: address is empty"], id="empty-address"
    ),
    pytest.param(
        f"{HEADER}\n+32470000012,xx,,,\n",
        ["city.csv:2: language 'xx' is not one Voxpop speaks (en, nl, fr, de, es)"],
        id="language",
    ),
    pytest.param(
        f"{HEADER}\n+32470000012,,Europe/Bruxelles,,\n",
        [
            "city.csv:2: timezone 'Europe/Bruxelles' is not an IANA timezone name, like "
            "Europe/Brussels"
        ],
        id="timezone",
    ),
    pytest.param(
        f"{HEADER}\ntelegram:4242,,,paper form,12/10/2026\n",
        [
            "city.csv:2: consent_at '12/10/2026' is not a date: use 2026-10-12, "
            "2026-10-12 14:30 or 2026-10-12T14:30+02:00"
        ],
        id="consent-date-without-a-region",
    ),
    pytest.param(
        f"{HEADER}\n+32470000012,,,paper form,31/02/2026\n",
        [
            "city.csv:2: consent_at '31/02/2026' is not a date: use 2026-10-12, "
            "2026-10-12 14:30 or 2026-10-12T14:30+02:00, or as in BE: 12/10/2026"
        ],
        id="consent-date-that-does-not-exist",
    ),
    pytest.param(
        f'{HEADER}\n"+1 202 555 0100",,,paper form,13/10/2026\n',
        [
            "city.csv:2: consent_at '13/10/2026' is not a date: use 2026-10-12, "
            "2026-10-12 14:30 or 2026-10-12T14:30+02:00, or as in US: 10/12/2026"
        ],
        id="consent-date-day-first-in-the-us",
    ),
    pytest.param(
        f"{HEADER}\n+32470000012,,,paper form,2027-01-01\n",
        ["city.csv:2: consent_at '2027-01-01' is in the future"],
        id="consent-in-future",
    ),
    pytest.param(
        f"{HEADER}\n+32470000012,,,,2026-10-12\n",
        [
            "city.csv:2: consent_at without consent_source: say where consent was given, "
            "like 'paper form, town hall 2026-10'"
        ],
        id="consent-without-source",
    ),
    pytest.param(
        f"{HEADER}\n+32470000012,,,{'x' * 65},\n",
        ["city.csv:2: consent_source is 65 characters long; at most 64 are kept: shorten it"],
        id="consent-source-too-long",
    ),
    pytest.param(
        "address,district\n+32470000012,north,extra\n",
        [
            "city.csv:2: 3 cells but the header has 2 columns (1 too many: is a value with a "
            "separator missing its quotes?)"
        ],
        id="too-many-cells",
    ),
    pytest.param(
        "address\n+32470000012\ntelegram:1\n+32 470 00 00 12\n",
        [
            "city.csv:2: sms +32470000012",
            "city.csv:3: telegram 1",
            "city.csv:4: address repeats line 2 (one row per address)",
        ],
        id="duplicate",
    ),
    pytest.param(
        "address\n+32470000012\nwhatsapp:+32470000012\n",
        ["city.csv:2: sms +32470000012", "city.csv:3: whatsapp +32470000012"],
        id="same-number-two-channels",
    ),
    pytest.param(
        f"{HEADER}\nhello,xx,Mars/Base,,\n",
        [
            "city.csv:2: address: not a phone number",
            "city.csv:2: language 'xx' is not one Voxpop speaks (en, nl, fr, de, es)",
            "city.csv:2: timezone 'Mars/Base' is not an IANA timezone name, like Europe/Brussels",
        ],
        id="every-problem-of-a-row",
    ),
    pytest.param(
        'address,note\n+32470000012,"a "quoted" word"\n+32470000013,fine\n',
        [
            "city.csv:2: cannot read this row as CSV (',' expected after '\"')",
            "city.csv:3: sms +32470000013 {'note': 'fine'}",
        ],
        id="bad-quoting",
    ),
]


@pytest.mark.parametrize(("text", "expected"), PROBLEM_CASES)
def test_each_problem_names_its_line(text: str, expected: list[str]) -> None:
    assert read(text) == expected


def test_a_dropped_plus_in_a_region() -> None:
    # The region's own country code is recognised without its +; another country's is not.
    assert read("address\n32470000012\n", region="BE") == ["city.csv:2: sms +32470000012"]
    assert read("address\n31612345678\n", region="BE") == [
        "city.csv:2: address: not a valid phone number in BE (it would be one with a '+' in "
        "front: did a spreadsheet drop it?)"
    ]


def test_problems_never_repeat_the_number() -> None:
    for text, _ in (case.values for case in PROBLEM_CASES):
        for line in read(str(text)):
            if "address" in line and "repeats" not in line and ": sms " not in line:
                assert "470" not in line, line


# --- the other columns -----------------------------------------------------------------------


def test_a_full_row() -> None:
    (row,) = rows(
        "Address, Language ,TimeZone,Consent source,Consent-at,Age band,District,Tags,empty\n"
        '+32470000012,NL,europe/brussels,"paper form, town hall 2026-10",2026-10-12,'
        "35-49,north,volunteer; panel-2026|volunteer,\n"
    )
    assert row == ContactRow(
        line=2,
        channel="sms",
        value="+32470000012",
        language="nl",
        timezone="Europe/Brussels",
        # A date without a time is midnight in the contact's own timezone.
        consent_at=datetime(2026, 10, 12, tzinfo=ZoneInfo("Europe/Brussels")),
        consent_source="paper form, town hall 2026-10",
        # Other columns are attributes, as strings; column names lowercase with _; empty
        # cells are absent.
        attributes={"age_band": "35-49", "district": "north"},
        tags=("volunteer", "panel-2026"),
        source="city.csv",
    )


@pytest.mark.parametrize(
    ("cell", "timezone", "expected"),
    [
        ("2026-10-12", "", datetime(2026, 10, 11, 22, 0, tzinfo=UTC)),  # Europe/Brussels
        ("2026-10-12 14:30", "UTC", datetime(2026, 10, 12, 14, 30, tzinfo=UTC)),
        ("2026-10-12T14:30:00+02:00", "", datetime(2026, 10, 12, 12, 30, tzinfo=UTC)),
        ("2026-10-12T14:30Z", "America/New_York", datetime(2026, 10, 12, 14, 30, tzinfo=UTC)),
        ("2026-10-12 14:30", "America/New_York", datetime(2026, 10, 12, 18, 30, tzinfo=UTC)),
    ],
)
def test_consent_at_formats(cell: str, timezone: str, expected: datetime) -> None:
    data = f"address,timezone,consent_source,consent_at\n+32470000012,{timezone},form,{cell}\n"
    items = list(
        read_contacts(
            data.encode().splitlines(keepends=True),
            "city.csv",
            now=NOW,
            default_timezone="Europe/Brussels",
        )
    )
    assert isinstance(items[0], ContactRow)
    assert items[0].consent_at == expected


def test_consent_source_alone_is_consent_from_the_import() -> None:
    (row,) = rows("address,consent_source\n+32470000012,website sign-up\n")
    assert (row.consent_source, row.consent_at) == ("website sign-up", None)


def test_language_variants_are_read_as_the_language() -> None:
    languages = [
        r.language for r in rows("address,language\n+32470000012,nl-BE\n+32470000013,FR\n")
    ]
    assert languages == ["nl", "fr"]


# --- the file ---------------------------------------------------------------------------------


def test_semicolons_bom_blank_lines_and_crlf() -> None:
    text = (
        "\ufeffaddress;district;tags\r\n"
        "\r\n"
        "+32 470 00 00 12;north;a;\r\n"
        ";;\r\n"
        '"+32 470 00 00 13";"east; and west";"b|c"\r\n'
    )
    assert read(text) == [
        # An empty cell past the last column (a trailing separator) is no problem.
        "city.csv:3: sms +32470000012 {'district': 'north'}",
        "city.csv:5: sms +32470000013 {'district': 'east; and west'}",
    ]
    (first, second) = rows(text)
    assert (first.tags, second.tags) == (("a",), ("b", "c"))


def test_tabs_are_a_separator_too() -> None:
    (row,) = rows("address\tdistrict\n+32470000012\tnorth\n")
    assert row.attributes == {"district": "north"}


def test_a_quoted_cell_may_hold_a_line_break_and_lines_still_count() -> None:
    assert read('address,note\n+32470000012,"two\nlines"\nhello,x\n') == [
        "city.csv:2: sms +32470000012 {'note': 'two\\nlines'}",
        "city.csv:4: address: not a phone number",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "phone,district\n",
            "city.csv:1: no 'address' column (rename 'phone' to 'address'): the header row must "
            "name one column 'address' (a phone number, telegram:<chat id> or whatsapp:<number>)",
            id="no-address",
        ),
        pytest.param(
            "\n\naddress,District,district\n",
            "city.csv:3: columns 2 and 3 are both 'district': rename or delete one",
            id="duplicate-column",
        ),
        pytest.param(
            "address,,district\n",
            "city.csv:1: column 2 has no name: give it one, or delete the column",
            id="unnamed-column",
        ),
        pytest.param(
            "\n \n",
            "city.csv: the file is empty: it needs a header row with 'address'",
            id="empty",
        ),
        pytest.param(
            'address,note\n+32470000012,"never closed\n+32470000013,x\n',
            'city.csv:2: a quote (") opens here and is never closed; nothing was imported',
            id="open-quote",
        ),
    ],
)
def test_fatal_problems(text: str, message: str) -> None:
    with pytest.raises(ContactsFileError) as raised:
        read(text)
    assert str(raised.value) == message


def test_a_windows_1252_file_is_read_as_such() -> None:
    """Excel's plain "CSV" on a Western European Windows."""
    data = "address;naam;wijk\n+32470000012;Jos;Noord\n+32470000013;Ren\u00e9;Zu\u00efd\n"
    names = [(r.attributes["naam"], r.attributes["wijk"]) for r in rows(data.encode("cp1252"))]
    assert names == [("Jos", "Noord"), ("Ren\u00e9", "Zu\u00efd")]


@pytest.mark.parametrize(
    "data",
    [
        # UTF-8 accents first, then a line that is not UTF-8: neither encoding, or a mix.
        "address,name\n+32470000012,Andr\u00e9\n".encode() + b"+32470000013,Ren\xe9\n",
        # a byte Windows-1252 leaves undefined
        b"address,name\n+32470000012,Jos\n+32470000013,Ren\x81\n",
    ],
    ids=["utf-8-then-not", "undefined-byte"],
)
def test_text_in_no_known_encoding_is_fatal_at_its_line(data: bytes) -> None:
    with pytest.raises(ContactsFileError, match=r"^city\.csv:3: this is not UTF-8 text"):
        read(data)


# --- what a Belgian, Dutch, French, German or Spanish spreadsheet writes ------------------

# (language, the header of the seven columns with a meaning, in that language)
HEADERS = [
    ("en", "Address;Channel;Language;Time zone;Consent source;Consent date;Tags"),
    ("nl", "Adres;Kanaal;Taal;Tijdzone;Bron toestemming;Datum toestemming;Labels"),
    (
        "fr",
        "Adresse;Canal;Langue;Fuseau horaire;Source du consentement;Date du consentement;"
        "\u00c9tiquettes",
    ),
    (
        "de",
        "Adresse;Kanal;Sprache;Zeitzone;Einwilligungsquelle;Einwilligungsdatum;Schlagw\u00f6rter",
    ),
    (
        "es",
        "Direcci\u00f3n;Canal;Idioma;Zona horaria;Origen del consentimiento;"
        "Fecha del consentimiento;Etiquetas",
    ),
]


@pytest.mark.parametrize(("language", "header"), HEADERS, ids=[h[0] for h in HEADERS])
def test_every_column_is_known_by_its_usual_name_in_five_languages(
    language: str, header: str
) -> None:
    row = "0470 00 00 12;WhatsApp;nl;Europe/Brussels;formulier;12/10/2026;buurt|panel\n"
    (read_row,) = rows(f"{header}\n{row}", "BE")
    assert read_row == ContactRow(
        line=2,
        channel="whatsapp",
        value="+32470000012",
        language="nl",
        timezone="Europe/Brussels",
        consent_at=datetime(2026, 10, 12, tzinfo=ZoneInfo("Europe/Brussels")),
        consent_source="formulier",
        tags=("buurt", "panel"),
        source="city.csv",
    ), language


@pytest.mark.parametrize(
    "header", ["telefoon,wijk", "T\u00e9l\u00e9phone,quartier", "Handynummer,Bezirk"]
)
def test_a_phone_column_by_another_name_is_named_in_the_error(header: str) -> None:
    with pytest.raises(ContactsFileError, match=r"\(rename '[^']+' to 'address'\)"):
        read(f"{header}\n+32470000012,north\n")


# (cell, default region, address, the date read: a day in that region's order)
DATE_CASES = [
    ("12/10/2026", "BE", "+32470000012", datetime(2026, 10, 12, tzinfo=UTC)),
    ("12/10/2026", "FR", "+32470000012", datetime(2026, 10, 12, tzinfo=UTC)),
    ("12/10/2026", "ES", "+32470000012", datetime(2026, 10, 12, tzinfo=UTC)),
    ("12/10/2026", "GB", "+32470000012", datetime(2026, 10, 12, tzinfo=UTC)),
    ("12-10-2026", "NL", "+32470000012", datetime(2026, 10, 12, tzinfo=UTC)),
    ("12.10.2026", "DE", "+32470000012", datetime(2026, 10, 12, tzinfo=UTC)),
    ("12.10.26", "DE", "+32470000012", datetime(2026, 10, 12, tzinfo=UTC)),
    ("2/3/2026", "BE", "+32470000012", datetime(2026, 3, 2, tzinfo=UTC)),
    ("12/10/2026 14:30", "BE", "+32470000012", datetime(2026, 10, 12, 14, 30, tzinfo=UTC)),
    ("11/10/2026", "US", "+32470000012", datetime(2026, 11, 10, tzinfo=UTC)),  # the region decides
    (
        "2026/10/12",
        "US",
        "+32470000012",
        datetime(2026, 10, 12, tzinfo=UTC),
    ),  # a year first: anywhere
    ("2026.10.12", "", "+32470000012", datetime(2026, 10, 12, tzinfo=UTC)),
    # Without [contacts] default_region, the number's country decides.
    ("12/10/2026", "", "+32470000012", datetime(2026, 10, 12, tzinfo=UTC)),
    ("12/10/2026", "", "+33612345678", datetime(2026, 10, 12, tzinfo=UTC)),
    ("11/10/2026", "", "+1 202 555 0100", datetime(2026, 11, 10, tzinfo=UTC)),
]


@pytest.mark.parametrize(("cell", "region", "address", "expected"), DATE_CASES)
def test_dates_are_read_in_the_regions_usual_order(
    cell: str, region: str, address: str, expected: datetime
) -> None:
    text = f'address,timezone,consent_source,consent_at\n"{address}",UTC,form,{cell}\n'
    (row,) = rows(text, region)
    assert row.consent_at == expected


def test_a_belgian_excel_export_imports_every_row() -> None:
    """``;`` between columns, Windows-1252, Dutch headers, day-first dates, 0032 numbers."""
    data = (
        "Adres;Taal;Wijk;Bron toestemming;Datum toestemming\r\n"
        "0032 470 00 00 01;nl;Noord;papieren formulier;12/10/2026\r\n"
        "0032 470 00 00 02;fr;Sint-Jan;formulaire \u00e9crit;3/11/2026\r\n"
        "+32 470 00 00 03;nl;Zuid;website;12/10/2026 09:15\r\n"
    ).encode("cp1252")
    read_rows = rows(data)
    assert [(r.value, r.attributes["wijk"]) for r in read_rows] == [
        ("+32470000001", "Noord"),
        ("+32470000002", "Sint-Jan"),
        ("+32470000003", "Zuid"),
    ]
    assert [r.consent_at and r.consent_at.date().isoformat() for r in read_rows] == [
        "2026-10-12",
        "2026-11-03",
        "2026-10-12",
    ]


def test_rows_stream_one_by_one() -> None:
    """The reader never reads ahead of the row it yields: 100,000 rows stay out of memory."""
    consumed = 0

    def lines() -> Iterator[bytes]:
        nonlocal consumed
        yield b"address\n"
        for n in range(100_000):
            consumed += 1
            yield f"+3247{n:07d}\n".encode()

    items = read_contacts(lines(), "big.csv", now=NOW)
    first = next(items)
    assert isinstance(first, ContactRow | RowProblem)
    assert consumed <= 2
