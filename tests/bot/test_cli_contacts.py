"""``voxpop contacts`` as staff use it, on both engines: import summaries and exit codes,
masked numbers, show, erase with its confirmation."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy.orm import Session, sessionmaker

from bot.cli.main import main
from bot.service import Service
from messages import Address, InboundMessage
from tests.helpers import voxpop

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = str(ROOT / "surveys" / "examples" / "contacts.csv")


def run(db_url: str, *args: str, input: str | None = None, **env: str) -> Result:
    """``voxpop ARGS`` with extra ``VOXPOP_*`` settings."""
    return CliRunner().invoke(
        main,
        list(args),
        input=input,
        env={"VOXPOP_DATABASE__URL": db_url, "VOXPOP_CONFIG": os.devnull, **env},
        catch_exceptions=False,
    )


def citizen_sends(db: sessionmaker[Session], number: str, text: str) -> None:
    """An SMS from the citizen at ``number``, as the webhook hands it over (a simulator's
    message never reaches a citizen's contact)."""
    msg = InboundMessage(Address("sms", number), text, uuid.uuid4().hex, datetime.now(UTC))
    Service(db).receive(msg)


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "city.csv"
    path.write_text(text, encoding="utf-8")
    return str(path)


# --- import -----------------------------------------------------------------------------------


def test_import_the_example(db_url: str) -> None:
    result = voxpop(db_url, "contacts", "import", EXAMPLE)
    assert result.exit_code == 0, result.output
    assert result.stdout == "12 rows: 12 created, 0 updated, 0 unchanged, 0 skipped\n"
    again = voxpop(db_url, "contacts", "import", EXAMPLE)
    assert again.stdout == "12 rows: 0 created, 0 updated, 12 unchanged, 0 skipped\n"


def test_skipped_rows_are_named_and_exit_1(db_url: str, tmp_path: Path) -> None:
    path = write(tmp_path, "address,language\n+32470000001,nl\n0470000002,nl\n+32470000003,xx\n")
    result = voxpop(db_url, "contacts", "import", path)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{path}:3: address: no country code: write the number as +32..., or set "
        "[contacts] default_region",
        f"{path}:4: language 'xx' is not one Voxpop speaks (en, nl, fr, de, es)",
    ]
    assert result.stdout == "3 rows: 1 created, 0 updated, 0 unchanged, 2 skipped\n"


def test_a_default_region_reads_local_numbers(db_url: str, tmp_path: Path) -> None:
    path = write(tmp_path, "address\n0470 00 00 02\n")
    result = run(db_url, "contacts", "import", path, VOXPOP_CONTACTS__DEFAULT_REGION="be")
    assert result.exit_code == 0, result.output
    shown = voxpop(db_url, "contacts", "list", "--show-numbers")
    assert "+32470000002" in shown.stdout


def test_an_unknown_region_is_refused(db_url: str) -> None:
    result = run(db_url, "contacts", "import", EXAMPLE, VOXPOP_CONTACTS__DEFAULT_REGION="XX")
    assert result.exit_code == 1
    assert "[contacts] default_region 'XX' is not a region code like BE" in result.stderr


def test_an_unknown_default_timezone_is_refused(db_url: str) -> None:
    result = run(db_url, "contacts", "import", EXAMPLE, VOXPOP_PUSHES__TIMEZONE="Europe/Gent")
    assert result.exit_code == 1
    assert "[pushes] timezone 'Europe/Gent' is not an IANA timezone name" in result.stderr


def test_a_bad_header_imports_nothing(db_url: str, tmp_path: Path) -> None:
    path = write(tmp_path, "phone,district\n+32470000001,north\n")
    result = voxpop(db_url, "contacts", "import", path)
    assert result.exit_code == 1
    assert f"Error: {path}:1: no 'address' column (rename 'phone' to 'address')" in result.stderr
    assert result.stderr.rstrip().endswith("nothing was imported")
    assert "no contacts yet" in voxpop(db_url, "contacts", "list").stdout


def test_dry_run(db_url: str) -> None:
    result = voxpop(db_url, "contacts", "import", "--dry-run", EXAMPLE)
    assert result.exit_code == 0
    assert result.stdout == (
        "12 rows: 12 created, 0 updated, 0 unchanged, 0 skipped (dry run: nothing was stored)\n"
    )
    assert "no contacts yet" in voxpop(db_url, "contacts", "list").stdout


def test_opted_out_contacts_are_reported(
    db_url: str, db: sessionmaker[Session], tmp_path: Path
) -> None:
    citizen_sends(db, "+32470000001", "STOP")
    path = write(tmp_path, "address,consent_source\n+32470000001,paper form\n")
    result = voxpop(db_url, "contacts", "import", path)
    assert result.stdout.splitlines() == [
        "1 rows: 0 created, 1 updated, 0 unchanged, 0 skipped",
        "1 of them opted out earlier (STOP): they stay opted out, and nothing is pushed to them",
    ]


def test_many_problems_are_summed_up(db_url: str, tmp_path: Path) -> None:
    rows = "".join(f"0470{n:06d}\n" for n in range(3000)) + "+32470000001\n"
    result = voxpop(db_url, "contacts", "import", write(tmp_path, "address\n" + rows))
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len([line for line in lines if "city.csv:" in line]) == 100
    assert "... and 2,900 more problems, most often:" in lines
    assert (
        "  2,900 x address: no country code: write the number as +32..., or set "
        "[contacts] default_region"
    ) in lines
    assert result.stdout == "3,001 rows: 1 created, 0 updated, 0 unchanged, 3,000 skipped\n"


# --- list and show ----------------------------------------------------------------------------


def test_list_masks_numbers(db_url: str) -> None:
    voxpop(db_url, "contacts", "import", EXAMPLE)
    result = voxpop(db_url, "contacts", "list", "--limit", "4")
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        "ID  CHANNEL   ADDRESS           LANGUAGE  CONSENT     OPTED OUT",
        "1   sms       +32 470 •• •• 01  nl        2026-10-12  -",
        "2   whatsapp  +32 470 •• •• 02  fr        2026-10-12  -",
        "3   telegram  ••42              en        2026-10-20  -",
        "4   sms       +32 470 •• •• 03  nl        2026-10-14  -",
        "showing 4 of 12 contacts (--limit to see more)",
    ]


def test_list_filters_and_full_numbers(db_url: str) -> None:
    voxpop(db_url, "contacts", "import", EXAMPLE)
    result = voxpop(
        db_url,
        "contacts",
        "list",
        "--where",
        "district=north",
        "--where",
        "Age band=65+",
        "--show-numbers",
    )
    assert result.stdout.splitlines() == [
        "ID  CHANNEL   ADDRESS       LANGUAGE  CONSENT     OPTED OUT",
        "4   sms       +32470000003  nl        2026-10-14  -",
        "10  whatsapp  +32470000006  nl        2026-10-12  -",
        "2 contacts",
    ]
    none = voxpop(db_url, "contacts", "list", "--channel", "telegram", "--language", "de")
    assert none.stdout == "no contacts match\n"
    bad = voxpop(db_url, "contacts", "list", "--where", "north")
    assert bad.exit_code == 2
    assert "'north': use ATTRIBUTE=VALUE" in bad.stderr


def test_list_by_consent(db_url: str, db: sessionmaker[Session]) -> None:
    voxpop(db_url, "contacts", "import", EXAMPLE)
    citizen_sends(db, "+32470000003", "STOP")
    result = voxpop(db_url, "contacts", "list", "--consent", "opted_out")
    row, total = result.stdout.splitlines()[1:]
    assert row.split()[:6] == ["4", "sms", "+32", "470", "••", "••"]
    assert row.split()[-3:-1] == ["nl", "2026-10-14"]  # and the day of their STOP
    assert total == "1 contact"
    none = voxpop(db_url, "contacts", "list", "--consent", "none", "--channel", "sms")
    row, total = none.stdout.splitlines()[1:]
    assert row.split() == ["11", "sms", "+32", "470", "••", "••", "07", "fr", "-", "-"]
    assert total == "1 contact"


def test_show(db_url: str, db: sessionmaker[Session]) -> None:
    voxpop(db_url, "contacts", "import", EXAMPLE)
    citizen_sends(db, "+32470000001", "STOP")
    result = voxpop(db_url, "contacts", "show", "+32 470 00 00 01")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "contact 1"
    assert "  language    nl" in lines
    assert "  timezone    Europe/Brussels" in lines
    assert "  tags        volunteer" in lines
    assert "  attributes  age_band = 35-49" in lines
    assert "              district = north" in lines
    assert "    sms +32 470 •• •• 01" in lines
    assert (
        "      consent       2026-10-12 00:00 Europe/Brussels, paper form, town hall 2026-10"
        in lines
    )
    assert any(line.startswith("      opted out     20") for line in lines)
    assert "+32470000001" not in result.stdout
    full = voxpop(db_url, "contacts", "show", "1", "--show-numbers")
    assert "    sms +32470000001" in full.stdout.splitlines()


def test_show_what_is_not_there(db_url: str) -> None:
    missing = voxpop(db_url, "contacts", "show", "telegram:999")
    assert missing.exit_code == 1
    assert "Error: no contact has this address" in missing.stderr
    assert (
        "Error: no contact 42 (a phone number needs its +"
        in voxpop(db_url, "contacts", "show", "42").stderr
    )


# --- erase ------------------------------------------------------------------------------------


def test_erase_asks_first(db_url: str) -> None:
    voxpop(db_url, "contacts", "import", EXAMPLE)
    kept = voxpop(db_url, "contacts", "erase", "whatsapp:+32470000002", input="n\n")
    assert kept.exit_code == 1
    assert (
        "Erase contact 2 (whatsapp +32 470 •• •• 02)? Their choices stay, anonymous; what "
        "they typed goes. This cannot be undone. [y/N]: n"
    ) in kept.output
    assert "Aborted" in kept.output
    assert "contact 2" in voxpop(db_url, "contacts", "show", "2").stdout

    erased = voxpop(db_url, "contacts", "erase", "whatsapp:+32470000002", input="y\n")
    assert erased.exit_code == 0
    assert erased.stdout.endswith("contact 2 erased\n")
    gone = voxpop(db_url, "contacts", "show", "2")
    assert gone.exit_code == 1
    assert "contact 2 was erased on" in gone.stderr


def test_erase_yes(db_url: str) -> None:
    voxpop(db_url, "contacts", "import", EXAMPLE)
    result = voxpop(db_url, "contacts", "erase", "telegram:4242", "--yes")
    assert result.stdout == "contact 3 erased\n"
    assert "11 contacts" in voxpop(db_url, "contacts", "list").stdout
    again = voxpop(db_url, "contacts", "erase", "telegram:4242", "--yes")
    assert again.exit_code == 1
    assert "no contact has this address" in again.stderr


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_large_file_shows_progress_without_breaking_the_summary(
    db_url: str, tmp_path: Path
) -> None:
    rows = "".join(f"+3247{n:07d}\n" for n in range(5000))
    result = voxpop(db_url, "contacts", "import", write(tmp_path, "address\n" + rows))
    assert result.exit_code == 0
    assert result.stdout == "5,000 rows: 5,000 created, 0 updated, 0 unchanged, 0 skipped\n"
