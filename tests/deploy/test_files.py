"""The files docs/deployment.md ships, checked as an operator would find out the hard way:
each unit runs a real command with valid options, the environment file holds real settings,
the proxies hand gunicorn what Voxpop needs, and the guide links every file."""

from __future__ import annotations

import re
import secrets
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from gunicorn.config import Config as GunicornConfig  # type: ignore[import-untyped]

from bot.config import ContactsConfig, channel_problems, load_config
from bot.web.app import MAX_BODY
from tests.deploy.guide import (
    DEPLOY,
    ENV_EXAMPLE,
    ETC_ENV,
    ETC_TOML,
    GUIDE,
    ROOT,
    TOML_EXAMPLE,
    UNITS,
    local_command,
    read_env_file,
    read_unit,
)

#: What each unit runs (after the virtualenv's folder).
COMMANDS = {
    "voxpop-web.service": "gunicorn",
    "voxpop-dispatch.service": "voxpop dispatch",
    "voxpop-scheduler.service": "voxpop scheduler",
}


@pytest.mark.parametrize("name", UNITS)
def test_each_unit_restarts_runs_as_voxpop_and_reads_the_settings_and_secrets(name: str) -> None:
    unit = read_unit(name)

    assert unit.one("Service", "Restart") == "always"
    assert float(unit.one("Service", "RestartSec")) > 0
    assert unit.one("Service", "User") == "voxpop"
    assert unit.environment() == {"VOXPOP_CONFIG": ETC_TOML, "PYTHONUNBUFFERED": "1"}
    assert unit.one("Service", "EnvironmentFile") == ETC_ENV
    assert unit.one("Service", "WorkingDirectory") == "/var/lib/voxpop"
    assert unit.one("Install", "WantedBy") == "multi-user.target"
    assert " ".join(unit.exec_start()).split("/")[-1].startswith(COMMANDS[name])


@pytest.mark.parametrize("name", ["voxpop-dispatch.service", "voxpop-scheduler.service"])
def test_the_voxpop_units_run_real_subcommands_of_the_installed_voxpop(name: str) -> None:
    command = local_command(read_unit(name).exec_start())

    # --help after the unit's own words: click refuses an unknown command or option first.
    shown = subprocess.run(
        [*command, "--help"], capture_output=True, text=True, check=False, cwd=ROOT
    )

    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(f"Usage: voxpop {command[1]} ")


def test_the_web_unit_runs_gunicorn_with_valid_options_on_the_wsgi_app() -> None:
    command = local_command(read_unit("voxpop-web.service").exec_start())
    assert Path(command[0]).name == "gunicorn"

    settings = GunicornConfig(prog="gunicorn")
    parsed = settings.parser().parse_args(command[1:])  # exits on an unknown option
    for key, value in vars(parsed).items():
        if key != "args" and value is not None:
            settings.set(key.lower(), value)  # refuses a value of the wrong kind
    shown = subprocess.run([command[0], "--help"], capture_output=True, text=True, check=True)

    assert parsed.args == ["bot.wsgi:app"]
    assert settings.workers >= 2
    assert settings.bind == ["127.0.0.1:8080"]  # loopback: only the proxy talks to it
    for option in (word for word in command if word.startswith("--")):
        assert option in shown.stdout


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_accepts_the_units(tmp_path: Path) -> None:
    for name in UNITS:
        text = (DEPLOY / name).read_text(encoding="utf-8")
        # systemd checks that ExecStart's program exists: point it at this virtualenv's.
        local = local_command(["/opt/voxpop/.venv/bin/voxpop"])[0].removesuffix("voxpop")
        (tmp_path / name).write_text(text.replace("/opt/voxpop/.venv/bin/", local))

    checked = subprocess.run(
        ["systemd-analyze", "verify", *(str(tmp_path / name) for name in UNITS)],
        capture_output=True,
        text=True,
        check=False,
    )

    # A setting systemd cannot parse is only a warning: nothing at all may be said.
    assert (checked.returncode, checked.stdout + checked.stderr) == (0, "")


def test_the_environment_file_holds_only_real_settings_and_the_secrets_go_there() -> None:
    env = read_env_file(ENV_EXAMPLE)

    config = load_config(str(TOML_EXAMPLE), environ=env)

    assert all(re.fullmatch(r"VOXPOP_[A-Z]+__[A-Z_]+", name) for name in env)
    assert config.database.url == env["VOXPOP_DATABASE__URL"]
    assert config.database.url.startswith("postgresql+psycopg://voxpop:")
    assert config.telegram.token == env["VOXPOP_TELEGRAM__TOKEN"]
    assert config.telegram.webhook_secret == env["VOXPOP_TELEGRAM__WEBHOOK_SECRET"]
    assert config.twilio.auth_token == env["VOXPOP_TWILIO__AUTH_TOKEN"]
    assert config.privacy.pseudonym_key == env["VOXPOP_PRIVACY__PSEUDONYM_KEY"]


def test_the_environment_file_as_shipped_is_refused_until_its_secrets_are_made() -> None:
    """Copied and left as it is, nobody may act as a citizen with a secret everyone can read."""
    env = read_env_file(ENV_EXAMPLE)
    shipped = channel_problems(load_config(str(TOML_EXAMPLE), environ=env))
    assert any(p.startswith("[telegram] webhook_secret is required") for p in shipped)
    assert any("auth_token" in p for p in shipped)

    made = {
        "VOXPOP_TELEGRAM__WEBHOOK_SECRET": secrets.token_urlsafe(32),
        "VOXPOP_TWILIO__AUTH_TOKEN": secrets.token_hex(16),
        "VOXPOP_PRIVACY__PSEUDONYM_KEY": secrets.token_hex(32),
    }
    assert channel_problems(load_config(str(TOML_EXAMPLE), environ=env | made)) == []


def test_the_settings_file_is_public_ready_and_holds_no_secret() -> None:
    settings = tomllib.loads(TOML_EXAMPLE.read_text(encoding="utf-8"))
    config = load_config(str(TOML_EXAMPLE), environ={})

    secrets = {"url", "token", "webhook_secret", "auth_token", "account_sid", "pseudonym_key"}
    assert not {key for section in settings.values() for key in section} & secrets
    assert config.server.public_url.startswith("https://")
    assert not config.server.public_url.endswith("/")
    assert settings["server"]["simulator"] is False  # said in so many words (and a 404)


def test_the_environment_file_reads_the_same_in_a_shell(tmp_path: Path) -> None:
    # The guide's way without systemd: set -a; . /etc/voxpop/voxpop.env; set +a
    script = f'set -a; . "{ENV_EXAMPLE}"; set +a; env -0'
    shell = subprocess.run(["bash", "-c", script], capture_output=True, check=True, env={})
    seen = dict(item.split("=", 1) for item in shell.stdout.decode().split("\0") if "=" in item)

    env = read_env_file(ENV_EXAMPLE)
    assert {name: seen.get(name) for name in env} == env


def test_the_proxies_pass_to_the_web_unit_and_limit_bodies_as_voxpop_does() -> None:
    bind = read_unit("voxpop-web.service").exec_start()
    upstream = bind[bind.index("--bind") + 1]
    nginx = (DEPLOY / "nginx-voxpop.conf").read_text(encoding="utf-8")
    caddy = (DEPLOY / "Caddyfile").read_text(encoding="utf-8")

    assert f"proxy_pass http://{upstream};" in nginx
    assert "client_max_body_size 1m;" in nginx
    # The contacts import alone takes [contacts] max_upload_mb.
    limit = ContactsConfig().max_upload_mb
    assert f"location = /contacts/import {{\n        client_max_body_size {limit}m;" in nginx
    assert f"request_body @contacts_import {{\n\t\tmax_size {limit}MiB" in caddy
    assert MAX_BODY == 1024 * 1024
    for header in ("Host $host", "X-Forwarded-Proto $scheme", "X-Forwarded-For"):
        assert f"proxy_set_header {header}" in nginx
    assert "return 301 https://" in nginx
    assert f"reverse_proxy {upstream}" in caddy
    assert "max_size 1MiB" in caddy


def test_the_guide_links_every_shipped_file_and_the_readme_links_the_guide() -> None:
    guide = GUIDE.read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")

    for shipped in sorted(DEPLOY.iterdir()):
        assert f"](deploy/{shipped.name})" in guide, shipped.name
    assert "](docs/deployment.md)" in readme
    assert "docs/deployment.md" in (ROOT / "bot" / "wsgi.py").read_text(encoding="utf-8")


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_link_of_the_guide_leads_somewhere() -> None:
    docs = GUIDE.parent
    links = re.findall(r"\]\(([^)\s]+)\)", GUIDE.read_text(encoding="utf-8"))
    links += [
        "deployment.md#5-the-reverse-proxy-tls-and-public_url",  # from docs/channels.md
        "deployment.md#9-backups-and-restores",  # from docs/architecture.md
    ]

    for link in links:
        if link.startswith(("http://", "https://")):
            continue
        path, _, anchor = link.partition("#")
        target = (docs / path) if path else GUIDE
        assert target.exists(), link
        if anchor and target.suffix == ".md":
            headings = re.findall(r"^#+ (.+)$", target.read_text(encoding="utf-8"), re.M)
            assert anchor in {_anchor(h) for h in headings}, link
