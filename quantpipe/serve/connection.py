"""HTTP connections with a bounded request head: uvicorn's httptools protocol, guarded.

uvicorn puts no limit on a request's head with httptools, and no deadline on it: a 64 MB
header took 7.6 s to parse and stalled every other request of its worker, and half a request
line held its connection open for as long as the client liked. :class:`GuardedHttpTools`
adds both, before the app sees anything:

- a head (request line and headers) over :data:`ENV_MAX_HEAD` bytes gets ``431`` and the
  connection is closed; the bytes past the limit are never parsed;
- a head not complete within :data:`ENV_HEAD_TIMEOUT` seconds of the connection opening (for
  the first request) or of its first byte (for a later one) gets ``408``; a new connection
  that sends nothing is just closed then (between requests, uvicorn's keep-alive does that).

A connection past :data:`ENV_MAX_CONNECTIONS` open ones gets ``503`` at once. These
answers, and uvicorn's own ``400`` for a request that does not parse, are the
protocol's JSON ``{"error": ...}``; the app does not see these requests, so
``quantpipe_requests_total`` does not count them. The settings come from the
environment, which ``quantpipe serve`` sets, so that worker processes read the same ones.
"""

from __future__ import annotations

import asyncio
import os
from http import HTTPStatus
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

ENV_MAX_HEAD = "QUANTPIPE_MAX_HEAD_BYTES"
ENV_HEAD_TIMEOUT = "QUANTPIPE_HEAD_TIMEOUT"
ENV_MAX_CONNECTIONS = "QUANTPIPE_MAX_CONNECTIONS"
DEFAULT_MAX_HEAD_BYTES = 32 * 1024
DEFAULT_HEAD_TIMEOUT = 10.0
DEFAULT_MAX_CONNECTIONS = 256


class GuardedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol with a size limit and a deadline on each request head.

    A head starts with the first byte that arrives when no request is open (at the
    connection's start, or after the previous request's last byte) and ends when its headers
    are complete; bytes of a request's body, even those arriving after an early answer (a
    404, a 413), never count. A connection that has sent nothing is closed after the same
    deadline.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.max_head_bytes = int(os.environ.get(ENV_MAX_HEAD, DEFAULT_MAX_HEAD_BYTES))
        self.head_timeout = float(os.environ.get(ENV_HEAD_TIMEOUT, DEFAULT_HEAD_TIMEOUT))
        self.max_connections = int(os.environ.get(ENV_MAX_CONNECTIONS, DEFAULT_MAX_CONNECTIONS))
        self.in_head = False  # between a head's first byte and its headers' end
        self.message_open = False  # between a request's first byte and its last
        self.head_bytes = 0
        self.head_started = 0.0
        self.head_timer: asyncio.TimerHandle | None = None

    def _start_head(self) -> None:
        self.in_head, self.head_bytes = True, 0
        self.head_started = self.loop.time()
        if self.head_timer is None:  # one timer per connection, re-armed only as it expires
            self.head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _end_head(self) -> None:
        self.in_head = False  # the timer stays: it finds no head when it fires

    def _drop_timer(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Refuse a connection past the limit; else start the first head's deadline."""
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:  # the worker's open connections
            self._refuse(503, f"over {self.max_connections} connections open; retry")
            return
        self._start_head()

    def connection_lost(self, exc: Exception | None) -> None:
        """Drop the deadline with the connection."""
        self._end_head()
        self._drop_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Parse at most the head's remaining allowance while in a head; refuse past it."""
        if not self.in_head and not self.message_open:
            self._start_head()  # bytes between requests: the next head (or blank lines)
        if not self.in_head:
            super().data_received(data)
            return
        room = self.max_head_bytes - self.head_bytes
        if len(data) <= room or data.find(b"\r\n\r\n", 0, room) >= 0:
            head, rest = data, b""  # the usual case, no copy: the head ends within the room
        else:
            head, rest = data[:room], data[room:]
        self.head_bytes += len(head)
        super().data_received(head)
        if self.transport.is_closing():
            return
        if self.in_head:
            if rest or self.head_bytes >= self.max_head_bytes:
                self._refuse(431, f"request head over the {self.max_head_bytes}-byte limit")
            return
        if rest:
            self.data_received(rest)  # the body, or (pipelined) the next request's head

    def on_message_begin(self) -> None:
        """A request starts: its head is already being counted."""
        self.message_open = True
        if not self.in_head:
            self._start_head()
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        """The head is complete: no limit or deadline for the rest of the request."""
        self._end_head()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        """The request's last byte: what comes next is the next head."""
        self.message_open = False
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        """Answer a request that httptools cannot parse as JSON, not as uvicorn's text."""
        self._refuse(400, msg)

    def _head_timed_out(self) -> None:
        self.head_timer = None
        if self.transport.is_closing() or not self.in_head:
            return  # no head under way: the next one arms a new timer
        left = self.head_started + self.head_timeout - self.loop.time()
        if left > 0:  # a later head than the one the timer was armed for
            self.head_timer = self.loop.call_later(left, self._head_timed_out)
            return
        if self.head_bytes == 0:
            self.transport.close()  # an idle connection: nothing to answer
            return
        self._refuse(408, f"request head not complete within {self.head_timeout:g} s")

    def _refuse(self, status: int, message: str) -> None:
        self._end_head()
        self._drop_timer()
        body = orjson.dumps({"error": message})
        retry = b"retry-after: 1\r\n" if status == 503 else b""
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"%sconnection: close\r\n\r\n%s"
            % (status, HTTPStatus(status).phrase.encode(), len(body), retry, body)
        )
        self.transport.close()
