"""The audit trail on real PostgreSQL: the database refuses changes, concurrent
writers still form one chain, the verifier names a tampered row, and a settled RFQ
leaves its whole story in the trail."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import Executable, delete, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner, Result

from order_core.adapters.audit import AuditLog, audit_events
from order_core.domain.audit import (
    AuditRecord,
    ChainedRecord,
    JsonValue,
    chain_hash,
    plain_json,
)
from order_core.entrypoints.audit_cli import audit_app, verify_chain
from otc.db import make_engine
from otc.ids import new_id
from otc.settings import get_settings
from stack.client import TraderClient
from stack.demo import best_quote
from stack.infra.platform import Platform
from stack.infra.provider import Endpoints
from tests.e2e_helpers import base_url, token_for

STATE_CHANGED = "otc.v1.OrderStateChanged"


def record(rfq_id: str, n: int) -> AuditRecord:
    return AuditRecord(
        rfq_id=rfq_id,
        event_type=STATE_CHANGED,
        occurred_at=datetime.now(UTC),
        producer="audit-test",
        event_id=new_id(),
        correlation_id=rfq_id,
        causation_id="",
        party="TRADER-A",
        payload={"rfq_id": rfq_id, "version": n, "price": Decimal("101.25"), "tags": ["é"]},
    )


async def append(engine: AsyncEngine, records: list[AuditRecord]) -> list[ChainedRecord]:
    async with engine.begin() as conn:
        return await AuditLog(conn).append(records)


async def overwrite_payload(engine: AsyncEngine, seq: int, payload: JsonValue) -> None:
    """What only the table's owner can do: switch the guard off, edit, switch it on."""
    async with engine.begin() as conn:
        await conn.execute(text("ALTER TABLE order_core.audit_events DISABLE TRIGGER ALL"))
        await conn.execute(
            text("UPDATE order_core.audit_events SET payload = CAST(:p AS jsonb) WHERE seq = :s"),
            {"p": json.dumps(plain_json(payload)), "s": seq},
        )
        await conn.execute(text("ALTER TABLE order_core.audit_events ENABLE TRIGGER ALL"))


async def run_verify_command(monkeypatch: pytest.MonkeyPatch, database_url: str) -> Result:
    monkeypatch.setenv("OTC_DATABASE_URL", database_url)
    get_settings.cache_clear()
    try:
        # In a thread: the command runs its own event loop, as it does from a shell.
        return await asyncio.to_thread(lambda: CliRunner().invoke(audit_app, ["verify"]))
    finally:
        get_settings.cache_clear()


@pytest.mark.parametrize(
    "statement",
    [
        pytest.param(
            lambda seq: update(audit_events).where(audit_events.c.seq == seq).values(party="X"),
            id="update",
        ),
        pytest.param(
            lambda seq: delete(audit_events).where(audit_events.c.seq == seq), id="delete"
        ),
        pytest.param(lambda _: text("TRUNCATE order_core.audit_events"), id="truncate"),
    ],
)
async def test_the_database_refuses_to_change_or_remove_audit_rows(
    engine: AsyncEngine, statement: Callable[[int], Executable]
) -> None:
    [row] = await append(engine, [record(new_id(), 1)])
    with pytest.raises(DBAPIError, match="append-only"):
        async with engine.begin() as conn:
            await conn.execute(statement(row.seq))
    async with engine.connect() as conn:
        [kept] = await AuditLog(conn).events(rfq_id=row.record.rfq_id)
    assert (kept.seq, kept.hash) == (row.seq, row.hash)
    assert chain_hash(kept.prev_hash, kept.seq, kept.record) == row.hash


async def test_concurrent_appenders_extend_one_unbroken_chain(endpoints: Endpoints) -> None:
    writers, per_writer = 20, 3
    writing = make_engine(endpoints.database_url, pool_size=writers)
    all_in_a_transaction = asyncio.Barrier(writers)

    async def write(rfq_id: str) -> list[ChainedRecord]:
        async with writing.begin() as conn:
            await conn.execute(text("SELECT 1"))
            await all_in_a_transaction.wait()
            return await AuditLog(conn).append([record(rfq_id, n) for n in range(per_writer)])

    try:
        appended = await asyncio.gather(*(write(new_id()) for _ in range(writers)))
    finally:
        await writing.dispose()

    seqs = [row.seq for rows in appended for row in rows]
    assert len(set(seqs)) == writers * per_writer
    for rows in appended:
        # one transaction's records are consecutive: nobody slipped in between
        assert [r.seq for r in rows] == list(range(rows[0].seq, rows[0].seq + per_writer))
    verdict = await verify_chain(endpoints.database_url)
    assert verdict.broken is None
    assert verdict.events >= max(seqs)


async def test_the_verifier_names_exactly_the_row_that_was_tampered_with(
    engine: AsyncEngine, endpoints: Endpoints, monkeypatch: pytest.MonkeyPatch
) -> None:
    rfq_id = new_id()
    rows = await append(engine, [record(rfq_id, n) for n in range(3)])
    target = rows[1]
    intact = await run_verify_command(monkeypatch, endpoints.database_url)
    assert intact.exit_code == 0, intact.output
    assert intact.output.startswith("chain intact: ")

    await overwrite_payload(engine, target.seq, {**target.record.payload, "price": "1"})
    try:
        broken = await run_verify_command(monkeypatch, endpoints.database_url)
    finally:
        await overwrite_payload(engine, target.seq, target.record.payload)

    assert broken.exit_code == 1, broken.output
    assert broken.output.startswith(f"chain broken at seq {target.seq}: "), broken.output
    assert "content was changed" in broken.output
    assert (await verify_chain(endpoints.database_url)).broken is None


def _story(rows: list[ChainedRecord]) -> list[str]:
    return [
        str(r.record.payload["state"]) if r.record.event_type == STATE_CHANGED else "quote"
        for r in rows
    ]


def _quote_id(row: ChainedRecord) -> str:
    quote = row.record.payload["quote"]
    assert isinstance(quote, Mapping)
    return str(quote["quote_id"])


async def test_a_settled_rfq_leaves_its_whole_story_in_an_unbroken_trail(
    platform: Platform, engine: AsyncEngine
) -> None:
    async with TraderClient(base_url(platform), token_for(platform, "TRADER-A")) as trader:
        rfq = await trader.create_rfq(
            client_rfq_id=new_id(), instrument="BTC-USD", side="buy", quantity="0.5"
        )
        rfq_id = rfq["rfq_id"]
        quotes = await trader.wait_quotes(rfq_id, count=3)
        status, body = await trader.accept(rfq_id, best_quote(quotes, "buy")["quote_id"])
        assert status == 200, body
        settled = await trader.wait_status(rfq_id, "SETTLED", "SETTLEMENT_FAILED", timeout=20)
        assert settled == "SETTLED"

    async with engine.connect() as conn:
        rows = await AuditLog(conn).events(rfq_id=rfq_id)
    # The first quote moves the order to QUOTED and is recorded in that same transaction.
    assert _story(rows) == [
        "RFQ_SENT",
        "QUOTED",
        "quote",
        "quote",
        "quote",
        "PENDING_CONFIRMATION",
        "CONFIRMED",
        "SETTLED",
    ]
    quote_rows = [r for r in rows if r.record.event_type == "otc.v1.QuoteRecorded"]
    assert {_quote_id(r) for r in quote_rows} == {q["quote_id"] for q in quotes}
    assert {r.record.party for r in rows} == {"TRADER-A"}
    assert {r.record.producer for r in rows} == {"order-core"}
    assert platform.endpoints is not None
    assert (await verify_chain(platform.endpoints.database_url)).broken is None
