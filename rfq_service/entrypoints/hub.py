"""Fan-out of pushes to each party's open WebSocket connections.

Every connection has a bounded queue: a client too slow to keep up is
disconnected with a reason instead of growing the server's memory without bound.
Messages carry a per-connection sequence number, in order.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

QUEUE_LIMIT = 1000


class Connection:
    def __init__(self, party: str, limit: int = QUEUE_LIMIT) -> None:
        self.party = party
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(limit)
        self.seq = 0
        self.overflowed = False

    def offer(self, message: dict[str, Any]) -> None:
        if self.overflowed:
            return
        self.seq += 1
        try:
            self.queue.put_nowait({**message, "seq": self.seq})
        except asyncio.QueueFull:
            self.overflowed = True


class Hub:
    def __init__(self) -> None:
        self._by_party: dict[str, set[Connection]] = defaultdict(set)

    def register(self, connection: Connection) -> None:
        self._by_party[connection.party].add(connection)

    def unregister(self, connection: Connection) -> None:
        conns = self._by_party.get(connection.party)
        if conns is not None:
            conns.discard(connection)
            if not conns:
                del self._by_party[connection.party]

    def push(self, party: str, message: dict[str, Any]) -> None:
        for connection in tuple(self._by_party.get(party, ())):
            connection.offer(message)
