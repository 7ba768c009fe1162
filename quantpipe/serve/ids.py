"""Ids for responses to requests that sent none (the protocol makes a request's ``id`` optional)."""

from __future__ import annotations

import itertools
import os
import uuid

#: The ids' last 12 hex digits (48 bits) count; the first 20 (with the version digits) stay.
_COUNTED_MASK = (1 << 48) - 1


class _ResponseIds:
    """Fresh version-4 UUIDs, one system call per process instead of one per response.

    ``uuid.uuid4()`` reads 16 bytes of ``os.urandom`` each time: a system call on every
    answer to a request without an ``id``, and making and printing a ``uuid.UUID`` cost
    another 3 µs. Here one uuid4 is drawn per process (again in a forked child): its text up
    to the last group is every id's prefix (74 random bits), and the n-th id ends with that
    uuid's last 48 bits plus n, modulo 2**48. Distinct for 2**48 ids in a process, and as
    unlikely to meet another process's as a uuid4 (two processes would need the same 74
    random bits).
    """

    def __init__(self) -> None:
        self.reset()
        os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        """Draw a new prefix and start (a new process)."""
        first = str(uuid.uuid4())
        self.prefix, self.start = first[:-12], int(first[-12:], 16)
        self.count = itertools.count(1)

    def __call__(self) -> str:
        """The next id."""
        return f"{self.prefix}{(self.start + next(self.count)) & _COUNTED_MASK:012x}"


#: The id of a response to a request that sent none (the protocol makes it optional).
response_id = _ResponseIds()
