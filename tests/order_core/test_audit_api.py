"""The auditor API on the running platform: order_core serves it on its ops port,
only auditors and admins read it, every filter and page returns exactly the
matching rows once, exports parse back to those rows, verify names a tampered
row, and the edge proxies all of it (or answers 503 when order_core is away)."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from order_core.adapters.audit import AuditLog
from order_core.domain.audit import (
    AuditRecord,
    ChainedRecord,
    JsonValue,
    chain_hash,
    plain_json,
    utc_iso,
)
from order_core.entrypoints.audit_api import create_audit_app
from order_core.entrypoints.audit_cli import audit_app
from order_core.service_layer.audit_queries import AuditFilter, AuditQueries
from otc.auth import Role, mint_token, verify_token
from otc.clock import SystemClock
from otc.db import make_engine
from otc.errors import OtcError
from otc.ids import new_id
from otc.settings import get_settings
from rfq_service.entrypoints.audit_proxy import audit_router
from stack.infra.platform import Platform
from stack.infra.processes import free_port
from tests.e2e_helpers import token_for

STATE = "otc.v1.OrderStateChanged"
QUOTE = "otc.v1.QuoteRecorded"
WITHDRAWN = "otc.v1.QuoteWithdrawalRecorded"
ENDPOINTS = ["/v1/audit/events", "/v1/audit/export", "/v1/audit/verify"]
LARGE = 5000


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


@dataclass(frozen=True)
class Trail:
    """Two RFQs of unique parties: the trader's A, quoted by both makers and dealt
    with maker 1 (maker 2 withdrawing its quote at the end), and another trader's B,
    dealt with maker 2."""

    trader: str
    other_trader: str
    maker_1: str
    maker_2: str
    rfq_a: str
    rfq_b: str
    base: datetime
    rows: dict[str, ChainedRecord]

    def seqs(self, *names: str) -> list[int]:
        return sorted(self.rows[n].seq for n in names)


@pytest.fixture(scope="module")
async def trail(engine: AsyncEngine) -> Trail:
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
    return Trail(trader, other, m1, m2, a, b, base, dict(zip(named, rows, strict=True)))


@pytest.fixture(scope="module")
async def large(engine: AsyncEngine) -> list[ChainedRecord]:
    rfq_id, now = f"rfq-large-{new_id()}", datetime.now(UTC)
    return await append(engine, [state(rfq_id, "LARGE", str(n), now) for n in range(LARGE)])


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


def seqs(items: list[dict[str, Any]]) -> list[int]:
    return [item["seq"] for item in items]


def parse_csv(body: str) -> list[dict[str, Any]]:
    rows = csv.DictReader(io.StringIO(body, newline=""))
    return [{**r, "seq": int(r["seq"]), "payload": json.loads(r["payload"])} for r in rows]


def parse_jsonl(body: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in body.splitlines()]


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


@pytest.mark.parametrize("path", ENDPOINTS)
async def test_only_auditors_and_admins_may_read(
    core: httpx.AsyncClient, platform: Platform, path: str
) -> None:
    for headers, status, code in rejections(platform):
        assert_error(await core.get(path, headers=headers), status, code)
    for role, party in ((Role.AUDITOR, "AUDITOR"), (Role.ADMIN, "ADMIN")):
        response = await core.get(
            path, params={"rfq_id": "none"}, headers=auth(platform, role, party)
        )
        assert response.status_code == 200, response.text


@pytest.mark.parametrize("path", ENDPOINTS)
async def test_the_edge_turns_away_non_readers_without_asking_order_core(
    edge_without_core: httpx.AsyncClient, platform: Platform, path: str
) -> None:
    for headers, status, code in rejections(platform):
        assert_error(await edge_without_core.get(path, headers=headers), status, code)
    # and a reader does reach for order_core, which is not there
    assert_error(
        await edge_without_core.get(path, headers=auth(platform)), 503, "audit_unavailable"
    )


# -- filters and pages -------------------------------------------------------------


async def test_rfq_id_selects_that_rfqs_events_in_chain_order(
    core: httpx.AsyncClient, platform: Platform, trail: Trail
) -> None:
    items = await events(core, platform, rfq_id=trail.rfq_a)
    assert seqs(items) == trail.seqs(
        "a_sent", "a_q1", "a_q2", "a_pending", "a_confirmed", "a_settled", "a_withdrawn"
    )
    first = items[0]
    stored = trail.rows["a_sent"]
    assert first["occurred_at"] == utc_iso(stored.record.occurred_at)
    assert first["payload"] == plain_json(stored.record.payload)
    assert (first["prev_hash"], first["hash"]) == (stored.prev_hash, stored.hash)


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
    assert seqs(items) == trail.seqs(*expected)


async def test_since_is_inclusive_and_until_exclusive(
    core: httpx.AsyncClient, platform: Platform, trail: Trail
) -> None:
    since, until = trail.base + timedelta(seconds=1), trail.base + timedelta(seconds=4)
    items = await events(
        core, platform, party=trail.trader, since=utc_iso(since), until=utc_iso(until)
    )
    assert seqs(items) == trail.seqs("a_q1", "a_q2", "a_pending")
    later = await events(core, platform, rfq_id=trail.rfq_a, since=since.isoformat())
    assert seqs(later) == trail.seqs(
        "a_q1", "a_q2", "a_pending", "a_confirmed", "a_settled", "a_withdrawn"
    )
    earlier = await events(core, platform, rfq_id=trail.rfq_b, until=utc_iso(trail.base))
    assert earlier == []


@pytest.mark.parametrize("limit", [1, 4, 9, 10])
async def test_cursor_paging_returns_every_row_once_in_chain_order(
    core: httpx.AsyncClient, platform: Platform, trail: Trail, limit: int
) -> None:
    # the trail's 10 rows are the only ones in its time window; pages end full and short
    expected = trail.seqs(*trail.rows)
    seen: list[int] = []
    cursor: str | None = None
    for _ in range(len(expected) + 1):
        params: dict[str, Any] = {"limit": limit, "since": utc_iso(trail.base)}
        params["until"] = utc_iso(trail.base + timedelta(seconds=10))
        if cursor is not None:
            params["cursor"] = cursor
        page = (await core.get("/v1/audit/events", params=params, headers=auth(platform))).json()
        assert len(page["items"]) <= limit
        seen += seqs(page["items"])
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
    assert seqs(first["items"]) + seqs(second["items"]) == trail.seqs(
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
        assert chain_hash(row["prev_hash"], row["seq"], record) == row["hash"]


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
        "seq,rfq_id,event_type,occurred_at,producer,event_id,"
        "correlation_id,causation_id,party,payload,prev_hash,hash"
    ]


async def test_a_large_trail_exports_complete_through_order_core_and_the_edge(
    core: httpx.AsyncClient, edge: httpx.AsyncClient, platform: Platform, large: list[ChainedRecord]
) -> None:
    params = {"rfq_id": large[0].record.rfq_id}
    direct = await core.get("/v1/audit/export", params=params, headers=auth(platform))
    assert seqs(parse_jsonl(direct.text)) == [row.seq for row in large]
    proxied = await edge.get("/v1/audit/export", params=params, headers=auth(platform))
    assert proxied.status_code == 200
    assert proxied.content == direct.content


async def test_the_export_reads_in_batches_of_the_configured_size(
    engine: AsyncEngine, large: list[ChainedRecord]
) -> None:
    queries = AuditQueries(engine, batch_size=700)
    sizes, seen = [], []
    async for batch in queries.batches(AuditFilter(rfq_id=large[0].record.rfq_id)):
        sizes.append(len(batch))
        seen += [e["seq"] for e in batch]
    assert max(sizes) == 700
    assert len(sizes) == -(-LARGE // 700)
    assert seen == [row.seq for row in large]


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
    app = create_audit_app(
        AuditQueries(engine),
        authenticate=lambda t: verify_token(t, secret=secret),
        clock=SystemClock(),
        ready=lambda: True,
    )
    token = mint_token(
        "AUDITOR", Role.AUDITOR, secret=secret, now=SystemClock().now(), ttl=timedelta(hours=1)
    )
    # the app re-raises what it answered 500/503 to, for the server to log
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://core") as client:
            for path in ENDPOINTS:
                for fmt in ("jsonl", "csv"):
                    response = await client.get(
                        path, params={"format": fmt}, headers={"Authorization": f"Bearer {token}"}
                    )
                    assert_error(response, 503, "unavailable")
    finally:
        await engine.dispose()


# -- verify ------------------------------------------------------------------------


async def overwrite_payload(engine: AsyncEngine, seq: int, payload: JsonValue) -> None:
    """What only the table's owner can do: switch the guard off, edit, switch it on."""
    async with engine.begin() as conn:
        await conn.execute(text("ALTER TABLE order_core.audit_events DISABLE TRIGGER ALL"))
        await conn.execute(
            text("UPDATE order_core.audit_events SET payload = CAST(:p AS jsonb) WHERE seq = :s"),
            {"p": json.dumps(plain_json(payload)), "s": seq},
        )
        await conn.execute(text("ALTER TABLE order_core.audit_events ENABLE TRIGGER ALL"))


async def test_verify_holds_then_names_the_tampered_row_also_through_the_edge(
    core: httpx.AsyncClient,
    edge: httpx.AsyncClient,
    platform: Platform,
    engine: AsyncEngine,
    trail: Trail,
) -> None:
    intact = (await core.get("/v1/audit/verify", headers=auth(platform))).json()
    assert intact["ok"] is True
    assert intact["broken"] is None
    assert intact["events"] >= trail.rows["a_settled"].seq

    target = trail.rows["a_q2"]
    await overwrite_payload(engine, target.seq, {**target.record.payload, "requester": "X"})
    try:
        direct = await core.get("/v1/audit/verify", headers=auth(platform))
        proxied = await edge.get("/v1/audit/verify", headers=auth(platform))
    finally:
        await overwrite_payload(engine, target.seq, target.record.payload)

    assert direct.status_code == 200
    broken = direct.json()
    assert broken["ok"] is False
    assert broken["broken"]["seq"] == target.seq
    assert "content was changed" in broken["broken"]["reason"]
    assert broken["events"] == target.seq - 1
    assert broken["head_hash"] == trail.rows["a_q1"].hash
    assert (proxied.status_code, proxied.json()) == (200, broken)
    assert (await core.get("/v1/audit/verify", headers=auth(platform))).json()["ok"] is True


# -- the edge ----------------------------------------------------------------------


async def test_the_edge_answers_as_order_core_does(
    core: httpx.AsyncClient, edge: httpx.AsyncClient, platform: Platform, trail: Trail
) -> None:
    requests: list[tuple[str, dict[str, Any]]] = [
        ("/v1/audit/events", {"party": trail.maker_1, "limit": 2}),
        ("/v1/audit/events", {"rfq_id": trail.rfq_b, "since": utc_iso(trail.base)}),
        ("/v1/audit/events", {"cursor": "bogus"}),  # refused upstream, passed back as is
        ("/v1/audit/export", {"rfq_id": trail.rfq_a, "format": "csv"}),
        ("/v1/audit/export", {"party": trail.maker_2}),
    ]
    for path, params in requests:
        direct = await core.get(path, params=params, headers=auth(platform))
        proxied = await edge.get(path, params=params, headers=auth(platform))
        assert proxied.status_code == direct.status_code, (path, params)
        assert proxied.headers["content-type"] == direct.headers["content-type"]
        assert proxied.content == direct.content, (path, params)


async def test_the_edges_openapi_documents_the_audit_parameters(
    edge: httpx.AsyncClient,
) -> None:
    spec = (await edge.get("/openapi.json")).json()

    def names(path: str) -> set[str]:
        return {p["name"] for p in spec["paths"][path]["get"]["parameters"]}

    filters = {"rfq_id", "party", "since", "until"}
    assert names("/v1/audit/events") == filters | {"cursor", "limit"}
    assert names("/v1/audit/export") == filters | {"format"}
    for path in ENDPOINTS:
        operation = spec["paths"][path]["get"]
        assert operation["security"] == [{"HTTPBearer": []}]
        assert "auditor or admin" in operation["description"].lower()
        assert {"401", "403", "503"} <= set(operation["responses"])
