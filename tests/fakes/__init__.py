"""Fake provider servers on loopback that speak the providers' real wire formats.

The real SDKs (python-telegram-bot, twilio) talk to them over HTTP, so a test exercises the
same requests, answers and errors a real provider would give. Each fake is a WSGI app served by
werkzeug on ``127.0.0.1`` with an ephemeral port, in a background thread, or with
``keep_alive=True`` by :mod:`tests.fakes._http`, which keeps connections open as the real APIs
do and is several times faster (the benchmarks use it; werkzeug closes every connection). It is
not the default because a client's first requests then also open connections and its later
ones do not, which moves the arrival times that pacing tests compare::

    with FakeTelegram(token=TOKEN) as telegram:
        ...  # point the SDK at telegram.url; inspect telegram.calls

Faults are set per test, either for the next requests or at random with a seeded RNG::

    telegram.fail_next(2, "5xx")                  # the next two requests answer 500/502/503
    telegram.fail_next(1, "timeout", method="sendMessage")
    telegram.set_failure_rate(0.2, seed=7, kinds=("5xx", "429"))
    FakeTwilio(failure_rate=0.2, seed=7)          # the same, from the start

Shared kinds: ``5xx`` (or ``500``/``502``/``503``), ``429``, ``timeout`` (answer only after
``timeout_delay`` seconds, longer than the client waits; the request is still carried out, as a
slow provider would) and ``slow`` (``slow_delay`` seconds, then succeed). Each fake adds its
provider's refusals (see :data:`FakeTelegram.REFUSALS`, :data:`FakeTwilio.REFUSALS`).
:func:`closed_port` and :func:`unresponsive_port` give addresses where nothing answers;
:func:`hangs_up_after_request` one that reads a whole request, then closes the connection
without answering (the request arrived; the client cannot know it).
"""

from __future__ import annotations

import contextlib
import json
import random
import socket
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, ClassVar, Self

from werkzeug.exceptions import ClientDisconnected
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from tests.fakes._http import HttpServer

__all__ = [
    "Call",
    "FakeServer",
    "closed_port",
    "hangs_up_after_request",
    "unresponsive_port",
]

#: Fault kinds every fake understands.
COMMON_KINDS = frozenset({"5xx", "500", "502", "503", "429", "timeout", "slow"})


@dataclass(frozen=True)
class Call:
    """One request the fake received."""

    #: The API method (``sendMessage``) or resource operation (``messages.create``).
    name: str
    http_method: str
    path: str
    #: The parsed parameters: form or JSON body, plus the query string.
    params: dict[str, Any]
    headers: dict[str, str] = field(repr=False)
    #: The fault injected into this request, if any.
    fault: str | None = None
    #: When it arrived (``time.monotonic()``), to check pacing.
    at: float = field(default_factory=time.monotonic, compare=False)


@dataclass(frozen=True)
class _Fault:
    kind: str
    method: str | None


class FakeServer:
    """What every fake shares: the server thread, the call log and fault injection.

    Subclasses implement :meth:`route` (the API method name of a request, or ``None`` for an
    unknown path), :meth:`handle` (the normal answer) and :meth:`fault_response`.
    """

    #: Provider-specific fault kinds, besides :data:`COMMON_KINDS`.
    REFUSALS: ClassVar[frozenset[str]] = frozenset()

    def __init__(
        self,
        *,
        timeout_delay: float = 2.0,
        slow_delay: float = 0.2,
        failure_rate: float = 0.0,
        seed: int = 0,
        failure_kinds: Iterable[str] = ("5xx", "429"),
        keep_alive: bool = False,
    ) -> None:
        self.timeout_delay = timeout_delay
        self.slow_delay = slow_delay
        self._lock = threading.Lock()
        self._calls: list[Call] = []
        self._queued: deque[_Fault] = deque()
        self._rate = 0.0
        self._rate_kinds: tuple[str, ...] = ()
        self._rate_methods: frozenset[str] | None = None
        self._rng = random.Random(seed)
        if failure_rate:
            self.set_failure_rate(failure_rate, seed=seed, kinds=failure_kinds)
        self._closing = threading.Event()
        self._keep_alive: HttpServer | None = None
        if keep_alive:
            self._keep_alive = HttpServer(self._wsgi, type(self).__name__)
            self.url = f"http://127.0.0.1:{self._keep_alive.port}"
            return
        self._connections: set[socket.socket] = set()
        self._handlers: set[threading.Thread] = set()
        self._server = make_server(
            "127.0.0.1", 0, self._wsgi, threaded=True, request_handler=self._handler_class()
        )
        self.url = f"http://127.0.0.1:{self._server.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{type(self).__name__}-{self._server.port}",
            daemon=True,
        )
        self._thread.start()

    # --- lifecycle --------------------------------------------------------------------------

    def close(self) -> None:
        """Stop serving, drop open connections and wait for in-flight requests."""
        if self._closing.is_set():
            return
        self._closing.set()  # wakes handlers sleeping in a timeout or a long poll
        if self._keep_alive is not None:
            self._keep_alive.close()
            return
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        with self._lock:
            connections = list(self._connections)
            handlers = list(self._handlers)
        for conn in connections:
            # A keep-alive connection would otherwise hold its handler thread forever.
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for handler in handlers:
            handler.join(timeout=5)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- what the test sees -----------------------------------------------------------------

    @property
    def calls(self) -> list[Call]:
        """Every request so far, oldest first (a copy)."""
        with self._lock:
            return list(self._calls)

    def calls_to(self, name: str) -> list[Call]:
        """The requests to one API method or operation."""
        return [c for c in self.calls if c.name == name]

    def clear_calls(self) -> None:
        with self._lock:
            self._calls.clear()

    # --- faults -----------------------------------------------------------------------------

    def fail_next(self, n: int = 1, kind: str = "5xx", *, method: str | None = None) -> None:
        """Answer the next ``n`` requests (to ``method`` only, if given) with ``kind``."""
        self._check_kind(kind)
        with self._lock:
            self._queued.extend(_Fault(kind, method) for _ in range(n))

    def set_failure_rate(
        self,
        rate: float,
        *,
        seed: int,
        kinds: Iterable[str] = ("5xx", "429"),
        methods: Iterable[str] | None = None,
    ) -> None:
        """Fail each request (to ``methods`` only, if given) with probability ``rate``.

        The kind is drawn from ``kinds``; the seeded RNG makes a run reproducible.
        """
        chosen = tuple(kinds)
        for kind in chosen:
            self._check_kind(kind)
        with self._lock:
            self._rate = rate
            self._rate_kinds = chosen
            self._rate_methods = None if methods is None else frozenset(methods)
            self._rng = random.Random(seed)

    def clear_faults(self) -> None:
        with self._lock:
            self._queued.clear()
            self._rate = 0.0

    def _check_kind(self, kind: str) -> None:
        if kind not in COMMON_KINDS and kind not in self.REFUSALS:
            known = ", ".join(sorted(COMMON_KINDS | set(self.REFUSALS)))
            raise ValueError(f"unknown fault kind {kind!r} (known: {known})")

    def _draw_fault(self, name: str) -> str | None:
        with self._lock:
            for fault in self._queued:
                if fault.method is None or fault.method == name:
                    self._queued.remove(fault)
                    return fault.kind
            applies = self._rate_methods is None or name in self._rate_methods
            if self._rate and applies and self._rng.random() < self._rate:
                return self._rng.choice(self._rate_kinds)
            return None

    def _status_of(self, kind: str) -> int:
        """The HTTP status of a ``5xx`` fault: one of 500, 502, 503."""
        if kind == "5xx":
            with self._lock:
                return self._rng.choice((500, 502, 503))
        return int(kind)

    # --- to implement -----------------------------------------------------------------------

    def route(self, request: Request) -> str | None:
        """The API method this request calls, or ``None`` when the path is unknown."""
        raise NotImplementedError

    def params(self, request: Request) -> dict[str, Any]:
        """The request's parameters: query string, then form or JSON body."""
        params: dict[str, Any] = dict(request.args.items())
        if request.is_json:
            body = request.get_json(silent=True)
            if isinstance(body, dict):
                params.update(body)
        else:
            params.update(request.form.items())
        return params

    def handle(self, name: str, request: Request, params: dict[str, Any]) -> Response:
        raise NotImplementedError

    def fault_response(self, kind: str, name: str, params: dict[str, Any]) -> Response:
        raise NotImplementedError

    def not_found(self, request: Request) -> Response:
        raise NotImplementedError

    # --- plumbing ---------------------------------------------------------------------------

    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        try:
            response = self._dispatch(request)
        except ClientDisconnected:
            # A client killed mid-request (the SIGKILL fault runs): nothing arrived, as at
            # the real provider, and there is nobody left to answer.
            response = Response(status=400)
        result: Iterable[bytes] = response(environ, start_response)
        return result

    def _dispatch(self, request: Request) -> Response:
        name = self.route(request)
        if name is None:
            return self.not_found(request)
        params = self.params(request)
        fault = self._draw_fault(name)
        with self._lock:
            self._calls.append(
                Call(name, request.method, request.path, params, dict(request.headers), fault)
            )
        if fault == "timeout":
            # Carried out, but only after the client gave up: it cannot tell whether it was.
            self._closing.wait(self.timeout_delay)
        elif fault == "slow":
            self._closing.wait(self.slow_delay)
        elif fault is not None:
            return self.fault_response(fault, name, params)
        return self.handle(name, request, params)

    def _handler_class(self) -> type[WSGIRequestHandler]:
        fake = self

        class Handler(WSGIRequestHandler):
            # HTTP/1.1 answers; werkzeug still closes the connection after each one.
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                with fake._lock:
                    fake._connections.add(self.connection)
                    fake._handlers.add(threading.current_thread())

            def finish(self) -> None:
                try:
                    super().finish()
                finally:
                    with fake._lock:
                        fake._connections.discard(self.connection)
                        fake._handlers.discard(threading.current_thread())

            def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
                pass  # tests read .calls; an access log would only add noise

        return Handler


def json_response(body: Mapping[str, Any] | list[Any], status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


@contextlib.contextmanager
def closed_port() -> Iterator[str]:
    """A loopback URL where nothing listens: connecting is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    yield f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def unresponsive_port() -> Iterator[str]:
    """A loopback URL where connecting hangs: a listener whose accept queue is full.

    On Linux the kernel then drops new SYNs, so the client's connect times out; elsewhere it
    may refuse instead. Either way the request never left.
    """
    listener = socket.socket()
    fillers: list[socket.socket] = []
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        for _ in range(3):
            filler = socket.socket()
            fillers.append(filler)
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
        yield f"http://127.0.0.1:{port}"
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


@contextlib.contextmanager
def hangs_up_after_request() -> Iterator[str]:
    """A loopback URL whose server reads each request whole, then hangs up without a word.

    The request arrived (as at a provider that crashed after acting on it), so the client
    must not take it for one that never left. The received requests are not kept.
    """
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.05)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(2.0)
                received = b""
                with contextlib.suppress(OSError):
                    while b"\r\n\r\n" not in received:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        received += chunk
                    head, _, body = received.partition(b"\r\n\r\n")
                    length = 0
                    for line in head.split(b"\r\n"):
                        name, _, value = line.partition(b":")
                        if name.strip().lower() == b"content-length":
                            length = int(value)
                    while len(body) < length:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        body += chunk

    thread = threading.Thread(target=serve, name="hangs-up", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()
