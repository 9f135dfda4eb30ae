"""The sequencer: integrates committed audit events into the one global log and
signs checkpoints of its Merkle tree.

Each round is one transaction: lock the tree (another replica integrating skips
its round), take the committed events off the queue, give them the next log
indexes, extend the tree, and every `every` events or `interval` (whichever comes
first) sign a checkpoint. The checkpoint goes out through the outbox on
`audit.checkpoints` and, after the commit, to a file outside the database; the
file is caught up from the database whenever the latest checkpoint (this
replica's or another's) is beyond it, so a crash between the two loses nothing.
An event is placed after every event that committed before the round began;
within a round, in id order, which is its RFQ's chain order too (an RFQ's next
event is only written once the one before it has committed).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp
from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy.ext.asyncio import AsyncEngine

from order_core.adapters.audit_log import Integrated, LogStore
from order_core.adapters.checkpoint_file import CheckpointFile
from order_core.adapters.tables import OUTBOX_TABLES
from order_core.domain.audit import leaf_hash
from order_core.domain.checkpoints import Checkpoint, CheckpointSigner
from otc.bus import topics
from otc.clock import Clock
from otc.contracts import events_pb2 as ev
from otc.logging import get_logger
from otc.unit_of_work import UnitOfWork

log = get_logger(__name__)

MAX_PAUSE_S = 5.0
# A round that finds nothing doubles the pause up to this, so a quiet platform does
# not run several queries every poll; the first event after a quiet spell waits at
# most this long to be integrated, and any work brings the pause back to the poll.
IDLE_PAUSE_S = 0.4

INTEGRATION_DELAY = Histogram(
    "otc_audit_integration_delay_seconds",
    "From an audit event's insert to the sequencer giving it a log index",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
LOG_SIZE = Gauge("otc_audit_log_size", "Events in the audit log (its Merkle tree's size)")
CHECKPOINTS = Counter("otc_audit_checkpoints_total", "Signed audit checkpoints")


@dataclass(frozen=True, slots=True)
class Round:
    integrated: int
    checkpoint: Checkpoint | None
    signed_size: int = 0  # the latest checkpoint's tree size, by whichever replica


def next_pause(pause: float, poll: float, done: Round) -> float:
    """Seconds to wait after a round: the poll after work, longer and longer while idle."""
    if done.integrated or done.checkpoint is not None:
        return poll
    return max(poll, min(pause * 2, IDLE_PAUSE_S))


class Sequencer:
    def __init__(
        self,
        engine: AsyncEngine,
        signer: CheckpointSigner,
        clock: Clock,
        *,
        every: int,
        interval: timedelta,
        batch: int = 5000,
        checkpoint_file: CheckpointFile | None = None,
    ) -> None:
        self._engine = engine
        self._signer = signer
        self._clock = clock
        self._every = every
        self._interval = interval
        self._batch = batch
        self._file = checkpoint_file

    async def run(self, stopping: asyncio.Event, poll: timedelta) -> None:
        """Integrates until `stopping` is set; a failed round is logged and retried."""
        pause = poll.total_seconds()
        while not stopping.is_set():
            try:
                done = await self.round()
                if self._file is not None and done.signed_size > await self._file.last_size():
                    await self.catch_up_file()  # signed here, or by another replica
                pause = next_pause(pause, poll.total_seconds(), done)
                if done.integrated >= self._batch:
                    continue  # a backlog: the next batch at once
            except Exception as exc:  # the next round retries
                log.warning("audit sequencer round failed", error=repr(exc), retry_in_s=pause)
                pause = min(pause * 2, MAX_PAUSE_S)  # one line a round, not a flood
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), pause)

    async def round(self) -> Round:
        uow = UnitOfWork(self._engine, OUTBOX_TABLES, producer="order-core", clock=self._clock)
        async with uow:
            store = LogStore(uow.conn)
            frontier = await store.lock_tree()
            if frontier is None:
                return Round(0, None)
            committed = await store.take_pending(self._batch)
            entries = []
            for event in committed:
                leaf = leaf_hash(event.hash)
                entries.append(Integrated(frontier.size, event.id, leaf))
                frontier.append(bytes.fromhex(leaf))
            now = self._clock.now()
            if entries:
                await store.integrate(entries, frontier, now)
            checkpoint, last = None, await store.latest_checkpoint()
            if self._due(last, frontier.size, now):
                # Never before the last one: replicas' clocks differ a little, and the
                # checkpoints of a growing tree must not go back in time.
                at = now if last is None else max(now, last.timestamp)
                checkpoint = self._signer.sign(frontier.size, frontier.root().hex(), at)
                await store.add_checkpoint(checkpoint)
                uow.emit(
                    topics.AUDIT_CHECKPOINTS,
                    "audit",
                    _message(checkpoint),
                    correlation_id=f"audit-checkpoint-{checkpoint.tree_size}",
                )
            await uow.commit()
        for event in committed:
            INTEGRATION_DELAY.observe(max(0.0, (now - event.recorded_at).total_seconds()))
        LOG_SIZE.set(frontier.size)
        if checkpoint is not None:
            CHECKPOINTS.inc()
        signed = checkpoint or last
        return Round(len(entries), checkpoint, signed.tree_size if signed else 0)

    def _due(self, last: Checkpoint | None, size: int, now: datetime) -> bool:
        if size == 0 or (last is not None and last.tree_size >= size):
            return False
        if last is None:
            return True
        return size - last.tree_size >= self._every or now - last.timestamp >= self._interval

    async def catch_up_file(self) -> None:
        """Copies to the file the database's checkpoints it does not hold yet."""
        if self._file is None:
            return
        after = await self._file.last_size()
        reading = UnitOfWork(self._engine, producer="order-core", clock=self._clock, snapshot=True)
        async with reading:
            newer = await LogStore(reading.conn).checkpoints(after_size=after)
        refused = await self._file.append(newer, self._signer.public_key)
        for checkpoint in refused:
            log.error(
                "audit checkpoint in the database does not verify; not copied",
                tree_size=checkpoint.tree_size,
            )


def _message(checkpoint: Checkpoint) -> ev.AuditCheckpoint:
    signed_at = Timestamp()
    signed_at.FromDatetime(checkpoint.timestamp)
    return ev.AuditCheckpoint(
        tree_size=checkpoint.tree_size,
        root_hash=checkpoint.root_hash,
        signed_at=signed_at,
        key_id=checkpoint.key_id,
        signature=checkpoint.signature,
    )
