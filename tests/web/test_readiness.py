"""``GET /readyz`` in a web process that runs no dispatcher and no scheduler (a gunicorn
worker): it reports them from their heartbeats, as the deployment docs promise."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config, TelegramConfig, TwilioConfig
from bot.health import BEAT_SECONDS, Heartbeat
from bot.service import Service
from bot.web.app import create_app

CONFIG = Config(
    telegram=TelegramConfig(token="123:abc", webhook_secret="secret"),
    twilio=TwilioConfig(account_sid="AC1", auth_token="token", sms_from="+15555550199"),
)


def test_readyz_reports_the_other_processes(db: sessionmaker[Session]) -> None:
    client = create_app(Service(db), CONFIG).test_client()

    alone = client.get("/readyz")
    assert alone.status_code == 503
    assert alone.headers["Cache-Control"] == "no-store"
    body = alone.get_json()
    assert body["status"] == "not ready"
    assert body["parts"]["database"] == "ok"
    assert body["parts"]["dispatcher"].startswith("no dispatcher has reported lately")
    assert client.get("/healthz").status_code == 200  # alive all the same

    # `voxpop dispatch` and `voxpop scheduler` start beside the workers.
    Heartbeat(db, "dispatcher", BEAT_SECONDS).beat(
        {"dispatcher": "ok", "telegram": "ok", "sms": "ok"}
    )
    Heartbeat(db, "scheduler", 15.0).beat({"scheduler": "ok"})

    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json() == {
        "status": "ready",
        "parts": {
            "database": "ok",
            "dispatcher": "ok",
            "scheduler": "ok",
            "telegram": "ok",
            "sms": "ok",
        },
    }
