"""The signed checkpoints as published on `audit.checkpoints`: the copy outside the
database that a Kubernetes deployment keeps (the topic is kept forever), read back
from its start to its current end for `otc audit checkpoints --kafka-bootstrap`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC

from aiokafka import AIOKafkaConsumer, TopicPartition

from order_core.domain.checkpoints import Checkpoint
from otc.bus import topics
from otc.bus.envelope import InvalidMessage, decode
from otc.contracts import events_pb2 as ev


@dataclass
class Published:
    checkpoints: list[Checkpoint] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)  # partition:offset of each


def _checkpoint(payload: object) -> Checkpoint:
    if not isinstance(payload, ev.AuditCheckpoint):
        raise InvalidMessage(f"a {type(payload).__name__}, not an AuditCheckpoint")
    return Checkpoint(
        tree_size=payload.tree_size,
        root_hash=payload.root_hash,
        timestamp=payload.signed_at.ToDatetime(tzinfo=UTC),
        key_id=payload.key_id,
        signature=payload.signature,
    )


async def published_checkpoints(bootstrap: str, *, timeout_s: float = 30.0) -> Published:
    """Every checkpoint on the topic up to its end as of the call, in tree-size order,
    once each (the outbox may publish one twice)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        request_timeout_ms=int(timeout_s * 1000),
    )
    await consumer.start()
    try:
        await consumer.topics()
        parts = [
            TopicPartition(topics.AUDIT_CHECKPOINTS, p)
            for p in sorted(consumer.partitions_for_topic(topics.AUDIT_CHECKPOINTS) or ())
        ]
        if not parts:
            raise RuntimeError(f"no topic {topics.AUDIT_CHECKPOINTS} at {bootstrap}")
        consumer.assign(parts)
        ends = await consumer.end_offsets(parts)
        await consumer.seek_to_beginning(*parts)
        found, out = {}, Published()
        for tp in parts:
            while await consumer.position(tp) < ends[tp]:
                batch = await consumer.getmany(tp, timeout_ms=int(timeout_s * 1000))
                if not batch:
                    raise TimeoutError(f"{tp.topic}[{tp.partition}] gave nothing for {timeout_s} s")
                for record in batch.get(tp, []):
                    if record.offset >= ends[tp]:
                        break
                    try:
                        checkpoint = _checkpoint(decode(record.value).payload)
                    except InvalidMessage:
                        out.unreadable.append(f"{tp.partition}:{record.offset}")
                        continue
                    found[(checkpoint.tree_size, checkpoint.signature)] = checkpoint
        out.checkpoints = sorted(found.values(), key=lambda c: c.tree_size)
        return out
    finally:
        await consumer.stop()
