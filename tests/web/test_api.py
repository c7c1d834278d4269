"""The simulator's JSON API and pages, through Flask's test client on a real Service."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from bot.config import Config, ServerConfig
from bot.service import Service
from bot.web.app import (
    BROWSER_COOKIE,
    MAX_BODY,
    MAX_TEXT,
    SIMULATOR_RATE_LIMIT,
    create_app,
    make_server,
)
from messages import Address
from tests.helpers import export_records
from tests.staff import sign_in

from .conftest import fixed_clock

SMS = {"channel": "sms", "address": "+15555550100"}
TELEGRAM = {"channel": "telegram", "address": "100000"}
WHATSAPP = {"channel": "whatsapp", "address": "+15555550100"}

# The validation tables need one engine only: the answer is decided before any write.
sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def send(client: FlaskClient, text: str, payload: str | None = None, **who: str) -> Any:
    body: dict[str, Any] = {**(who or SMS), "text": text}
    if payload is not None:
        body["payload"] = payload
    response = client.post("/simulator/api/send", json=body)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["messages"]


def joined(messages: list[dict[str, Any]]) -> str:
    return "\n".join(m["text"] for m in messages)


def test_healthz(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_the_home_page_asks_to_sign_in_and_points_to_the_simulator(client: FlaskClient) -> None:
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=/"
    login = client.get("/login").get_data(as_text=True)
    assert 'href="/simulator"' in login


def test_sms_consultation_from_keyword_to_thanks(client: FlaskClient, service: Service) -> None:
    first = send(client, "PARK")
    assert "How often do you visit the park?" in first[-1]["text"]
    # SMS shows the options as a numbered list and counts the segments it will bill.
    assert "\n1 Every week\n2 Every month\n3 Rarely\n4 Never" in first[-1]["text"]
    assert all(m["buttons"] == [] and m["segments"] >= 1 for m in first)

    script = [
        ("1", "What do you do in the park?"),
        ("1 4", "How clean is the park?"),
        ("4", "Should the city build a new playground in the park?"),
        ("1", "In what year were you born?"),
        ("SKIP", "One idea to make the park better?"),
        ("More benches", "Last one: may the city send you short consultations"),
        ("2", "Thank you! The results will be on the city website in April."),
    ]
    for text, expected in script:
        assert expected in joined(send(client, text))

    # A simulator conversation is a staff test run: kept out of the results unless asked for.
    assert export_records(service, "central-park") == []
    (record,) = export_records(service, "central-park", include_simulated=True)
    assert record["simulated"] is True
    assert record["status"] == "completed"
    assert record["channel"] == "sms"
    assert record["answers"]["visits"] == "weekly"
    assert record["answers"]["clean"] == 4
    assert record["answers"]["idea"] == "More benches"
    assert record["answers"]["future"] is False


def test_telegram_buttons_carry_payloads(client: FlaskClient) -> None:
    response = client.post("/simulator/api/start", json={**TELEGRAM, "survey": "street-lighting"})
    assert response.status_code == 200
    question = response.get_json()["messages"][-1]
    assert question["text"].startswith("Is there a street near you that is too dark at night?")
    assert question["segments"] is None
    # Long labels get a row each; the key stays visible for citizens who type instead.
    assert question["buttons"] == [
        [{"label": "1. Yes", "payload": "too_dark:yes"}],
        [{"label": "2. No", "payload": "too_dark:no"}],
    ]

    scale = send(client, "2. No", "too_dark:no", **TELEGRAM)[-1]
    assert "How safe do you feel walking home after dark?" in scale["text"]
    # A 1-5 scale is one row of short buttons.
    assert [[b["label"] for b in row] for row in scale["buttons"]] == [["1", "2", "3", "4", "5"]]

    comment = send(client, "4", scale["buttons"][0][3]["payload"], **TELEGRAM)[-1]
    assert "Anything else about street lighting?" in comment["text"]
    assert comment["buttons"] == []
    assert "Thanks! We will fix the darkest spots first." in joined(
        send(client, "SKIP", **TELEGRAM)
    )


def test_whatsapp_numbered_list_without_segments(client: FlaskClient) -> None:
    question = send(client, "PARK", **WHATSAPP)[-1]
    assert "\n1 Every week\n" in question["text"]
    assert question["buttons"] == []
    assert question["segments"] is None


def test_start_again_begins_afresh(client: FlaskClient) -> None:
    send(client, "PARK")
    send(client, "1")
    response = client.post("/simulator/api/start", json={**SMS, "survey": "central-park"})
    assert response.status_code == 200
    assert "How often do you visit the park?" in joined(response.get_json()["messages"])


def test_surveys_api_lists_loaded_surveys(client: FlaskClient) -> None:
    response = client.get("/simulator/api/surveys")
    assert response.status_code == 200
    surveys = {s["slug"]: s for s in response.get_json()}
    assert surveys["central-park"] == {
        "slug": "central-park",
        "title": "Central Park",
        "keywords": ["PARK", "PARC"],
        "version": 1,
        "open": True,
    }
    assert surveys["street-lighting"]["keywords"] == ["LIGHTS", "LICHT"]


@sqlite_only
def test_page_lists_surveys_and_keyword_hints(client: FlaskClient) -> None:
    response = client.get("/simulator")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert '<option value="central-park">Central Park (central-park, version 1)</option>' in html
    assert '<kbd title="Central Park">PARK</kbd>' in html
    assert '<option value="telegram">Telegram</option>' in html
    # Offline: every asset is ours, nothing from a CDN.
    assert "https://" not in html
    assert "http://" not in html
    for asset in ("simulator.js", "simulator.css"):
        assert f'src="/static/{asset}"' in html or f'href="/static/{asset}"' in html
        static = client.get(f"/static/{asset}")
        assert static.status_code == 200
        static.close()


@sqlite_only
def test_page_escapes_survey_text(client: FlaskClient, service: Service) -> None:
    source = """
id = "bins"
title = { en = "Bins <script>alert(1)</script> & more" }
languages = ["en"]
keywords = ["BINS"]
[[questions]]
id = "enough"
type = "yesno"
text = { en = "Enough bins?" }
"""
    service.load_surveys([("bins.toml", source)])
    html = client.get("/simulator").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html
    assert "Bins &lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in html


@sqlite_only
def test_logs_hold_no_personal_data(client: FlaskClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    who = {"channel": "sms", "address": "+15555550123"}
    send(client, "PARK", **who)
    send(client, "my private answer", **who)
    assert caplog.records, "expected the service to log something"
    assert "+15555550123" not in caplog.text
    assert "my private answer" not in caplog.text


def _too_long() -> str:
    return "x" * (MAX_TEXT + 1)


BAD_SEND: list[tuple[str, Any, str]] = [
    ("not a json object", ["PARK"], "not a JSON object"),
    ("a JSON string", "PARK", "not a JSON object"),
    ("no channel", {"address": "+15555550100", "text": "hi"}, "unknown channel None"),
    ("unknown channel", {**SMS, "channel": "fax", "text": "hi"}, "unknown channel 'fax'"),
    ("channel not a string", {**SMS, "channel": 3, "text": "hi"}, "unknown channel 3"),
    ("no address", {"channel": "sms", "text": "hi"}, "address is missing"),
    ("empty address", {**SMS, "address": "", "text": "hi"}, "address is empty"),
    ("blank address", {**SMS, "address": "   ", "text": "hi"}, "address is empty"),
    ("address not a string", {**SMS, "address": 15555550100, "text": "hi"}, "must be a string"),
    ("address too long", {**SMS, "address": "+1" * 40, "text": "hi"}, "address is too long"),
    ("sms address not a number", {**SMS, "address": "alice", "text": "hi"}, "international"),
    ("telegram id not numeric", {**TELEGRAM, "address": "@alice", "text": "hi"}, "chat id"),
    ("no text", {**SMS}, "text is missing"),
    ("empty text", {**SMS, "text": "  "}, "text is empty"),
    ("text not a string", {**SMS, "text": 1}, "text must be a string"),
    ("text too long", {**SMS, "text": _too_long()}, "limit 10000"),
    ("payload not a string", {**SMS, "text": "1", "payload": 1}, "payload must be a string"),
    ("payload too long", {**SMS, "text": "1", "payload": "p" * 300}, "payload is too long"),
]


@sqlite_only
@pytest.mark.parametrize(
    ("body", "reason"), [c[1:] for c in BAD_SEND], ids=[c[0] for c in BAD_SEND]
)
def test_send_rejects_bad_input(client: FlaskClient, body: Any, reason: str) -> None:
    response = client.post("/simulator/api/send", json=body)
    assert response.status_code == 400
    assert reason in response.get_json()["error"]


BAD_START: list[tuple[str, Any, int, str]] = [
    ("unknown survey", {**SMS, "survey": "nope"}, 404, "no survey 'nope' is loaded"),
    ("no survey", {**SMS}, 400, "survey is missing"),
    ("survey not a string", {**SMS, "survey": ["central-park"]}, 400, "must be a string"),
    ("unknown channel", {"channel": "pigeon", "address": "1", "survey": "x"}, 400, "channel"),
    ("no address", {"channel": "sms", "survey": "central-park"}, 400, "address is missing"),
]


@sqlite_only
@pytest.mark.parametrize(
    ("body", "status", "reason"), [c[1:] for c in BAD_START], ids=[c[0] for c in BAD_START]
)
def test_start_rejects_bad_input(client: FlaskClient, body: Any, status: int, reason: str) -> None:
    response = client.post("/simulator/api/start", json=body)
    assert response.status_code == status
    assert reason in response.get_json()["error"]


@sqlite_only
@pytest.mark.parametrize("path", ["/simulator/api/send", "/simulator/api/start"])
@pytest.mark.parametrize(
    ("data", "content_type", "reason"),
    [
        (b"{not json", "application/json", "not a JSON object"),
        (b"null", "application/json", "not a JSON object"),
        (b"\xff\xfe", "application/json", "not a JSON object"),
        (b"text=PARK", "application/x-www-form-urlencoded", "Content-Type: application/json"),
        (b"", None, "Content-Type: application/json"),
    ],
    ids=["malformed", "null", "not utf-8", "form post", "empty"],
)
def test_non_json_bodies_are_400(
    client: FlaskClient, path: str, data: bytes, content_type: str | None, reason: str
) -> None:
    response = client.post(path, data=data, content_type=content_type)
    assert response.status_code == 400
    assert reason in response.get_json()["error"]


@sqlite_only
def test_text_at_the_limit_is_accepted(client: FlaskClient) -> None:
    response = client.post("/simulator/api/send", json={**SMS, "text": "x" * MAX_TEXT})
    assert response.status_code == 200


@sqlite_only
def test_oversized_body_is_413(client: FlaskClient) -> None:
    response = client.post(
        "/simulator/api/send", data=b"x" * (MAX_BODY + 1), content_type="application/json"
    )
    assert response.status_code == 413
    assert "too large" in response.get_json()["error"]


@sqlite_only
def test_wrong_method_is_json_405(client: FlaskClient) -> None:
    response = client.get("/simulator/api/send")
    assert response.status_code == 405
    assert "error" in response.get_json()


@sqlite_only
def test_simulator_disabled_is_404(service: Service) -> None:
    app = create_app(service, Config(server=ServerConfig(simulator=False)))
    client = app.test_client()
    assert client.get("/simulator").status_code == 404
    assert client.get("/simulator/api/surveys").status_code == 404
    response = client.post("/simulator/api/send", json={**SMS, "text": "PARK"})
    assert response.status_code == 404
    assert "error" in response.get_json()
    # Without the simulator, / is the console's and its sign-in page names no simulator.
    assert client.get("/").headers["Location"] == "/login?next=/"
    assert "simulator" not in client.get("/login").get_data(as_text=True)
    assert client.get("/healthz").get_json() == {"status": "ok"}


@sqlite_only
def test_a_bug_is_a_json_500_without_details(
    app: Flask, service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(service, "receive", broken)
    response = app.test_client().post("/simulator/api/send", json={**SMS, "text": "PARK"})
    assert response.status_code == 500
    assert "secret internals" not in response.get_json()["error"]


def test_the_server_is_waitress_with_the_body_limit() -> None:
    server = make_server(Flask(__name__), "127.0.0.1", 0, 2)
    try:
        assert server.adj.max_request_body_size == MAX_BODY
        assert server.adj.ident == "voxpop"
    finally:
        server.close()


@sqlite_only
def test_closed_surveys_give_no_keyword_hint(service: Service) -> None:
    later = datetime(2031, 1, 1, tzinfo=UTC)  # central-park closed on 2030-03-01
    client = create_app(service, Config(), clock=lambda: later).test_client()
    html = client.get("/simulator").get_data(as_text=True)
    assert ">LIGHTS</kbd>" in html
    assert ">PARK</kbd>" not in html
    # The picker still lists it: staff may want to see how a closed survey answers.
    assert '<option value="central-park">' in html
    surveys = {s["slug"]: s["open"] for s in client.get("/simulator/api/surveys").get_json()}
    assert surveys == {"central-park": False, "street-lighting": True}


# --- when the simulator is on, and its rate limit -----------------------------------------

PUBLIC = "https://voxpop.example.city"


@sqlite_only
@pytest.mark.parametrize(
    ("simulator", "public_url", "served"),
    [
        (None, "", True),  # "auto", the embedded default (`make run`)
        (None, PUBLIC, False),  # "auto" on a public server: off
        (True, PUBLIC, True),  # asked for on a public server
        (True, "", True),
        (False, "", False),
        (False, PUBLIC, False),
    ],
)
def test_the_simulator_is_on_unless_public_or_turned_off(
    service: Service, simulator: bool | None, public_url: str, served: bool
) -> None:
    config = Config(server=ServerConfig(simulator=simulator, public_url=public_url))
    client = create_app(service, config, clock=fixed_clock).test_client()
    if public_url:
        # On a public server, only signed-in staff may use it (tests/web/test_simulator_staff).
        sign_in(client)
    assert client.get("/simulator").status_code == (200 if served else 404)
    response = client.post("/simulator/api/send", json={**SMS, "text": "PARK"})
    assert response.status_code == (200 if served else 404)


@sqlite_only
def test_a_public_simulator_is_rate_limited_per_client_address(service: Service) -> None:
    config = Config(server=ServerConfig(simulator=True, public_url=PUBLIC))
    app = create_app(service, config, clock=fixed_clock)
    one, other = app.test_client(), app.test_client()
    one.environ_base["REMOTE_ADDR"] = "192.0.2.1"
    other.environ_base["REMOTE_ADDR"] = "192.0.2.2"
    sign_in(one)
    sign_in(other)
    allowed = int(SIMULATOR_RATE_LIMIT.split()[0])
    # Every call of the API counts, whichever it is.
    for n in range(allowed):
        path = "/simulator/api/surveys" if n % 2 else "/simulator/api/transcript"
        assert one.get(path, query_string=SMS).status_code == 200, n
    response = one.post("/simulator/api/send", json={**SMS, "text": "PARK"})
    assert response.status_code == 429
    assert "too many requests" in response.get_json()["error"]
    assert int(response.headers["Retry-After"]) > 0
    # Refused before the service: the conversation never began.
    assert service.transcript(Address("sms", SMS["address"]), simulated=True) == []
    # Another client address has its own allowance; the page itself is not counted.
    assert other.post("/simulator/api/send", json={**SMS, "text": "PARK"}).status_code == 200
    assert one.get("/simulator").status_code == 200


@sqlite_only
@pytest.mark.parametrize("proxies", [0, 1])
def test_behind_a_trusted_proxy_each_client_has_its_own_allowance(
    service: Service, proxies: int
) -> None:
    """All requests come from the proxy (127.0.0.1). With ``trusted_proxies = 1`` the client
    is the address the proxy appended; with 0 a forged X-Forwarded-For changes nothing."""
    server = ServerConfig(simulator=True, public_url=PUBLIC, trusted_proxies=proxies)
    client = create_app(service, Config(server=server), clock=fixed_clock).test_client()
    client.environ_base["REMOTE_ADDR"] = "127.0.0.1"
    sign_in(client)
    allowed = int(SIMULATOR_RATE_LIMIT.split()[0])

    def surveys(forwarded: str) -> int:
        headers = {"X-Forwarded-For": forwarded}
        return client.get("/simulator/api/surveys", headers=headers).status_code

    for _ in range(allowed):
        assert surveys("198.51.100.7") == 200
    assert surveys("198.51.100.7") == 429
    # Another citizen behind the same proxy; and a client who writes its own header first
    # (the proxy appends the address it saw, which is the one counted).
    other_client = 200 if proxies else 429
    assert surveys("198.51.100.8") == other_client
    assert surveys("203.0.113.9, 198.51.100.7") == 429


@sqlite_only
def test_a_local_simulator_is_not_rate_limited(client: FlaskClient) -> None:
    allowed = int(SIMULATOR_RATE_LIMIT.split()[0])
    for _ in range(allowed + 1):
        assert client.get("/simulator/api/surveys").status_code == 200


@sqlite_only
def test_the_start_warns_only_where_anyone_may_use_the_simulator(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.web.app")
    create_app(service, Config(server=ServerConfig(public_url=PUBLIC)))
    assert not caplog.records  # "auto": off, nothing to say
    # On at the public address it needs a signed-in editor: said, but no warning.
    create_app(service, Config(server=ServerConfig(simulator=True, public_url=PUBLIC)))
    (record,) = caplog.records
    assert record.levelno == logging.INFO
    assert "for signed-in editors and admins only" in record.getMessage()
    caplog.clear()
    # This machine only: nobody else reaches it.
    create_app(service, Config(server=ServerConfig(host="127.0.0.1")))
    assert not caplog.records
    # No public_url, so no sign-in, on every interface: that is open to anyone.
    create_app(service, Config(server=ServerConfig(host="0.0.0.0")))
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith(
        "the simulator needs no sign-in, on 0.0.0.0: anyone who can reach that address may use it"
    )


# --- what a reloaded page shows, and starting over ----------------------------------------


def test_each_reply_carries_the_language_it_is_written_in(client: FlaskClient) -> None:
    assert {m["language"] for m in send(client, "PARK")} == {"en"}
    switched = send(client, "LANG FR")
    assert [m["language"] for m in switched] == ["fr"] * len(switched)
    assert switched[0]["text"].startswith("Langue choisie")
    assert {m["language"] for m in send(client, "INFO")} == {"fr"}
    # Street lighting has no French: its questions come in its default language, English,
    # while Voxpop's own lines stay French.
    begun = send(client, "LIGHTS")
    assert [m["language"] for m in begun][:1] == ["fr"]
    begun = send(client, "OUI")
    assert begun[-1]["language"] == "en"
    assert begun[-1]["text"].startswith("Is there a street near you")


def test_the_transcript_is_the_conversation_the_server_carries_on(client: FlaskClient) -> None:
    def transcript(**who: str) -> list[dict[str, Any]]:
        response = client.get("/simulator/api/transcript", query_string=who or SMS)
        assert response.status_code == 200
        messages: list[dict[str, Any]] = response.get_json()["messages"]
        return messages

    assert transcript() == []
    park = send(client, "PARK")
    dutch = send(client, "LANG NL")
    # Replies as they were shown, with the citizen's own messages between them.
    assert transcript() == [
        {"direction": "in", "text": "PARK"},
        *park,
        {"direction": "in", "text": "LANG NL"},
        *dutch,
    ]
    assert {m["language"] for m in dutch} == {"nl"}
    # Another channel or address is another conversation.
    assert transcript(**TELEGRAM) == []


def test_starting_over_begins_a_new_conversation(client: FlaskClient, service: Service) -> None:
    for text in ("PARK", "1", "LANG FR"):
        send(client, text)
    response = client.post("/simulator/api/reset", json=SMS)
    assert response.status_code == 200
    assert client.get("/simulator/api/transcript", query_string=SMS).get_json()["messages"] == []
    # A new contact: English again, no consultation in progress.
    assert send(client, "REPEAT")[0]["text"].startswith("Reply with the number")
    # The test run itself stays, as the simulator's, out of the real results.
    assert export_records(service, "central-park") == []
    assert len(export_records(service, "central-park", include_simulated=True)) == 1
    # Starting over where nothing was going on is fine too.
    assert client.post("/simulator/api/reset", json=TELEGRAM).status_code == 200


@sqlite_only
@pytest.mark.parametrize("path", ["/simulator/api/reset", "/simulator/api/transcript"])
def test_reset_and_transcript_check_the_address(client: FlaskClient, path: str) -> None:
    bad = {"channel": "sms", "address": "alice"}
    if path.endswith("reset"):
        response = client.post(path, json=bad)
    else:
        response = client.get(path, query_string=bad)
    assert response.status_code == 400
    assert "address is not valid for sms" in response.get_json()["error"]


# --- each browser's test phones are its own ------------------------------------------------


def test_each_browser_has_its_own_test_conversations(app: Flask) -> None:
    """Two people type the same test number: neither sees, continues or resets the other's."""
    mine, theirs, script = app.test_client(), app.test_client(), app.test_client()
    for browser in (mine, theirs):
        page = browser.get("/simulator")
        cookie = page.headers["Set-Cookie"]
        assert cookie.startswith(f"{BROWSER_COOKIE}=")
        assert "HttpOnly" in cookie
        assert "SameSite=Strict" in cookie
        assert "Path=/simulator" in cookie
        # A second visit keeps the same test phones (no new cookie).
        assert "Set-Cookie" not in browser.get("/simulator").headers

    send(mine, "LIGHTS")
    send(mine, "my own remark")

    def transcript(client: FlaskClient) -> list[str]:
        response = client.get("/simulator/api/transcript", query_string=SMS)
        assert response.status_code == 200
        return [m["text"] for m in response.get_json()["messages"]]

    assert "my own remark" in transcript(mine)
    assert transcript(theirs) == []
    assert transcript(script) == []  # no cookie: the plain, shared test space
    theirs.post("/simulator/api/reset", json=SMS)
    assert "my own remark" in transcript(mine)
    # A forged cookie that is no id of ours is ignored (and the page hands out a real one).
    script.set_cookie(BROWSER_COOKIE, "../../etc", path="/simulator")
    assert transcript(script) == []
    assert "Set-Cookie" in script.get("/simulator").headers
