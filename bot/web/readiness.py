"""``GET /readyz``: whether every part of Voxpop works, for monitoring (:mod:`bot.health`).

``GET /healthz`` (in :mod:`bot.web.app`) only says the process answers (liveness). ``/readyz``
answers 200 ``{"status": "ready", "parts": {...}}`` when the database, the dispatcher, the
scheduler and every configured channel work, else 503 ``{"status": "not ready", "parts":
{...}}`` with a short reason for each failing part. It names no address, secret or text.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config
from bot.health import readiness

__all__ = ["health_blueprint"]


def health_blueprint(sessions: sessionmaker[Session], config: Config) -> Blueprint:
    bp = Blueprint("health", __name__)

    @bp.get("/readyz")
    def readyz() -> tuple[Response, int]:
        ready, parts = readiness(sessions, config)
        response = jsonify(status="ready" if ready else "not ready", parts=parts)
        response.headers["Cache-Control"] = "no-store"
        return response, 200 if ready else 503

    return bp
