"""Fan-out of pushes to each party's WebSocket sessions, with resume.

A session outlives its connection: every message pushed to it gets the session's
next sequence number and is kept in a bounded replay buffer. A client that
reconnects with its session id and the last sequence it saw gets exactly what it
missed, with the original numbers; when the session is gone (expired, another
replica, or the buffer no longer reaches back that far) the caller falls back to
a snapshot from the read model.

Each connection has a bounded send queue: a client too slow to keep up is
disconnected with a reason instead of growing the server's memory without bound.
Its session stays resumable for as long as the replay buffer covers the gap.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from otc.errors import TooManySessions
from otc.ids import new_id

QUEUE_LIMIT = 1000
REPLAY_LIMIT = 2000
RETENTION_S = 120.0
MAX_SESSIONS = 50

Message = dict[str, Any]


class Connection:
    """One open socket: a bounded queue that the socket's writer drains."""

    def __init__(self, limit: int = QUEUE_LIMIT) -> None:
        self.queue: asyncio.Queue[Message] = asyncio.Queue(limit)
        self.overflowed_event = asyncio.Event()

    @property
    def overflowed(self) -> bool:
        return self.overflowed_event.is_set()

    def offer(self, message: Message) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.overflowed_event.set()


@dataclass
class Session:
    id: str
    party: str
    replay_limit: int
    seq: int = 0
    connection: Connection | None = None
    detached_at: float | None = None
    buffer: deque[Message] = field(init=False)

    def __post_init__(self) -> None:
        self.buffer = deque(maxlen=self.replay_limit)

    def push(self, message: Message) -> None:
        """Numbers the message and keeps it for a resume. Answers to the client's
        own requests go through here too: one that was lost with the connection
        is replayed like any push."""
        self.seq += 1
        numbered = {**message, "seq": self.seq}
        self.buffer.append(numbered)
        if self.connection is not None:
            self.connection.offer(numbered)

    def missed_since(self, last_seq: int) -> list[Message] | None:
        """What came after `last_seq`, or None when the buffer no longer has it all."""
        if not 0 <= last_seq <= self.seq:
            return None
        if last_seq == self.seq:
            return []
        if not self.buffer or self.buffer[0]["seq"] > last_seq + 1:
            return None
        return [m for m in self.buffer if m["seq"] > last_seq]


class Hub:
    def __init__(
        self,
        *,
        replay_limit: int = REPLAY_LIMIT,
        retention_s: float = RETENTION_S,
        max_sessions: int = MAX_SESSIONS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._replay_limit = replay_limit
        self._max_sessions = max_sessions
        self._retention = retention_s
        self._monotonic = monotonic
        self._by_party: dict[str, dict[str, Session]] = defaultdict(dict)

    def open(self, party: str, connection: Connection) -> Session:
        """A new session; the party's oldest one kept only for resuming makes room when
        it holds `max_sessions` already, and if all of them are connected, `TooManySessions`."""
        self._expire()
        sessions = self._by_party.get(party, {})
        while len(sessions) >= self._max_sessions:
            kept = [s for s in sessions.values() if s.detached_at is not None]
            if not kept:
                raise TooManySessions(
                    f"{party} already has {len(sessions)} WebSocket sessions open; close one first"
                )
            del sessions[min(kept, key=lambda s: s.detached_at or 0.0).id]
        session = Session(new_id(), party, self._replay_limit)
        session.connection = connection
        self._by_party[party][session.id] = session
        return session

    def resume(
        self, party: str, session_id: str, last_seq: int, connection: Connection
    ) -> tuple[Session, list[Message]] | None:
        """Reattaches a session of `party` and returns what the client missed, or
        None when that cannot be done exactly."""
        self._expire()
        session = self._by_party.get(party, {}).get(session_id)
        if session is None or session.connection is not None:
            return None
        missed = session.missed_since(last_seq)
        if missed is None:
            return None
        session.connection = connection
        session.detached_at = None
        return session, missed

    def detach(self, session: Session) -> None:
        session.connection = None
        session.detached_at = self._monotonic()

    def push(self, party: str, message: Message) -> None:
        for session in tuple(self._by_party.get(party, {}).values()):
            session.push(message)

    def sessions_of(self, party: str) -> list[Session]:
        return list(self._by_party.get(party, {}).values())

    def _expire(self) -> None:
        horizon = self._monotonic() - self._retention
        for party in list(self._by_party):
            sessions = self._by_party[party]
            for sid in [
                sid
                for sid, s in sessions.items()
                if s.detached_at is not None and s.detached_at < horizon
            ]:
                del sessions[sid]
            if not sessions:
                del self._by_party[party]
