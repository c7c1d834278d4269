"""Why a send failed, as a small tree; ``retryable`` says whether the dispatcher tries again.

SendError
├── Throttled(retry_after)   retryable   429 / Telegram RetryAfter: wait that long
├── Unreachable              retryable   timeout before the request left, 5xx, connection
├── Unknown                  final       the request left and no answer came: it may have
│                                        been delivered, so it is not blindly resent
├── ContactOptedOut          final       opted out at the carrier (Twilio 21610)
├── ContactBlocked           final       the citizen blocked the bot (Telegram 403)
├── InvalidAddress           final       not a valid or mobile number (21211, 21614)
├── OutsideSessionWindow     final       WhatsApp free text after 24 h (63016): the message
│   │                                    is held until the citizen writes again
│   └── NoTemplate           final       an invitation outside the window, and no approved
│                                        template for its survey and language
├── ConfigError              final       our credentials or sender are wrong (401, 21606)
└── Rejected                 final       any other refusal by the provider
"""

from __future__ import annotations


class SendError(Exception):
    """A send that did not succeed; ``code`` is the provider's error code when it gave one."""

    retryable = False

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class Throttled(SendError):
    retryable = True

    def __init__(self, message: str, *, retry_after: float, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class Unreachable(SendError):
    retryable = True


class Unknown(SendError):
    pass


class ContactOptedOut(SendError):
    pass


class ContactBlocked(SendError):
    pass


class InvalidAddress(SendError):
    pass


class OutsideSessionWindow(SendError):
    pass


class NoTemplate(OutsideSessionWindow):
    pass


class ConfigError(SendError):
    pass


class Rejected(SendError):
    pass
