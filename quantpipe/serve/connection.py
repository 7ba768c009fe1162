"""HTTP connections with a bounded request head: uvicorn's httptools protocol, guarded.

uvicorn puts no limit on a request's head with httptools, and no deadline on it: a 64 MB
header took 7.6 s to parse and stalled every other request of its worker, and half a request
line held its connection open for as long as the client liked. :class:`GuardedHttpTools`
adds both, before the app sees anything:

- a head (request line and headers) over :data:`ENV_MAX_HEAD` bytes gets ``431`` and the
  connection is closed; the bytes past the limit are never parsed;
- a head not complete within :data:`ENV_HEAD_TIMEOUT` seconds of the connection opening or
  of the previous response gets ``408`` (a connection that sent nothing is just closed).

Both answers, and uvicorn's own ``400`` for a request that does not parse, are the
protocol's JSON ``{"error": ...}``; the app does not see these requests, so
``quantpipe_requests_total`` does not count them. The settings come from the
environment, which ``quantpipe serve`` sets, so that worker processes read the same ones.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

ENV_MAX_HEAD = "QUANTPIPE_MAX_HEAD_BYTES"
ENV_HEAD_TIMEOUT = "QUANTPIPE_HEAD_TIMEOUT"
DEFAULT_MAX_HEAD_BYTES = 32 * 1024
DEFAULT_HEAD_TIMEOUT = 10.0
_REASONS = {400: b"Bad Request", 408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


class GuardedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol with a size limit and a deadline on each request head."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.max_head_bytes = int(os.environ.get(ENV_MAX_HEAD, DEFAULT_MAX_HEAD_BYTES))
        self.head_timeout = float(os.environ.get(ENV_HEAD_TIMEOUT, DEFAULT_HEAD_TIMEOUT))
        self.in_head = True  # from a response's end (or the connection's start) to headers
        self.head_bytes = 0
        self.head_timer: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        self.in_head, self.head_bytes = True, 0
        if self.head_timer is not None:
            self.head_timer.cancel()
        self.head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _disarm(self) -> None:
        self.in_head = False
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the first head's deadline."""
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        """Drop the deadline with the connection."""
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Parse at most the head's remaining allowance while in a head; refuse past it."""
        if not self.in_head:
            super().data_received(data)
            return
        room = self.max_head_bytes - self.head_bytes
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
            super().data_received(rest)

    def on_headers_complete(self) -> None:
        """The head is complete: no limit or deadline until the response has gone."""
        self._disarm()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        """Arm the next head's deadline (uvicorn's keep-alive timer stops at its first byte)."""
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()

    def send_400_response(self, msg: str) -> None:
        """Answer a request that httptools cannot parse as JSON, not as uvicorn's text."""
        self._refuse(400, msg)

    def _head_timed_out(self) -> None:
        self.head_timer = None
        if self.transport.is_closing():
            return
        if self.head_bytes == 0:
            self.transport.close()  # an idle connection: nothing to answer
            return
        self._refuse(408, f"request head not complete within {self.head_timeout:g} s")

    def _refuse(self, status: int, message: str) -> None:
        self._disarm()
        body = orjson.dumps({"error": message})
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s" % (status, _REASONS[status], len(body), body)
        )
        self.transport.close()
