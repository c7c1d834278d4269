"""Configuration: built-in defaults, then a TOML file, then ``VOXPOP_<SECTION>__<KEY>`` variables.

The file is ``--config PATH``, else ``$VOXPOP_CONFIG``, else ``./voxpop.toml`` when present.
Every key is documented in ``config.example.toml``. Secrets belong in the environment or an
untracked file, never in the repository.

>>> cfg = load_config(None, environ={"VOXPOP_SERVER__PORT": "9000"}, cwd=Path("/nonexistent"))
>>> cfg.server.port
9000
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from channels.addresses import is_phone_number

ENV_PREFIX = "VOXPOP_"


class ConfigError(Exception):
    """A config file or variable that cannot be used; the message says where and why."""


@dataclass(frozen=True)
class DatabaseConfig:
    #: SQLAlchemy URL; SQLite in the working directory by default.
    url: str = "sqlite:///voxpop.db"


def parse_simulator(value: Any, where: str, from_env: bool) -> bool | None:
    """``[server] simulator``: ``true``, ``false``, or ``"auto"`` (``None``: on unless the
    server is public).

    >>> parse_simulator("auto", "test", False) is None, parse_simulator("off", "env", True)
    (True, False)
    >>> parse_simulator("yes", "test", False)
    Traceback (most recent call last):
    ...
    bot.config.ConfigError: test: expected true, false or "auto", got 'yes'
    """
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower() if isinstance(value, str) else None
    if word == "auto" or (from_env and word == ""):
        return None
    if from_env and word in ("1", "true", "yes", "on"):
        return True
    if from_env and word in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f'{where}: expected true, false or "auto", got {value!r}')


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    #: The URL providers reach us at (used to verify webhook signatures behind a proxy).
    public_url: str = ""
    #: The browser simulator at /simulator (staff's test phone): ``True``, ``False``, or
    #: ``None`` ("auto", the default): on unless ``public_url`` is set. Use
    #: :attr:`simulator_enabled`.
    simulator: bool | None = field(
        default=None,
        metadata={"parse": lambda value, where, from_env: parse_simulator(value, where, from_env)},
    )
    threads: int = 8
    #: How many reverse proxies stand in front and append to ``X-Forwarded-For``: the client
    #: address (for the simulator's rate limit) and the scheme are read from that many hops.
    #: 0: nothing forwarded is trusted (the address is the one connecting).
    trusted_proxies: int = 0

    @property
    def simulator_enabled(self) -> bool:
        """Whether /simulator is served: asked for, or "auto" on a server that is not public.

        >>> ServerConfig().simulator_enabled, ServerConfig(public_url="https://x").simulator_enabled
        (True, False)
        """
        if self.simulator is None:
            return not self.public_url
        return self.simulator

    @property
    def simulator_public(self) -> bool:
        """The simulator is on where anyone may reach it (``public_url`` set): its API is
        rate-limited, and ``voxpop serve`` warns."""
        return self.simulator_enabled and bool(self.public_url)


@dataclass(frozen=True)
class PrivacyConfig:
    #: Key for respondent pseudonyms in exports. Empty: one is generated and kept in the DB.
    pseudonym_key: str = ""


@dataclass(frozen=True)
class ConversationConfig:
    #: Language for system messages to a contact whose language is not known yet.
    default_language: str = "en"
    #: A consultation left this long without a reply is ``abandoned`` (answers kept).
    session_timeout_hours: float = 72.0


@dataclass(frozen=True)
class ConsoleConfig:
    #: A signed-in member of staff who does nothing for this long is signed out.
    idle_minutes: int = 30
    #: Every sign-in ends after this long, however active (a working day).
    session_hours: int = 12


@dataclass(frozen=True)
class ContactsConfig:
    #: Where phone numbers without a country code are from (ISO 3166, e.g. ``BE``).
    #: Empty: such numbers are refused at import.
    default_region: str = ""
    #: The largest contacts file the console's import takes, in MB (a city's file of 100,000
    #: contacts is about 10 MB); larger files go through ``voxpop contacts import``.
    max_upload_mb: int = 20


@dataclass(frozen=True)
class PushesConfig:
    #: For contacts whose own timezone is not known (IANA name).
    timezone: str = "Europe/Brussels"
    #: No invitation or reminder in this window of each contact's local time ("" for none).
    quiet_hours: str = "21:00-09:00"
    #: Invitations planned per second: a large audience is spread over time.
    rate_per_second: float = 20.0
    #: A contact with several addresses is reached on the first of these they have.
    channels: tuple[str, ...] = ("telegram", "whatsapp", "sms")
    #: A push due while no scheduler ran still goes if at most this late; else it is missed.
    misfire_grace_hours: float = 6.0
    #: For the cost estimate before a push: price of one SMS segment, and its currency.
    sms_price_per_segment: float = 0.0
    currency: str = "EUR"


@dataclass(frozen=True)
class ResultsConfig:
    #: Results broken down by channel, language or a contact attribute merge groups of fewer
    #: people than this into "other (small groups)", so nobody can be singled out.
    min_group_size: int = 5


@dataclass(frozen=True)
class SchedulerConfig:
    #: How often the scheduler looks for due invitations, reminders and idle sessions.
    tick_seconds: float = 15.0
    #: How often a standby scheduler tries to take over.
    standby_retry_seconds: float = 5.0


@dataclass(frozen=True)
class SurveysConfig:
    #: Survey files or folders loaded by ``voxpop serve`` at start (``make run`` uses examples).
    load: tuple[str, ...] = ()


@dataclass(frozen=True)
class TelegramConfig:
    #: The bot token from @BotFather. Empty: Telegram is off.
    token: str = ""
    #: Sent by Telegram in X-Telegram-Bot-Api-Secret-Token on every webhook call.
    webhook_secret: str = ""
    #: The Bot API root; ``/bot<token>/<method>`` is added to it.
    api_base_url: str = "https://api.telegram.org"
    #: Telegram's limits for bots: about 30 messages a second overall, one a second per chat.
    messages_per_second: float = 25.0
    per_chat_per_second: float = 1.0

    @property
    def enabled(self) -> bool:
        return bool(self.token)


#: What a template's variables say unless the config says otherwise.
DEFAULT_TEMPLATE_VARIABLES: Final[Mapping[str, str]] = MappingProxyType(
    {"1": "{title}", "2": "{keyword}"}
)
#: The placeholders a template variable may use; filled in when the invitation is sent.
TEMPLATE_PLACEHOLDERS: Final = ("title", "keyword", "questions")
_CONTENT_SID = re.compile(r"^HX[0-9a-fA-F]{32}$")


@dataclass(frozen=True)
class WhatsAppTemplate:
    """An approved WhatsApp template (Twilio Content API) and the text of its variables."""

    #: ``HX`` and 32 hexadecimal digits, from Twilio's Content Template Builder.
    content_sid: str
    #: Variable number -> text, with ``{title}``, ``{keyword}`` or ``{questions}`` filled in.
    variables: Mapping[str, str] = field(default_factory=lambda: DEFAULT_TEMPLATE_VARIABLES)

    def fill(self, values: Mapping[str, str]) -> dict[str, str]:
        """The variables as sent to Twilio.

        >>> WhatsAppTemplate("HX" + "0" * 32).fill({"title": "Central Park", "keyword": "PARK"})
        {'1': 'Central Park', '2': 'PARK'}
        """
        filled = {name: "" for name in TEMPLATE_PLACEHOLDERS} | dict(values)
        return {number: text.format_map(filled) for number, text in self.variables.items()}


def parse_templates(
    value: Any, where: str, from_env: bool
) -> Mapping[str, Mapping[str, WhatsAppTemplate]]:
    """``[twilio.whatsapp_templates]``: survey id (or ``*``) -> language -> a content SID or
    ``{content_sid = "HX...", variables = {"1" = "{title}"}}``; from the environment, the same
    as JSON.

    >>> t = parse_templates({"*": {"en": "HX" + "a" * 32}}, "test", False)
    >>> t["*"]["en"].variables["1"]
    '{title}'
    >>> parse_templates({"*": {"en": "HX1"}}, "test", False)
    Traceback (most recent call last):
    ...
    bot.config.ConfigError: test.*.en: content_sid must be HX and 32 hex digits, got 'HX1'
    """
    if from_env and isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except ValueError as exc:
            raise ConfigError(f"{where}: expected JSON ({exc})") from None
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected a table of survey ids")
    surveys: dict[str, Mapping[str, WhatsAppTemplate]] = {}
    for survey, languages in value.items():
        if not isinstance(languages, Mapping):
            raise ConfigError(f"{where}.{survey}: expected a table of languages")
        templates: dict[str, WhatsAppTemplate] = {}
        for language, spec in languages.items():
            templates[str(language)] = _template(spec, f"{where}.{survey}.{language}")
        surveys[str(survey)] = MappingProxyType(templates)
    return MappingProxyType(surveys)


def _template(spec: Any, where: str) -> WhatsAppTemplate:
    variables: Any = DEFAULT_TEMPLATE_VARIABLES
    if isinstance(spec, Mapping):
        unknown = set(spec) - {"content_sid", "variables"}
        if unknown:
            raise ConfigError(
                f"{where}: unknown key {sorted(unknown)[0]!r} (known: content_sid, variables)"
            )
        variables = spec.get("variables", variables)
        spec = spec.get("content_sid")
    if not isinstance(spec, str) or not _CONTENT_SID.match(spec):
        raise ConfigError(f"{where}: content_sid must be HX and 32 hex digits, got {spec!r}")
    if not isinstance(variables, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in variables.items()
    ):
        raise ConfigError(f"{where}: variables must map numbers to text")
    for number, text in variables.items():
        for name in re.findall(r"{(\w*)}", text):
            if name not in TEMPLATE_PLACEHOLDERS:
                known = ", ".join(f"{{{p}}}" for p in TEMPLATE_PLACEHOLDERS)
                raise ConfigError(f"{where}: variable {number} uses {{{name}}} (known: {known})")
    return WhatsAppTemplate(spec, MappingProxyType(dict(variables)))


def find_template(
    templates: Mapping[str, Mapping[str, WhatsAppTemplate]],
    survey: str,
    languages: tuple[str, ...],
) -> tuple[str, WhatsAppTemplate] | None:
    """The template for ``survey`` in the first of ``languages`` that has one, and that
    language (its variables are filled in it); a survey's own templates before ``*``'s.

    >>> sid = "HX" + "b" * 32
    >>> found = find_template({"*": {"nl": WhatsAppTemplate(sid)}}, "park", ("fr", "nl"))
    >>> found is not None and found[0] == "nl" and found[1].content_sid == sid
    True
    """
    for table in (templates.get(survey), templates.get("*")):
        for language in languages:
            if table is not None and language in table:
                return language, table[language]
    return None


WHATSAPP_PREFIX = "whatsapp:"


def _whatsapp_sender(value: Any, where: str) -> str:
    """The WhatsApp sender as Voxpop keeps it: the number, without Twilio's ``whatsapp:``.

    >>> _whatsapp_sender("whatsapp:+14155238886", "x"), _whatsapp_sender(" +14155238886", "x")
    ('+14155238886', '+14155238886')
    """
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    text = value.strip()
    if text.lower().startswith(WHATSAPP_PREFIX):
        text = text[len(WHATSAPP_PREFIX) :].strip()
    return text


@dataclass(frozen=True)
class TwilioConfig:
    #: Account SID (AC...) and auth token. Empty: SMS and WhatsApp are off.
    account_sid: str = ""
    auth_token: str = ""
    #: The REST API root; the SDK's ``/2010-04-01/...`` paths are added to it.
    api_base_url: str = "https://api.twilio.com"
    #: Send SMS from this number (E.164), or through this Messaging Service (MG...).
    sms_from: str = ""
    messaging_service_sid: str = ""
    #: The WhatsApp sender, an E.164 number; written with ``whatsapp:`` in front, as
    #: Twilio's console shows it, it means the same (the prefix is dropped on load).
    whatsapp_from: str = field(
        default="",
        metadata={"parse": lambda value, where, from_env: _whatsapp_sender(value, where)},
    )
    #: What each sender may send, for all dispatchers together: SMS counts segments.
    sms_segments_per_second: float = 10.0
    whatsapp_messages_per_second: float = 20.0
    #: Approved templates for invitations outside WhatsApp's 24-hour window:
    #: survey id (or ``*``) -> language -> template.
    whatsapp_templates: Mapping[str, Mapping[str, WhatsAppTemplate]] = field(
        default_factory=lambda: MappingProxyType({}),
        metadata={"parse": lambda value, where, from_env: parse_templates(value, where, from_env)},
    )

    @property
    def enabled(self) -> bool:
        return bool(self.account_sid or self.auth_token)


@dataclass(frozen=True)
class DispatchConfig:
    #: A claimed message another dispatcher may take over after this (if its sender died).
    lease_seconds: float = 60.0
    #: Tries for timeouts, 5xx and 429 before a message is ``failed``.
    max_attempts: int = 6
    #: Backoff: the first wait, doubling each try up to the maximum (with jitter).
    base_backoff_seconds: float = 2.0
    max_backoff_seconds: float = 900.0
    #: Sends in flight at once per dispatcher.
    concurrency: int = 32
    #: When idle, look for due messages this often (a new reply wakes it at once anyway,
    #: from any process: storage.outbox_bell).
    idle_poll_seconds: float = 0.5
    #: How long one provider call may take before it counts as a timeout.
    send_timeout_seconds: float = 10.0


@dataclass(frozen=True)
class LoggingConfig:
    level: str = "INFO"


@dataclass(frozen=True)
class Config:
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    console: ConsoleConfig = field(default_factory=ConsoleConfig)
    conversation: ConversationConfig = field(default_factory=ConversationConfig)
    contacts: ContactsConfig = field(default_factory=ContactsConfig)
    pushes: PushesConfig = field(default_factory=PushesConfig)
    results: ResultsConfig = field(default_factory=ResultsConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    surveys: SurveysConfig = field(default_factory=SurveysConfig)
    telegram: TelegramConfig = field(default_factory=TelegramConfig)
    twilio: TwilioConfig = field(default_factory=TwilioConfig)
    dispatch: DispatchConfig = field(default_factory=DispatchConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    #: Where the file came from, for messages; ``None`` for built-in defaults.
    source: str | None = None


_SECTIONS: dict[str, type[Any]] = {
    f.name: f.default_factory  # type: ignore[misc]
    for f in fields(Config)
    if f.name != "source"
}


def configured_channels(config: Config) -> tuple[str, ...]:
    """The channels citizens can reach Voxpop on with this configuration (the simulator is
    not one): what ``voxpop serve`` and the console's home page tell staff.

    >>> configured_channels(Config())
    ()
    >>> twilio = TwilioConfig(account_sid="AC1", auth_token="t", sms_from="+3224000000")
    >>> configured_channels(Config(telegram=TelegramConfig(token="1:x"), twilio=twilio))
    ('telegram', 'sms')
    """
    found: list[str] = []
    if config.telegram.enabled:
        found.append("telegram")
    twilio = config.twilio
    if twilio.enabled and (twilio.sms_from or twilio.messaging_service_sid):
        found.append("sms")
    if twilio.enabled and twilio.whatsapp_from:
        found.append("whatsapp")
    return tuple(found)


def channel_problems(config: Config) -> list[str]:
    """What makes a half-configured channel unusable; an absent channel is simply off.

    >>> public = ServerConfig(public_url="https://voxpop.example.city")
    >>> channel_problems(Config(server=public, telegram=TelegramConfig(token="123:abc")))
    ['[telegram] webhook_secret is required with a token (webhooks are verified with it)']
    >>> channel_problems(Config())
    []
    """
    problems: list[str] = secret_problems(config)
    telegram, twilio = config.telegram, config.twilio
    if telegram.enabled and not telegram.webhook_secret:
        problems.append(
            "[telegram] webhook_secret is required with a token (webhooks are verified with it)"
        )
    if telegram.webhook_secret and not telegram.enabled:
        problems.append("[telegram] webhook_secret is set but token is empty")
    if twilio.enabled:
        if not (twilio.account_sid and twilio.auth_token):
            problems.append("[twilio] account_sid and auth_token go together: one is missing")
        if not (twilio.sms_from or twilio.messaging_service_sid or twilio.whatsapp_from):
            problems.append(
                "[twilio] needs a sender: sms_from, messaging_service_sid or whatsapp_from"
            )
    elif twilio.sms_from or twilio.messaging_service_sid or twilio.whatsapp_from:
        problems.append("[twilio] a sender is set but account_sid and auth_token are empty")
    if twilio.whatsapp_from and not is_phone_number(twilio.whatsapp_from):
        problems.append(
            "[twilio] whatsapp_from must be the sender's phone number in international "
            'format, like whatsapp_from = "whatsapp:+14155238886"'
        )
    rates = {
        "[telegram] messages_per_second": telegram.messages_per_second,
        "[telegram] per_chat_per_second": telegram.per_chat_per_second,
        "[twilio] sms_segments_per_second": twilio.sms_segments_per_second,
        "[twilio] whatsapp_messages_per_second": twilio.whatsapp_messages_per_second,
    }
    problems += [
        f"{name} must be above 0, got {rate:g}" for name, rate in rates.items() if rate <= 0
    ]
    if config.results.min_group_size < 1:
        problems.append(
            f"[results] min_group_size must be 1 or more, got {config.results.min_group_size}"
        )
    if not 1 <= config.contacts.max_upload_mb <= 500:
        problems.append(
            "[contacts] max_upload_mb must be between 1 and 500, got "
            f"{config.contacts.max_upload_mb}"
        )
    if (telegram.enabled or twilio.enabled) and not config.server.public_url:
        problems.append(
            "[server] public_url is required with a real channel (providers call it, and "
            "Twilio signs requests with it)"
        )
    return problems


#: Telegram's alphabet for a webhook secret; 16 characters at least, so it cannot be guessed.
_WEBHOOK_SECRET: Final = re.compile(r"[A-Za-z0-9_-]{16,256}")
#: What example files put where a secret goes: left in place, anyone who read them knows it.
_PLACEHOLDER: Final = re.compile(
    r"change[-_ ]?me|example|placeholder|^(secret|password|token)$", re.IGNORECASE
)
_MAKE_ONE = "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"


def secret_problems(config: Config) -> list[str]:
    """Secrets that anyone could guess: a placeholder from an example file, or a webhook
    secret or pseudonym key too short. Whoever knows the webhook secret or the Twilio auth
    token can act as any citizen; whoever knows the pseudonym key can name respondents.

    >>> bad = Config(telegram=TelegramConfig(token="1:x", webhook_secret="change-me"))
    >>> secret_problems(bad)[0].split(":")[0]
    '[telegram] webhook_secret is still a placeholder'
    >>> good = TelegramConfig(token="1:x", webhook_secret="Qx7_vT2-kd9PzR4mWc8n")
    >>> secret_problems(Config(telegram=good))
    []
    """
    secrets = {
        "[telegram] webhook_secret": config.telegram.webhook_secret,
        "[twilio] auth_token": config.twilio.auth_token,
        "[privacy] pseudonym_key": config.privacy.pseudonym_key,
    }
    problems = [
        f"{name} is still a placeholder: set it to a random value, made with {_MAKE_ONE}"
        for name, value in secrets.items()
        if value and _PLACEHOLDER.search(value)
    ]
    secret = config.telegram.webhook_secret
    if secret and not _PLACEHOLDER.search(secret) and not _WEBHOOK_SECRET.fullmatch(secret):
        problems.append(
            "[telegram] webhook_secret must be 16 to 256 letters, digits, _ or - (Telegram's "
            f"rule, and long enough not to be guessed), made with {_MAKE_ONE}"
        )
    key = config.privacy.pseudonym_key
    if key and not _PLACEHOLDER.search(key) and len(key) < 16:
        problems.append(
            "[privacy] pseudonym_key is too short to keep pseudonyms unguessable: use 16 "
            "characters or more, made with "
            "python3 -c 'import secrets; print(secrets.token_hex(32))'"
        )
    return problems


#: The configuration file read when neither ``--config`` nor ``$VOXPOP_CONFIG`` names one.
DEFAULT_CONFIG_FILE = "voxpop.toml"


def find_config_path(explicit: str | None, environ: Mapping[str, str], cwd: Path) -> Path | None:
    if explicit:
        return Path(explicit)
    if environ.get("VOXPOP_CONFIG"):
        return Path(environ["VOXPOP_CONFIG"])
    local = cwd / DEFAULT_CONFIG_FILE
    return local if local.is_file() else None


def load_config(
    explicit: str | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Config:
    """Defaults, overlaid by the file (if any), overlaid by the environment."""
    env = os.environ if environ is None else environ
    path = find_config_path(explicit, env, cwd or Path.cwd())
    data: dict[str, dict[str, Any]] = {}
    source: str | None = None
    if path is not None:
        source = str(path)
        data = _read_file(path)
    config = Config(source=source)
    for section, values in data.items():
        config = _set_section(config, section, values, source or "", path)
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX) :].lower().partition("__")
        config = _set_section(config, section, {key: raw}, f"${name}", None, from_env=True)
    return config


def _read_file(path: Path) -> dict[str, dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        where = f"{path}:{match.group(1)}" if match else str(path)
        reason = re.sub(r"\s*\(at line .*\)$", "", str(exc))
        raise ConfigError(f"{where}: {reason}") from exc
    for section, values in data.items():
        if section not in _SECTIONS or not isinstance(values, dict):
            known = ", ".join(sorted(_SECTIONS))
            line = _line_of(text, rf"^\s*\[{re.escape(section)}\]")
            raise ConfigError(f"{path}:{line}: unknown section [{section}] (known: {known})")
    return data


def _key_line(text: str, section: str, key: str) -> int:
    """The line of ``key`` inside ``[section]`` (not a same-named key of another section)."""
    header = re.compile(r"^\s*\[([^\[\]]+)\]")
    assignment = re.compile(r"^\s*" + re.escape(key) + r"\s*=")
    current = ""
    for number, line in enumerate(text.splitlines(), start=1):
        found = header.match(line)
        if found:
            current = found.group(1).strip()
        elif current == section and assignment.match(line):
            return number
    return _line_of(text, rf"^\s*\[{re.escape(section)}\]")


def _line_of(text: str, pattern: str) -> int:
    for number, line in enumerate(text.splitlines(), start=1):
        if re.match(pattern, line):
            return number
    return 1


def _set_section(
    config: Config,
    section: str,
    values: Mapping[str, Any],
    where: str,
    path: Path | None,
    *,
    from_env: bool = False,
) -> Config:
    if section not in _SECTIONS:
        raise ConfigError(f"{where}: unknown section [{section}]")
    current = getattr(config, section)
    known = {f.name: f for f in fields(current)}
    changes: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known:
            line = ""
            if path is not None:
                line = f":{_key_line(path.read_text(encoding='utf-8'), section, key)}"
            raise ConfigError(
                f"{where}{line}: unknown key {key!r} in [{section}] "
                f"(known: {', '.join(sorted(known))})"
            )
        parse = known[key].metadata.get("parse")
        if parse is not None:
            changes[key] = parse(value, f"{where}: [{section}] {key}", from_env)
            continue
        default = getattr(current, key)
        changes[key] = _coerce(value, default, f"{where}: [{section}] {key}", from_env)
    return replace(config, **{section: replace(current, **changes)})


def _coerce(value: Any, default: Any, where: str, from_env: bool) -> Any:
    """Give ``value`` the type of ``default``; environment values arrive as strings."""
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if from_env and str(value).lower() in ("1", "true", "yes", "on"):
            return True
        if from_env and str(value).lower() in ("0", "false", "no", "off", ""):
            return False
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if isinstance(default, float):
        try:
            if isinstance(value, bool):
                raise TypeError
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if isinstance(default, int):
        try:
            return int(value) if from_env else _exact(value, int)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a whole number, got {value!r}") from None
    if isinstance(default, tuple):
        if from_env and isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise ConfigError(f"{where}: expected a list of strings, got {value!r}")
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    return value


def _exact(value: Any, kind: type[int]) -> int:
    if isinstance(value, bool) or not isinstance(value, kind):
        raise TypeError
    return value
