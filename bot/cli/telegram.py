"""``voxpop telegram``: register the webhook, or poll for updates in local development.

When Telegram cannot be asked, the command says what happened in one line and exits 1:
the token rejected, Telegram's refusal with its reason, or why it could not be reached
(DNS failure, connection refused, network unreachable, timeout).
"""

from __future__ import annotations

import asyncio
import re
import signal
from datetime import UTC, datetime
from functools import partial

import click

from bot.cli.common import check_channels, runtime
from bot.config import Config
from bot.delivery.dispatcher import DispatcherThread
from channels import errors

__all__ = ["failure", "telegram"]

#: The head of a Telegram send error's text: ``telegram: <PTB class>: ``.
_HEAD = re.compile(r"^telegram: \w+: ")
#: A failed round of polling waits this long, doubling up to a minute.
_RETRY_FIRST, _RETRY_MAX = 2.0, 60.0


def failure(exc: errors.SendError, doing: str) -> str:
    """One line on why Telegram did not do ``doing``.

    >>> failure(errors.ConfigError("telegram: InvalidToken: Unauthorized", code="401"), "x")
    'Telegram rejected the token: check [telegram] token (from @BotFather)'
    >>> failure(errors.Unreachable("telegram: NetworkError: the name x could not be resolved"
    ...     " (DNS failure)"), "the webhook")
    'cannot reach Telegram: the name x could not be resolved (DNS failure)'
    >>> failure(errors.Rejected("telegram: BadRequest: bad webhook: HTTPS url must be provided"),
    ...     "the webhook")
    'Telegram refused the webhook: bad webhook: HTTPS url must be provided'
    """
    detail = _HEAD.sub("", str(exc)) or type(exc).__name__
    if isinstance(exc, errors.ConfigError) and exc.code == "401":
        return "Telegram rejected the token: check [telegram] token (from @BotFather)"
    if isinstance(exc, errors.Unreachable | errors.Unknown):
        return f"cannot reach Telegram: {detail}"
    return f"Telegram refused {doing}: {detail}"


@click.group()
def telegram() -> None:
    """The Telegram bot's webhook."""


@telegram.command("set-webhook")
@click.pass_obj
def telegram_set_webhook(config: Config) -> None:
    """Register <public_url>/webhooks/telegram with Telegram, with the webhook secret."""
    from channels.telegram_send import TelegramSender

    check_channels(config)
    if not config.telegram.enabled:
        raise click.ClickException("[telegram] token is not set")
    url = config.server.public_url.rstrip("/") + "/webhooks/telegram"

    async def register() -> None:
        async with TelegramSender(config.telegram) as sender:
            await sender.set_webhook(url, config.telegram.webhook_secret)

    try:
        asyncio.run(register())
    except errors.SendError as exc:
        raise click.ClickException(failure(exc, "the webhook")) from None
    click.echo(f"webhook set: {url}")


@telegram.command("poll")
@click.pass_obj
def telegram_poll(config: Config) -> None:
    """Local development: fetch updates by long polling instead of a webhook (no public URL
    needed). It removes a registered webhook."""
    from bot.delivery.transports import dispatch_forever
    from bot.web.telegram_poll import poll_once
    from channels.telegram_send import TelegramSender

    if not config.telegram.enabled:
        raise click.ClickException("[telegram] token is not set")
    click.echo(
        "warning: polling removes the registered webhook; run `voxpop telegram set-webhook` "
        "again before going back to webhooks",
        err=True,
    )
    thread: DispatcherThread | None = None
    with runtime(config, on_outbox=lambda: thread.wake() if thread else None) as rt:

        async def poll() -> None:
            nonlocal thread
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, stop.set)
            async with TelegramSender(config.telegram, timeout=40.0) as sender:
                if sender.start_error is not None:
                    raise sender.start_error
                await sender.delete_webhook()
                # Telegram answers: now the replies can go too.
                thread = DispatcherThread(partial(dispatch_forever, config, rt.sessions))
                thread.start()
                click.echo("polling Telegram; Ctrl-C to stop")
                offset: int | None = None
                wait = _RETRY_FIRST
                while not stop.is_set():
                    round_ = asyncio.ensure_future(
                        poll_once(sender, rt.service, offset, datetime.now(UTC), 25)
                    )
                    stopped = asyncio.ensure_future(stop.wait())
                    done, _ = await asyncio.wait(
                        {round_, stopped}, return_when=asyncio.FIRST_COMPLETED
                    )
                    if round_ not in done:
                        round_.cancel()
                        break
                    stopped.cancel()
                    try:
                        offset = round_.result()
                    except errors.ConfigError:
                        raise  # the token was revoked meanwhile: nothing will work
                    except errors.SendError as exc:
                        click.echo(f"{failure(exc, 'the updates')}; trying again in {wait:g}s")
                        await asyncio.wait(
                            {stopped := asyncio.ensure_future(stop.wait())}, timeout=wait
                        )
                        stopped.cancel()
                        wait = min(wait * 2, _RETRY_MAX)
                    else:
                        wait = _RETRY_FIRST

        try:
            asyncio.run(poll())
        except errors.SendError as exc:
            raise click.ClickException(failure(exc, "polling")) from None
        finally:
            if thread is not None:
                thread.stop()
