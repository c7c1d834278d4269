"""The ``voxpop`` command line as staff use it: exit codes, messages and tables.

Database commands run on both engines through ``db_url``; ``db upgrade`` gets a database
of its own that nothing has migrated yet.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.error import HTTPError
from urllib.request import ProxyHandler, build_opener

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, inspect, select, text

from bot.cli.main import main
from bot.service import Service
from messages import Address, InboundMessage
from storage.db import make_engine, session_factory, transaction, with_schema
from storage.migrate import current, head
from storage.models import Contact, Message, SessionRow
from tests.conftest import MAKE_RUN_PORTS
from tests.helpers import snapshot, voxpop

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(str(p) for p in (ROOT / "surveys" / "examples").glob("*.toml"))
FIXTURES = Path(__file__).parent / "fixtures"
EVERY = str(FIXTURES / "every-type.toml")
OTHER = str(FIXTURES / "other.toml")
CLOSED = str(FIXTURES / "closed.toml")
BROKEN = str(FIXTURES / "broken.toml")
COST_LINE = re.compile(
    r"(?P<file>.+): sms (?:intro|outro|question '[a-z0-9_-]+') \[[a-z]{2}\]: "
    r"(?:GSM-7|UCS-2), \d+ characters, (?P<segments>\d+) segments?"
)


def _count(db_url: str, model: type[Contact] | type[SessionRow] | type[Message]) -> int:
    engine = make_engine(db_url)
    try:
        with transaction(session_factory(engine), read_only=True) as s:
            return s.scalar(select(func.count()).select_from(model)) or 0
    finally:
        engine.dispose()


# --- db upgrade -----------------------------------------------------------------------------


@pytest.fixture
def fresh_url(db_url: str, postgres_url: str, tmp_path: Path) -> Iterator[str]:
    """A database nothing has migrated yet, on ``db_url``'s engine."""
    if db_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    # A schema of our own: the fixture's is migrated already. Same naming as conftest's.
    schema = f"voxpop_test_cli_{os.getpid()}_{secrets.token_hex(4)}"
    admin = make_engine(postgres_url)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        yield with_schema(postgres_url, schema)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_db_upgrade_creates_the_schema_and_is_idempotent(fresh_url: str) -> None:
    assert current(fresh_url) is None
    first = voxpop(fresh_url, "db", "upgrade")
    assert first.exit_code == 0, first.output
    assert current(fresh_url) == head()
    tables = _tables(fresh_url)
    assert {"contacts", "addresses", "surveys", "sessions", "answers", "messages"} <= tables

    # Running it again (every deploy does) changes nothing and keeps the data.
    assert voxpop(fresh_url, "survey", "load", OTHER).exit_code == 0
    again = voxpop(fresh_url, "db", "upgrade")
    assert again.exit_code == 0, again.output
    assert "up to date" in again.stdout
    assert current(fresh_url) == head()
    assert _tables(fresh_url) == tables
    assert "other" in voxpop(fresh_url, "survey", "list").stdout


# --- survey validate ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "exit_code", "ok", "errors"),
    [
        pytest.param(EXAMPLES, 0, EXAMPLES, [], id="examples"),
        pytest.param([EVERY, OTHER, CLOSED], 0, [EVERY, OTHER, CLOSED], [], id="fixtures"),
        pytest.param(
            [BROKEN],
            1,
            [],
            [f"{BROKEN}:9: error: unknown key 'typ' in a question; did you mean 'type'?"],
            id="broken",
        ),
        pytest.param(
            [*EXAMPLES, BROKEN],
            1,
            EXAMPLES,
            [f"{BROKEN}:9: error: unknown key 'typ' in a question; did you mean 'type'?"],
            id="one-broken-among-good",
        ),
    ],
)
def test_survey_validate(
    tmp_path: Path, files: list[str], exit_code: int, ok: list[str], errors: list[str]
) -> None:
    db_file = tmp_path / "untouched.db"
    result = voxpop(f"sqlite:///{db_file}", "survey", "validate", *files)
    assert result.exit_code == exit_code, result.output
    assert [line for line in result.stdout.splitlines() if line.endswith(": ok")] == [
        f"{f}: ok" for f in ok
    ]
    reported = [line for line in result.stderr.splitlines() if ": error: " in line]
    assert set(errors) <= set(reported)
    # Editors and CI logs jump to "file:line: error: ..."; nothing else goes there.
    assert all(re.match(rf"{re.escape(BROKEN)}:\d+: error: ", line) for line in reported)
    assert bool(reported) == bool(errors)
    # Every file, good or bad, gets its SMS costs: one line per message and language.
    priced = {m["file"] for m in map(COST_LINE.fullmatch, result.stdout.splitlines()) if m}
    assert priced == set(files)
    assert not db_file.exists(), "validate must not need a database"


def test_survey_validate_prices_every_message_of_the_examples() -> None:
    result = voxpop("sqlite://", "survey", "validate", *EXAMPLES)
    lines = result.stdout.splitlines()
    park = EXAMPLES[0]
    assert park.endswith("central-park.toml")
    expected_questions = [
        "visits",
        "why_not",
        "activities",
        "clean",
        "more_bins",
        "playground",
        "birth_year",
        "idea",
    ]
    for language in ("en", "nl", "fr"):
        for question in expected_questions:
            assert any(
                line.startswith(f"{park}: sms question '{question}' [{language}]: ")
                for line in lines
            ), (question, language)
        assert any(line.startswith(f"{park}: sms intro [{language}]: ") for line in lines)


@pytest.mark.parametrize(
    ("intro", "cost"),
    [
        ("Hello", "GSM-7, 5 characters, 1 segment"),
        ("x" * 160, "GSM-7, 160 characters, 1 segment"),
        ("x" * 161, "GSM-7, 161 characters, 2 segments"),
        ("Привет мир", "UCS-2, 10 characters, 1 segment"),
    ],
)
def test_survey_validate_prints_the_sms_cost(tmp_path: Path, intro: str, cost: str) -> None:
    path = tmp_path / "cost.toml"
    path.write_text(
        'id = "cost"\ntitle = { en = "Cost" }\nlanguages = ["en"]\nkeywords = ["COST"]\n'
        f'intro = {{ en = "{intro}" }}\n\n'
        '[[questions]]\nid = "ok"\ntype = "yesno"\ntext = { en = "OK?" }\n',
        encoding="utf-8",
    )
    result = voxpop("sqlite://", "survey", "validate", str(path))
    assert result.exit_code == 0, result.output
    assert f"{path}: sms intro [en]: {cost}" in result.stdout.splitlines()


def test_survey_validate_quiet_prints_only_problems() -> None:
    result = voxpop("sqlite://", "survey", "validate", "--quiet", EVERY, BROKEN)
    assert result.exit_code == 1
    assert not any(COST_LINE.fullmatch(line) for line in result.stdout.splitlines())
    assert f"{EVERY}: ok" in result.stdout.splitlines()
    assert f"{BROKEN}:9: error: " in result.stderr


# --- survey load and list -------------------------------------------------------------------


def _copy(src: str, dst: Path, extra: str = "") -> str:
    shutil.copyfile(src, dst)
    if extra:
        with dst.open("a", encoding="utf-8") as f:
            f.write(extra)
    return str(dst)


def test_survey_load_stores_nothing_when_any_file_has_errors(db_url: str) -> None:
    result = voxpop(db_url, "survey", "load", EVERY, BROKEN, OTHER)
    assert result.exit_code == 1
    assert f"{BROKEN}:9: error: " in result.stderr
    assert "nothing was loaded" in result.stderr
    assert "loaded as" not in result.stdout
    listed = voxpop(db_url, "survey", "list")
    assert listed.exit_code == 0
    assert listed.stdout.startswith("no surveys loaded")


@pytest.mark.parametrize(
    ("step", "slug", "version", "verb"),
    [
        ("first load", "central-park", 1, "loaded"),
        ("first load", "street-lighting", 1, "loaded"),
        ("same file again", "central-park", 1, "unchanged"),
        ("changed file", "central-park", 2, "loaded"),
        ("changed file again", "central-park", 2, "unchanged"),
    ],
)
def test_survey_load_versions(
    db_url: str, tmp_path: Path, step: str, slug: str, version: int, verb: str
) -> None:
    changed = _copy(EXAMPLES[0], tmp_path / "park.toml", "\n# a comment changes the file\n")
    steps = {
        "first load": EXAMPLES,
        "same file again": EXAMPLES[:1],
        "changed file": [changed],
        "changed file again": [changed],
    }
    for name, files in steps.items():
        result = voxpop(db_url, "survey", "load", *files)
        assert result.exit_code == 0, result.output
        if name == step:
            break
    lines = [line for line in result.stdout.splitlines() if line.startswith(f"{slug}: ")]
    assert len(lines) == 1, result.stdout
    assert verb in lines[0]
    assert re.search(rf"\bversion\b.*\b{version}$", lines[0]), lines[0]


def _respond(db_url: str, phone: str, lines: list[str]) -> None:
    """A citizen answering by SMS (through the service, as the webhook would)."""
    engine = make_engine(db_url)
    try:
        service = Service(session_factory(engine))
        for i, line in enumerate(lines):
            msg = InboundMessage(Address("sms", phone), line, f"{phone}-{i}", datetime.now(UTC))
            replies = service.receive(msg).outgoing
        assert [r.text for r in replies] == ["Thanks!"]
    finally:
        engine.dispose()


def _table(stdout: str) -> list[dict[str, str]]:
    """Parse the aligned ``survey list`` table, checking that cells sit under their headers."""
    header, *rows = stdout.splitlines()
    names = header.split()
    starts = [header.index(name) for name in names]
    parsed: list[dict[str, str]] = []
    for row in rows:
        cells: dict[str, str] = {}
        for i, name in enumerate(names):
            end = starts[i + 1] if i + 1 < len(starts) else len(row)
            assert row[starts[i] - 1 : starts[i]].strip() == "", (row, name)
            cells[name] = row[starts[i] : end].strip()
        parsed.append(cells)
    return parsed


def test_survey_list(db_url: str, tmp_path: Path) -> None:
    assert voxpop(db_url, "survey", "load", EVERY, OTHER, CLOSED).exit_code == 0
    # Two complete responses to every-type, one on each version.
    complete = ["EVERY", "red", "1", "yes", "3", "40", "5", "SKIP"]
    _respond(db_url, "+32470000001", complete)
    changed = _copy(EVERY, tmp_path / "every.toml", "\n# v2\n")
    assert voxpop(db_url, "survey", "load", changed).exit_code == 0
    _respond(db_url, "+32470000002", complete)
    # Staff trying it in the simulator: counted apart, not as a citizen's response.
    chat = voxpop(db_url, "chat", "--from", "+32470000003", input="\n".join(complete) + "\n")
    assert chat.stdout.endswith("bot> Thanks!\n"), chat.output

    result = voxpop(db_url, "survey", "list")
    assert result.exit_code == 0, result.output
    columns = ["ID", "TITLE", "VERSION", "STATUS", "RESPONSES"]
    assert result.stdout.splitlines()[0].split()[: len(columns)] == columns
    expected = [
        ("closed-poll", "Closed poll", "1", "closed", "0"),
        ("every-type", "Every type", "2", "open", "2"),
        ("other", "Other", "1", "open", "0"),
    ]
    table = _table(result.stdout)
    assert [{c: row[c] for c in columns} for row in table] == [
        dict(zip(columns, row, strict=True)) for row in expected
    ]
    assert [row["SIMULATOR"] for row in table] == ["0", "1", "0"]


# --- chat -----------------------------------------------------------------------------------


@pytest.mark.parametrize("slug", ["unknown", "Every-Type", "every"])
def test_chat_start_unknown_survey_is_a_clear_error(db_url: str, slug: str) -> None:
    assert voxpop(db_url, "survey", "load", EVERY).exit_code == 0
    result = voxpop(db_url, "chat", "--start", slug, input="hello\n")
    assert result.exit_code != 0
    assert f"Error: no survey '{slug}' is loaded" in result.stderr
    assert "Traceback" not in result.output
    # Nothing was half-done: no contact, no session, no message.
    assert [_count(db_url, m) for m in (Contact, SessionRow, Message)] == [0, 0, 0]


@pytest.mark.parametrize(
    ("channel", "options"),
    [
        ("sms", ["bot> 1 Red", "bot> 2 Green", "bot> 3 Blue"]),
        ("whatsapp", ["bot> 1 Red", "bot> 2 Green", "bot> 3 Blue"]),
        ("telegram", ["bot> [1] Red", "bot> [2] Green", "bot> [3] Blue"]),
    ],
)
def test_chat_renders_as_the_channel_would(db_url: str, channel: str, options: list[str]) -> None:
    assert voxpop(db_url, "survey", "load", EVERY).exit_code == 0
    result = voxpop(db_url, "chat", "--channel", channel, input="EVERY\n")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "you> EVERY",
        "bot> Seven short questions.",
        "bot> Favourite colour?",
        *options,
    ]


def test_chat_start_begins_the_survey_like_an_invitation(db_url: str) -> None:
    assert voxpop(db_url, "survey", "load", EVERY).exit_code == 0
    result = voxpop(db_url, "chat", "--channel", "telegram", "--start", "every-type", input="2\n")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[:6] == [
        "bot> Seven short questions.",
        "bot> Favourite colour?",
        "bot> [1] Red",
        "bot> [2] Green",
        "bot> [3] Blue",
        "you> 2",
    ]


def test_piped_chat_prints_the_conversation(db_url: str) -> None:
    assert voxpop(db_url, "survey", "load", EVERY, OTHER).exit_code == 0
    result = voxpop(db_url, "chat", "--from", "+32470000009", input="OTHER\nmaybe\nyes\n")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "you> OTHER",
        "bot> Is it OK?",
        "bot> 1 Yes",
        "bot> 2 No",
        "you> maybe",
        "bot> Please reply YES or NO.",
        "you> yes",
        "bot> Thank you for taking part!",
    ]
    # The simulator shows replies; none of them may be queued for a real send.
    engine = make_engine(db_url)
    try:
        with transaction(session_factory(engine), read_only=True) as s:
            statuses = set(
                s.scalars(select(Message.status).where(Message.direction == "out")).all()
            )
            addresses = set(s.scalars(select(Message.address)).all())
    finally:
        engine.dispose()
    assert statuses == {"simulated"}
    # A test phone's conversation lives in the simulators' own space, apart from the citizen's.
    assert addresses == {"sim:+32470000009"}


def test_piped_chat_with_no_input_exits_cleanly(db_url: str) -> None:
    result = voxpop(db_url, "chat", input="")
    assert (result.exit_code, result.stdout) == (0, "")


# --- config ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "message"),
    [
        pytest.param(
            "[server]\nport = 8081\nbogus = 1\n",
            ":3: unknown key 'bogus' in [server]",
            id="unknown-key",
        ),
        pytest.param(
            '[server]\nport = 8081\n\n[privacy]\npseudonym_key = "k"\nport = 1\n',
            ":6: unknown key 'port' in [privacy]",
            id="key-of-another-section",
        ),
        pytest.param(
            "[servre]\nport = 8081\n", ":1: unknown section [servre]", id="unknown-section"
        ),
    ],
)
def test_a_config_file_with_an_unknown_key_is_refused(
    tmp_path: Path, config: str, message: str
) -> None:
    path = tmp_path / "voxpop.toml"
    path.write_text(config, encoding="utf-8")
    db_file = tmp_path / "never.db"
    result = CliRunner().invoke(
        main,
        ["--config", str(path), "survey", "list"],
        env={"VOXPOP_DATABASE__URL": f"sqlite:///{db_file}", "VOXPOP_CONFIG": os.devnull},
        catch_exceptions=False,
    )
    assert result.exit_code != 0
    assert f"Error: {path}{message}" in result.stderr
    assert "Traceback" not in result.output
    assert not db_file.exists()


# --- what a first-time user ran into -------------------------------------------------------


def _rekeyed(src: str, dst: Path, *, slug: str, keywords: str) -> str:
    """A copy of ``src`` under another id, with the given keywords line."""
    text = Path(src).read_text(encoding="utf-8")
    text = re.sub(r'(?m)^id = ".*"$', f'id = "{slug}"', text, count=1)
    text = re.sub(r"(?m)^keywords = .*$", f"keywords = {keywords}", text)
    dst.write_text(text, encoding="utf-8")
    return str(dst)


def test_survey_load_refuses_a_keyword_another_loaded_survey_uses(
    db_url: str, tmp_path: Path
) -> None:
    park = next(p for p in EXAMPLES if p.endswith("central-park.toml"))
    assert voxpop(db_url, "survey", "load", park).exit_code == 0
    copy = _rekeyed(park, tmp_path / "copy.toml", slug="park-copy", keywords='["Park!", "NEW"]')
    result = voxpop(db_url, "survey", "load", copy)
    assert result.exit_code == 1
    assert (
        f"{copy}:7: error: keyword 'Park!' also starts survey 'central-park' (already loaded)"
        in result.stderr
    )
    assert "nothing was loaded" in result.stderr
    # The citizen texting PARK still reaches the Central Park consultation.
    chat = voxpop(db_url, "chat", input="PARK\n")
    assert "How often do you visit the park?" in chat.stdout


def test_survey_validate_checks_files_against_each_other(tmp_path: Path) -> None:
    park = next(p for p in EXAMPLES if p.endswith("central-park.toml"))
    copy = _rekeyed(park, tmp_path / "copy.toml", slug="park-copy", keywords='["PARC"]')
    result = voxpop(f"sqlite:///{tmp_path}/none.db", "survey", "validate", "--quiet", park, copy)
    assert result.exit_code == 1
    assert f"{copy}:7: error: keyword 'PARC' also starts survey 'central-park'" in result.stderr
    assert result.stdout.splitlines() == [f"{park}: ok"]


# Files checked after street-lighting (keywords LIGHTS, LICHT) is loaded: per file, the error
# it gets (None: it is ok). `survey validate` and `survey load` must say the same.
SIDE_BY_SIDE = {
    "keyword of a loaded one": (
        [("lamps", '["LIGHTS"]')],
        [
            "lamps.toml:5: error: keyword 'LIGHTS' also starts survey 'street-lighting' "
            "(already loaded)"
        ],
    ),
    "next version of a loaded one": ([("street-lighting", '["LIGHTS", "LICHT"]')], []),
    "two files, one keyword": (
        [("first", '["SAME"]'), ("second", '["same"]')],
        ["second.toml:5: error: keyword 'same' also starts survey 'first' (first.toml)"],
    ),
    "two files, one id": (
        [("twin", '["ONE"]'), ("twin", '["TWO"]')],
        ["twin-2.toml:2: error: survey id 'twin' is also used by twin-1.toml"],
    ),
    "clean": ([("fresh", '["FRESH"]')], []),
}


@pytest.mark.parametrize("command", ["validate", "load"])
@pytest.mark.parametrize(("files", "errors"), SIDE_BY_SIDE.values(), ids=SIDE_BY_SIDE.keys())
def test_validate_and_load_check_files_side_by_side_and_with_loaded_ones_alike(
    db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    command: str,
    files: list[tuple[str, str]],
    errors: list[str],
) -> None:
    lights = next(p for p in EXAMPLES if p.endswith("street-lighting.toml"))
    assert voxpop(db_url, "survey", "load", lights).exit_code == 0
    monkeypatch.chdir(tmp_path)  # short file names in the messages
    names = []
    for index, (slug, keywords) in enumerate(files, 1):
        name = f"{slug}.toml" if [s for s, _ in files].count(slug) == 1 else f"{slug}-{index}.toml"
        _rekeyed(EVERY, tmp_path / name, slug=slug, keywords=keywords)
        names.append(name)
    result = voxpop(db_url, "survey", command, *names)
    assert [line for line in result.stderr.splitlines() if ": error: " in line] == errors
    assert result.exit_code == (1 if errors else 0), result.output
    wrong = {line.split(":")[0] for line in errors}
    if command == "validate":
        oks = [line for line in result.stdout.splitlines() if line.endswith(": ok")]
        assert oks == [f"{name}: ok" for name in names if name not in wrong]
    else:
        assert ("nothing was loaded" in result.stderr) == bool(errors)


def test_survey_validate_and_load_accept_a_folder(db_url: str) -> None:
    folder = str(ROOT / "surveys" / "examples")
    validated = CliRunner().invoke(main, ["survey", "validate", "--quiet", folder])
    assert validated.exit_code == 0, validated.output
    assert validated.stdout.count(": ok") == len(EXAMPLES)
    loaded = voxpop(db_url, "survey", "load", folder)
    assert loaded.exit_code == 0, loaded.output
    assert loaded.stdout.count("loaded as version 1") == len(EXAMPLES)


def test_loading_an_earlier_text_again_makes_it_current(db_url: str, tmp_path: Path) -> None:
    lights = next(p for p in EXAMPLES if p.endswith("street-lighting.toml"))
    original = Path(lights).read_text(encoding="utf-8")
    mine = tmp_path / "lights.toml"
    mine.write_text(original, encoding="utf-8")
    assert "version 1" in voxpop(db_url, "survey", "load", str(mine)).stdout
    mine.write_text(original.replace("4 quick questions", "Four quick questions"), "utf-8")
    assert "loaded as version 2" in voxpop(db_url, "survey", "load", str(mine)).stdout
    mine.write_text(original, encoding="utf-8")
    again = voxpop(db_url, "survey", "load", str(mine))
    assert "back to an earlier text: current version is again 1" in again.stdout
    chat = voxpop(db_url, "chat", "--from", "+32470000077", input="LIGHTS\n")
    assert "The city is checking its street lights. 4 quick questions." in chat.stdout


@pytest.mark.parametrize(
    ("channel", "sender", "hint"),
    [
        ("sms", "hello", "use a phone number in international format"),
        ("sms", "0470123456", "use a phone number in international format"),
        ("telegram", "+3247", "use a numeric chat id"),
    ],
)
def test_chat_refuses_an_address_no_provider_would_send(
    db_url: str, channel: str, sender: str, hint: str
) -> None:
    result = voxpop(db_url, "chat", "--channel", channel, "--from", sender, input="PARK\n")
    assert result.exit_code == 2
    assert hint in result.stderr
    assert _count(db_url, Contact) == 0


def test_chat_ignores_blank_lines(db_url: str) -> None:
    assert voxpop(db_url, "survey", "load", *EXAMPLES).exit_code == 0
    result = voxpop(db_url, "chat", input="\n\nhello\n\n")
    assert result.stdout.splitlines()[0] == "you> hello"
    assert _count(db_url, Message) == 1 + 1  # one inbound, one short pointer to the keywords


def test_export_to_a_folder_that_does_not_exist_is_one_clear_line(
    db_url: str, tmp_path: Path
) -> None:
    assert voxpop(db_url, "survey", "load", *EXAMPLES).exit_code == 0
    target = tmp_path / "missing" / "out.csv"
    result = voxpop(db_url, "results", "export", "central-park", "--out", str(target))
    assert result.exit_code == 1
    assert result.stderr == f"Error: cannot write {target}: No such file or directory\n"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("notaurl", "Error: cannot open the database: "),
        ("mysql://root@127.0.0.1/x", "Error: cannot open the database: unsupported database"),
    ],
)
def test_a_bad_database_url_is_one_clear_line(url: str, message: str) -> None:
    result = voxpop(url, "survey", "list")
    assert result.exit_code == 1
    assert result.stderr.startswith(message)
    assert "Traceback" not in result.output


def test_a_database_without_the_schema_says_what_to_run(tmp_path: Path) -> None:
    result = voxpop(f"sqlite:///{tmp_path}/new.db", "survey", "list")
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: the database has no Voxpop schema yet: run `voxpop db upgrade` first\n"
    )


def test_serve_on_a_busy_port_is_one_clear_line(db_url: str) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = voxpop(db_url, "serve", "--port", str(port))
    assert result.exit_code == 1
    assert f"Error: cannot listen on 127.0.0.1:{port}: " in result.stderr
    assert "is another Voxpop running? choose another port: voxpop serve --port N" in result.stderr


def test_make_run_and_make_phone_ports_are_taken_while_the_tests_run(
    make_run_ports: dict[int, str],
) -> None:
    """tests/conftest.py holds them, as a running ``make run`` and ``make phone`` would (or
    they were taken when the run began)."""
    assert set(make_run_ports) == set(MAKE_RUN_PORTS)
    opener = build_opener(ProxyHandler({}))
    for port in (p for p, holder in make_run_ports.items() if holder == "impostor"):
        with socket.socket() as probe, pytest.raises(OSError, match="in use"):
            probe.bind(("127.0.0.1", port))
        with pytest.raises(HTTPError) as refused:
            opener.open(f"http://127.0.0.1:{port}/healthz", timeout=10)
        assert refused.value.code == 421
        refused.value.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("public_url", ["", "https://voxpop.example.city"])
def test_serve_on_port_0_takes_a_free_port_and_says_which(
    db_url: str, tmp_path: Path, public_url: str
) -> None:
    """Not ``[server] port`` (8080, taken while the tests run): any free port, printed; and
    where the simulator is, or why it is off."""
    log = tmp_path / "serve.log"
    env = os.environ | {
        "VOXPOP_CONFIG": os.devnull,
        "VOXPOP_DATABASE__URL": db_url,
        "VOXPOP_SERVER__PUBLIC_URL": public_url,
    }
    command = [sys.executable, "-m", "bot.cli.main", "serve", "--host", "127.0.0.1", "--port", "0"]
    with log.open("wb") as out:
        server = subprocess.Popen(command, env=env, cwd=ROOT, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 30
        # The simulator's line comes after the port's: once it is there, both are.
        while not re.search(r"simulator: .*\n", log.read_text()):
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        found = re.search(r"listening on http://127\.0\.0\.1:(\d+)\n", log.read_text())
        assert found is not None, log.read_text()
        port = int(found[1])
        assert port not in (0, *MAKE_RUN_PORTS)
        said = (
            "simulator: off ([server] public_url is set; [server] simulator = true turns it on)"
            if public_url
            else f"simulator: http://127.0.0.1:{port}/simulator"
        )
        assert said in log.read_text()
        # No channel in this configuration: the server says so, and where to read how.
        assert "channels: none configured, so citizens cannot reach Voxpop" in log.read_text()
        assert "see docs/channels.md" in log.read_text()
        opener = build_opener(ProxyHandler({}))
        with opener.open(f"http://127.0.0.1:{port}/healthz", timeout=10) as answer:
            assert answer.status == 200
        # No staff account yet: the one-time link that creates the first admin, at the
        # address staff reach this server by.
        assert f"staff console: http://127.0.0.1:{port}/" in log.read_text()
        base = public_url or f"http://127.0.0.1:{port}"
        link = re.search(re.escape(base) + r"/setup/([\w-]+)\n", log.read_text())
        assert link is not None, log.read_text()
        with opener.open(f"http://127.0.0.1:{port}/setup/{link[1]}", timeout=10) as answer:
            assert "Create the first admin account" in answer.read().decode()
    finally:
        server.terminate()
        server.wait(10)


@pytest.mark.parametrize("command", ["load", "validate"])
def test_a_folder_without_consultation_files_is_an_error(
    db_url: str, tmp_path: Path, command: str
) -> None:
    (tmp_path / "notes.txt").write_text("not a survey\n", encoding="utf-8")
    result = voxpop(db_url, "survey", command, str(tmp_path))
    assert result.exit_code == 1
    assert f"{tmp_path}: no consultation files (*.toml) in this folder" in result.stderr
    assert voxpop(db_url, "survey", "list").stdout.startswith("no surveys loaded")


def _serve_loading(db_url: str, load: str) -> Result:
    """``voxpop serve`` with ``[surveys] load = [load]``; it must stop before serving."""
    env = {"VOXPOP_DATABASE__URL": db_url, "VOXPOP_CONFIG": os.devnull}
    env["VOXPOP_SURVEYS__LOAD"] = load
    return CliRunner().invoke(main, ["serve", "--port", "1"], env=env)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_serve_refuses_a_surveys_folder_without_consultation_files(
    db_url: str, tmp_path: Path
) -> None:
    result = _serve_loading(db_url, str(tmp_path))
    assert result.exit_code == 1
    assert f"{tmp_path}: no consultation files (*.toml) in this folder" in result.stderr


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_serve_refuses_a_broken_survey_file_with_the_reason(db_url: str, tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text('id = "x"\ntitle.en = \n', encoding="utf-8")
    result = _serve_loading(db_url, str(broken))
    assert result.exit_code == 1
    assert "[surveys] load: nothing was loaded" in result.stderr
    assert f"{broken}:2" in result.stderr


#: An address no machine of ours has (TEST-NET-1): listening there fails, after the warning.
OTHER_IP = "192.0.2.1"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("public_url", "simulator", "host", "says"),
    [
        # Off on a public server, or on at it behind sign-in, or on this machine only.
        ("https://voxpop.example.city/", "auto", "127.0.0.1", None),
        ("https://voxpop.example.city/", "true", OTHER_IP, None),
        ("", "auto", "127.0.0.1", None),
        # No public_url, so no sign-in, on an interface others reach: anyone may use it.
        ("", "auto", OTHER_IP, f"WARNING: the simulator needs no sign-in, on {OTHER_IP}"),
    ],
)
def test_serve_warns_only_when_anyone_may_use_the_simulator(
    db_url: str, public_url: str, simulator: str, host: str, says: str | None
) -> None:
    env = {
        "VOXPOP_DATABASE__URL": db_url,
        "VOXPOP_CONFIG": os.devnull,
        "VOXPOP_SERVER__PUBLIC_URL": public_url,
        "VOXPOP_SERVER__SIMULATOR": simulator,
    }
    # A busy port (or an address this machine does not have) stops it right after the
    # announcements, before serving.
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        args = ["serve", "--host", host, "--port", str(port)]
        result = CliRunner().invoke(main, args, env=env)
    assert result.exit_code == 1
    assert "simulator:" not in result.stdout
    if says is None:
        assert "WARNING" not in result.stderr
    else:
        assert says in result.stderr
        assert "[server] public_url puts it behind sign-in" in result.stderr


def test_chat_with_a_citizens_number_leaves_the_citizen_as_they_were(db_url: str) -> None:
    # `voxpop chat` is a test phone like the browser's: given a real citizen's number, every
    # command acts on a test conversation of its own.
    assert voxpop(db_url, "survey", "load", EVERY, OTHER).exit_code == 0
    _respond(db_url, "+32470000004", ["EVERY", "red", "1", "yes", "3", "40", "5", "SKIP"])
    engine = make_engine(db_url)
    try:
        before = snapshot(engine)
        lines = ["OTHER", "yes", "LANG NL", "INFO", "RESULTS", "STOP", "START", "FORGET", "YES"]
        chat = voxpop(db_url, "chat", "--from", "+32470000004", input="\n".join(lines) + "\n")
        assert chat.exit_code == 0, chat.output
        assert "bot> Uw gegevens zijn gewist. Tot ziens." in chat.stdout
        after = snapshot(engine)
    finally:
        engine.dispose()
    for table, rows in before.items():
        assert {key: after[table].get(key) for key in rows} == rows, table
    new = [row for key, row in after["audit_log"].items() if key not in before["audit_log"]]
    assert {(row["actor"], row["action"]) for row in new} == {
        ("simulator", "opted out"),
        ("simulator", "opted in"),
        ("simulator", "contact erased"),
    }


# A shell hands Python bytes that are not UTF-8 as lone surrogates: what staff type is outside
# input like a webhook's, and no command may fail on it with a traceback, on either engine.
NOT_UTF8 = b"a\xffb".decode("utf-8", "surrogateescape")


@pytest.mark.parametrize(
    "args",
    [
        ("results", "export", NOT_UTF8),
        ("survey", "close", NOT_UTF8),
        ("contacts", "list", "--tag", NOT_UTF8),
        ("contacts", "list", "--where", f"district={NOT_UTF8}"),
        ("contacts", "show", NOT_UTF8),
        ("push", "street-lighting", "--at", "+1m", "--where", f"district={NOT_UTF8}", "--dry-run"),
        ("push", NOT_UTF8, "--at", "+1m", "--dry-run"),
    ],
    ids=lambda args: " ".join(a for a in args if a.isascii()),
)
def test_text_that_is_not_utf8_is_answered_plainly(db_url: str, args: tuple[str, ...]) -> None:
    assert voxpop(db_url, "survey", "load", *EXAMPLES).exit_code == 0
    result = voxpop(db_url, *args)  # catch_exceptions=False: a traceback fails the test
    assert result.exit_code in (0, 1, 2), result.output  # 2: a usage error, said plainly
    assert "Traceback" not in result.output
