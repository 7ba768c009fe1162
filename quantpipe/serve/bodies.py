"""Request bodies read within limits: one request's, and all the bodies a worker holds."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from quantpipe.errors import RequestError
from quantpipe.serve.protocol import whole_number


@dataclass
class Budget:
    """Bytes of request bodies one worker holds at once, against a limit.

    Only the event loop takes and gives, so it needs no lock.
    """

    limit: int
    held: int = 0

    def take(self, n: int) -> None:
        """Hold ``n`` more bytes, or refuse with 503 if that would pass the limit."""
        if self.held + n > self.limit:
            raise RequestError(
                503, f"the server holds {self.limit} bytes of request bodies already; retry"
            )
        self.held += n

    def give(self, n: int) -> None:
        """Let ``n`` bytes go."""
        self.held -= n


async def read_body(request: Request, limit: int, what: str, budget: Budget) -> bytes:
    """The whole body, at most ``limit`` bytes, held against ``budget``.

    The caller gives back ``len(body)`` to the budget when done with it; on an error, what
    was taken is given back here.
    """
    declared = whole_number(request.headers.get("content-length"))
    if declared is not None and declared > limit:
        raise RequestError(413, f"{what} over the {limit}-byte limit")
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            if size + len(chunk) > limit:
                raise RequestError(413, f"{what} over the {limit}-byte limit")
            budget.take(len(chunk))
            size += len(chunk)
            chunks.append(chunk)
    except BaseException:
        budget.give(size)
        raise
    return b"".join(chunks)
