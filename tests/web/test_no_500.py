"""No input makes a 500: a property over every webhook route and the simulator's API, on SQLite
and PostgreSQL.

Bodies are generated from the real provider payloads in ``tests/channels/fixtures``, changed
in the ways that broke Voxpop before: lone surrogates, NUL and other control characters,
huge integers, deep nesting, fields of the wrong type, repeated form keys, values longer than
their column, addresses that are not phone numbers. Each is signed as the provider signs it
(Telegram's secret header; Twilio's signature computed by the SDK over the form exactly as
the server reads it), so it gets past verification and into parsing and the database.

Each answer is a 2xx or a 4xx, never a 5xx; after a 4xx every table has as many rows as
before (nothing half written). Derandomized: the same examples on every run.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped, unused-ignore]
from werkzeug.datastructures import MultiDict
from werkzeug.test import TestResponse

from bot.config import Config, ServerConfig
from bot.service import Service
from bot.web.app import create_app
from storage.db import transaction
from storage.models import Address, Contact, Message
from tests.web.conftest import fixed_clock
from tests.web.test_webhooks import (
    FIXTURES,
    PUBLIC_URL,
    SECRET,
    TOKEN,
    WITH_SIMULATOR,
    counts,
)

PROPERTY = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
TELEGRAM_UPDATES = [
    json.loads(path.read_text(encoding="utf-8"))
    for path in sorted((FIXTURES / "telegram").glob("*.json"))
]


def _twilio_forms(*names: str) -> list[list[tuple[str, str]]]:
    return [
        parse_qsl(
            (FIXTURES / "twilio" / f"{name}.txt").read_text(encoding="utf-8").strip(),
            keep_blank_values=True,
        )
        for name in names
    ]


TWILIO_FORMS = {
    "sms": _twilio_forms("sms_inbound", "sms_long", "mms_photo", "sms_short_code_sender"),
    "whatsapp": _twilio_forms(
        "whatsapp_inbound", "whatsapp_button", "whatsapp_image", "whatsapp_location"
    ),
    "status": _twilio_forms(
        "status_sent", "status_delivered", "status_failed", "status_undelivered",
        "status_queued", "status_whatsapp_read",
    ),
}  # fmt: skip


#: The fields Voxpop reads: changed more often than the others.
TWILIO_FIELDS = [
    "From",
    "To",
    "Body",
    "MessageSid",
    "SmsSid",
    "MessageStatus",
    "ErrorCode",
    "ButtonPayload",
    "ButtonText",
    "NumMedia",
    "Latitude",
]


# --- the values that broke Voxpop, and their neighbours ----------------------------------------

#: Strings chosen on purpose; generated text around them finds the rest.
NASTY = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\ud800",
    "x\udfff",
    "\x1b[2J",
    "\r\n",
    "\u2028",
    "\x7f\x85",
    "PARK",
    "STOP",
    "FORGET",
    "1",
    "+123456",
    "+15555550123",
    "+32470000001",
    "+99912345678",
    "whatsapp:",
    "whatsapp:+123456",
    "whatsapp:+32470000002",
    "whatsapp:US.13491208655302741918",
    "whatsapp:US.ENT.11815799212886844830",
    "whatsapp:us.1",
    "messenger:123",
    "telegram:100",
    "SM" + "f" * 32,
    "x" * 300,
    "9" * 40,
    "3" * 33,
    "+" + "4" * 300,
    "queued",
    "delivered",
    "failed",
    "undelivered",
    "read",
    "NaN",
    "-1",
    "1e400",
    "🌳",
    "%",
    "&=",
]
nasty_text = st.one_of(
    st.sampled_from(NASTY),
    # An ordinary answer with one bad character in it.
    st.builds(
        lambda text, bad: text + bad,
        st.sampled_from(["PARK", "1", "yes", "SM123", "30003", "+15555550123"]),
        st.sampled_from(["\x00", "\ud800", "\x1b", "\x07", "x" * 300]),
    ),
    st.text(alphabet=st.characters(codec=None), max_size=30),
    st.builds(lambda text, times: text * times, st.sampled_from(NASTY), st.integers(2, 200)),
)
huge_ints = st.sampled_from([0, -1, 2**31, 2**63, -(2**63) - 1, 10**30, -(10**300), 10**4000])


def deeply_nested(depth: int) -> Any:
    value: Any = "deep"
    for _ in range(depth):
        value = [value]
    return value


json_junk = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        huge_ints,
        st.floats(),
        nasty_text,
        st.builds(deeply_nested, st.sampled_from([10, 300, 700])),
    ),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(nasty_text, inner, max_size=3),
    max_leaves=6,
)


# --- Telegram ------------------------------------------------------------------------------------


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON document a value can be changed (down to a depth of 8)."""
    found = [prefix] if prefix else []
    if len(prefix) >= 8:
        return found
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


@st.composite
def telegram_bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["mutated", "mutated", "mutated", "raw", "deep"]))
    if kind == "raw":
        return draw(st.binary(max_size=200))
    if kind == "deep":
        depth = draw(st.sampled_from([1_000, 100_000]))
        return b'{"update_id": 1, "message": ' + b"[" * depth + b"]" * depth + b"}"
    update = json.loads(json.dumps(draw(st.sampled_from(TELEGRAM_UPDATES))))
    update["update_id"] = draw(st.integers(min_value=1, max_value=2**40))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        paths = _paths(update)
        path = draw(st.sampled_from(paths))
        action = draw(st.sampled_from(["replace", "replace", "replace", "delete", "add"]))
        parent = update
        for step in path[:-1]:
            parent = parent[step]
        if action == "delete":
            del parent[path[-1]]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(nasty_text)] = draw(json_junk)
        elif action == "add":
            parent.append(draw(json_junk))
        else:
            parent[path[-1]] = draw(json_junk)
        if not isinstance(update, dict) or not update:
            break
    # ensure_ascii writes lone surrogates as \ud800 escapes, as a hostile sender would.
    return json.dumps(update, ensure_ascii=True).encode()


# --- Twilio --------------------------------------------------------------------------------------


@st.composite
def twilio_forms(draw: st.DrawFn, route: str) -> list[tuple[str, str]]:
    fields = list(draw(st.sampled_from(TWILIO_FORMS[route])))
    fresh = "SM" + draw(st.text(alphabet="0123456789abcdef", min_size=32, max_size=32))
    fields = [
        (k, fresh if k in ("MessageSid", "SmsSid", "SmsMessageSid") else v) for k, v in fields
    ]
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        names = [name for name, _ in fields] or ["Body"]
        read = st.sampled_from(TWILIO_FIELDS)
        name = draw(st.one_of(read, read, read, st.sampled_from(names)))
        action = draw(st.sampled_from(["replace", "replace", "repeat", "delete", "add"]))
        if action == "delete":
            fields = [(k, v) for k, v in fields if k != name]
        elif action == "repeat":
            fields.append((name, draw(nasty_text)))
        elif action == "add":
            fields.append((draw(nasty_text), draw(nasty_text)))
        else:
            fields = [(k, v) for k, v in fields if k != name] + [(name, draw(nasty_text))]
    return fields


def post_signed_twilio(client: FlaskClient, route: str, fields: list[tuple[str, str]]) -> Any:
    """Sign the form as Twilio would: over the values the server reads from the body."""
    body = urlencode(fields, errors="surrogatepass")
    read = MultiDict(parse_qsl(body, keep_blank_values=True, errors="replace"))
    path = f"/webhooks/twilio/{route}"
    signature = RequestValidator(TOKEN).compute_signature(f"{PUBLIC_URL}{path}", read)
    return client.post(
        path,
        data=body,
        content_type="application/x-www-form-urlencoded",
        headers={"X-Twilio-Signature": signature},
    )


# --- the simulator -------------------------------------------------------------------------------

SIMULATED = [
    ("sms", "+15555550100"),
    ("telegram", "100000"),
    ("whatsapp", "+32470000001"),
    ("whatsapp", "US.13491208655302741918"),
]


@st.composite
def simulator_fields(draw: st.DrawFn) -> dict[str, Any]:
    """Mostly a request that gets through to the service, with one or two fields wrong."""
    channel, address = draw(st.sampled_from(SIMULATED))
    fields: dict[str, Any] = {
        "channel": channel,
        "address": address,
        "text": draw(st.one_of(st.sampled_from(["PARK", "LIGHTS", "1", "yes"]), nasty_text)),
        "survey": draw(st.sampled_from(["central-park", "street-lighting"])),
    }
    if draw(st.booleans()):
        fields["payload"] = draw(st.one_of(st.just("visits:weekly"), nasty_text))
    for _ in range(draw(st.integers(min_value=0, max_value=2))):
        name = draw(st.sampled_from([*fields, "extra"]))
        if draw(st.booleans()):
            fields.pop(name, None)
        else:
            fields[name] = draw(json_junk)
    return fields


@st.composite
def simulator_bodies(draw: st.DrawFn) -> tuple[bytes, str]:
    kind = draw(st.sampled_from(["object", "object", "object", "other json", "raw", "deep"]))
    if kind == "raw":
        return draw(st.binary(max_size=100)), draw(
            st.sampled_from(["application/json", "text/plain"])
        )
    if kind == "deep":
        return b"[" * 100_000 + b"]" * 100_000, "application/json"
    value = draw(simulator_fields()) if kind == "object" else draw(json_junk)
    return json.dumps(value, ensure_ascii=True).encode(), "application/json"


# --- the property --------------------------------------------------------------------------------


@pytest.fixture
def app(service: Service) -> Flask:
    return create_app(service, WITH_SIMULATOR, clock=fixed_clock)


def _check(db: sessionmaker[Session], before: dict[str, int], response: TestResponse) -> None:
    status = response.status_code
    assert status < 500, response.get_data(as_text=True)[:500]
    if status >= 400:
        assert counts(db) == before, f"a {status} wrote rows"


def _stored_texts_are_clean(db: sessionmaker[Session]) -> None:
    """SQLite would keep a NUL: check nothing from outside got in uncleaned anyway."""
    with transaction(db, read_only=True) as s:
        stored = [
            *s.scalars(select(Message.text)),
            *(a for a in s.scalars(select(Message.address)) if a is not None),
            *s.scalars(select(Address.value)),
            *(json.dumps(a) for a in s.scalars(select(Contact.attributes))),
        ]
    assert not [text for text in stored if "\x00" in text or "\x1b" in text]


def test_telegram_never_answers_5xx(client: FlaskClient, db: sessionmaker[Session]) -> None:
    @PROPERTY
    @given(body=telegram_bodies())
    def check(body: bytes) -> None:
        before = counts(db)
        response = client.post(
            "/webhooks/telegram",
            data=body,
            content_type="application/json",
            headers={"X-Telegram-Bot-Api-Secret-Token": SECRET},
        )
        _check(db, before, response)

    check()
    _stored_texts_are_clean(db)
    # The property means something only if generated updates get through to the database.
    assert counts(db)["messages"] > 20


@pytest.mark.parametrize("route", ["sms", "whatsapp", "status"])
def test_twilio_never_answers_5xx(
    client: FlaskClient, db: sessionmaker[Session], route: str
) -> None:
    @PROPERTY
    @given(fields=twilio_forms(route))
    def check(fields: list[tuple[str, str]]) -> None:
        before = counts(db)
        response = post_signed_twilio(client, route, fields)
        assert response.status_code != 403, "the test must sign as Twilio does"
        _check(db, before, response)

    check()
    _stored_texts_are_clean(db)
    assert counts(db)["status_reports" if route == "status" else "messages"] > 20


@pytest.fixture
def simulator_client(service: Service) -> FlaskClient:
    """The simulator as `make run` serves it: on, not public, so no rate limit cuts the run
    short (the limit itself is tested in test_simulator_apart.py)."""
    config = Config(server=ServerConfig(simulator=True))
    return create_app(service, config, clock=fixed_clock).test_client()


@pytest.mark.parametrize("endpoint", ["send", "start", "reset", "transcript"])
def test_simulator_api_never_answers_5xx(
    simulator_client: FlaskClient, db: sessionmaker[Session], endpoint: str
) -> None:
    answered: list[int] = []

    # A GET takes its fields as the query string; the POSTs take a body.
    drawn = simulator_fields() if endpoint == "transcript" else simulator_bodies()

    @PROPERTY
    @given(request=drawn)
    def check(request: Any) -> None:
        before = counts(db)
        if endpoint == "transcript":
            # Any JSON value stands in the query string as its text.
            args = {k: v if isinstance(v, str) else json.dumps(v) for k, v in request.items()}
            # Lone surrogates go out as the invalid UTF-8 bytes a hostile client would send.
            query = urlencode(args, encoding="utf-8", errors="surrogatepass")
            response = simulator_client.get("/simulator/api/transcript", query_string=query)
            assert counts(db) == before, "reading the transcript wrote rows"
        else:
            body, content_type = request
            response = simulator_client.post(
                f"/simulator/api/{endpoint}", data=body, content_type=content_type
            )
        _check(db, before, response)
        answered.append(response.status_code)
        if response.status_code >= 400:
            assert isinstance(response.get_json()["error"], str)  # the API's JSON errors

    check()
    _stored_texts_are_clean(db)
    # The property means something only if generated requests get through to the service.
    assert sum(status == 200 for status in answered) > 10
    if endpoint == "send":
        assert counts(db)["messages"] > 20
    if endpoint == "start":
        assert counts(db)["sessions"] > 5
