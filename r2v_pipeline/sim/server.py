"""A small HTTP/1.1 server: h11 framing over anyio sockets, keep-alive, one task per connection.

Built on h11 rather than a framework because fault injection needs exact
control of the connection: closing it before answering, or after half a body.
A handler answers an ``HttpResponse``, or None to close without answering.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from typing import Any, Awaitable, Callable
from urllib.parse import parse_qsl, urlsplit

import anyio
import anyio.abc
import h11
from anyio.abc import SocketAttribute

log = logging.getLogger("r2v_pipeline.sim")

MAX_HEAD_BYTES = 64 * 1024
READ_CHUNK = 256 * 1024
_CLOSED = (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, ConnectionError)


@dataclass
class HttpRequest:
    """A request as the simulator's server read it."""

    method: str
    target: str  # as sent: path and query
    path: str
    query: dict[str, str]  # the first value of each parameter
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "
    body: bytes = b""

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)

    def json(self) -> Any:
        """The body's JSON value, or None when it is not JSON."""
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            return None

    def whole_number(self, name: str, default: int) -> int | None:
        """A query parameter that must be a whole number of 1 or more; None when it is not."""
        text = self.query.get(name, "")
        if text == "":
            return default
        return int(text) if text.isdigit() and int(text) >= 1 else None


@dataclass
class HttpResponse:
    """An answer of the simulator's server, possibly cut short on purpose."""

    status: int
    body: bytes = b""
    content_type: str | None = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)
    cut_at: int | None = None  # send this many body bytes, then close (the full length is announced)


Handler = Callable[[HttpRequest], Awaitable["HttpResponse | None"]]


class _TooLarge(Exception):
    pass


async def listen(host: str, port: int) -> tuple[anyio.abc.Listener[anyio.abc.SocketStream], int]:
    """A listener on ``host:port`` (0: any free port), and the port it got."""
    listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
    return listener, listener.extra(SocketAttribute.local_port)


async def serve(listener: anyio.abc.Listener[anyio.abc.SocketStream], handler: Handler, *, max_body: int, idle: float) -> None:
    """Serve connections until cancelled."""
    async with listener:
        await listener.serve(lambda stream: serve_connection(stream, handler, max_body=max_body, idle=idle))


async def serve_connection(stream: anyio.abc.ByteStream, handler: Handler, *, max_body: int, idle: float) -> None:
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
    async with stream:
        while True:
            try:
                event = await _next_event(conn, stream, idle)
                if not isinstance(event, h11.Request):
                    return  # the client closed, or went quiet
                request = await _read_request(conn, stream, event, max_body, idle)
            except h11.RemoteProtocolError as err:
                await _send_quietly(conn, stream, HttpResponse(err.error_status_hint, b'{"message":"malformed HTTP request"}'))
                return
            except _TooLarge:
                await _send_quietly(conn, stream, HttpResponse(413, b'{"message":"request body too large"}'))
                return
            except (TimeoutError, *_CLOSED):
                return
            try:
                response = await handler(request)
            except Exception:  # the dispatcher answers errors itself; this is the last guard
                log.exception("unhandled error serving %s %s", request.method, request.path)
                response = HttpResponse(500, b'{"code":"InternalError","message":"internal error"}')
            if response is None:
                return  # a dropped connection: no answer at all
            try:
                finished = await _send(conn, stream, request, response)
            except _CLOSED:
                return
            if not finished or conn.our_state is h11.MUST_CLOSE:
                return
            try:
                conn.start_next_cycle()
            except h11.LocalProtocolError:
                return


async def _next_event(conn: h11.Connection, stream: anyio.abc.ByteStream, idle: float) -> object:
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        if conn.they_are_waiting_for_100_continue:
            await stream.send(conn.send(h11.InformationalResponse(status_code=100, headers=[])))
        try:
            with anyio.fail_after(idle):
                data = await stream.receive(READ_CHUNK)
        except _CLOSED:
            data = b""
        conn.receive_data(data)


async def _read_request(
    conn: h11.Connection, stream: anyio.abc.ByteStream, head: h11.Request, max_body: int, idle: float
) -> HttpRequest:
    chunks: list[bytes] = []
    size = 0
    while True:
        event = await _next_event(conn, stream, idle)
        if isinstance(event, h11.Data):
            size += len(event.data)
            if size > max_body:
                raise _TooLarge
            chunks.append(bytes(event.data))
        elif isinstance(event, h11.EndOfMessage):
            break
        else:  # the connection closed mid-body
            raise anyio.EndOfStream
    target = head.target.decode("latin-1")
    parts = urlsplit(target)
    headers: dict[str, str] = {}
    for raw_name, raw_value in head.headers:
        name, text = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {text}" if name in headers else text
    query: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        query.setdefault(key, value)
    return HttpRequest(head.method.decode("ascii"), target, parts.path, query, headers, b"".join(chunks))


async def _send(conn: h11.Connection, stream: anyio.abc.ByteStream, request: HttpRequest, response: HttpResponse) -> bool:
    """Send the response; False when the connection must close after it (a cut body)."""
    headers = [("server", "r2v-sim"), ("date", formatdate(usegmt=True))]
    if response.status not in (204, 304):  # these carry no body, and say no length [RFC 9110]
        headers.append(("content-length", str(len(response.body))))
    if response.content_type:
        headers.append(("content-type", response.content_type))
    headers.extend(response.headers)
    head = conn.send(h11.Response(status_code=response.status, headers=headers, reason=_reason(response.status)))
    body = b"" if request.method == "HEAD" else response.body
    if response.cut_at is not None:
        await stream.send(head + conn.send(h11.Data(data=body[: response.cut_at])))
        return False
    await stream.send(head + (conn.send(h11.Data(data=body)) if body else b"") + conn.send(h11.EndOfMessage()))
    return True


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b""


async def _send_quietly(conn: h11.Connection, stream: anyio.abc.ByteStream, response: HttpResponse) -> None:
    if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
        return
    try:
        response.headers.append(("connection", "close"))
        await _send(conn, stream, HttpRequest("GET", "/", "/", {}, {}), response)
    except (h11.LocalProtocolError, *_CLOSED):
        pass
