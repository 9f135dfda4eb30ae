"""The audit trail on real PostgreSQL: the database refuses changes to the trail,
its log and its checkpoints, concurrent writers of many RFQs each extend their own
unbroken chain, the verifier names a tampered event, and a settled RFQ leaves its
whole story in the trail."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

import pytest
from sqlalchemy import Executable, delete, func, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from typer.testing import CliRunner, Result

from order_core.adapters.audit import (
    AuditLog,
    audit_checkpoints,
    audit_events,
    audit_log,
    chained_record,
)
from order_core.domain.audit import (
    GENESIS_HASH,
    AuditRecord,
    ChainedRecord,
    JsonValue,
    chain_hash,
    plain_json,
)
from order_core.entrypoints.audit_cli import audit_app, verify_database
from otc.db import make_engine
from otc.ids import new_id
from otc.settings import get_settings
from stack.client import TraderClient
from stack.demo import best_quote
from stack.infra.platform import Platform
from stack.infra.provider import Endpoints
from tests.e2e_helpers import base_url, token_for

STATE_CHANGED = "otc.v1.OrderStateChanged"
# The platform's sequencer polls every 50 ms and signs a checkpoint a second after
# the last one when events came; ten seconds leaves room for a loaded machine.
INTEGRATION_TIMEOUT = 10.0

T = TypeVar("T")


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


async def chain_of(conn: AsyncConnection, rfq_id: str) -> list[ChainedRecord]:
    """An RFQ's chain as stored, in its own order."""
    query = (
        select(audit_events).where(audit_events.c.rfq_id == rfq_id).order_by(audit_events.c.rfq_seq)
    )
    return [chained_record(row) for row in await conn.execute(query)]


async def event_row_id(engine: AsyncEngine, event_id: str) -> int:
    async with engine.connect() as conn:
        query = select(audit_events.c.id).where(audit_events.c.event_id == event_id)
        return int((await conn.execute(query)).scalar_one())


async def eventually(probe: Callable[[], Awaitable[T | None]], what: str) -> T:
    """What `probe` finds once it finds something, polled for a bounded time."""
    deadline = time.monotonic() + INTEGRATION_TIMEOUT
    while (found := await probe()) is None:
        assert time.monotonic() < deadline, f"not within {INTEGRATION_TIMEOUT} s: {what}"
        await asyncio.sleep(0.05)
    return found


async def overwrite_payload(engine: AsyncEngine, event_id: str, payload: JsonValue) -> None:
    """What only the table's owner can do: switch the guard off, edit, switch it on."""
    async with engine.begin() as conn:
        await conn.execute(text("ALTER TABLE order_core.audit_events DISABLE TRIGGER ALL"))
        changed = await conn.execute(
            text(
                "UPDATE order_core.audit_events SET payload = CAST(:p AS jsonb) WHERE event_id = :e"
            ),
            {"p": json.dumps(plain_json(payload)), "e": event_id},
        )
        assert changed.rowcount == 1
        await conn.execute(text("ALTER TABLE order_core.audit_events ENABLE TRIGGER ALL"))


async def run_verify_command(monkeypatch: pytest.MonkeyPatch, database_url: str) -> Result:
    monkeypatch.setenv("OTC_DATABASE_URL", database_url)
    get_settings.cache_clear()
    try:
        # In a thread: the command runs its own event loop, as it does from a shell.
        return await asyncio.to_thread(lambda: CliRunner().invoke(audit_app, ["verify"]))
    finally:
        get_settings.cache_clear()


# -- append-only ---------------------------------------------------------------------


@dataclass(frozen=True)
class Guarded:
    """One row of each guarded table: an event of our own, its place in the log, and
    a signed checkpoint that covers it."""

    chained: ChainedRecord
    id: int
    log_index: int
    tree_size: int


@pytest.fixture(scope="module")
async def guarded(platform: Platform, engine: AsyncEngine) -> Guarded:
    # The platform's sequencer fills the log and signs the checkpoints: a row of each
    # exists only once it has come round.
    [row] = await append(engine, [record(new_id(), 1)])
    id_ = await event_row_id(engine, row.record.event_id)

    async def log_index() -> int | None:
        async with engine.connect() as conn:
            query = select(audit_log.c.log_index).where(audit_log.c.event == id_)
            found: int | None = (await conn.execute(query)).scalar_one_or_none()
            return found

    index = await eventually(log_index, "the event is in the log")

    async def covering() -> int | None:
        async with engine.connect() as conn:
            query = select(func.max(audit_checkpoints.c.tree_size))
            size: int | None = (await conn.execute(query)).scalar_one()
            return size if size is not None and size > index else None

    return Guarded(row, id_, index, await eventually(covering, "a checkpoint covers the event"))


async def guarded_rows(engine: AsyncEngine, g: Guarded) -> tuple[Any, ...]:
    async with engine.connect() as conn:
        return (
            (await conn.execute(select(audit_events).where(audit_events.c.id == g.id))).one(),
            (
                await conn.execute(select(audit_log).where(audit_log.c.log_index == g.log_index))
            ).one(),
            (
                await conn.execute(
                    select(audit_checkpoints).where(audit_checkpoints.c.tree_size == g.tree_size)
                )
            ).one(),
        )


@pytest.mark.parametrize(
    "statement",
    [
        pytest.param(
            lambda g: update(audit_events).where(audit_events.c.id == g.id).values(party="X"),
            id="events-update",
        ),
        pytest.param(
            lambda g: delete(audit_events).where(audit_events.c.id == g.id), id="events-delete"
        ),
        # A plain TRUNCATE is refused before the guard, by the foreign keys of the log
        # and the queue; CASCADE is what would get past those, and the guard refuses it.
        pytest.param(
            lambda _: text("TRUNCATE order_core.audit_events CASCADE"), id="events-truncate"
        ),
        pytest.param(
            lambda g: (
                update(audit_log)
                .where(audit_log.c.log_index == g.log_index)
                .values(leaf_hash="0" * 64)
            ),
            id="log-update",
        ),
        pytest.param(
            lambda g: delete(audit_log).where(audit_log.c.log_index == g.log_index),
            id="log-delete",
        ),
        pytest.param(lambda _: text("TRUNCATE order_core.audit_log"), id="log-truncate"),
        pytest.param(
            lambda g: (
                update(audit_checkpoints)
                .where(audit_checkpoints.c.tree_size == g.tree_size)
                .values(root_hash="0" * 64)
            ),
            id="checkpoints-update",
        ),
        pytest.param(
            lambda g: delete(audit_checkpoints).where(audit_checkpoints.c.tree_size == g.tree_size),
            id="checkpoints-delete",
        ),
        pytest.param(
            lambda _: text("TRUNCATE order_core.audit_checkpoints"), id="checkpoints-truncate"
        ),
    ],
)
async def test_the_database_refuses_to_change_or_remove_audit_rows(
    engine: AsyncEngine,
    guarded: Guarded,
    statement: Callable[[Guarded], Executable],
    request: pytest.FixtureRequest,
) -> None:
    table = {"events": "audit_events", "log": "audit_log", "checkpoints": "audit_checkpoints"}[
        request.node.callspec.id.split("-")[0]
    ]
    before = await guarded_rows(engine, guarded)
    with pytest.raises(DBAPIError, match=f"order_core.{table} is append-only"):
        async with engine.begin() as conn:
            await conn.execute(statement(guarded))
    assert await guarded_rows(engine, guarded) == before
    row = guarded.chained
    async with engine.connect() as conn:
        [kept] = await chain_of(conn, row.record.rfq_id)
    assert (kept.rfq_seq, kept.prev_hash, kept.hash) == (1, GENESIS_HASH, row.hash)
    assert chain_hash(kept.prev_hash, kept.rfq_seq, kept.record) == row.hash


# -- concurrent writers ----------------------------------------------------------------


async def test_concurrent_appenders_each_extend_their_rfqs_unbroken_chain(
    endpoints: Endpoints,
) -> None:
    writers, per_writer = 20, 3
    writing = make_engine(endpoints.database_url, pool_size=writers)
    all_in_a_transaction = asyncio.Barrier(writers)

    async def write(rfq_id: str) -> list[ChainedRecord]:
        async with writing.begin() as conn:
            await conn.execute(text("SELECT 1"))
            await all_in_a_transaction.wait()
            return await AuditLog(conn).append([record(rfq_id, n) for n in range(per_writer)])

    rfq_ids = [new_id() for _ in range(writers)]
    try:
        appended = await asyncio.gather(*(write(rfq_id) for rfq_id in rfq_ids))
        async with writing.connect() as conn:
            stored = [await chain_of(conn, rfq_id) for rfq_id in rfq_ids]
    finally:
        await writing.dispose()

    for rfq_id, rows, chain in zip(rfq_ids, appended, stored, strict=True):
        # as stored, and as the appender was told: nobody else's event in the chain
        assert [(r.rfq_seq, r.hash) for r in chain] == [(r.rfq_seq, r.hash) for r in rows]
        assert [r.rfq_seq for r in chain] == list(range(1, per_writer + 1))
        assert {r.record.rfq_id for r in chain} == {rfq_id}
        prev_hashes = [r.prev_hash for r in chain]
        assert prev_hashes == [GENESIS_HASH, *(r.hash for r in chain[:-1])]
    verdict = await verify_database(endpoints.database_url, None)
    assert verdict.ok, verdict.finding
    assert verdict.events >= writers * per_writer


# -- verify ------------------------------------------------------------------------------


async def test_the_verifier_names_exactly_the_event_that_was_tampered_with(
    engine: AsyncEngine, endpoints: Endpoints, monkeypatch: pytest.MonkeyPatch
) -> None:
    rfq_id = new_id()
    rows = await append(engine, [record(rfq_id, n) for n in range(3)])
    target = rows[1]
    event_id = target.record.event_id
    intact = await run_verify_command(monkeypatch, endpoints.database_url)
    assert intact.exit_code == 0, intact.output
    assert intact.output.startswith("trail intact: "), intact.output

    await overwrite_payload(engine, event_id, {**target.record.payload, "price": "1"})
    try:
        broken = await run_verify_command(monkeypatch, endpoints.database_url)
        finding = (await verify_database(endpoints.database_url, None)).finding
    finally:
        await overwrite_payload(engine, event_id, target.record.payload)

    assert broken.exit_code == 1, broken.output
    assert broken.output.startswith("trail broken: "), broken.output
    assert "content was changed" in broken.output
    assert rfq_id in broken.output, broken.output
    assert finding is not None
    assert (finding.kind, finding.rfq_id, finding.rfq_seq) == ("event", rfq_id, target.rfq_seq)
    assert (await verify_database(endpoints.database_url, None)).ok


# -- a whole RFQ -------------------------------------------------------------------------


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
        rows = await chain_of(conn, rfq_id)
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
    assert [r.rfq_seq for r in rows] == list(range(1, len(rows) + 1))
    assert [r.prev_hash for r in rows] == [GENESIS_HASH, *(r.hash for r in rows[:-1])]
    quote_rows = [r for r in rows if r.record.event_type == "otc.v1.QuoteRecorded"]
    assert {_quote_id(r) for r in quote_rows} == {q["quote_id"] for q in quotes}
    assert {r.record.party for r in rows} == {"TRADER-A"}
    assert {r.record.producer for r in rows} == {"order-core"}
    assert platform.endpoints is not None
    verdict = await verify_database(platform.endpoints.database_url, None)
    assert verdict.ok, verdict.finding
