"""The web edge: health check, the browser simulator (the staff's test phone), and the
providers' webhooks (:mod:`bot.web.webhooks`, for the configured channels only).

``create_app`` builds the Flask app around one :class:`~bot.service.Service`, built once per
process by the caller; ``serve`` runs it under waitress. The simulator's JSON API shows
each reply exactly as the channel renders it (numbered list on SMS, buttons on Telegram);
simulated replies are stored but never sent, and its conversations live in their own address
space, apart from every citizen's (:func:`bot.service.simulator_address`). It is served as
``[server] simulator`` says (:attr:`~bot.config.ServerConfig.simulator_enabled`); on a public
server its API allows each client address :data:`SIMULATOR_RATE_LIMIT`. Tests: ``tests/web``.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import secrets
import socket
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    g,
    jsonify,
    make_response,
    render_template,
    request,
)
from flask.typing import ResponseReturnValue
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from waitress.server import BaseWSGIServer, create_server
from werkzeug.middleware.proxy_fix import ProxyFix

from bot.config import Config, ServerConfig
from bot.console.access import Role, audit, set_up_codes_first, sign_in_first
from bot.console.context import ConsoleContext
from bot.console.errors import install_error_pages
from bot.console.install import install_console
from bot.service import Clock, Outgoing, Service, outgoing_of, utc_now
from bot.web import security as web_security
from bot.web.readiness import health_blueprint
from bot.web.webhooks import webhooks_blueprint
from channels.addresses import TEST_ADDRESSES, address_problem
from messages import CHANNEL_LABELS, CHANNEL_NAMES, Address, InboundMessage
from safetext import clean_text
from storage.models import Message

__all__ = [
    "DEFAULT_FROM",
    "MAX_BODY",
    "MAX_TEXT",
    "SIMULATOR_RATE_LIMIT",
    "ApiError",
    "create_app",
    "serve",
]

log = logging.getLogger(__name__)

#: A request body larger than this is refused with 413 before it is parsed.
MAX_BODY = 1024 * 1024
#: Longest message text accepted; far above any channel's limit, low enough to stay cheap.
MAX_TEXT = 10_000
#: Button payloads are short ids (Telegram caps callback data at 64 bytes).
MAX_PAYLOAD = 256
DEFAULT_FROM = TEST_ADDRESSES
_API_PREFIX = "/simulator/api/"
#: The cookie that keeps a browser's simulated conversations its own, and how long it lasts.
BROWSER_COOKIE = "voxpop_simulator"
BROWSER_COOKIE_DAYS = 30
_BROWSER_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")
#: What one client address may ask of the simulator's API on a public server (all its calls
#: together): plenty for staff trying a consultation by hand, too few to flood the database.
SIMULATOR_RATE_LIMIT = "30 per minute"
#: How many messages of a simulated conversation a page reload shows again.
TRANSCRIPT_LIMIT = 200

_View = Callable[[], Response]


class ApiError(Exception):
    """Bad input to the JSON API: answered as ``{"error": message}`` with ``status``."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def create_app(
    service: Service,
    config: Config,
    *,
    clock: Clock = utc_now,
    on_outbox: Callable[[], None] | None = None,
) -> Flask:
    """The Flask app: ``/healthz``, the staff console (``/``, :mod:`bot.console`), the
    providers' webhooks and, when enabled, the ``/simulator`` pages and API.

    ``clock`` stamps simulated messages and decides which surveys are still open;
    ``on_outbox`` wakes the dispatchers after the console queued messages.
    """
    app = Flask(__name__)
    if config.server.trusted_proxies > 0:
        # Behind the proxy every request comes from it: the client is what the proxy forwards,
        # read from exactly as many hops as there are proxies (more would trust a forgery).
        hops = config.server.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]
    # Werkzeug refuses larger bodies with 413 as soon as the view reads them.
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    simulator = config.server.simulator_enabled

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok")

    web_security.install(app, config)
    health = health_blueprint(service.sessions, config)
    app.register_blueprint(health)

    # Only what is true of this configuration: behind ``public_url`` the simulator needs a
    # signed-in editor; without it, no sign-in, which is unsafe only beyond this machine.
    warning = simulator_warning(config.server)
    if warning:
        log.warning("%s", warning)
    elif config.server.simulator_public:
        log.info(
            "the simulator is on at the public address, for signed-in editors and admins only "
            "(%s per client address)",
            SIMULATOR_RATE_LIMIT,
        )
    if simulator:
        limit = _rate_limit(app) if config.server.simulator_public else None
        sign_in = bool(config.server.public_url)
        app.register_blueprint(_simulator_blueprint(service, clock, limit, sign_in=sign_in))
    # /webhooks/<channel> only for the configured channels: the others answer 404.
    webhooks = webhooks_blueprint(service, config, clock=clock, max_body=MAX_BODY)
    if webhooks is not None:
        app.register_blueprint(webhooks)
    context = ConsoleContext(service, config, clock, on_outbox)
    install_console(app, context, exempt=[bp for bp in (health, webhooks) if bp is not None])

    @app.errorhandler(ApiError)
    def api_error(exc: ApiError) -> tuple[Response, int]:
        return jsonify(error=exc.message), exc.status

    # Every other error: a page in plain words, or JSON for the simulator's API and whoever
    # asked for JSON; never a traceback (bot/console/errors.py).
    install_error_pages(
        app,
        json_paths=(_API_PREFIX,),
        json_messages={
            413: f"request body too large (limit {MAX_BODY} bytes)",
            429: f"too many requests: the simulator allows {SIMULATOR_RATE_LIMIT} from one "
            "address; wait a minute and try again",
        },
    )

    return app


def simulator_warning(server: ServerConfig) -> str | None:
    """What is unsafe about the simulator in ``server``'s settings, if anything: it needs no
    sign-in where ``public_url`` is not set, so on an interface other than loopback anyone
    who reaches it may use it. (With ``public_url`` it needs a signed-in editor.)

    >>> simulator_warning(ServerConfig()) is None
    True
    >>> simulator_warning(ServerConfig(public_url="https://x", simulator=True)) is None
    True
    >>> print(str(simulator_warning(ServerConfig(host="0.0.0.0"))).partition(":")[0])
    the simulator needs no sign-in, on 0.0.0.0
    """
    if not server.simulator_enabled or server.public_url or _is_loopback(server.host):
        return None
    return (
        f"the simulator needs no sign-in, on {server.host or 'every interface'}: anyone who "
        "can reach that address may use it ([server] public_url puts it behind sign-in; "
        "[server] simulator = false turns it off)"
    )


def _is_loopback(host: str) -> bool:
    """
    >>> [_is_loopback(h) for h in ("127.0.0.1", "::1", "localhost", "0.0.0.0", "", "x.org")]
    [True, True, True, False, False, False]
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _rate_limit(app: Flask) -> Callable[[_View], _View]:
    """A decorator that holds the simulator's API views to :data:`SIMULATOR_RATE_LIMIT` per
    client address, counted together, in this process's memory.

    The client address is the connection's, or behind ``[server] trusted_proxies`` reverse
    proxies the one they forwarded (``ProxyFix`` in :func:`create_app`); without it, all
    clients behind a proxy share its one budget (stricter, never looser). Each worker process
    counts apart.
    """
    limiter = Limiter(
        get_remote_address,
        app=app,
        storage_uri="memory://",
        strategy="moving-window",
        headers_enabled=True,
    )
    shared = limiter.shared_limit(SIMULATOR_RATE_LIMIT, scope="simulator-api")

    def decorate(view: _View) -> _View:
        limited: _View = shared(view)
        return limited

    return decorate


def _simulator_blueprint(
    service: Service, clock: Clock, limit: Callable[[_View], _View] | None, *, sign_in: bool
) -> Blueprint:
    """``sign_in``: on a public server, only signed-in editors and admins may use it."""
    bp = Blueprint("simulator", __name__, url_prefix="/simulator")

    if sign_in:

        @bp.before_request
        def staff_only() -> ResponseReturnValue | None:
            staff = g.get("staff")
            if staff is None:
                if request.path.startswith(_API_PREFIX):
                    raise ApiError("sign in to the console to use the simulator", 401)
                return sign_in_first()
            codes_first = set_up_codes_first()
            if codes_first is not None:
                if request.path.startswith(_API_PREFIX):
                    raise ApiError("set up one-time codes in the console first", 403)
                return codes_first
            if not staff.role.allows(Role.EDITOR):
                audit("access refused", path=request.path, needed=Role.EDITOR.value)
                abort(403)
            return None

    def api(view: _View) -> _View:
        return view if limit is None else limit(view)

    @bp.get("")
    def page() -> Response:
        surveys = _survey_list(service, clock())
        # Signed-in staff get it in the console's layout, beside the consultation it tries.
        in_console = (
            g.get("staff") is not None and "consultations.detail" in current_app.view_functions
        )
        wanted = request.args.get("survey", "")
        response = make_response(
            render_template(
                "simulator_console.html" if in_console else "simulator.html",
                channels=CHANNEL_NAMES,
                surveys=surveys,
                data={"defaults": dict(DEFAULT_FROM), "labels": dict(CHANNEL_LABELS)},
                in_console=in_console,
                trying=next((s for s in surveys if s["slug"] == wanted), None),
            )
        )
        if _browser() is None:
            # This browser's own test phones: another person typing the same test number
            # elsewhere gets a conversation of their own, and cannot read or reset this one.
            response.set_cookie(
                BROWSER_COOKIE,
                secrets.token_urlsafe(16),
                max_age=BROWSER_COOKIE_DAYS * 24 * 3600,
                path="/simulator",
                secure=request.is_secure,
                httponly=True,
                samesite="Strict",
            )
        return response

    @bp.get("/api/surveys")
    @api
    def surveys() -> Response:
        return jsonify(_survey_list(service, clock()))

    @bp.get("/api/transcript")
    @api
    def transcript() -> Response:
        # The conversation the server carries on, so a reloaded page shows where it stands.
        address = _address(request.args)
        rows = service.transcript(address, simulated=True, limit=TRANSCRIPT_LIMIT)
        return jsonify(messages=[_line(row) for row in rows])

    @bp.post("/api/reset")
    @api
    def reset() -> Response:
        address = _address(_json_body())
        service.reset_simulated(address)
        return jsonify(messages=[])

    @bp.post("/api/send")
    @api
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
    @api
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
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # silent covers only ValueError
        raise ApiError("the body is not a JSON object (nested too deeply)") from None
    if not isinstance(body, dict):
        raise ApiError("the body is not a JSON object")
    return body


def _text(value: object, field: str, limit: int) -> str:
    """A string field of the request, cleaned for the database (:mod:`safetext`)."""
    if value is None:
        raise ApiError(f"{field} is missing")
    if not isinstance(value, str):
        raise ApiError(f"{field} must be a string")
    value = clean_text(value)
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
    browser = _browser()
    # Each browser's test phones apart (the page's cookie); callers without one (scripts,
    # tests) share the plain test space. The service then moves it into the simulators'.
    return Address(channel, value if browser is None else f"{browser}/{value}")


def _browser() -> str | None:
    """The id the simulator page gave this browser, if it sent a well-formed one."""
    value = request.cookies.get(BROWSER_COOKIE)
    return value if value is not None and _BROWSER_ID.fullmatch(value) else None


# --- responses ----------------------------------------------------------------------------


def _messages(outgoing: tuple[Outgoing, ...]) -> Response:
    return jsonify(messages=[_rendered(o) for o in outgoing])


def _rendered(out: Outgoing) -> dict[str, Any]:
    """One reply as the citizen's phone shows it, and the language it is written in."""
    rendered = out.render()
    return {
        "direction": "out",
        "text": rendered.text,
        "buttons": [
            [{"label": b.label, "payload": b.payload} for b in row] for row in rendered.buttons
        ],
        "segments": rendered.segments,
        "language": out.language,
    }


def _line(row: Message) -> dict[str, Any]:
    """A stored message of a simulated conversation: the citizen's as typed, Voxpop's as
    :func:`_rendered` shows it."""
    if row.direction == "out":
        return _rendered(outgoing_of(row))
    return {"direction": "in", "text": row.text}


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
