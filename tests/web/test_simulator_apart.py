"""The simulator cannot act as a citizen: given a real citizen's own address, every command
and answer through its API leaves every row the citizen has, and the real export, exactly as
they were. Simulated conversations live in their own address space (storage.repo), whoever
uses the simulator and whatever number is typed in."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine

from bot.service import Service
from messages import Address, InboundMessage
from storage.repo import SIMULATOR_SPACE
from tests.helpers import export_records, snapshot

from .conftest import NOW

_ids = itertools.count(1)

#: A real citizen on each channel; the simulator is then handed the very same address.
CITIZENS = [
    pytest.param(Address("sms", "+32470123456"), id="sms"),
    pytest.param(Address("whatsapp", "+32470123456"), id="whatsapp"),
    pytest.param(Address("telegram", "81234"), id="telegram"),
]

#: Every command, keyword and kind of answer, in an order that reaches each of them: a survey
#: started over the citizen's own, answers, LANG, INFO, RESULTS, a switch, the consent
#: question, STOP and START, FORGET confirmed, and a reset.
SIMULATOR_SCRIPT: list[tuple[str, dict[str, Any]]] = [
    ("start", {"survey": "street-lighting"}),
    *[("send", {"text": t}) for t in ("1", "Main street 1", "LANG FR", "LANG NL", "INFO")],
    *[("send", {"text": t}) for t in ("RESULTS", "HELP", "REPEAT", "SKIP", "PARK", "YES")],
    *[("send", {"text": t}) for t in ("1", "1 4", "4", "1", "SKIP", "an idea", "1")],
    *[("send", {"text": t}) for t in ("STOP", "LICHT", "START", "INFO", "RESULTS")],
    *[("send", {"text": t}) for t in ("FORGET", "YES", "PARK", "2")],
    ("transcript", {}),
    ("reset", {}),
    ("start", {"survey": "central-park"}),
    *[("send", {"text": t}) for t in ("FORGET", "NO", "STOP")],
]


def real(service: Service, address: Address, text: str) -> list[str]:
    """A message from the citizen through the real (not simulated) path."""
    msg = InboundMessage(address, text, f"real-{next(_ids)}", NOW)
    return [out.text for out in service.receive(msg).outgoing]


def a_real_citizen(service: Service, address: Address) -> None:
    """Consent given, language chosen, one consultation done, another in progress."""
    for text in ("PARK", "1", "1 4", "4", "1", "SKIP", "More benches", "1", "LANG NL", "LICHT"):
        real(service, address, text)
    assert real(service, address, "1") == [
        "Welke straat? Een naam en nummer of een herkenningspunt is genoeg."
    ]


def exports(service: Service, *, include_simulated: bool = False) -> list[list[dict[str, Any]]]:
    return [
        export_records(service, slug, include_simulated=include_simulated)
        for slug in ("central-park", "street-lighting")
    ]


def drive_the_simulator(client: FlaskClient, address: Address) -> None:
    who = {"channel": address.channel, "address": address.value}
    for action, body in SIMULATOR_SCRIPT:
        if action == "transcript":
            response = client.get("/simulator/api/transcript", query_string=who)
        else:
            response = client.post(f"/simulator/api/{action}", json={**who, **body})
        assert response.status_code == 200, (action, body, response.get_json())


@pytest.mark.parametrize("address", CITIZENS)
def test_the_simulator_changes_nothing_of_a_real_citizen(
    service: Service, client: FlaskClient, engine: Engine, address: Address
) -> None:
    a_real_citizen(service, address)
    before, real_export = snapshot(engine), exports(service)

    drive_the_simulator(client, address)

    after = snapshot(engine)
    for table, rows in before.items():
        # Every row that was there is there, byte for byte: none changed, none erased.
        assert {k: after[table].get(k) for k in rows} == rows, table
    new = {
        table: [r for k, r in rows.items() if k not in before[table]]
        for table, rows in after.items()
    }
    real_contacts = set(before["contacts"])
    # What the simulator wrote is its own: its address space, its sessions, its name.
    assert new["addresses"]
    assert all(r["value"].startswith(SIMULATOR_SPACE) for r in new["addresses"])
    assert all((r["id"],) not in real_contacts for r in new["contacts"])
    assert new["sessions"]
    assert all(r["simulated"] for r in new["sessions"])
    simulated_sessions = {r["id"] for r in new["sessions"]}
    assert new["answers"]
    assert all(r["session_id"] in simulated_sessions for r in new["answers"])
    for row in new["messages"]:
        assert row["address"] is None or row["address"].startswith(SIMULATOR_SPACE), row
        assert (row["contact_id"],) not in real_contacts, row
        assert row["direction"] == "in" or row["status"] == "simulated", row
    # STOP, START and FORGET were the simulator's doing, and the audit log says so.
    assert {r["action"] for r in new["audit_log"]} >= {"opted out", "opted in", "contact erased"}
    assert {r["actor"] for r in new["audit_log"]} == {"simulator"}
    # Nothing else: no setting, push, outcome or report was written.
    others = set(after) - {"contacts", "addresses", "sessions", "answers", "messages", "audit_log"}
    assert {table: new[table] for table in others} == {table: [] for table in others}

    # The default export is the citizens' alone; the simulator's runs are marked as such.
    assert exports(service) == real_export
    with_tests = exports(service, include_simulated=True)
    tests = [r for records in with_tests for r in records if r["simulated"]]
    assert tests
    assert len(tests) == sum(map(len, with_tests)) - sum(map(len, real_export))

    # The citizen carries on where they were, in Dutch, and their answer is a real one.
    assert real(service, address, "Hoofdstraat 1")[-1].startswith("Hoe veilig voelt u zich")
    (record,) = exports(service)[1]
    assert (record["simulated"], record["answers"]["where"]) == (False, "Hoofdstraat 1")


def test_a_simulator_conversation_is_not_a_citizens(service: Service, client: FlaskClient) -> None:
    # The other way round: what the simulator did is unknown to the citizen of that number.
    sim = {"channel": "sms", "address": "+32470123456"}
    for text in ("PARK", "1", "LANG FR"):
        assert client.post("/simulator/api/send", json={**sim, "text": text}).status_code == 200
    citizen = Address("sms", "+32470123456")
    # A new contact to the bot: English, no consultation going on, no pending question.
    assert real(service, citizen, "REPEAT")[0].startswith("Reply with the number")
    assert "answers: 0, consultations: 0" in real(service, citizen, "INFO")[0]
