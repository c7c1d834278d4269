"""A small threaded HTTP/1.1 server for the fakes' WSGI apps, with keep-alive connections.

The real provider APIs keep connections open and the SDKs reuse them. werkzeug's development
server closes every connection (and then waits for the client to hang up), and waitress hands
each request from its I/O thread to a worker and back, which under Python's GIL falls to a
few hundred requests a second with 32 clients. Here each connection has one thread that
reads a request, runs the app and writes the whole answer in one ``send``, then reads the
next request: fast enough that a benchmark measures the client, not the fake.

Only what the fakes' clients send is supported: request bodies with ``Content-Length`` or
chunked, no ``Expect: 100-continue`` and no pipelining beyond one request at a time.
"""

from __future__ import annotations

import contextlib
import io
import socket
import socketserver
import sys
import threading
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote_to_bytes

__all__ = ["HttpServer"]

WsgiApp = Callable[[dict[str, Any], Any], Iterable[bytes]]

_MAX_LINE = 65536
_MAX_HEADERS = 100
_REASONS = {status.value: status.phrase for status in HTTPStatus}


class _BadRequestError(Exception):
    pass


class HttpServer:
    """Serves ``app`` on ``127.0.0.1`` (an ephemeral port) until :meth:`close`."""

    def __init__(self, app: WsgiApp, name: str) -> None:
        self._app = app
        self._lock = threading.Lock()
        self._connections: dict[socket.socket, threading.Thread] = {}
        server = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                server._serve_connection(self.request, self.client_address)

        class Listener(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True
            request_queue_size = 128

        self._listener = Listener(("127.0.0.1", 0), Handler)
        self.port: int = self._listener.server_address[1]
        self._thread = threading.Thread(
            target=self._listener.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{name}-{self.port}",
            daemon=True,
        )
        self._thread.start()

    def close(self) -> None:
        """Stop accepting, drop open connections and wait for their threads."""
        self._listener.shutdown()
        self._listener.server_close()
        self._thread.join()
        with self._lock:
            connections = list(self._connections.items())
        for conn, _ in connections:
            # A keep-alive connection would otherwise hold its thread in recv() forever.
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for _, thread in connections:
            thread.join(timeout=5)

    # --- one connection -----------------------------------------------------------------------

    def _serve_connection(self, conn: socket.socket, peer: tuple[str, int]) -> None:
        # One send per answer, and no Nagle delay between answers on a kept-alive connection.
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            self._connections[conn] = threading.current_thread()
        reader = conn.makefile("rb")
        try:
            while True:
                try:
                    environ = self._read_request(reader, peer)
                except _BadRequestError:
                    conn.sendall(_answer(400, [("Content-Type", "text/plain")], b"bad request"))
                    return
                if environ is None:
                    return  # the client closed the connection
                keep_alive = environ.pop("fake.keep_alive")
                conn.sendall(self._run(environ, keep_alive))
                if not keep_alive:
                    return
        except OSError:
            return  # the client went away mid-answer (a timeout fault, a killed client)
        finally:
            reader.close()
            with self._lock:
                self._connections.pop(conn, None)

    def _read_request(
        self, reader: io.BufferedReader, peer: tuple[str, int]
    ) -> dict[str, Any] | None:
        line = reader.readline(_MAX_LINE + 1)
        while line in (b"\r\n", b"\n"):  # tolerated before a request line (RFC 9112 2.2)
            line = reader.readline(_MAX_LINE + 1)
        if not line:
            return None
        try:
            method, target, version = line.decode("latin-1").rstrip("\r\n").split(" ")
        except ValueError:
            raise _BadRequestError from None
        headers: list[tuple[str, str]] = []
        while True:
            raw = reader.readline(_MAX_LINE + 1)
            if raw in (b"\r\n", b"\n", b""):
                break
            if len(headers) >= _MAX_HEADERS or b":" not in raw:
                raise _BadRequestError
            name, _, value = raw.decode("latin-1").partition(":")
            headers.append((name.strip(), value.strip()))
        path, _, query = target.partition("?")
        environ: dict[str, Any] = {
            "REQUEST_METHOD": method,
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote_to_bytes(path).decode("latin-1"),
            "QUERY_STRING": query,
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": str(self.port),
            "SERVER_PROTOCOL": version,
            "REMOTE_ADDR": peer[0],
            "REMOTE_PORT": str(peer[1]),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        length: int | None = None
        chunked = False
        connection = ""
        for name, value in headers:
            key = name.upper().replace("-", "_")
            if key == "CONTENT_TYPE":
                environ["CONTENT_TYPE"] = value
            elif key == "CONTENT_LENGTH":
                try:
                    length = int(value)
                except ValueError:
                    raise _BadRequestError from None
                environ["CONTENT_LENGTH"] = value
            else:
                if key == "TRANSFER_ENCODING" and value.lower() == "chunked":
                    chunked = True
                elif key == "CONNECTION":
                    connection = value.lower()
                field = f"HTTP_{key}"
                environ[field] = f"{environ[field]},{value}" if field in environ else value
        if chunked:
            body = _read_chunked(reader)
            # The app gets the decoded body, with its length, as if it had come that way.
            environ.pop("HTTP_TRANSFER_ENCODING")
            environ["CONTENT_LENGTH"] = str(len(body))
        else:
            body = reader.read(length) if length else b""
            if length and len(body) < length:
                return None  # the client hung up mid-body: nothing arrived
        environ["wsgi.input"] = io.BytesIO(body)
        environ["wsgi.input_terminated"] = True  # the whole body, read already
        if version == "HTTP/1.1":
            environ["fake.keep_alive"] = connection != "close"
        else:
            environ["fake.keep_alive"] = connection == "keep-alive"
        return environ

    def _run(self, environ: dict[str, Any], keep_alive: bool) -> bytes:
        started: list[Any] = []

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            started[:] = [status, headers]
            return lambda data: None  # the fakes never use write()

        result = self._app(environ, start_response)
        try:
            body = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        status, headers = started
        headers = [(k, v) for k, v in headers if k.lower() not in ("content-length", "connection")]
        headers.append(("Connection", "keep-alive" if keep_alive else "close"))
        return _answer(int(status.split(" ", 1)[0]), headers, body, status)


def _read_chunked(reader: io.BufferedReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size_line = reader.readline(_MAX_LINE + 1)
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise _BadRequestError from None
        if size == 0:
            while reader.readline(_MAX_LINE + 1) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(parts)
        parts.append(reader.read(size))
        reader.readline(_MAX_LINE + 1)


def _answer(code: int, headers: list[tuple[str, str]], body: bytes, status: str = "") -> bytes:
    status = status or f"{code} {_REASONS.get(code, '')}"
    lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in headers)]
    if code >= 200 and code not in (204, 304):  # those never carry a body
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
