"""Config: defaults, file, environment overrides, and clear errors with file:line."""

from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path

import pytest

from bot.config import ConfigError, channel_problems, load_config


def test_defaults_without_a_file(tmp_path: Path) -> None:
    cfg = load_config(None, environ={}, cwd=tmp_path)
    assert cfg.database.url == "sqlite:///voxpop.db"
    assert (cfg.server.host, cfg.server.port) == ("127.0.0.1", 8080)
    assert cfg.source is None


def test_local_voxpop_toml_is_used_and_env_wins(tmp_path: Path) -> None:
    (tmp_path / "voxpop.toml").write_text('[server]\nport = 9001\nhost = "0.0.0.0"\n')
    cfg = load_config(None, environ={"VOXPOP_SERVER__PORT": "9002"}, cwd=tmp_path)
    assert cfg.server.port == 9002
    assert cfg.server.host == "0.0.0.0"


def test_explicit_path_beats_env_var_path(tmp_path: Path) -> None:
    a = tmp_path / "a.toml"
    b = tmp_path / "b.toml"
    a.write_text('[database]\nurl = "sqlite:///a.db"\n')
    b.write_text('[database]\nurl = "sqlite:///b.db"\n')
    cfg = load_config(str(a), environ={"VOXPOP_CONFIG": str(b)}, cwd=tmp_path)
    assert cfg.database.url == "sqlite:///a.db"
    assert load_config(None, environ={"VOXPOP_CONFIG": str(b)}, cwd=tmp_path).database.url == (
        "sqlite:///b.db"
    )


def test_env_coerces_types(tmp_path: Path) -> None:
    env = {
        "VOXPOP_SERVER__SIMULATOR": "false",
        "VOXPOP_SURVEYS__LOAD": "a.toml, b.toml",
        "VOXPOP_DATABASE__URL": "postgresql+psycopg://root@127.0.0.1/test",
    }
    cfg = load_config(None, environ=env, cwd=tmp_path)
    assert cfg.server.simulator is False
    assert cfg.surveys.load == ("a.toml", "b.toml")
    assert cfg.database.url.startswith("postgresql")


def test_example_config_documents_every_key() -> None:
    example = Path(__file__).parents[2] / "config.example.toml"
    cfg = load_config(str(example), environ={}, cwd=example.parent)
    text = example.read_text()
    for section in (f.name for f in fields(cfg) if f.name != "source"):
        assert f"[{section}]" in text
        for key in vars(getattr(cfg, section)):
            assert f"\n{key} = " in text, f"config.example.toml lacks [{section}] {key}"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[server]\nport = 80\nprot = 81\n", "voxpop.toml:3: unknown key 'prot' in [server]"),
        ("[sever]\nport = 80\n", "voxpop.toml:1: unknown section [sever]"),
        ("[server]\nport = \n", "voxpop.toml:2: "),
        ('[server]\nport = "eighty"\n', "[server] port: expected a whole number"),
        ("[server]\nsimulator = 1\n", '[server] simulator: expected true, false or "auto"'),
    ],
)
def test_bad_files_say_where_and_why(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "voxpop.toml").write_text(content)
    with pytest.raises(ConfigError) as err:
        load_config(None, environ={}, cwd=tmp_path)
    assert message in str(err.value)


def test_bad_env_value_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\$VOXPOP_SERVER__PORT: \[server\] port"):
        load_config(None, environ={"VOXPOP_SERVER__PORT": "lots"}, cwd=tmp_path)


SID_EN = "HX" + "0123456789abcdef" * 2
SID_NL = "HX" + "fedcba9876543210" * 2


def test_whatsapp_templates_from_a_file_and_from_the_environment(tmp_path: Path) -> None:
    (tmp_path / "voxpop.toml").write_text(
        '[twilio.whatsapp_templates."*"]\n'
        f'en = "{SID_EN}"\n'
        "[twilio.whatsapp_templates.central-park]\n"
        f'nl = {{ content_sid = "{SID_NL}", '
        'variables = { "1" = "{title} ({questions})" } }\n'
    )
    templates = load_config(None, environ={}, cwd=tmp_path).twilio.whatsapp_templates
    assert templates["*"]["en"].content_sid == SID_EN
    park = templates["central-park"]["nl"]
    assert park.fill({"title": "Centraal Park", "questions": "6"}) == {"1": "Centraal Park (6)"}
    env = {"VOXPOP_TWILIO__WHATSAPP_TEMPLATES": f'{{"*": {{"fr": "{SID_EN}"}}}}'}
    from_env = load_config(None, environ=env, cwd=tmp_path).twilio.whatsapp_templates
    assert list(from_env) == ["*"]
    assert from_env["*"]["fr"].content_sid == SID_EN


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('"*" = { en = "HX12" }', "whatsapp_templates.*.en: content_sid must be HX and 32 hex"),
        (
            f'"*" = {{ en = {{ content_sid = "{SID_EN}", variables = {{ "1" = "{{name}}" }} }} }}',
            "variable 1 uses {name} (known: {title}, {keyword}, {questions})",
        ),
        ('"*" = "HX"', "whatsapp_templates.*: expected a table of languages"),
    ],
)
def test_bad_whatsapp_templates_say_which_and_why(tmp_path: Path, table: str, message: str) -> None:
    (tmp_path / "voxpop.toml").write_text(f"[twilio.whatsapp_templates]\n{table}\n")
    with pytest.raises(ConfigError) as err:
        load_config(None, environ={}, cwd=tmp_path)
    assert message in str(err.value)


def test_a_rate_of_zero_is_a_clear_problem(tmp_path: Path) -> None:
    env = {"VOXPOP_TELEGRAM__PER_CHAT_PER_SECOND": "0"}
    config = load_config(None, environ=env, cwd=tmp_path)
    assert "[telegram] per_chat_per_second must be above 0, got 0" in channel_problems(config)


@pytest.mark.parametrize(
    ("written", "problem"),
    [
        ("whatsapp:+14155238886", False),
        ("WhatsApp: +14155238886", False),
        ("+14155238886", False),
        ("whatsapp:whatsapp:+14155238886", True),
        ("+123456", True),
        ("14155238886", True),
    ],
)
def test_whatsapp_sender_is_a_number_with_or_without_its_prefix(
    tmp_path: Path, written: str, problem: bool
) -> None:
    env = {"VOXPOP_TWILIO__WHATSAPP_FROM": written}
    config = load_config(None, environ=env, cwd=tmp_path)
    expected = (
        "[twilio] whatsapp_from must be the sender's phone number in international format, "
        'like whatsapp_from = "whatsapp:+14155238886"'
    )
    assert (expected in channel_problems(config)) is problem
    if not problem:
        assert config.twilio.whatsapp_from == "+14155238886"


@pytest.mark.parametrize(
    ("line", "env", "expected", "enabled_when_public"),
    [
        ("", None, None, False),  # the default is "auto"
        ('simulator = "auto"', None, None, False),
        ("simulator = true", None, True, True),
        ("simulator = false", None, False, False),
        ("", "auto", None, False),
        ("", "true", True, True),
        ("simulator = true", "off", False, False),
        ("simulator = false", "", None, False),
    ],
)
def test_the_simulator_setting_is_auto_true_or_false(
    tmp_path: Path, line: str, env: str | None, expected: bool | None, enabled_when_public: bool
) -> None:
    (tmp_path / "voxpop.toml").write_text(f"[server]\n{line}\n")
    environ = {} if env is None else {"VOXPOP_SERVER__SIMULATOR": env}
    server = load_config(None, environ=environ, cwd=tmp_path).server
    assert server.simulator is expected
    # Not public (`make run`): on unless turned off.
    assert server.simulator_enabled is (expected is not False)
    public = replace(server, public_url="https://voxpop.example.city")
    assert public.simulator_enabled is enabled_when_public
    assert public.simulator_public is enabled_when_public
    assert not server.simulator_public


@pytest.mark.parametrize(
    ("variable", "value", "refused"),
    [
        ("VOXPOP_TELEGRAM__WEBHOOK_SECRET", "change-me", "is still a placeholder"),
        ("VOXPOP_TELEGRAM__WEBHOOK_SECRET", "CHANGEME", "is still a placeholder"),
        ("VOXPOP_TELEGRAM__WEBHOOK_SECRET", "secret", "is still a placeholder"),
        ("VOXPOP_TELEGRAM__WEBHOOK_SECRET", "s3cret", "must be 16 to 256 letters"),
        ("VOXPOP_TELEGRAM__WEBHOOK_SECRET", "sixteen chars ok", "must be 16 to 256 letters"),
        ("VOXPOP_TELEGRAM__WEBHOOK_SECRET", "Qx7_vT2-kd9PzR4mWc8n", None),
        ("VOXPOP_TWILIO__AUTH_TOKEN", "change-me", "is still a placeholder"),
        ("VOXPOP_TWILIO__AUTH_TOKEN", "0123456789abcdef0123456789abcdef", None),
        ("VOXPOP_PRIVACY__PSEUDONYM_KEY", "change_me", "is still a placeholder"),
        ("VOXPOP_PRIVACY__PSEUDONYM_KEY", "short", "too short"),
        ("VOXPOP_PRIVACY__PSEUDONYM_KEY", "9f2c4e7a1b3d5f608a7c9e1b2d4f6a8c", None),
    ],
)
def test_a_secret_anyone_could_guess_stops_the_start(
    tmp_path: Path, variable: str, value: str, refused: str | None
) -> None:
    """Whoever knows the webhook secret or the auth token can act as any citizen."""
    env = {
        "VOXPOP_SERVER__PUBLIC_URL": "https://voxpop.example.city",
        "VOXPOP_TELEGRAM__TOKEN": "123456:AAH-real-looking-token",
        "VOXPOP_TELEGRAM__WEBHOOK_SECRET": "Qx7_vT2-kd9PzR4mWc8n",
        "VOXPOP_TWILIO__ACCOUNT_SID": "AC0123456789abcdef0123456789abcdef",
        "VOXPOP_TWILIO__AUTH_TOKEN": "0123456789abcdef0123456789abcdef",
        "VOXPOP_TWILIO__SMS_FROM": "+15555550100",
        variable: value,
    }
    problems = channel_problems(load_config(None, environ=env, cwd=tmp_path))
    if refused is None:
        assert problems == []
    else:
        [problem] = problems
        assert refused in problem
        assert "secrets.token_" in problem  # says how to make a good one
