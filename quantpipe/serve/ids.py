"""Ids for responses to requests that sent none (the protocol makes a request's ``id`` optional)."""

from __future__ import annotations

import itertools
import os
import uuid


class _ResponseIds:
    """Fresh version-4 UUIDs, one system call per process instead of one per response.

    ``uuid.uuid4()`` reads 16 bytes of ``os.urandom`` each time: a system call on every
    answer to a request without an ``id``. Here a random 122-bit base is drawn once per
    process (again in a forked child) and the n-th id is base + n, with the version bits
    set: distinct within the process, and as unlikely to meet another process's as uuid4.
    """

    def __init__(self) -> None:
        self.reset()
        os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        """Draw a new base (a new process)."""
        self.base = uuid.uuid4().int
        self.count = itertools.count(1)

    def __call__(self) -> str:
        """The next id."""
        return str(uuid.UUID(int=(self.base + next(self.count)) % (1 << 128), version=4))


#: The id of a response to a request that sent none (the protocol makes it optional).
response_id = _ResponseIds()
