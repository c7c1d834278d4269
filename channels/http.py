"""The HTTP client under both senders: aiohttp, with one session (its connection pool) per
event loop, opened by the sender's ``initialize`` in the loop that sends.

aiohttp is the client the twilio SDK ships for async use (``AsyncTwilioHttpClient``), and
python-telegram-bot accepts any :class:`~telegram.request.BaseRequest`. It costs under a
tenth of httpx's CPU per request at 32 requests in flight (docs/performance.md), and it
tells the failures apart that decide whether a message may be sent again::

    cannot connect (refused, DNS, TLS, proxy)       ClientConnectorError     never left
    connect timeout (TCP and TLS, or a pool slot)   ConnectionTimeoutError   never left
    no pooled connection within the pool timeout    PoolTimeoutError              never left
    the connection closed before the request        ClientConnectionResetError  never left
      could be written
    read timeout (it starts once the whole request  SocketTimeoutError       may have arrived
      was written)
    connection lost or reset while waiting, an      ServerDisconnectedError, may have arrived
      unreadable answer, a write that failed          ClientOSError,
      part-way                                        ClientPayloadError

aiohttp has no write timeout: a request of a few kilobytes goes to the socket's buffer at
once, and ``total`` (connect + write + read) bounds whatever else could hang.
Proxies come from the environment (``HTTPS_PROXY``, ``NO_PROXY``), as requests and httpx
read them, once per session rather than on every request.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import ssl
import urllib.request
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlencode, urlsplit

import aiohttp
import certifi

__all__ = [
    "FORM",
    "MAY_HAVE_ARRIVED",
    "NEVER_LEFT",
    "Gate",
    "PoolTimeoutError",
    "describe",
    "env_proxy",
    "form_body",
    "new_session",
    "timeouts",
]


class PoolTimeoutError(Exception):
    """Every pooled connection stayed busy for the whole pool timeout: nothing was sent."""


#: The request cannot have reached the provider: sending it again is safe.
NEVER_LEFT: Final[tuple[type[BaseException], ...]] = (
    aiohttp.ClientConnectorError,
    aiohttp.ConnectionTimeoutError,
    aiohttp.ClientConnectionResetError,
    aiohttp.UploadAbortedError,
    aiohttp.InvalidURL,
    PoolTimeoutError,
)
#: The request was written (wholly or in part) and no answer came: it may have been acted on.
MAY_HAVE_ARRIVED: Final[tuple[type[BaseException], ...]] = (
    aiohttp.ClientError,
    asyncio.TimeoutError,
    OSError,
)


def describe(exc: BaseException) -> str:
    """What went wrong with a request, in plain words, naming the host but never the URL
    (a Bot API URL holds the token).

    >>> describe(PoolTimeoutError())
    'every connection stayed busy (pool timeout)'
    """
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return f"the name {exc.host} could not be resolved (DNS failure)"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
        host = getattr(exc, "host", "the server")
        return f"the secure connection to {host} failed (TLS certificate or handshake)"
    if isinstance(exc, aiohttp.ClientConnectorError):
        code = exc.os_error.errno
        if code == errno.ECONNREFUSED:
            return f"{exc.host}:{exc.port} refused the connection"
        if code in (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN):
            return f"the network is unreachable (no route to {exc.host})"
        return f"cannot connect to {exc.host}:{exc.port} ({exc.os_error.strerror or code})"
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return "no connection within the connect timeout"
    if isinstance(exc, PoolTimeoutError):
        return "every connection stayed busy (pool timeout)"
    if isinstance(exc, TimeoutError):
        return "no answer within the timeout"
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientConnectionResetError):
        return "the server closed the connection"
    return f"transport error ({type(exc).__name__})"


#: The content type of :func:`form_body`.
FORM: Final = "application/x-www-form-urlencoded"


def form_body(fields: Mapping[str, Any]) -> bytes:
    """A form body, encoded as aiohttp encodes a ``data`` mapping (``urlencode`` with
    sequences expanded), without building its ``FormData`` on every request.

    >>> form_body({"To": "+15555550123", "Body": "Hi there"})
    b'To=%2B15555550123&Body=Hi+there'
    """
    return urlencode(fields, doseq=True).encode("utf-8")


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    # certifi's roots, as requests and httpx used before: the same providers verify the same.
    return ssl.create_default_context(cafile=certifi.where())


def new_session(pool_size: int) -> aiohttp.ClientSession:
    """A session for one event loop, with at most ``pool_size`` connections.

    No cookie jar (the provider APIs set none worth keeping, and the jar costs on every
    request) and no environment lookups per request (see :func:`env_proxy`).
    """
    connector = aiohttp.TCPConnector(limit=pool_size, ssl=_ssl_context())
    return aiohttp.ClientSession(
        connector=connector, cookie_jar=aiohttp.DummyCookieJar(), trust_env=False
    )


def env_proxy(url: str) -> str | None:
    """The proxy the environment names for ``url``'s scheme and host, if any.

    >>> env_proxy("http://127.0.0.1:8080/x") is None or "NO_PROXY is not set for loopback"
    True
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    if not host or urllib.request.proxy_bypass(host):
        return None
    return urllib.request.getproxies().get(parts.scheme)


def timeouts(
    connect: float | None, write: float | None, read: float | None
) -> aiohttp.ClientTimeout:
    """aiohttp's timeouts: ``connect`` for TCP and TLS, ``read`` from the moment the whole
    request was written; their sum with ``write`` bounds the whole request (``None``: no
    bound).

    >>> t = timeouts(5, 10, 10)
    >>> t.sock_connect, t.sock_read, t.total
    (5, 10, 25)
    """
    parts = (connect, write, read)
    total = None if None in parts else sum(p for p in parts if p is not None)
    return aiohttp.ClientTimeout(total=total, connect=connect, sock_connect=connect, sock_read=read)


class Gate:
    """At most ``size`` requests at once; one that waits longer than ``timeout`` for its turn
    raises :class:`PoolTimeoutError` (never sent). Build it in the loop that uses it."""

    def __init__(self, size: int) -> None:
        self._free = asyncio.Semaphore(size)

    async def enter(self, timeout: float | None) -> None:
        if not self._free.locked():
            await self._free.acquire()  # a free slot: no timer, the common case
            return
        try:
            await asyncio.wait_for(self._free.acquire(), timeout)
        except TimeoutError:
            raise PoolTimeoutError("no free connection within the pool timeout") from None

    def leave(self) -> None:
        self._free.release()
