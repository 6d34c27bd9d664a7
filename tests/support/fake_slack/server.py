"""HTTP plumbing of the fake: a threading server whose handler hands each request to the fake."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    content_type: str = "application/json; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
        return cls(status, json.dumps(payload).encode(), headers=headers or {})

    @classmethod
    def text(cls, text: str, status: int = 200) -> Reply:
        return cls(status, text.encode(), content_type="text/plain; charset=utf-8")


@dataclass(frozen=True)
class Request:
    verb: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


class Server(ThreadingHTTPServer):
    """Threads are daemons and not joined on close, so a hung request never blocks shutdown."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], fake: Any) -> None:
        self.fake = fake
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _Handler)

    def track(self, sock: socket.socket, *, open_: bool) -> None:
        with self._open_lock:
            if open_:
                self._open.add(sock)
            else:
                self._open.discard(sock)

    def close_connections(self) -> None:
        """Close kept-alive connections too, so a stopped fake really stops answering."""
        with self._open_lock:
            sockets, self._open = self._open, set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as slack_sdk's aiohttp session expects

    def setup(self) -> None:
        super().setup()
        cast(Server, self.server).track(self.connection, open_=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            cast(Server, self.server).track(self.connection, open_=False)

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: the fake's record, not its access log, is what tests look at."""

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        url = urlsplit(self.path)
        request = Request(
            verb=self.command,
            path=url.path,
            query=url.query,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=self.rfile.read(length) if length else b"",
        )
        reply = cast(Server, self.server).fake._serve(request)
        if reply is None:
            self.close_connection = True
            return
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(reply.body)
        except OSError:  # the client gave up (e.g. its timeout during a hang)
            self.close_connection = True
