"""The review page's server: loopback only, one person's browser, nothing else.

Standard library HTTP (one thread per request; a person clicks, nothing more).
Every request must name this server as its Host (a page on another name that
resolves here — DNS rebinding — gets nothing); a write must also come from this
server's own page: same Origin, JSON, and the session's token, which only the
page served here carries. Media are served only when the plan names them.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from .page import render_page
from .state import Refused, Review

HOST = "127.0.0.1"
MAX_BODY = 64 * 1024
TOKEN_HEADER = "X-R2V-Token"
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_CHUNK = 256 * 1024


@dataclass
class ReviewServer:
    """The review page's HTTP server on loopback, its thread and its access token."""

    server: ThreadingHTTPServer
    thread: threading.Thread | None
    token: str

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server.server_address[1]}/"

    def serve_forever(self) -> None:
        self.server.serve_forever(poll_interval=0.2)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self.thread is not None:
            self.thread.join(timeout=5)


def start(review: Review, port: int = 0, *, background: bool = False) -> ReviewServer:
    """Listen on 127.0.0.1:``port`` (0: a free one); ``background`` serves from a thread."""
    token = secrets.token_urlsafe(24)
    handler = type("Handler", (_Handler,), {"review": review, "token": token})
    server = ThreadingHTTPServer((HOST, port), handler)
    server.daemon_threads = True
    thread = None
    if background:
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="r2v-review", daemon=True)
        thread.start()
    return ReviewServer(server, thread, token)


class _Handler(BaseHTTPRequestHandler):
    review: Review
    token: str
    server_version = "r2v-review"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the terminal shows the URL and nothing else
        pass

    def _origin(self) -> str:
        return f"http://{HOST}:{self.server.server_address[1]}"

    def _host_ok(self) -> bool:
        port = self.server.server_address[1]
        return self.headers.get("Host", "") in (f"{HOST}:{port}", f"localhost:{port}")

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        if not self._host_ok():
            return self._send(HTTPStatus.MISDIRECTED_REQUEST, b"wrong host\n", "text/plain")
        path = self.path.split("?", 1)[0]
        if path == "/":
            page = render_page(self.review.view(), self.token)
            return self._send(HTTPStatus.OK, page.encode(), "text/html; charset=utf-8")
        if path in self.review.media:
            return self._media(self.review.media[path])
        return self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")

    def do_POST(self) -> None:  # noqa: N802
        if not self._host_ok():
            return self._json(HTTPStatus.MISDIRECTED_REQUEST, {"error": "wrong host"})
        origin = self.headers.get("Origin")
        if origin is not None and origin not in (self._origin(), f"http://localhost:{self.server.server_address[1]}"):
            return self._json(HTTPStatus.FORBIDDEN, {"error": "another page may not write selects"})
        if not secrets.compare_digest(self.headers.get(TOKEN_HEADER, ""), self.token):
            return self._json(HTTPStatus.FORBIDDEN, {"error": "no session token: reload the review page"})
        if self.path != "/api/selects" or self.headers.get_content_type() != "application/json":
            return self._json(HTTPStatus.NOT_FOUND, {"error": "POST JSON to /api/selects"})
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 < length <= MAX_BODY:
            return self._json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": f"a change is 1 to {MAX_BODY} bytes"})
        try:
            body = json.loads(self.rfile.read(length))
        except (ValueError, UnicodeDecodeError):
            return self._json(HTTPStatus.BAD_REQUEST, {"error": "not JSON"})
        try:
            answer = self.review.change(body)
        except Refused as error:
            return self._json(HTTPStatus.CONFLICT, {"error": str(error)})
        except OSError as error:
            return self._json(HTTPStatus.INSUFFICIENT_STORAGE, {"error": f"cannot write the selects file: {error.strerror or error}"})
        self._json(HTTPStatus.OK, answer)

    def _media(self, path: Path) -> None:
        """A video, with single byte ranges (how a browser's player seeks)."""
        try:
            size = path.stat().st_size
            handle = path.open("rb")
        except OSError:
            return self._send(HTTPStatus.NOT_FOUND, b"gone\n", "text/plain")
        with handle:
            start, end, status = 0, size - 1, HTTPStatus.OK
            match = _RANGE.match(self.headers.get("Range", ""))
            if match and (match.group(1) or match.group(2)):
                if match.group(1):
                    start, end = int(match.group(1)), min(int(match.group(2) or size - 1), size - 1)
                else:
                    start = max(size - int(match.group(2)), 0)
                if start > end:
                    self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = HTTPStatus.PARTIAL_CONTENT
            self.send_response(status)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(end - start + 1))
            if status is HTTPStatus.PARTIAL_CONTENT:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.end_headers()
            handle.seek(start)
            left = end - start + 1
            try:
                while left > 0:
                    chunk = handle.read(min(_CHUNK, left))
                    if not chunk:
                        break
                    self.wfile.write(chunk)
                    left -= len(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the player moved on

    def _json(self, status: HTTPStatus, data: dict[str, Any]) -> None:
        self._send(status, json.dumps(data, ensure_ascii=False).encode(), "application/json")

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.end_headers()
        self.wfile.write(body)
