"""A small HTTP/1.1 load generator for the benches: pre-built requests over raw asyncio streams.

Requests are encoded before the clock starts, and answers are read with the least parsing
that is still correct (status line, ``Content-Length``, ``Connection: close``), so the client
costs far less per request than the server it measures. Connections are kept alive when the
server allows it, and opened again when it closes them (gunicorn's sync workers do).

A *conversation* is a list of requests that must go one after the other (a citizen answers
the question they were just sent); ``concurrency`` conversations are in flight at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlencode

__all__ = ["Load", "encode_post", "run_conversations"]


def encode_post(
    host: str, port: int, path: str, form: Mapping[str, str], headers: Mapping[str, str]
) -> bytes:
    """A form POST as the bytes that go on the wire."""
    body = urlencode(form).encode()
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Content-Type: application/x-www-form-urlencoded",
        f"Content-Length: {len(body)}",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass(frozen=True)
class Load:
    """What a run did: requests per HTTP status, wall time, and the client's own CPU time."""

    statuses: Mapping[int, int]
    seconds: float
    client_cpu_seconds: float
    #: One body per status other than 200, to say why.
    samples: Mapping[int, bytes]

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds

    @property
    def all_ok(self) -> bool:
        return set(self.statuses) == {200}


class _Connection:
    def __init__(self, host: str, port: int) -> None:
        self._host, self._port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(self, data: bytes) -> tuple[int, bytes]:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        assert self._reader is not None
        self._writer.write(data)
        head = await self._reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lowered = head.lower()
        start = lowered.find(b"\r\ncontent-length:")
        if start >= 0:
            end = lowered.index(b"\r\n", start + 2)
            body = await self._reader.readexactly(int(lowered[start + 17 : end]))
        else:
            body = await self._reader.read()  # no length: the body ends with the connection
        if start < 0 or b"\r\nconnection: close" in lowered:
            await self.close()
        return status, body

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
        self._reader = self._writer = None


async def _run(
    host: str, port: int, conversations: Sequence[Sequence[bytes]], concurrency: int
) -> Load:
    statuses: Counter[int] = Counter()
    samples: dict[int, bytes] = {}
    pending = iter(conversations)

    async def worker() -> None:
        connection = _Connection(host, port)
        try:
            for conversation in pending:
                for data in conversation:
                    status, body = await connection.request(data)
                    statuses[status] += 1
                    if status != 200:
                        samples.setdefault(status, body[:300])
        finally:
            await connection.close()

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Load(
        statuses=dict(statuses),
        seconds=time.perf_counter() - wall,
        client_cpu_seconds=time.process_time() - cpu,
        samples=samples,
    )


def run_conversations(
    host: str, port: int, conversations: Iterable[Sequence[bytes]], concurrency: int
) -> Load:
    """Send every conversation, ``concurrency`` at a time; each one's requests in order."""
    return asyncio.run(_run(host, port, list(conversations), concurrency))
