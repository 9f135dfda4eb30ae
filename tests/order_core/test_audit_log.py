"""The audit log on real PostgreSQL: writers of different RFQs never wait for each
other, the sequencer integrates an event that commits late with a lower id exactly
once, checkpoints are signed, published and copied outside the database, and
every kind of tampering is caught and named, online and offline.

Each test writes into a scratch copy of a migrated database, with a sequencer run
in-process, so none of them touches the shared trail the platform writes."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from order_core.adapters.audit import AuditLog, audit_events, audit_log, audit_pending
from order_core.adapters.audit_log import LogStore
from order_core.adapters.audit_queries import AuditFilter
from order_core.adapters.checkpoint_file import CheckpointFile, read_checkpoints
from order_core.adapters.repository import ConcurrentUpdate
from order_core.adapters.tables import OUTBOX_TABLES
from order_core.domain.audit import (
    AuditRecord,
    ChainedRecord,
    chain,
    chain_hash,
    leaf_hash,
    plain_json,
    utc_iso,
)
from order_core.domain.checkpoints import Checkpoint, CheckpointSigner, checkpoint_json
from order_core.domain.merkle import verify_consistency, verify_inclusion
from order_core.domain.trail_verifier import Verdict
from order_core.entrypoints.audit_cli import audit_app
from order_core.service_layer.audit_proofs import AuditProofs, verify_trail
from order_core.service_layer.audit_queries import AuditQueries, ExportFormat
from order_core.service_layer.sequencing import Sequencer
from otc.bus import topics
from otc.clock import ManualClock
from otc.db import make_engine
from otc.ids import new_id
from otc.migrate import upgrade
from tests.invariant_world import database_of, scratch_database

START = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
async def template(engine: AsyncEngine) -> AsyncIterator[str]:
    async with scratch_database(engine) as url:
        await upgrade(url)
        yield database_of(url)


@pytest.fixture
async def db(engine: AsyncEngine, template: str) -> AsyncIterator[AsyncEngine]:
    async with scratch_database(engine, template) as url:
        copy = make_engine(url, pool_size=20)
        try:
            yield copy
        finally:
            await copy.dispose()


@pytest.fixture
def signer() -> CheckpointSigner:
    return CheckpointSigner.generate()


def record(rfq_id: str, n: int) -> AuditRecord:
    return AuditRecord(
        rfq_id=rfq_id,
        event_type="otc.v1.OrderStateChanged",
        occurred_at=START + timedelta(milliseconds=n),
        producer="audit-test",
        event_id=new_id(),
        correlation_id=rfq_id,
        causation_id="",
        party="TRADER-A",
        payload={"rfq_id": rfq_id, "version": str(n), "state": "QUOTED"},
    )


async def append(db: AsyncEngine, records: list[AuditRecord]) -> list[ChainedRecord]:
    async with db.begin() as conn:
        return await AuditLog(conn).append(records)


def sequencer(
    db: AsyncEngine, signer: CheckpointSigner, *, every: int = 5, file: Path | None = None
) -> Sequencer:
    return Sequencer(
        db,
        signer,
        ManualClock(START),
        every=every,
        interval=timedelta(hours=1),
        checkpoint_file=CheckpointFile(file) if file else None,
    )


async def a_trail(db: AsyncEngine, signer: CheckpointSigner, file: Path | None = None) -> None:
    """Twelve events over three RFQs, interleaved, integrated in rounds of four, each
    round signing a checkpoint (at 4, 8 and 12)."""
    rfqs = [new_id() for _ in range(3)]
    seq = sequencer(db, signer, every=4, file=file)
    for n in range(12):
        await append(db, [record(rfqs[n % 3], n)])
        if n % 4 == 3:
            done = await seq.round()
            if done.checkpoint is not None and file is not None:
                await seq.catch_up_file()


async def verdict_of(
    db: AsyncEngine, signer: CheckpointSigner, kept: Sequence[Checkpoint] = ()
) -> Verdict:
    async with db.connect() as conn, conn.begin():
        return await verify_trail(conn, signer.public_key, kept)


async def as_owner(db: AsyncEngine, statement: str, **params: object) -> None:
    """What only the tables' owner can do: switch the guards off, write, switch them on."""
    async with db.begin() as conn:
        for table in ("audit_events", "audit_log", "audit_checkpoints"):
            await conn.execute(text(f"ALTER TABLE order_core.{table} DISABLE TRIGGER ALL"))
        await conn.execute(text(statement), params)
        for table in ("audit_events", "audit_log", "audit_checkpoints"):
            await conn.execute(text(f"ALTER TABLE order_core.{table} ENABLE TRIGGER ALL"))


async def test_writers_of_different_rfqs_never_wait_for_each_other(db: AsyncEngine) -> None:
    """16 transactions hold their audited append open at once; each of them, and one
    more, commits while all the others are still open: no row is shared."""
    holding = 16
    all_appended = asyncio.Barrier(holding + 1)
    release = asyncio.Event()

    async def held() -> None:
        async with db.begin() as conn:
            await AuditLog(conn).append([record(new_id(), 0)])
            await all_appended.wait()
            await release.wait()

    held_open = [asyncio.create_task(held()) for _ in range(holding)]
    await asyncio.wait_for(all_appended.wait(), 10)
    try:
        # would hang on the single chain's head row, locked by all sixteen
        await asyncio.wait_for(append(db, [record(new_id(), 0)]), 5)
    finally:
        release.set()
        await asyncio.gather(*held_open)
    async with db.connect() as conn:
        count = (await conn.execute(select(func.count()).select_from(audit_events))).scalar()
    assert count == holding + 1


async def test_two_writers_of_one_rfq_chain_one_after_the_other(db: AsyncEngine) -> None:
    rfq_id = new_id()
    [first] = await append(db, [record(rfq_id, 0)])
    both_read = asyncio.Barrier(2)

    async def extend(n: int) -> list[ChainedRecord]:
        async with db.begin() as conn:
            log = AuditLog(conn)
            heads = await log._heads({rfq_id})
            await both_read.wait()
            assert heads[rfq_id] == (1, first.hash)
            return await log.append([record(rfq_id, n)])

    results = await asyncio.gather(extend(1), extend(2), return_exceptions=True)
    assert sum(isinstance(r, ConcurrentUpdate) for r in results) == 1, results
    [kept] = [r for r in results if isinstance(r, list)]
    assert kept[0].rfq_seq == 2
    assert kept[0].prev_hash == first.hash
    [retried] = await append(db, [record(rfq_id, 3)])
    assert retried.rfq_seq == 3
    assert retried.prev_hash == kept[0].hash


async def test_an_event_that_commits_late_with_a_lower_id_is_integrated_once(
    db: AsyncEngine, signer: CheckpointSigner
) -> None:
    seq = sequencer(db, signer)
    slow = await db.connect()
    slow_tx = await slow.begin()
    try:
        [early] = await AuditLog(slow).append([record(new_id(), 0)])
        [later] = await append(db, [record(new_id(), 0)])
        assert (await seq.round()).integrated == 1  # only what has committed
        await slow_tx.commit()
    finally:
        await slow.close()
    assert (await seq.round()).integrated == 1
    assert (await seq.round()).integrated == 0
    async with db.connect() as conn:
        rows = (
            await conn.execute(
                select(audit_log.c.log_index, audit_events.c.hash, audit_events.c.id)
                .join(audit_events, audit_events.c.id == audit_log.c.event)
                .order_by(audit_log.c.log_index)
            )
        ).all()
        pending = (await conn.execute(select(func.count()).select_from(audit_pending))).scalar()
    assert [(r.log_index, r.hash) for r in rows] == [(0, later.hash), (1, early.hash)]
    assert rows[1].id < rows[0].id  # the lower id, placed after: it committed later
    assert pending == 0
    assert (await verdict_of(db, signer)).ok


async def test_a_replica_whose_clock_is_behind_never_signs_back_in_time(
    db: AsyncEngine, signer: CheckpointSigner
) -> None:
    """Replicas take rounds in turn; one whose clock is 10 s behind the last signer
    dates its checkpoint with the last one's time, so the verifier's order holds."""
    ahead = Sequencer(
        db, signer, ManualClock(START + timedelta(seconds=10)), every=1, interval=timedelta(hours=1)
    )
    behind = Sequencer(db, signer, ManualClock(START), every=1, interval=timedelta(hours=1))
    await append(db, [record(new_id(), 0)])
    first = (await ahead.round()).checkpoint
    await append(db, [record(new_id(), 1)])
    second = (await behind.round()).checkpoint
    assert first is not None
    assert second is not None
    assert second.timestamp == first.timestamp
    assert (await verdict_of(db, signer)).ok


async def test_checkpoints_are_signed_published_and_copied_outside(
    db: AsyncEngine, signer: CheckpointSigner, tmp_path: Path
) -> None:
    file = tmp_path / "checkpoints.jsonl"
    await a_trail(db, signer, file)
    async with db.connect() as conn:
        signed = await LogStore(conn).checkpoints()
        published = (
            await conn.execute(
                select(OUTBOX_TABLES.outbox.c.key).where(
                    OUTBOX_TABLES.outbox.c.topic == topics.AUDIT_CHECKPOINTS
                )
            )
        ).all()
    assert [c.tree_size for c in signed] == [4, 8, 12]
    assert len(published) == len(signed)
    assert read_checkpoints(file) == signed
    verdict = await verdict_of(db, signer)
    assert verdict.ok
    assert verdict.tree_size == 12
    assert verdict.checkpoints == 3


def swap(first: int, second: int) -> tuple[str, ...]:
    """Two log entries trade places (the primary key allows no direct swap)."""
    table = "order_core.audit_log"
    # the test's own integers, nothing from outside
    return (
        f"UPDATE {table} SET log_index = 1000 WHERE log_index = {first}",  # noqa: S608
        f"UPDATE {table} SET log_index = {first} WHERE log_index = {second}",  # noqa: S608
        f"UPDATE {table} SET log_index = {second} WHERE log_index = 1000",  # noqa: S608
    )


@pytest.mark.parametrize(
    ("tampering", "kind", "phrase"),
    [
        pytest.param(
            (
                "UPDATE order_core.audit_events"
                " SET payload = jsonb_set(payload, '{state}', '\"X\"') WHERE id = 6",
            ),
            "event",
            "content was changed",
            id="changed",
        ),
        pytest.param(
            ("DELETE FROM order_core.audit_log WHERE log_index = 3",),
            "event",
            "log index 3 missing",
            id="deleted",
        ),
        pytest.param(
            ("DELETE FROM order_core.audit_log WHERE log_index >= 10",),
            "checkpoint",
            "2 missing from its end",
            id="tail-cut",
        ),
        # each RFQ's chain stays in order: only the signed root shows the move
        pytest.param(swap(4, 5), "checkpoint", "tree size 8", id="reordered-across-rfqs"),
        pytest.param(swap(3, 6), "event", "event 2 missing", id="reordered-within-an-rfq"),
    ],
)
async def test_tampering_in_the_database_is_named(
    db: AsyncEngine,
    signer: CheckpointSigner,
    tampering: tuple[str, ...],
    kind: str,
    phrase: str,
) -> None:
    await a_trail(db, signer)
    assert (await verdict_of(db, signer)).ok
    for statement in tampering:
        await as_owner(db, statement)
    finding = (await verdict_of(db, signer)).finding
    assert finding is not None
    assert finding.kind == kind, finding
    assert phrase in finding.reason, finding.reason


async def test_a_rewrite_of_the_whole_trail_is_caught_against_the_copy_outside(
    db: AsyncEngine, signer: CheckpointSigner, tmp_path: Path
) -> None:
    """Someone with the owner's rights changes one event, recomputes every hash after
    it, the log's leaves and the tree, and signs nothing (they lack the key): the
    database on its own is consistent again, the file's checkpoints are not."""
    file = tmp_path / "checkpoints.jsonl"
    await a_trail(db, signer, file)
    async with db.connect() as conn:
        rows = (await conn.execute(select(audit_events).order_by(audit_events.c.id))).all()
    heads: dict[str, str] = {}
    for row in rows:
        payload = dict(row.payload)
        if row.id == 2:
            payload["state"] = "CANCELLED"
        rec = AuditRecord(
            row.rfq_id, row.event_type, row.occurred_at, row.producer, row.event_id,
            row.correlation_id, row.causation_id, row.party, payload,
        )  # fmt: skip
        prev = heads.get(row.rfq_id, "0" * 64)
        digest = chain_hash(prev, row.rfq_seq, rec)
        heads[row.rfq_id] = digest
        await as_owner(
            db,
            "UPDATE order_core.audit_events SET payload = CAST(:p AS jsonb), prev_hash = :prev,"
            " hash = :h WHERE id = :id",
            p=json.dumps(plain_json(payload)),
            prev=prev,
            h=digest,
            id=row.id,
        )
        await as_owner(
            db,
            "UPDATE order_core.audit_log SET leaf_hash = :leaf WHERE event = :id",
            leaf=leaf_hash(digest),
            id=row.id,
        )
    await as_owner(db, "DELETE FROM order_core.audit_checkpoints")
    assert (await verdict_of(db, signer)).ok  # nothing inside shows it any more
    finding = (await verdict_of(db, signer, read_checkpoints(file))).finding
    assert finding is not None
    assert finding.kind == "checkpoint"
    assert finding.tree_size == 4


async def test_a_forged_checkpoint_is_named(db: AsyncEngine, signer: CheckpointSigner) -> None:
    await a_trail(db, signer)
    forged = CheckpointSigner.generate().sign(12, "ab" * 32, START)
    await as_owner(
        db,
        "INSERT INTO order_core.audit_checkpoints VALUES (:s + 1, :r, :t, :k, :sig)",
        s=forged.tree_size,
        r=forged.root_hash,
        t=forged.timestamp,
        k=forged.key_id,
        sig=forged.signature,
    )
    finding = (await verdict_of(db, signer)).finding
    assert finding is not None
    assert finding.kind == "checkpoint"
    assert finding.tree_size == 13


async def test_an_event_inserted_into_the_log_is_named(
    db: AsyncEngine, signer: CheckpointSigner
) -> None:
    """A well-formed event of an RFQ of its own, slipped in at log index 6 with
    every later index moved up: chains, indexes and leaves all hold."""
    await a_trail(db, signer)
    [forged] = await append(db, [record(new_id(), 99)])
    await as_owner(db, "DELETE FROM order_core.audit_pending")
    await as_owner(
        db, "UPDATE order_core.audit_log SET log_index = log_index + 1000 WHERE log_index >= 6"
    )
    await as_owner(
        db, "UPDATE order_core.audit_log SET log_index = log_index - 999 WHERE log_index >= 1000"
    )
    await as_owner(
        db,
        "INSERT INTO order_core.audit_log SELECT 6, id, :leaf, now()"
        " FROM order_core.audit_events WHERE hash = :hash",
        leaf=leaf_hash(forged.hash),
        hash=forged.hash,
    )
    verdict = await verdict_of(db, signer)
    assert verdict.finding is not None
    assert verdict.finding.kind == "checkpoint"
    assert verdict.finding.tree_size == 8
    assert verdict.checkpoints == 1  # the one at 4 still holds


async def test_an_inconsistent_pair_of_signed_checkpoints_is_named(
    db: AsyncEngine, signer: CheckpointSigner
) -> None:
    """Both signed with the log's own key, as a sequencer that was made to sign a
    second history would: the one that does not extend the other is named."""
    await a_trail(db, signer)
    other = signer.sign(8, "cd" * 32, START)
    await as_owner(db, "DELETE FROM order_core.audit_checkpoints WHERE tree_size = 8")
    await as_owner(
        db,
        "INSERT INTO order_core.audit_checkpoints VALUES (:s, :r, :t, :k, :sig)",
        s=other.tree_size,
        r=other.root_hash,
        t=other.timestamp,
        k=other.key_id,
        sig=other.signature,
    )
    finding = (await verdict_of(db, signer)).finding
    assert finding is not None
    assert finding.kind == "checkpoint"
    assert finding.tree_size == 8
    assert "cd" * 32 in finding.reason


async def test_proofs_verify_against_the_signed_checkpoints(
    db: AsyncEngine, signer: CheckpointSigner
) -> None:
    await a_trail(db, signer)
    proofs = AuditProofs(db, signer.public_key)
    latest = await proofs.latest_checkpoint()
    for index in range(latest.tree_size):
        p = await proofs.inclusion(index, None)
        assert p.root_hash == latest.root_hash
        assert verify_inclusion(
            bytes.fromhex(p.leaf_hash),
            index,
            p.tree_size,
            [bytes.fromhex(h) for h in p.proof],
            bytes.fromhex(latest.root_hash),
        )
    first = (await proofs.checkpoints(size=8))[0]
    c = await proofs.consistency(8, 12)
    assert c.first_root == first.root_hash
    assert c.second_root == latest.root_hash
    proof = [bytes.fromhex(h) for h in c.proof]
    assert verify_consistency(
        8, 12, bytes.fromhex(first.root_hash), bytes.fromhex(latest.root_hash), proof
    )
    assert not verify_consistency(
        8, 12, bytes.fromhex("00" * 32), bytes.fromhex(latest.root_hash), proof
    )


async def _export(db: AsyncEngine, path: Path) -> None:
    with path.open("w", encoding="utf-8") as file:
        async for chunk in AuditQueries(db).export(AuditFilter(), ExportFormat.JSONL):
            file.write(chunk)


Lines = list[str]


def _changed(export: Lines, checkpoints: Lines, _: CheckpointSigner) -> None:
    event = json.loads(export[6])
    event["payload"]["state"] = "CANCELLED"
    export[6] = json.dumps(event)


def _deleted(export: Lines, checkpoints: Lines, _: CheckpointSigner) -> None:
    del export[3]


def _swapped(export: Lines, checkpoints: Lines, _: CheckpointSigner) -> None:
    export[4], export[5] = export[5], export[4]


def _inserted(export: Lines, checkpoints: Lines, _: CheckpointSigner) -> None:
    """A well-formed event of an RFQ of its own at log index 6, later ones moved up."""
    [forged] = chain({}, [record(new_id(), 99)])
    events = [json.loads(line) for line in export]
    for event in events[6:]:
        if event["log_index"] is not None:
            event["log_index"] += 1
    line = {name: events[0][name] for name in events[0]} | {
        "log_index": 6,
        "rfq_id": forged.record.rfq_id,
        "rfq_seq": forged.rfq_seq,
        "event_id": forged.record.event_id,
        "occurred_at": utc_iso(forged.record.occurred_at),
        "correlation_id": forged.record.correlation_id,
        "payload": plain_json(forged.record.payload),
        "prev_hash": forged.prev_hash,
        "hash": forged.hash,
        "leaf_hash": leaf_hash(forged.hash),
    }
    export[:] = [json.dumps(e) for e in [*events[:6], line, *events[6:]]]


def _forged(export: Lines, checkpoints: Lines, _: CheckpointSigner) -> None:
    forged = CheckpointSigner.generate().sign(8, json.loads(checkpoints[1])["root_hash"], START)
    checkpoints[1] = json.dumps(checkpoint_json(forged))


def _inconsistent(export: Lines, checkpoints: Lines, signer: CheckpointSigner) -> None:
    checkpoints[1] = json.dumps(checkpoint_json(signer.sign(8, "cd" * 32, START)))


def _garbled(export: Lines, checkpoints: Lines, _: CheckpointSigner) -> None:
    export[3] = "{not json"


@pytest.mark.parametrize(
    ("tamper", "named"),
    [
        pytest.param(_changed, "content was changed", id="changed"),
        pytest.param(_deleted, "log index 3 missing", id="deleted"),
        pytest.param(_swapped, "log index 4 missing", id="reordered"),
        pytest.param(_inserted, "the checkpoint of tree size 8", id="inserted"),
        pytest.param(_forged, "tree size 8", id="forged-checkpoint"),
        pytest.param(_inconsistent, "has root " + "cd" * 32, id="inconsistent-checkpoints"),
        pytest.param(_garbled, "line 4", id="not-an-event"),
    ],
)
async def test_offline_verification_needs_only_the_export_checkpoints_and_key(
    db: AsyncEngine,
    signer: CheckpointSigner,
    tmp_path: Path,
    tamper: Callable[[Lines, Lines, CheckpointSigner], None],
    named: str,
) -> None:
    await a_trail(db, signer)
    await append(db, [record(new_id(), 99)])  # committed, not yet in the log
    export, kept, key = tmp_path / "trail.jsonl", tmp_path / "cp.jsonl", tmp_path / "key.pem"
    await _export(db, export)
    async with db.connect() as conn:
        signed = await LogStore(conn).checkpoints()
    kept.write_text("".join(json.dumps(checkpoint_json(c)) + "\n" for c in signed))
    key.write_text(signer.public_pem())
    args = ["verify", "--export", str(export), "--checkpoints", str(kept), "--public-key", str(key)]

    intact = CliRunner().invoke(audit_app, args)
    assert intact.exit_code == 0, intact.output
    assert intact.output.startswith("trail intact: 13 events, 12 in the log"), intact.output

    events, checkpoints = export.read_text().splitlines(), kept.read_text().splitlines()
    tamper(events, checkpoints, signer)
    export.write_text("\n".join(events) + "\n")
    kept.write_text("\n".join(checkpoints) + "\n")
    broken = CliRunner().invoke(audit_app, args)
    assert broken.exit_code == 1, broken.output
    assert broken.output.startswith("trail broken: "), broken.output
    assert named in broken.output, broken.output


DOC = Path(__file__).parents[2] / "docs" / "audit.md"


async def test_the_documented_check_recomputes_every_exported_event(
    db: AsyncEngine, signer: CheckpointSigner, tmp_path: Path
) -> None:
    """docs/audit.md's few lines of Python are all an outside tool needs per event."""
    found = re.search(r"<!-- check-event -->\n```python\n(.*?)```", DOC.read_text(), re.S)
    assert found is not None, "the documented check is missing"
    documented: dict[str, Any] = {}
    exec(compile(found.group(1), str(DOC), "exec"), documented)  # noqa: S102
    await a_trail(db, signer)
    export = tmp_path / "trail.jsonl"
    await _export(db, export)
    events = [json.loads(line) for line in export.read_text().splitlines()]
    assert len(events) == 12
    for event in events:
        documented["check"](event)
    events[0]["payload"]["state"] = "CANCELLED"
    with pytest.raises(AssertionError):
        documented["check"](events[0])
