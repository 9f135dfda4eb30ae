"""The audit log in PostgreSQL: what the sequencer integrates and signs, and what
readers page, prove and verify over.

Only a transaction holding the `audit_tree` row integrates, so the log grows in
one place at a time whatever the number of order_core replicas; writers never
touch that row. An event is taken from `audit_pending` only once it has committed
(before, its queue row is invisible), so one that commits late with a lower id is
integrated in a later round, never skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from order_core.adapters.audit import (
    audit_checkpoints,
    audit_events,
    audit_log,
    audit_pending,
    audit_tree,
)
from order_core.domain.checkpoints import Checkpoint
from order_core.domain.merkle import Frontier

TREE_ID = 1


@dataclass(frozen=True, slots=True)
class Committed:
    """A committed event waiting for its log index."""

    id: int
    hash: str
    recorded_at: datetime


@dataclass(frozen=True, slots=True)
class Integrated:
    log_index: int
    event: int
    leaf_hash: str


class LogStore:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def lock_tree(self) -> Frontier | None:
        """The log's Merkle frontier, locked until the transaction ends; None when
        another sequencer holds it (it is integrating right now)."""
        row = (
            await self._conn.execute(
                select(audit_tree.c.size, audit_tree.c.frontier)
                .where(audit_tree.c.id == TREE_ID)
                .with_for_update(skip_locked=True)
            )
        ).first()
        if row is None:
            return None
        return Frontier(row.size, [bytes.fromhex(h) for h in row.frontier])

    async def take_pending(self, limit: int) -> list[Committed]:
        """Up to `limit` committed events off the queue, lowest id first."""
        oldest = select(audit_pending.c.event).order_by(audit_pending.c.event).limit(limit)
        taken = (
            delete(audit_pending)
            .where(audit_pending.c.event.in_(oldest.scalar_subquery()))
            .returning(audit_pending.c.event)
            .cte("taken")
        )
        query = (
            select(audit_events.c.id, audit_events.c.hash, audit_events.c.recorded_at)
            .join(taken, taken.c.event == audit_events.c.id)
            .order_by(audit_events.c.id)
        )
        return [Committed(r.id, r.hash, r.recorded_at) for r in await self._conn.execute(query)]

    async def integrate(
        self, entries: Sequence[Integrated], frontier: Frontier, at: datetime
    ) -> None:
        await self._conn.execute(
            audit_log.insert(),
            [
                {
                    "log_index": e.log_index,
                    "event": e.event,
                    "leaf_hash": e.leaf_hash,
                    "integrated_at": at,
                }
                for e in entries
            ],
        )
        await self._conn.execute(
            update(audit_tree)
            .where(audit_tree.c.id == TREE_ID)
            .values(size=frontier.size, frontier=[h.hex() for h in frontier.hashes])
        )

    async def add_checkpoint(self, checkpoint: Checkpoint) -> None:
        await self._conn.execute(
            audit_checkpoints.insert().values(
                tree_size=checkpoint.tree_size,
                root_hash=checkpoint.root_hash,
                signed_at=checkpoint.timestamp,
                key_id=checkpoint.key_id,
                signature=checkpoint.signature,
            )
        )

    async def latest_checkpoint(self) -> Checkpoint | None:
        found = await self.checkpoints(newest_first=True, limit=1)
        return found[0] if found else None

    async def checkpoint(self, tree_size: int) -> Checkpoint | None:
        found = await self.checkpoints(size=tree_size)
        return found[0] if found else None

    async def checkpoints(
        self,
        *,
        size: int | None = None,
        after_size: int = 0,
        newest_first: bool = False,
        limit: int | None = None,
    ) -> list[Checkpoint]:
        c = audit_checkpoints.c
        query = select(audit_checkpoints).where(c.tree_size > after_size)
        if size is not None:
            query = query.where(c.tree_size == size)
        query = query.order_by(c.tree_size.desc() if newest_first else c.tree_size).limit(limit)
        return [
            Checkpoint(
                tree_size=r.tree_size,
                root_hash=r.root_hash,
                timestamp=r.signed_at,
                key_id=r.key_id,
                signature=r.signature,
            )
            for r in await self._conn.execute(query)
        ]

    async def size(self) -> int:
        return int(
            (
                await self._conn.execute(
                    select(audit_tree.c.size).where(audit_tree.c.id == TREE_ID)
                )
            ).scalar_one()
        )

    async def leaves(self, size: int) -> list[bytes]:
        """The leaf hashes of the first `size` events, in log order."""
        query = (
            select(audit_log.c.leaf_hash)
            .where(audit_log.c.log_index < size)
            .order_by(audit_log.c.log_index)
        )
        return [bytes.fromhex(h) for h in (await self._conn.execute(query)).scalars()]
