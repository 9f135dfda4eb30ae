"""The auditor API on the running platform: order_core serves it on its ops port,
only auditors and admins read it, every filter and page returns exactly the
matching events of the log once, exports parse back to those events (and add the
ones not yet in the log), verify names a tampered event, checkpoints and proofs
verify with nothing but the published key, and the edge proxies all of it (or
answers 503 when order_core is away)."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import io
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from order_core.adapters.audit import (
    AuditLog,
    audit_checkpoints,
    audit_events,
    audit_log,
    audit_tree,
)
from order_core.adapters.audit_queries import FIELDS, AuditFilter
from order_core.adapters.checkpoint_file import read_checkpoints
from order_core.domain.audit import (
    AuditRecord,
    ChainedRecord,
    JsonValue,
    chain_hash,
    leaf_hash,
    plain_json,
    utc_iso,
)
from order_core.domain.checkpoints import (
    Checkpoint,
    CheckpointSigner,
    checkpoint_from_json,
    key_id,
    load_public_key,
    signature_holds,
)
from order_core.domain.merkle import verify_consistency, verify_inclusion
from order_core.entrypoints.audit_api import create_audit_app
from order_core.entrypoints.audit_cli import audit_app
from order_core.service_layer.audit_proofs import AuditProofs
from order_core.service_layer.audit_queries import AuditQueries
from otc.auth import Role, mint_token, verify_token
from otc.bus import topics
from otc.clock import SystemClock
from otc.contracts import events_pb2 as ev
from otc.db import make_engine
from otc.errors import OtcError
from otc.ids import new_id
from otc.settings import get_settings
from rfq_service.entrypoints.audit_proxy import audit_router
from stack.infra.platform import Platform
from stack.infra.processes import free_port
from tests.e2e_helpers import token_for
from tests.kafka_tap import KafkaTap

STATE = "otc.v1.OrderStateChanged"
QUOTE = "otc.v1.QuoteRecorded"
WITHDRAWN = "otc.v1.QuoteWithdrawalRecorded"
PUBLIC_KEY = "/v1/audit/public-key"
# Every GET of the API, each with parameters it answers 200 to once the trail below
# is in the log and covered by a signed checkpoint.
ENDPOINTS: list[tuple[str, dict[str, Any]]] = [
    ("/v1/audit/events", {"rfq_id": "none"}),
    ("/v1/audit/export", {"rfq_id": "none"}),
    ("/v1/audit/verify", {}),
    ("/v1/audit/checkpoints/latest", {}),
    ("/v1/audit/checkpoints", {"limit": 1}),
    ("/v1/audit/events/0/proof", {}),
    ("/v1/audit/consistency", {"first": 1, "second": 1}),
    (PUBLIC_KEY, {}),
]
ENDPOINT_IDS = [path for path, _ in ENDPOINTS]
LARGE = 5000
# The platform's sequencer polls every 50 ms and signs a checkpoint a second after
# the last one when events came; ten seconds leaves room for a loaded machine.
INTEGRATION_TIMEOUT = 10.0
FAR = 10**15  # beyond any log a test run makes

T = TypeVar("T")


def state(rfq_id: str, requester: str, name: str, at: datetime, quote_id: str = "") -> AuditRecord:
    return AuditRecord(
        rfq_id=rfq_id,
        event_type=STATE,
        occurred_at=at,
        producer="audit-api-test",
        event_id=new_id(),
        correlation_id=rfq_id,
        causation_id="",
        party=requester,
        payload={"rfq_id": rfq_id, "requester": requester, "state": name, "quote_id": quote_id},
    )


def quote(rfq_id: str, requester: str, maker: str, quote_id: str, at: datetime) -> AuditRecord:
    return AuditRecord(
        rfq_id=rfq_id,
        event_type=QUOTE,
        occurred_at=at,
        producer="audit-api-test",
        event_id=new_id(),
        correlation_id=rfq_id,
        causation_id="",
        party=requester,
        payload={
            "requester": requester,
            # a maker may put anything in free text: the CSV must survive it
            "quote": {"rfq_id": rfq_id, "quote_id": quote_id, "maker": maker, "note": 'a,"b"\n'},
        },
    )


def withdrawal(rfq_id: str, requester: str, maker: str, quote_id: str, at: datetime) -> AuditRecord:
    return AuditRecord(
        rfq_id=rfq_id,
        event_type=WITHDRAWN,
        occurred_at=at,
        producer="audit-api-test",
        event_id=new_id(),
        correlation_id=rfq_id,
        causation_id="",
        party=requester,
        payload={
            "requester": requester,
            "withdrawal": {"rfq_id": rfq_id, "quote_id": quote_id, "maker": maker},
        },
    )


async def append(engine: AsyncEngine, records: list[AuditRecord]) -> list[ChainedRecord]:
    async with engine.begin() as conn:
        return await AuditLog(conn).append(records)


async def eventually(probe: Callable[[], Awaitable[T | None]], what: str) -> T:
    """What `probe` finds once it finds something, polled for a bounded time."""
    deadline = time.monotonic() + INTEGRATION_TIMEOUT
    while (found := await probe()) is None:
        assert time.monotonic() < deadline, f"not within {INTEGRATION_TIMEOUT} s: {what}"
        await asyncio.sleep(0.05)
    return found


async def integrated(engine: AsyncEngine, rows: list[ChainedRecord]) -> list[int]:
    """The rows' log indexes, in the rows' order, once the platform's sequencer has
    put every one of them in the log."""
    event_ids = [r.record.event_id for r in rows]
    query = (
        select(audit_events.c.event_id, audit_log.c.log_index)
        .join(audit_log, audit_log.c.event == audit_events.c.id)
        .where(audit_events.c.event_id.in_(event_ids))
    )

    async def all_in_the_log() -> list[int] | None:
        async with engine.connect() as conn:
            found = {row.event_id: row.log_index for row in await conn.execute(query)}
        return [found[e] for e in event_ids] if len(found) == len(event_ids) else None

    return await eventually(all_in_the_log, f"{len(event_ids)} events in the log")


@dataclass(frozen=True)
class Trail:
    """Two RFQs of unique parties: the trader's A, quoted by both makers and dealt
    with maker 1 (maker 2 withdrawing its quote at the end), and another trader's B,
    dealt with maker 2. `indexes` holds each named row's place in the log."""

    trader: str
    other_trader: str
    maker_1: str
    maker_2: str
    rfq_a: str
    rfq_b: str
    base: datetime
    rows: dict[str, ChainedRecord]
    indexes: dict[str, int]

    def log_indexes(self, *names: str) -> list[int]:
        return sorted(self.indexes[n] for n in names)


@pytest.fixture(scope="module")
async def trail(platform: Platform, engine: AsyncEngine) -> Trail:
    tag = new_id()[:8]
    trader, other, m1, m2 = (f"{p}-{tag}" for p in ("TRADER", "OTHER", "MAKER1", "MAKER2"))
    a, b = f"rfq-a-{tag}", f"rfq-b-{tag}"
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    at = [base + timedelta(seconds=i) for i in range(10)]
    named = {
        "a_sent": state(a, trader, "RFQ_SENT", at[0]),
        "a_q1": quote(a, trader, m1, f"q1-{tag}", at[1]),
        "a_q2": quote(a, trader, m2, f"q2-{tag}", at[2]),
        "a_pending": state(a, trader, "PENDING_CONFIRMATION", at[3], f"q1-{tag}"),
        "a_confirmed": state(a, trader, "CONFIRMED", at[4], f"q1-{tag}"),
        "b_sent": state(b, other, "RFQ_SENT", at[5]),
        "b_q3": quote(b, other, m2, f"q3-{tag}", at[6]),
        "b_pending": state(b, other, "PENDING_CONFIRMATION", at[7], f"q3-{tag}"),
        "a_settled": state(a, trader, "SETTLED", at[8], f"q1-{tag}"),
        "a_withdrawn": withdrawal(a, trader, m2, f"q2-{tag}", at[9]),
    }
    rows = await append(engine, list(named.values()))
    # The API serves only what the platform's sequencer has put in the log.
    indexes = await integrated(engine, rows)
    return Trail(
        trader,
        other,
        m1,
        m2,
        a,
        b,
        base,
        dict(zip(named, rows, strict=True)),
        dict(zip(named, indexes, strict=True)),
    )


@pytest.fixture(scope="module")
async def signed_size(trail: Trail, engine: AsyncEngine) -> int:
    """The tree size of a signed checkpoint that covers the whole trail."""
    last = max(trail.indexes.values())

    async def covering() -> int | None:
        async with engine.connect() as conn:
            size: int | None = (
                await conn.execute(select(func.max(audit_checkpoints.c.tree_size)))
            ).scalar_one()
        return size if size is not None and size > last else None

    return await eventually(covering, f"a checkpoint covering log index {last}")


@dataclass(frozen=True)
class Large:
    rows: list[ChainedRecord]
    log_indexes: list[int]


@pytest.fixture(scope="module")
async def large(platform: Platform, engine: AsyncEngine) -> Large:
    rfq_id, now = f"rfq-large-{new_id()}", datetime.now(UTC)
    rows = await append(engine, [state(rfq_id, "LARGE", str(n), now) for n in range(LARGE)])
    return Large(rows, await integrated(engine, rows))


@pytest.fixture
async def core(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    url = f"http://127.0.0.1:{platform.specs['order-core'].ops_port}"
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        yield client


def edge_app(platform: Platform, upstream: str) -> FastAPI:
    """The router mounted as the edge mounts it, with the edge's error mapping."""
    app = FastAPI()
    secret = platform.settings.jwt_secret.get_secret_value()

    @app.exception_handler(OtcError)
    async def _otc(_: Request, exc: OtcError) -> JSONResponse:
        body = {"error": {"code": exc.code, "message": exc.message}}
        return JSONResponse(body, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        body = {"error": {"code": "invalid_request", "message": str(exc.errors())}}
        return JSONResponse(body, status_code=422)

    app.include_router(
        audit_router(upstream, authenticate=lambda t: verify_token(t, secret=secret))
    )
    return app


@pytest.fixture
async def edge(platform: Platform, core: httpx.AsyncClient) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=edge_app(platform, str(core.base_url)))
    async with httpx.AsyncClient(transport=transport, base_url="http://edge", timeout=30) as c:
        yield c


@pytest.fixture
async def edge_without_core(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    transport = httpx.ASGITransport(app=edge_app(platform, dead))
    async with httpx.AsyncClient(transport=transport, base_url="http://edge", timeout=30) as c:
        yield c


def auth(platform: Platform, role: Role = Role.AUDITOR, party: str = "AUDITOR") -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for(platform, party, role)}"}


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]


async def events(
    client: httpx.AsyncClient, platform: Platform, **params: Any
) -> list[dict[str, Any]]:
    response = await client.get("/v1/audit/events", params=params, headers=auth(platform))
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["next_cursor"] is None
    items: list[dict[str, Any]] = page["items"]
    return items


async def got(client: httpx.AsyncClient, platform: Platform, path: str, **params: Any) -> Any:
    response = await client.get(path, params=params, headers=auth(platform))
    assert response.status_code == 200, response.text
    return response.json()


def log_indexes(items: list[dict[str, Any]]) -> list[int]:
    return [item["log_index"] for item in items]


def parse_csv(body: str) -> list[dict[str, Any]]:
    rows = csv.DictReader(io.StringIO(body, newline=""))
    return [
        {
            **r,
            "log_index": int(r["log_index"]) if r["log_index"] else None,
            "rfq_seq": int(r["rfq_seq"]),
            "payload": json.loads(r["payload"]),
        }
        for r in rows
    ]


def parse_jsonl(body: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in body.splitlines()]


def hashes(hexes: list[str]) -> list[bytes]:
    return [bytes.fromhex(h) for h in hexes]


def foreign_token(role: Role) -> str:
    return mint_token(
        "AUDITOR",
        role,
        secret="not-the-platform-secret-but-long-enough-for-hs256",
        now=SystemClock().now(),
        ttl=timedelta(hours=1),
    )


def rejections(platform: Platform) -> list[tuple[dict[str, str], int, str]]:
    expired = mint_token(
        "AUDITOR",
        Role.AUDITOR,
        secret=platform.settings.jwt_secret.get_secret_value(),
        now=SystemClock().now() - timedelta(hours=2),
        ttl=timedelta(hours=1),
    )
    return [
        ({}, 401, "unauthorized"),
        ({"Authorization": "Bearer not-a-jwt"}, 401, "unauthorized"),
        ({"Authorization": f"Bearer {foreign_token(Role.AUDITOR)}"}, 401, "unauthorized"),
        ({"Authorization": f"Bearer {expired}"}, 401, "unauthorized"),
        (auth(platform, Role.TRADER, "TRADER-A"), 403, "forbidden"),
        (auth(platform, Role.MARKET_MAKER, "MM-1"), 403, "forbidden"),
    ]


# -- who may read ------------------------------------------------------------------


@pytest.mark.parametrize(("path", "params"), ENDPOINTS, ids=ENDPOINT_IDS)
async def test_only_auditors_and_admins_may_read(
    core: httpx.AsyncClient,
    platform: Platform,
    signed_size: int,
    path: str,
    params: dict[str, Any],
) -> None:
    for headers, status, code in rejections(platform):
        assert_error(await core.get(path, params=params, headers=headers), status, code)
    for role, party in ((Role.AUDITOR, "AUDITOR"), (Role.ADMIN, "ADMIN")):
        response = await core.get(path, params=params, headers=auth(platform, role, party))
        assert response.status_code == 200, response.text


@pytest.mark.parametrize(("path", "params"), ENDPOINTS, ids=ENDPOINT_IDS)
async def test_the_edge_turns_away_non_readers_without_asking_order_core(
    edge_without_core: httpx.AsyncClient, platform: Platform, path: str, params: dict[str, Any]
) -> None:
    for headers, status, code in rejections(platform):
        response = await edge_without_core.get(path, params=params, headers=headers)
        assert_error(response, status, code)
    # and a reader does reach for order_core, which is not there
    response = await edge_without_core.get(path, params=params, headers=auth(platform))
    assert_error(response, 503, "audit_unavailable")


# -- filters and pages -------------------------------------------------------------


async def test_a_transactions_events_enter_the_log_in_the_order_they_were_appended(
    trail: Trail,
) -> None:
    indexes = list(trail.indexes.values())
    assert indexes == sorted(indexes)
    assert len(set(indexes)) == len(indexes)


async def test_rfq_id_selects_that_rfqs_events_in_log_order(
    core: httpx.AsyncClient, platform: Platform, trail: Trail
) -> None:
    items = await events(core, platform, rfq_id=trail.rfq_a)
    assert log_indexes(items) == trail.log_indexes(
        "a_sent", "a_q1", "a_q2", "a_pending", "a_confirmed", "a_settled", "a_withdrawn"
    )
    # in the log's order, which is the RFQ's chain order too
    assert [item["rfq_seq"] for item in items] == list(range(1, 8))
    first = items[0]
    stored = trail.rows["a_sent"]
    assert tuple(first) == FIELDS
    assert first["occurred_at"] == utc_iso(stored.record.occurred_at)
    assert first["payload"] == plain_json(stored.record.payload)
    assert (first["prev_hash"], first["hash"]) == (stored.prev_hash, stored.hash)
    assert first["leaf_hash"] == leaf_hash(stored.hash)


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        (
            "trader",
            ("a_sent", "a_q1", "a_q2", "a_pending", "a_confirmed", "a_settled", "a_withdrawn"),
        ),
        ("other_trader", ("b_sent", "b_q3", "b_pending")),
        # a maker: its own quotes, and the steps of the deals struck on them
        ("maker_1", ("a_q1", "a_pending", "a_confirmed", "a_settled")),
        ("maker_2", ("a_q2", "b_q3", "b_pending", "a_withdrawn")),
    ],
)
async def test_party_selects_the_events_the_party_took_part_in(
    core: httpx.AsyncClient, platform: Platform, trail: Trail, who: str, expected: tuple[str, ...]
) -> None:
    items = await events(core, platform, party=getattr(trail, who))
    assert log_indexes(items) == trail.log_indexes(*expected)


async def test_since_is_inclusive_and_until_exclusive(
    core: httpx.AsyncClient, platform: Platform, trail: Trail
) -> None:
    since, until = trail.base + timedelta(seconds=1), trail.base + timedelta(seconds=4)
    items = await events(
        core, platform, party=trail.trader, since=utc_iso(since), until=utc_iso(until)
    )
    assert log_indexes(items) == trail.log_indexes("a_q1", "a_q2", "a_pending")
    later = await events(core, platform, rfq_id=trail.rfq_a, since=since.isoformat())
    assert log_indexes(later) == trail.log_indexes(
        "a_q1", "a_q2", "a_pending", "a_confirmed", "a_settled", "a_withdrawn"
    )
    earlier = await events(core, platform, rfq_id=trail.rfq_b, until=utc_iso(trail.base))
    assert earlier == []


@pytest.mark.parametrize("limit", [1, 4, 9, 10])
async def test_cursor_paging_returns_every_row_once_in_log_order(
    core: httpx.AsyncClient, platform: Platform, trail: Trail, limit: int
) -> None:
    # the trail's 10 rows are the only ones in its time window; pages end full and short
    expected = trail.log_indexes(*trail.rows)
    seen: list[int] = []
    cursor: str | None = None
    for _ in range(len(expected) + 1):
        params: dict[str, Any] = {"limit": limit, "since": utc_iso(trail.base)}
        params["until"] = utc_iso(trail.base + timedelta(seconds=10))
        if cursor is not None:
            params["cursor"] = cursor
        page = (await core.get("/v1/audit/events", params=params, headers=auth(platform))).json()
        assert len(page["items"]) <= limit
        seen += log_indexes(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == expected


async def test_cursor_paging_with_a_filter_never_yields_an_empty_last_page(
    core: httpx.AsyncClient, platform: Platform, trail: Trail
) -> None:
    params: dict[str, Any] = {"party": trail.maker_1, "limit": 2}
    first = (await core.get("/v1/audit/events", params=params, headers=auth(platform))).json()
    params["cursor"] = first["next_cursor"]
    second = (await core.get("/v1/audit/events", params=params, headers=auth(platform))).json()
    assert log_indexes(first["items"]) + log_indexes(second["items"]) == trail.log_indexes(
        "a_q1", "a_pending", "a_confirmed", "a_settled"
    )
    assert second["next_cursor"] is None


@pytest.mark.parametrize(
    ("path", "params", "mentions"),
    [
        ("/v1/audit/events", {"limit": 0}, "limit"),
        ("/v1/audit/events", {"limit": 1001}, "limit"),
        ("/v1/audit/events", {"cursor": "bogus"}, "cursor"),
        ("/v1/audit/events", {"since": "2026-01-31T00:00:00"}, "since"),
        ("/v1/audit/events", {"until": "last tuesday"}, "until"),
        ("/v1/audit/export", {"format": "xml"}, "format"),
        ("/v1/audit/checkpoints", {"limit": 0}, "limit"),
        ("/v1/audit/checkpoints", {"size": 0}, "size"),
        ("/v1/audit/events/-1/proof", {}, "log_index"),
        ("/v1/audit/events/0/proof", {"size": 0}, "size"),
        ("/v1/audit/consistency", {"first": 0, "second": 1}, "first"),
        ("/v1/audit/consistency", {"first": 2, "second": 1}, "first"),
        ("/v1/audit/consistency", {"first": 1}, "second"),
    ],
)
async def test_bad_query_parameters_are_422_naming_the_parameter(
    core: httpx.AsyncClient, platform: Platform, path: str, params: dict[str, Any], mentions: str
) -> None:
    response = await core.get(path, params=params, headers=auth(platform))
    assert_error(response, 422, "invalid_request")
    assert mentions in response.json()["error"]["message"]


# -- export ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "media_type", "parse"),
    [("jsonl", "application/x-ndjson", parse_jsonl), ("csv", "text/csv", parse_csv)],
)
async def test_an_export_parses_back_to_the_rows_the_events_endpoint_returns(
    core: httpx.AsyncClient, platform: Platform, trail: Trail, fmt: str, media_type: str, parse: Any
) -> None:
    for filters in ({"party": trail.maker_2}, {"rfq_id": trail.rfq_a}):
        response = await core.get(
            "/v1/audit/export", params={**filters, "format": fmt}, headers=auth(platform)
        )
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith(media_type)
        assert response.headers["content-disposition"].startswith("attachment; filename=")
        assert response.headers["content-disposition"].endswith(f'.{fmt}"')
        assert parse(response.text) == await events(core, platform, **filters)


async def test_exported_rows_recompute_to_their_stored_hashes_offline(
    core: httpx.AsyncClient, platform: Platform, trail: Trail
) -> None:
    params = {"party": trail.maker_2, "format": "csv"}
    response = await core.get("/v1/audit/export", params=params, headers=auth(platform))
    rows = parse_csv(response.text)
    assert len(rows) == 4
    for row in rows:
        fields = {f.name: row[f.name] for f in dataclasses.fields(AuditRecord)}
        record = AuditRecord(**fields | {"occurred_at": datetime.fromisoformat(row["occurred_at"])})
        assert chain_hash(row["prev_hash"], row["rfq_seq"], record) == row["hash"]
        assert leaf_hash(row["hash"]) == row["leaf_hash"]


async def test_an_export_matching_nothing_is_empty_or_just_the_csv_header(
    core: httpx.AsyncClient, platform: Platform
) -> None:
    params = {"rfq_id": f"no-such-{new_id()}"}
    jsonl = await core.get("/v1/audit/export", params=params, headers=auth(platform))
    assert (jsonl.status_code, jsonl.text) == (200, "")
    csv_ = await core.get(
        "/v1/audit/export", params=params | {"format": "csv"}, headers=auth(platform)
    )
    assert csv_.status_code == 200
    assert csv_.text.splitlines() == [
        "log_index,rfq_id,rfq_seq,event_type,occurred_at,producer,event_id,"
        "correlation_id,causation_id,party,payload,prev_hash,hash,leaf_hash"
    ]


async def test_an_event_not_yet_in_the_log_is_exported_after_the_log_but_not_paged(
    core: httpx.AsyncClient, platform: Platform, engine: AsyncEngine
) -> None:
    rfq_id, now = f"rfq-waiting-{new_id()}", datetime.now(UTC)
    first = await append(engine, [state(rfq_id, "WAITING", "RFQ_SENT", now)])
    [first_index] = await integrated(engine, first)
    async with engine.connect() as holder, holder.begin():
        # The sequencer skips its rounds while another transaction holds the tree:
        # what is appended now stays out of the log until this one ends.
        await holder.execute(select(audit_tree.c.size).with_for_update())
        [waiting] = await append(engine, [state(rfq_id, "WAITING", "QUOTED", now)])
        paged = await events(core, platform, rfq_id=rfq_id)
        params = {"rfq_id": rfq_id}
        jsonl = await core.get("/v1/audit/export", params=params, headers=auth(platform))
        csv_ = await core.get(
            "/v1/audit/export", params=params | {"format": "csv"}, headers=auth(platform)
        )
    assert log_indexes(paged) == [first_index]
    exported = parse_jsonl(jsonl.text)
    assert [(e["log_index"], e["rfq_seq"], e["hash"]) for e in exported] == [
        (first_index, 1, first[0].hash),
        (None, 2, waiting.hash),
    ]
    assert exported[1]["leaf_hash"] == leaf_hash(waiting.hash)
    [_, _, last] = list(csv.reader(io.StringIO(csv_.text, newline="")))
    assert last[FIELDS.index("log_index")] == ""
    assert parse_csv(csv_.text) == exported
    # released: the sequencer puts it in the log after the first
    [waiting_index] = await integrated(engine, [waiting])
    assert waiting_index > first_index
    assert log_indexes(await events(core, platform, rfq_id=rfq_id)) == [first_index, waiting_index]


async def test_a_large_trail_exports_complete_through_order_core_and_the_edge(
    core: httpx.AsyncClient, edge: httpx.AsyncClient, platform: Platform, large: Large
) -> None:
    params = {"rfq_id": large.rows[0].record.rfq_id}
    direct = await core.get("/v1/audit/export", params=params, headers=auth(platform))
    exported = parse_jsonl(direct.text)
    assert log_indexes(exported) == large.log_indexes
    assert [e["rfq_seq"] for e in exported] == list(range(1, LARGE + 1))
    proxied = await edge.get("/v1/audit/export", params=params, headers=auth(platform))
    assert proxied.status_code == 200
    assert proxied.content == direct.content


async def test_the_export_reads_in_batches_of_the_configured_size(
    engine: AsyncEngine, large: Large
) -> None:
    queries = AuditQueries(engine, batch_size=700)
    sizes, seen = [], []
    async for batch in queries.batches(AuditFilter(rfq_id=large.rows[0].record.rfq_id)):
        sizes.append(len(batch))
        seen += [e["log_index"] for e in batch]
    assert max(sizes) == 700
    assert len(sizes) == -(-LARGE // 700)
    assert seen == large.log_indexes


async def test_otc_audit_export_writes_what_the_api_serves(
    core: httpx.AsyncClient,
    platform: Platform,
    trail: Trail,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert platform.endpoints is not None
    monkeypatch.setenv("OTC_DATABASE_URL", platform.endpoints.database_url)
    get_settings.cache_clear()
    out = tmp_path / "trail.csv"
    common = ["export", "--party", trail.maker_1, "--batch-size", "2"]
    try:
        # In a thread, one at a time: each command runs its own event loop, as from a
        # shell, and the runner swaps the process's stdout while it runs.
        to_file = await asyncio.to_thread(
            CliRunner().invoke, audit_app, [*common, "--format", "csv", "--output", str(out)]
        )
        to_stdout = await asyncio.to_thread(
            CliRunner().invoke, audit_app, [*common, "--format", "jsonl"]
        )
    finally:
        get_settings.cache_clear()
    assert to_file.exit_code == 0, to_file.output
    assert to_stdout.exit_code == 0, to_stdout.output
    served = await events(core, platform, party=trail.maker_1)
    assert parse_csv(out.read_text(encoding="utf-8")) == served
    assert parse_jsonl(to_stdout.stdout) == served


async def test_order_core_answers_503_when_its_database_cannot_be_reached() -> None:
    secret = "a-secret-for-this-test-only-long-enough-for-hs256"
    engine = make_engine(f"postgresql://postgres@127.0.0.1:{free_port()}/otc", pool_size=1)
    signer = CheckpointSigner.generate()
    app = create_audit_app(
        AuditQueries(engine),
        AuditProofs(engine, signer.public_key),
        authenticate=lambda t: verify_token(t, secret=secret),
        clock=SystemClock(),
        ready=lambda: True,
    )
    token = mint_token(
        "AUDITOR", Role.AUDITOR, secret=secret, now=SystemClock().now(), ttl=timedelta(hours=1)
    )
    headers = {"Authorization": f"Bearer {token}"}
    # the app re-raises what it answered 500/503 to, for the server to log
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://core") as client:
            for path, params in ENDPOINTS:
                if path == PUBLIC_KEY:
                    continue
                for fmt in ("jsonl", "csv"):
                    response = await client.get(
                        path, params=params | {"format": fmt}, headers=headers
                    )
                    assert_error(response, 503, "unavailable")
            # the key is the service's own, not the database's: served all the same
            response = await client.get(PUBLIC_KEY, headers=headers)
            assert response.status_code == 200, response.text
            assert response.json()["key_id"] == key_id(signer.public_key)
    finally:
        await engine.dispose()


# -- verify ------------------------------------------------------------------------


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


async def test_verify_holds_then_names_the_tampered_event_also_through_the_edge(
    core: httpx.AsyncClient,
    edge: httpx.AsyncClient,
    platform: Platform,
    engine: AsyncEngine,
    trail: Trail,
) -> None:
    intact = await got(core, platform, "/v1/audit/verify")
    assert intact["ok"] is True
    assert intact["finding"] is None
    last = max(trail.indexes.values())
    assert intact["integrated"] >= last + 1
    assert intact["tree_size"] >= last + 1
    assert intact["events"] >= intact["integrated"]

    target, index = trail.rows["a_q2"], trail.indexes["a_q2"]
    event_id = target.record.event_id
    await overwrite_payload(engine, event_id, {**target.record.payload, "requester": "X"})
    try:
        direct = await core.get("/v1/audit/verify", headers=auth(platform))
        proxied = await edge.get("/v1/audit/verify", headers=auth(platform))
    finally:
        await overwrite_payload(engine, event_id, target.record.payload)

    assert direct.status_code == 200
    broken = direct.json()
    assert broken["ok"] is False
    finding = broken["finding"]
    assert finding["kind"] == "event"
    assert finding["log_index"] == index
    assert (finding["rfq_id"], finding["rfq_seq"]) == (trail.rfq_a, target.rfq_seq)
    assert "content was changed" in finding["reason"]
    # the log's events come first: all those before the tampered one were checked
    assert broken["events"] == broken["integrated"] == broken["tree_size"] == index
    # and the root reported is the tree of exactly those events
    before = await got(core, platform, f"/v1/audit/events/{index - 1}/proof", size=index)
    assert broken["root_hash"] == before["root_hash"]
    assert (proxied.status_code, proxied.json()) == (200, broken)
    assert (await got(core, platform, "/v1/audit/verify"))["ok"] is True


# -- checkpoints and proofs ------------------------------------------------------------


async def two_checkpoints(
    core: httpx.AsyncClient, platform: Platform, engine: AsyncEngine
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The oldest and the latest signed checkpoint, once they differ."""

    async def both() -> tuple[dict[str, Any], dict[str, Any]] | None:
        [oldest] = (await got(core, platform, "/v1/audit/checkpoints", limit=1))["items"]
        latest = await got(core, platform, "/v1/audit/checkpoints/latest")
        return (oldest, latest) if oldest["tree_size"] < latest["tree_size"] else None

    if await both() is None:
        # the platform signs the next checkpoint only once events came: make one come
        traffic = state(f"rfq-traffic-{new_id()}", "TRAFFIC", "RFQ_SENT", datetime.now(UTC))
        await append(engine, [traffic])
    return await eventually(both, "two signed checkpoints")


async def test_the_latest_checkpoint_verifies_with_the_published_key(
    core: httpx.AsyncClient, platform: Platform, signed_size: int
) -> None:
    published = await got(core, platform, PUBLIC_KEY)
    key = load_public_key(published["public_key_pem"].encode("ascii"))
    assert published["key_id"] == key_id(key)
    latest = await got(core, platform, "/v1/audit/checkpoints/latest")
    checkpoint = checkpoint_from_json(latest)
    assert checkpoint.tree_size >= signed_size
    assert checkpoint.key_id == published["key_id"]
    assert signature_holds(checkpoint, key)
    # the signature covers what the checkpoint says: another root does not verify
    assert not signature_holds(dataclasses.replace(checkpoint, root_hash="0" * 64), key)
    listed = await got(core, platform, "/v1/audit/checkpoints", size=checkpoint.tree_size)
    assert listed["items"] == [latest]


async def test_checkpoints_are_published_on_kafka_signed_as_in_the_database(
    core: httpx.AsyncClient, platform: Platform, engine: AsyncEngine
) -> None:
    assert platform.endpoints is not None
    key = load_public_key((await got(core, platform, PUBLIC_KEY))["public_key_pem"].encode())
    async with KafkaTap(platform.endpoints.kafka_bootstrap, topics.AUDIT_CHECKPOINTS) as tap:
        # a new event makes the sequencer sign a checkpoint within its interval
        traffic = state(f"rfq-traffic-{new_id()}", "TRAFFIC", "RFQ_SENT", datetime.now(UTC))
        await append(engine, [traffic])
        [seen] = await tap.wait_for(lambda s: s.message is not None, timeout=30)
    assert seen.key == "audit"
    assert seen.message is not None
    payload = seen.message.payload
    assert isinstance(payload, ev.AuditCheckpoint)
    published = Checkpoint(
        tree_size=payload.tree_size,
        root_hash=payload.root_hash,
        timestamp=payload.signed_at.ToDatetime(tzinfo=UTC),
        key_id=payload.key_id,
        signature=payload.signature,
    )
    assert signature_holds(published, key)
    stored = await got(core, platform, "/v1/audit/checkpoints", size=published.tree_size)
    assert [checkpoint_from_json(c) for c in stored["items"]] == [published]


async def test_otc_audit_checkpoints_reads_the_copy_on_kafka(
    core: httpx.AsyncClient, platform: Platform, signed_size: int, tmp_path: Path
) -> None:
    """What an auditor keeps outside the database in Kubernetes: the topic, read back
    into the file `otc audit verify --checkpoints` takes."""
    assert platform.endpoints is not None
    key = load_public_key((await got(core, platform, PUBLIC_KEY))["public_key_pem"].encode())
    out = tmp_path / "from-kafka.jsonl"
    args = ["checkpoints", "--kafka-bootstrap", platform.endpoints.kafka_bootstrap]

    async def copied() -> list[Checkpoint] | None:
        ran = await asyncio.to_thread(CliRunner().invoke, audit_app, [*args, "--output", str(out)])
        assert ran.exit_code == 0, ran.output
        found = read_checkpoints(out)
        # published through the outbox just after it was signed
        return found if found and found[-1].tree_size >= signed_size else None

    checkpoints = await eventually(copied, f"the checkpoint of {signed_size} on Kafka")
    sizes = [c.tree_size for c in checkpoints]
    assert sizes == sorted(set(sizes))
    assert all(signature_holds(c, key) for c in checkpoints)
    copied_last = checkpoints[-1]
    stored = await got(core, platform, "/v1/audit/checkpoints", size=copied_last.tree_size)
    assert [checkpoint_from_json(c) for c in stored["items"]] == [copied_last]


async def test_the_checkpoints_page_in_tree_size_order(
    core: httpx.AsyncClient, platform: Platform, engine: AsyncEngine
) -> None:
    await two_checkpoints(core, platform, engine)
    whole = (await got(core, platform, "/v1/audit/checkpoints"))["items"]
    sizes = [c["tree_size"] for c in whole]
    assert sizes == sorted(set(sizes))
    paged: list[dict[str, Any]] = []
    after = 0
    while len(paged) < len(whole):
        page = await got(core, platform, "/v1/audit/checkpoints", after_size=after, limit=1)
        assert len(page["items"]) == 1
        paged += page["items"]
        after = paged[-1]["tree_size"]
    # checkpoints signed meanwhile only come after: the pages begin with the whole list
    assert paged == whole


async def test_an_inclusion_proof_of_a_trail_event_verifies_against_the_latest_checkpoint(
    core: httpx.AsyncClient, platform: Platform, trail: Trail, signed_size: int
) -> None:
    latest = await got(core, platform, "/v1/audit/checkpoints/latest")
    size, root = latest["tree_size"], bytes.fromhex(latest["root_hash"])
    index = trail.indexes["a_pending"]
    [item] = [
        i for i in await events(core, platform, rfq_id=trail.rfq_a) if i["log_index"] == index
    ]
    proven = await got(core, platform, f"/v1/audit/events/{index}/proof", size=size)
    assert proven["leaf_hash"] == item["leaf_hash"] == leaf_hash(trail.rows["a_pending"].hash)
    assert (proven["log_index"], proven["tree_size"]) == (index, size)
    assert proven["root_hash"] == latest["root_hash"]
    assert proven["checkpoint"] == latest
    path = hashes(proven["proof"])
    assert verify_inclusion(bytes.fromhex(item["leaf_hash"]), index, size, path, root)
    # the same path proves no other event there
    other = bytes.fromhex(leaf_hash(trail.rows["b_sent"].hash))
    assert not verify_inclusion(other, index, size, path, root)

    # without a size: the latest checkpoint's, whichever that is by now
    by_default = await got(core, platform, f"/v1/audit/events/{index}/proof")
    signed = by_default["checkpoint"]
    assert signed is not None
    assert signed["tree_size"] >= size
    assert (by_default["tree_size"], by_default["root_hash"]) == (
        signed["tree_size"],
        signed["root_hash"],
    )
    assert verify_inclusion(
        bytes.fromhex(item["leaf_hash"]),
        index,
        signed["tree_size"],
        hashes(by_default["proof"]),
        bytes.fromhex(signed["root_hash"]),
    )


async def test_a_consistency_proof_between_two_checkpoints_verifies(
    core: httpx.AsyncClient, platform: Platform, engine: AsyncEngine
) -> None:
    first, second = await two_checkpoints(core, platform, engine)
    m, n = first["tree_size"], second["tree_size"]
    m_root, n_root = bytes.fromhex(first["root_hash"]), bytes.fromhex(second["root_hash"])

    proven = await got(core, platform, "/v1/audit/consistency", first=m, second=n)
    assert (proven["first"], proven["second"]) == (m, n)
    assert (proven["first_root"], proven["second_root"]) == (
        first["root_hash"],
        second["root_hash"],
    )
    proof = hashes(proven["proof"])
    assert verify_consistency(m, n, m_root, n_root, proof)
    # a first tree that was not the second's prefix would not pass
    assert not verify_consistency(m, n, bytes(32), n_root, proof)


async def test_what_the_log_does_not_hold_is_404_with_a_message(
    core: httpx.AsyncClient, platform: Platform, signed_size: int
) -> None:
    requests: list[tuple[str, dict[str, Any], str]] = [
        (f"/v1/audit/events/{signed_size}/proof", {"size": signed_size}, f"{signed_size}"),
        (f"/v1/audit/events/{FAR}/proof", {}, f"{FAR}"),
        ("/v1/audit/events/0/proof", {"size": FAR}, f"{FAR}"),
        ("/v1/audit/consistency", {"first": 1, "second": FAR}, f"{FAR}"),
    ]
    for path, params, mentions in requests:
        response = await core.get(path, params=params, headers=auth(platform))
        assert_error(response, 404, "not_found")
        assert mentions in response.json()["error"]["message"], (path, params)


# -- the edge ----------------------------------------------------------------------


async def test_the_edge_answers_as_order_core_does(
    core: httpx.AsyncClient,
    edge: httpx.AsyncClient,
    platform: Platform,
    trail: Trail,
    signed_size: int,
) -> None:
    index = trail.indexes["b_q3"]
    requests: list[tuple[str, dict[str, Any]]] = [
        ("/v1/audit/events", {"party": trail.maker_1, "limit": 2}),
        ("/v1/audit/events", {"rfq_id": trail.rfq_b, "since": utc_iso(trail.base)}),
        ("/v1/audit/events", {"cursor": "bogus"}),  # refused upstream, passed back as is
        ("/v1/audit/export", {"rfq_id": trail.rfq_a, "format": "csv"}),
        ("/v1/audit/export", {"party": trail.maker_2}),
        (PUBLIC_KEY, {}),
        ("/v1/audit/checkpoints", {"limit": 2}),
        ("/v1/audit/checkpoints", {"size": signed_size}),
        (f"/v1/audit/events/{index}/proof", {"size": signed_size}),
        ("/v1/audit/consistency", {"first": 1, "second": signed_size}),
        # refused upstream, passed back as they are
        (f"/v1/audit/events/{signed_size}/proof", {"size": signed_size}),
        ("/v1/audit/consistency", {"first": 2, "second": 1}),
    ]
    for path, params in requests:
        direct = await core.get(path, params=params, headers=auth(platform))
        proxied = await edge.get(path, params=params, headers=auth(platform))
        assert proxied.status_code == direct.status_code, (path, params)
        assert proxied.headers["content-type"] == direct.headers["content-type"]
        assert proxied.content == direct.content, (path, params)

    # The latest checkpoint may move on between two reads; compare once it held still.
    for _ in range(5):
        before = await core.get("/v1/audit/checkpoints/latest", headers=auth(platform))
        proxied = await edge.get("/v1/audit/checkpoints/latest", headers=auth(platform))
        after = await core.get("/v1/audit/checkpoints/latest", headers=auth(platform))
        if before.content == after.content:
            assert (proxied.status_code, proxied.content) == (200, before.content)
            break
    else:
        pytest.fail("the latest checkpoint never held still for three reads")


async def test_the_edges_openapi_documents_the_audit_parameters(
    edge: httpx.AsyncClient,
) -> None:
    spec = (await edge.get("/openapi.json")).json()
    filters = {"rfq_id", "party", "since", "until"}
    parameters = {
        "/v1/audit/events": filters | {"cursor", "limit"},
        "/v1/audit/export": filters | {"format"},
        "/v1/audit/verify": set(),
        "/v1/audit/checkpoints/latest": set(),
        "/v1/audit/checkpoints": {"size", "after_size", "limit"},
        "/v1/audit/events/{log_index}/proof": {"log_index", "size"},
        "/v1/audit/consistency": {"first", "second"},
        PUBLIC_KEY: set(),
    }
    assert {p for p in spec["paths"] if p.startswith("/v1/audit")} == set(parameters)
    for path, names in parameters.items():
        operation = spec["paths"][path]["get"]
        assert {p["name"] for p in operation.get("parameters", [])} == names, path
        assert operation["security"] == [{"HTTPBearer": []}]
        assert "auditor or admin" in operation["description"].lower()
        assert {"401", "403", "503"} <= set(operation["responses"])
    for path in (
        "/v1/audit/checkpoints/latest",
        "/v1/audit/events/{log_index}/proof",
        "/v1/audit/consistency",
    ):
        assert "404" in spec["paths"][path]["get"]["responses"]
