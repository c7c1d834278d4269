"""The web edge: health check, the browser simulator (the staff's test phone), and the
providers' webhooks (:mod:`bot.webhooks`, for the configured channels only).

``create_app`` builds the Flask app around one :class:`~bot.service.Service`, built once per
process by the caller; ``serve`` runs it under waitress. The simulator's JSON API shows
each reply exactly as the channel renders it (numbered list on SMS, buttons on Telegram);
simulated replies are stored but never sent. Tests: ``tests/web``.
"""

from __future__ import annotations

import logging
import socket
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from flask import Blueprint, Flask, Response, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from waitress.server import BaseWSGIServer, create_server
from werkzeug.exceptions import HTTPException

from bot.config import Config
from bot.messages import CHANNEL_NAMES, Address, InboundMessage
from bot.service import Clock, Outgoing, Service, utc_now
from bot.webhooks import webhooks_blueprint
from channels.addresses import TEST_ADDRESSES, address_problem

__all__ = ["DEFAULT_FROM", "MAX_BODY", "MAX_TEXT", "ApiError", "create_app", "serve"]

log = logging.getLogger(__name__)

#: A request body larger than this is refused with 413 before it is parsed.
MAX_BODY = 1024 * 1024
#: Longest message text accepted; far above any channel's limit, low enough to stay cheap.
MAX_TEXT = 10_000
#: Button payloads are short ids (Telegram caps callback data at 64 bytes).
MAX_PAYLOAD = 256
DEFAULT_FROM = TEST_ADDRESSES
CHANNEL_LABELS: Mapping[str, str] = {"sms": "SMS", "whatsapp": "WhatsApp", "telegram": "Telegram"}
_API_PREFIX = "/simulator/api/"


class ApiError(Exception):
    """Bad input to the JSON API: answered as ``{"error": message}`` with ``status``."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def create_app(service: Service, config: Config, *, clock: Clock = utc_now) -> Flask:
    """The Flask app: ``/healthz``, ``/`` and, when enabled, the ``/simulator`` pages and API.

    ``clock`` stamps simulated messages and decides which surveys are still open.
    """
    app = Flask(__name__)
    # Werkzeug refuses larger bodies with 413 as soon as the view reads them.
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    simulator = config.server.simulator

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok")

    @app.get("/")
    def index() -> ResponseReturnValue:
        if simulator:
            return redirect(url_for("simulator.page"))
        return (
            "<!doctype html><html lang='en'><meta charset='utf-8'><title>Voxpop</title>"
            "<p>Voxpop is running.</p></html>"
        )

    if simulator:
        app.register_blueprint(_simulator_blueprint(service, clock))
    # /webhooks/<channel> only for the configured channels: the others answer 404.
    webhooks = webhooks_blueprint(service, config, clock=clock, max_body=MAX_BODY)
    if webhooks is not None:
        app.register_blueprint(webhooks)

    @app.errorhandler(ApiError)
    def api_error(exc: ApiError) -> tuple[Response, int]:
        return jsonify(error=exc.message), exc.status

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> HTTPException | tuple[Response, int]:
        # API callers read JSON, also for 404/405/413; pages keep Werkzeug's HTML errors.
        if not request.path.startswith(_API_PREFIX):
            return exc
        message = {413: f"request body too large (limit {MAX_BODY} bytes)"}.get(
            exc.code or 500, exc.description or exc.name
        )
        return jsonify(error=message), exc.code or 500

    return app


def _simulator_blueprint(service: Service, clock: Clock) -> Blueprint:
    bp = Blueprint("simulator", __name__, url_prefix="/simulator")

    @bp.get("")
    def page() -> str:
        surveys = _survey_list(service, clock())
        return render_template(
            "simulator.html",
            channels=CHANNEL_NAMES,
            surveys=surveys,
            data={"defaults": dict(DEFAULT_FROM), "labels": dict(CHANNEL_LABELS)},
        )

    @bp.get("/api/surveys")
    def surveys() -> Response:
        return jsonify(_survey_list(service, clock()))

    @bp.post("/api/send")
    def send() -> Response:
        body = _json_body()
        address = _address(body)
        text = _text(body.get("text"), "text", MAX_TEXT)
        payload = body.get("payload")
        if payload is not None:
            payload = _text(payload, "payload", MAX_PAYLOAD)
        if not text.strip() and payload is None:
            raise ApiError("text is empty: type a message")
        msg = InboundMessage(
            address=address,
            text=text,
            provider_id="sim-" + uuid.uuid4().hex,
            received_at=clock(),
            payload=payload,
        )
        received = service.receive(msg, simulated=True)
        log.info("simulator: %s message, %d replies", address.channel, len(received.outgoing))
        return _messages(received.outgoing)

    @bp.post("/api/start")
    def start() -> Response:
        body = _json_body()
        address = _address(body)
        slug = _text(body.get("survey"), "survey", 64)
        # Checked here so only a bad slug is a 404; any other failure stays a real 500.
        if slug not in {s["slug"] for s in _survey_list(service, clock())}:
            raise ApiError(f"no survey {slug!r} is loaded", 404)
        outgoing = service.start_survey(address, slug, simulated=True)
        log.info("simulator: started %s on %s", slug, address.channel)
        return _messages(outgoing)

    return bp


# --- request parsing ----------------------------------------------------------------------


def _json_body() -> dict[str, Any]:
    # Requiring the JSON content type also keeps other sites' plain form posts out (CSRF):
    # a cross-origin JSON request needs a CORS preflight, which we never grant.
    if not request.is_json:
        raise ApiError("send a JSON object with Content-Type: application/json")
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError("the body is not a JSON object")
    return body


def _text(value: object, field: str, limit: int) -> str:
    if value is None:
        raise ApiError(f"{field} is missing")
    if not isinstance(value, str):
        raise ApiError(f"{field} must be a string")
    if len(value) > limit:
        raise ApiError(f"{field} is too long ({len(value)} characters, limit {limit})")
    return value


def _address(body: Mapping[str, Any]) -> Address:
    channel = body.get("channel")
    if not isinstance(channel, str) or channel not in CHANNEL_NAMES:
        raise ApiError(f"unknown channel {channel!r} (known: {', '.join(CHANNEL_NAMES)})")
    value = _text(body.get("address"), "address", 64).strip()
    if not value:
        raise ApiError("address is empty")
    problem = address_problem(channel, value)
    if problem is not None:
        raise ApiError(f"address is not valid for {channel}: {problem}")
    return Address(channel, value)


# --- responses ----------------------------------------------------------------------------


def _messages(outgoing: tuple[Outgoing, ...]) -> Response:
    return jsonify(messages=[_rendered(o) for o in outgoing])


def _rendered(out: Outgoing) -> dict[str, Any]:
    """One reply as the citizen's phone shows it."""
    rendered = out.render()
    return {
        "text": rendered.text,
        "buttons": [
            [{"label": b.label, "payload": b.payload} for b in row] for row in rendered.buttons
        ],
        "segments": rendered.segments,
    }


def _survey_list(service: Service, now: datetime) -> list[dict[str, Any]]:
    """Loaded surveys for the picker; ``open`` ones have keywords a citizen may text."""
    found: list[dict[str, Any]] = []
    for row, survey, _responses, _tests in service.survey_rows():
        title = survey.title.get("en") or next(iter(survey.title.values()), row.slug)
        found.append(
            {
                "slug": row.slug,
                "title": title,
                "keywords": list(survey.keywords),
                "version": row.version,
                "open": not survey.is_closed(now),
            }
        )
    return found


def make_server(app: Flask, host: str, port: int, threads: int) -> BaseWSGIServer:
    """``app`` under waitress, a production WSGI server (not Flask's dev server), bound to
    ``host:port`` (``0``: any free port). Raises :class:`OSError` when it cannot bind."""
    # Bind here rather than in waitress: a failed bind then closes cleanly, and the caller
    # gets the OSError to explain.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
    except OSError:
        listener.close()
        raise
    server = create_server(
        app,
        sockets=[listener],
        threads=threads,
        ident="voxpop",
        # waitress buffers a whole body before Flask sees it: refuse big ones at the door.
        max_request_body_size=MAX_BODY,
    )
    assert isinstance(server, BaseWSGIServer)
    return server


def server_url(server: BaseWSGIServer) -> str:
    """Where a bound server answers, with the port the system chose for port ``0``."""
    host, port = server.getsockname()  # numeric, as text
    if ":" in host:  # IPv6
        host = f"[{host}]"
    return f"http://{host}:{int(port)}"


def serve(server: BaseWSGIServer) -> None:
    """Run a server from :func:`make_server` until interrupted, then close it."""
    log.info("listening on %s", server_url(server))
    try:
        server.run()
    finally:
        server.close()
