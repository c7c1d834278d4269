"""``voxpop serve`` answers a whole consultation on each real channel: the test phone
(``python -m tests.fakes``) posts signed webhooks to a real server process, which sends its
replies through the real SDKs to the loopback fakes; Twilio's delivery reports come back."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from storage.db import transaction
from storage.models import AnswerRow, Message, SessionRow

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """\
sms +32470000001 LIGHTS
sms +32470000001 1
sms +32470000001 Station road
sms +32470000001 2
sms +32470000001 More lamps near the school
whatsapp +32470000002 lights
whatsapp +32470000002 no
whatsapp +32470000002 4
whatsapp +32470000002 Fine as it is
telegram 4242 /start PARK
tap 4242 1
telegram 4242 1,5
tap 4242 2
tap 4242 1
tap 4242 1
telegram 4242 1980
telegram 4242 A water fountain
tap 4242 1
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_a_whole_consultation_on_each_channel(
    db_url: str, db: sessionmaker[Session], tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    env = os.environ | {
        # The pace per chat is Telegram's business; here it would only make the test slow.
        "VOXPOP_TELEGRAM__PER_CHAT_PER_SECOND": "50",
        "VOXPOP_LOGGING__LEVEL": "WARNING",
    }
    env.pop("VOXPOP_CONFIG", None)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.fakes",
            "--voxpop",
            url,
            "--config",
            str(tmp_path / "fake-channels.toml"),
            "--database",
            db_url,
        ],
        input=SCRIPT,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=600,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "!" not in "".join(line[:1] for line in out.splitlines()), out
    assert "bot> (+32470000001) Thanks! We will fix the darkest spots first." in out
    assert "bot> (whatsapp:+32470000002) Thanks! We will fix the darkest spots first." in out
    assert (
        "bot> (telegram 4242) Thank you! The results will be on the city website in April." in out
    )
    with transaction(db, read_only=True) as s:
        sessions = {r.channel: r.status for r in s.scalars(select(SessionRow))}
        answers = {(a.question_id, str(a.value)) for a in s.scalars(select(AnswerRow))}
        twilio_out = [
            m.status
            for m in s.scalars(select(Message).where(Message.direction == "out"))
            if m.channel != "telegram"
        ]
    assert sessions == {"sms": "completed", "whatsapp": "completed", "telegram": "completed"}
    assert {("visits", "weekly"), ("birth_year", "1980"), ("where", "Station road")} <= answers
    # Twilio reported every SMS and WhatsApp message delivered, to the signed status webhook.
    assert set(twilio_out) == {"delivered"}
