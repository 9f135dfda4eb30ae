"""Revision 0006 on a database holding a trail of the single-chain form: every
event is re-chained within its RFQ, the sequencer gives it its old position as
log index, and the result verifies; a trail that was tampered with is refused."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from order_core.adapters.audit import audit_events, audit_log
from order_core.adapters.audit_log import LogStore
from order_core.domain.audit import AuditRecord, canonical_json, chain_hash, utc_iso
from order_core.domain.checkpoints import CheckpointSigner
from order_core.service_layer.audit_proofs import verify_trail
from order_core.service_layer.sequencing import Sequencer
from otc.clock import ManualClock
from otc.db import make_engine
from otc.migrate import alembic_config, upgrade
from tests.invariant_world import scratch_database

AT = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
GENESIS = "0" * 64
RFQS = ("R-1", "R-2", "R-3")


def old_form(count: int) -> list[dict[str, object]]:
    """Rows as revision 0002 stored them: one chain over every RFQ, by seq."""
    rows, prev = [], GENESIS
    for seq in range(1, count + 1):
        fields: dict[str, object] = {
            "rfq_id": RFQS[seq % 3],
            "event_type": "otc.v1.OrderStateChanged",
            "occurred_at": AT + timedelta(seconds=seq),
            "producer": "order-core",
            "event_id": f"E-{seq}",
            "correlation_id": RFQS[seq % 3],
            "causation_id": "",
            "party": "TRADER-A",
            "payload": {"state": "QUOTED", "version": str(seq), "price": "101.25"},
        }
        hashed = {**fields, "seq": seq, "occurred_at": utc_iso(AT + timedelta(seconds=seq))}
        digest = hashlib.sha256(prev.encode() + canonical_json(hashed)).hexdigest()  # type: ignore[arg-type]
        rows.append({**fields, "seq": seq, "prev_hash": prev, "hash": digest})
        prev = digest
    return rows


@pytest.fixture
async def at_0002(engine: AsyncEngine) -> AsyncIterator[str]:
    async with scratch_database(engine) as url:
        await asyncio.to_thread(command.upgrade, alembic_config(url), "0002")
        yield url


async def write_old(url: str, rows: list[dict[str, object]]) -> None:
    old = make_engine(url, pool_size=1)
    try:
        async with old.begin() as conn:
            for row in rows:
                await conn.execute(
                    text(
                        "INSERT INTO order_core.audit_events (seq, rfq_id, event_type,"
                        " occurred_at, producer, event_id, correlation_id, causation_id, party,"
                        " payload, prev_hash, hash) VALUES (:seq, :rfq_id, :event_type,"
                        " :occurred_at, :producer, :event_id, :correlation_id, :causation_id,"
                        " :party, CAST(:payload AS jsonb), :prev_hash, :hash)"
                    ),
                    {**row, "payload": json.dumps(row["payload"])},
                )
            last = rows[-1]
            await conn.execute(
                text("UPDATE order_core.audit_head SET seq = :s, hash = :h"),
                {"s": last["seq"], "h": last["hash"]},
            )
    finally:
        await old.dispose()


async def test_an_old_trail_moves_to_per_rfq_chains_in_its_old_order(at_0002: str) -> None:
    rows = old_form(10)
    await write_old(at_0002, rows)
    await upgrade(at_0002)
    db = make_engine(at_0002, pool_size=2)
    signer = CheckpointSigner.generate()
    try:
        sequencer = Sequencer(db, signer, ManualClock(AT), every=100, interval=timedelta(seconds=1))
        assert (await sequencer.round()).integrated == 10
        async with db.connect() as conn:
            moved = (
                await conn.execute(
                    select(audit_events, audit_log.c.log_index)
                    .join(audit_log, audit_log.c.event == audit_events.c.id)
                    .order_by(audit_log.c.log_index)
                )
            ).all()
            latest = await LogStore(conn).latest_checkpoint()
            verdict = await verify_trail(conn, signer.public_key)
            tables = (
                await conn.execute(text("SELECT to_regclass('order_core.audit_head') IS NULL"))
            ).scalar()
    finally:
        await db.dispose()

    assert [r.event_id for r in moved] == [r["event_id"] for r in rows]
    assert [r.log_index for r in moved] == list(range(10))
    heads: dict[str, tuple[int, str]] = {}
    for row in moved:
        rfq_seq, prev = heads.get(row.rfq_id, (0, GENESIS))
        record = AuditRecord(
            row.rfq_id, row.event_type, row.occurred_at, row.producer, row.event_id,
            row.correlation_id, row.causation_id, row.party, row.payload,
        )  # fmt: skip
        assert (row.rfq_seq, row.prev_hash) == (rfq_seq + 1, prev)
        assert row.hash == chain_hash(prev, rfq_seq + 1, record)
        heads[row.rfq_id] = (rfq_seq + 1, row.hash)
    assert verdict.ok, verdict
    assert verdict.integrated == 10
    assert latest is not None
    assert latest.tree_size == 10
    assert tables  # the single chain's head is gone


async def test_a_tampered_old_trail_is_refused_not_rehashed(at_0002: str) -> None:
    rows = old_form(5)
    rows[2]["payload"] = {"state": "CANCELLED", "version": "3", "price": "101.25"}
    await write_old(at_0002, rows)
    with pytest.raises(RuntimeError, match="seq 3 was changed; not migrated"):
        await upgrade(at_0002)
