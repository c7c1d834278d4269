"""What the webhook bench serves under gunicorn: Voxpop's production app (:mod:`bot.wsgi`)
plus two reference routes in the same workers of the same server:

``POST /bench/noop``
    the baseline: a Flask route that does nothing and answers the same empty TwiML.
``POST /bench/floor``
    the least a signed SMS reply can cost in this stack: the same signature check through
    the twilio SDK's validator, the same parsing, then the statements a reply to a
    consultation needs (find the contact and its conversation; insert the contact the first
    time; store the inbound message, the address's last contact, the conversation's state,
    the answer and the reply) on the bare ``sqlite3`` driver, writers queued at a blocking
    ``flock`` as Voxpop's own are. No ORM, no engine (the state is a counter), no log line.
    It is no product code: it shows how much of the gap to the no-op route any Python
    implementation would keep.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
from datetime import UTC, datetime
from urllib.parse import parse_qsl

from flask import Response, request

from bench.harness import FLOOR_PATH, NOOP_PATH, PUBLIC_URL
from bot.config import load_config
from bot.web.webhooks import TWIML_EMPTY
from bot.wsgi import app
from channels import twilio_webhook
from channels.base import WebhookRequest
from messages import InboundMessage

__all__ = ["app"]

#: The requests are signed for the real route, as Twilio would sign them.
_SIGNED_URL = PUBLIC_URL + "/webhooks/twilio/sms"
_local = threading.local()

_FIND_CONTACT = (
    "SELECT c.id, a.id FROM addresses a JOIN contacts c ON c.id = a.contact_id "
    "WHERE a.channel = ? AND a.value = ?"
)
_FIND_SESSIONS = (
    "SELECT id, status, state, state_version FROM sessions WHERE contact_id = ? ORDER BY id"
)
_INSERT_CONTACT = (
    "INSERT INTO contacts (language, attributes, created_at, updated_at, tags) "
    "VALUES (NULL, '{}', ?, ?, '[]') RETURNING id"
)
_INSERT_ADDRESS = (
    "INSERT INTO addresses (contact_id, channel, value, created_at) VALUES (?, ?, ?, ?) "
    "RETURNING id"
)
_INSERT_MESSAGE = (
    "INSERT INTO messages (direction, channel, address, contact_id, session_id, kind, text, "
    "payload, provider_id, status, attempts, next_attempt_at, created_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?) "
    "ON CONFLICT (direction, channel, provider_id) DO NOTHING RETURNING id"
)
_TOUCH_ADDRESS = "UPDATE addresses SET last_inbound_at = ? WHERE id = ?"
_INSERT_SESSION = (
    "INSERT INTO sessions (contact_id, survey_id, respondent, channel, language, status, "
    "state, state_version, started_at, updated_at) "
    "VALUES (?, (SELECT min(id) FROM surveys), ?, 'sms', 'en', 'active', ?, 1, ?, ?) "
    "RETURNING id"
)
_UPDATE_SESSION = (
    "UPDATE sessions SET state = ?, state_version = state_version + 1, updated_at = ? "
    "WHERE id = ? AND state_version = ?"
)
_UPSERT_ANSWER = (
    "INSERT INTO answers (session_id, question_id, value, raw, how, answered_at) "
    "VALUES (?, ?, ?, ?, 'typed', ?) ON CONFLICT (session_id, question_id) "
    "DO UPDATE SET value = excluded.value, raw = excluded.raw"
)
_REPLY = "Thank you. Next question: how clean is the park? Reply 1 to 5."


@app.post(NOOP_PATH)
def noop() -> Response:
    return Response(TWIML_EMPTY, mimetype="text/xml")


@app.post(FLOOR_PATH)
def floor() -> Response:
    body = request.get_data(cache=False)
    incoming = WebhookRequest(
        url=_SIGNED_URL,
        headers={name.lower(): value for name, value in request.headers.items()},
        body=body,
        form=dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)),
    )
    db, gate, token = _worker()
    if not twilio_webhook.verify(incoming, token):
        return Response("forbidden", status=403)
    [message] = twilio_webhook.parse_message(incoming, "sms", datetime.now(UTC))
    assert isinstance(message, InboundMessage)
    _store(db, gate, message)
    return Response(TWIML_EMPTY, mimetype="text/xml")


def _store(db: sqlite3.Connection, gate: int, message: InboundMessage) -> None:
    now = datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")
    value = message.address.value
    contact = db.execute(_FIND_CONTACT, ("sms", value)).fetchone()
    sessions = db.execute(_FIND_SESSIONS, (contact[0],)).fetchall() if contact else []
    active = next((row for row in sessions if row[1] == "active"), None)
    state = json.loads(active[2]) if active else {"step": 0}
    state["step"] += 1
    fcntl.flock(gate, fcntl.LOCK_EX)
    try:
        db.execute("BEGIN IMMEDIATE")
        try:
            if contact is None:
                contact_id = db.execute(_INSERT_CONTACT, (now, now)).fetchone()[0]
                address_id = db.execute(_INSERT_ADDRESS, (contact_id, "sms", value, now))
                contact = (contact_id, address_id.fetchone()[0])
            inbound = (
                *("in", "sms", value, contact[0], None, None, message.text, None),
                *(message.provider_id, "received", None, now),
            )
            if db.execute(_INSERT_MESSAGE, inbound).fetchone() is not None:
                db.execute(_TOUCH_ADDRESS, (now, contact[1]))
                if active is None:
                    session_id = db.execute(
                        _INSERT_SESSION, (contact[0], f"r{contact[0]}", json.dumps(state), now, now)
                    ).fetchone()[0]
                else:
                    session_id = active[0]
                    db.execute(_UPDATE_SESSION, (json.dumps(state), now, session_id, active[3]))
                answer = json.dumps(message.text)
                step = f"q{state['step']}"
                db.execute(_UPSERT_ANSWER, (session_id, step, answer, message.text, now))
                reply = ("out", "sms", value, contact[0], session_id, "reply", _REPLY)
                db.execute(_INSERT_MESSAGE, (*reply, None, None, "queued", now, now))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    finally:
        fcntl.flock(gate, fcntl.LOCK_UN)


def _worker() -> tuple[sqlite3.Connection, int, str]:
    """This thread's connection (as Voxpop sets SQLite up), writers' gate and auth token."""
    found: tuple[sqlite3.Connection, int, str] | None = getattr(_local, "floor", None)
    if found is None:
        config = load_config()
        path = config.database.url.removeprefix("sqlite:///")
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        for pragma in ("busy_timeout = 5000", "journal_mode = WAL", "synchronous = NORMAL"):
            db.execute(f"PRAGMA {pragma}")
        gate = os.open(f"{path}.writers", os.O_RDWR | os.O_CREAT, 0o600)
        found = (db, gate, config.twilio.auth_token)
        _local.floor = found
    return found
