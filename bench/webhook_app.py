"""What the webhook bench serves under gunicorn: Voxpop's production app (:mod:`bot.wsgi`)
plus ``POST /bench/noop``, the baseline, a Flask route that does nothing and answers the same
empty TwiML. Both run in the same workers of the same server."""

from __future__ import annotations

from flask import Response

from bench.harness import NOOP_PATH
from bot.webhooks import TWIML_EMPTY
from bot.wsgi import app

__all__ = ["app"]


@app.post(NOOP_PATH)
def noop() -> Response:
    return Response(TWIML_EMPTY, mimetype="text/xml")
