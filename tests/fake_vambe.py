"""A loopback HTTP server standing in for Vambe, for tests that need real sockets.

One ``FakeVambe`` listens on 127.0.0.1 (an OS-chosen port), records every request it reads and
answers it with whatever its ``responder`` returns. A responder is a plain function of the
recorded request; it returns a ``Reply``, ``DROP`` (close the connection without answering) or a
``Hang`` (block until the test releases the server, then do what ``Hang.then`` says).

Use it through ``running_fake_vambe()``, which stops the server cleanly (releasing any hung
handler first and joining every handler thread), so no socket or thread outlives a test.
"""

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

# How long a hung handler waits for the test before giving up on its own (a safety net only:
# tests release it explicitly, and teardown always does).
HANG_LIMIT_SECONDS = 10.0


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # names lower-cased
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))


@dataclass(frozen=True)
class Reply:
    """An HTTP answer. ``body``: dict/list -> JSON; str/bytes -> sent as is; None -> empty."""

    status: int = 201
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None


class _Drop:
    def __repr__(self) -> str:
        return "DROP"


DROP = _Drop()


@dataclass(frozen=True)
class Hang:
    """Block until ``FakeVambe.release`` is set, then answer with ``then`` (default: drop)."""

    then: Any = DROP


@dataclass(frozen=True)
class Trickle:
    """Answer ``reply`` one byte every ``every`` seconds (headers included), stopping when ``FakeVambe.release``
    is set: a server that never times out a read, and never finishes either."""

    reply: Reply
    every: float = 0.05


Responder = Callable[[RecordedRequest], Any]


def default_responder(request: RecordedRequest) -> Reply:
    return Reply(201)


class FakeVambe:
    def __init__(self, responder: Responder = default_responder):
        self.responder = responder
        self.requests: list[RecordedRequest] = []
        self.release = threading.Event()
        self._condition = threading.Condition()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05})

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "FakeVambe":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()  # joins the handler threads
        self._thread.join()

    def record(self, request: RecordedRequest) -> None:
        with self._condition:
            self.requests.append(request)
            self._condition.notify_all()

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """Block until at least ``count`` requests were read (handlers run on other threads)."""
        with self._condition:
            arrived = self._condition.wait_for(lambda: len(self.requests) >= count, timeout)
        assert arrived, f"expected {count} request(s), the fake read {len(self.requests)}"
        return list(self.requests)


class _Server(ThreadingHTTPServer):
    # Non-daemon handler threads, so that server_close() waits for them to finish.
    daemon_threads = False
    block_on_close = True
    fake: FakeVambe

    def handle_error(self, request, client_address) -> None:
        # A client that gave up (timeout test) may close its end while a handler still runs.
        pass


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.0: one request per connection, so no idle keep-alive handler outlives a call.
    protocol_version = "HTTP/1.0"
    server: _Server

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        fake = self.server.fake
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        url = urlsplit(self.path)
        request = RecordedRequest(
            method=self.command,
            path=url.path,
            query=parse_qs(url.query, keep_blank_values=True),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
        )
        fake.record(request)
        action = fake.responder(request)
        if isinstance(action, Hang):
            fake.release.wait(HANG_LIMIT_SECONDS)
            action = action.then
        if action is DROP:
            self.close_connection = True
            return
        if isinstance(action, Trickle):
            self._trickle(action)
            return
        self._answer(action)

    def _trickle(self, trickle: Trickle) -> None:
        head = f"HTTP/1.0 {trickle.reply.status} OK\r\nContent-Type: application/json\r\n"
        payload = (head + "Content-Length: 100000\r\n\r\n").encode() + b" " * 100_000
        for byte in payload:
            if self.server.fake.release.wait(trickle.every):
                return
            self.wfile.write(bytes([byte]))
            self.wfile.flush()

    def _answer(self, reply: Reply) -> None:
        content_type = reply.content_type
        if isinstance(reply.body, dict | list):
            payload = json.dumps(reply.body).encode()
            content_type = content_type or "application/json; charset=utf-8"
        elif isinstance(reply.body, str):
            payload = reply.body.encode()
            content_type = content_type or "text/plain; charset=utf-8"
        else:
            payload = reply.body or b""
        self.send_response(reply.status)
        if content_type:
            self.send_header("Content-Type", content_type)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@contextmanager
def running_fake_vambe(responder: Responder = default_responder) -> Iterator[FakeVambe]:
    fake = FakeVambe(responder).start()
    try:
        yield fake
    finally:
        fake.stop()


def routes(table: dict[tuple[str, str], Any]) -> Responder:
    """A responder answering by (method, path); anything else gets a NestJS-style 404."""

    def respond(request: RecordedRequest) -> Any:
        return table.get(
            (request.method, request.path),
            Reply(404, {"statusCode": 404, "message": "Cannot route", "error": "Not Found"}),
        )

    return respond
