"""SIGTERM: a service stops taking work, finishes what it holds within its grace
period and exits 0, or is cut off and exits 1; while it drains it says it is not
ready.

In-process, `serve` runs a stand-in service whose drain the test controls (503
while it drains, cut off past the grace period), and risk_limits reports
NOT_SERVING on gRPC health as soon as it starts to drain. On the platform every
service answers its probes; then order_core, holding an accept on a row lock the
test releases only after the signal, and settlement get SIGTERM in the middle of
a stream of RFQs: each exits 0, with the message in hand finished and its outbox
flushed, and after a restart nothing is lost (every accept gets its verdict, an
accepted RFQ settles unless its last look ran out while order_core was away) and
nothing is applied twice (audit rows, outbox events, ledger postings).
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from dataclasses import dataclass
from typing import Any

import asyncpg
import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from otc.bus.envelope import decode
from otc.contracts import events_pb2 as ev
from otc.ids import new_id
from otc.service import ShutdownCutOff, serve
from otc.settings import Settings
from risk_limits.bootstrap import build as build_risk
from risk_limits.entrypoints.grpc_server import SERVICE_NAME as RISK_SERVICE
from stack.client import TraderClient
from stack.demo import best_quote
from stack.infra.platform import Platform
from stack.infra.processes import Child, free_port
from stack.infra.provider import Endpoints
from tests.e2e_helpers import base_url, token_for

# -- serve, in-process ------------------------------------------------------------


class Draining:
    """A service whose work in flight finishes only when the test says so."""

    name = "draining-stand-in"

    def __init__(self) -> None:
        self.started = False
        self.stopping = asyncio.Event()
        self.finish = asyncio.Event()
        self.closed = False

    async def start(self) -> None:
        self.started = True

    def ready(self) -> bool:
        return self.started

    async def run(self) -> None:
        await self.stopping.wait()
        await self.finish.wait()  # the message in hand

    async def stop(self) -> None:
        self.stopping.set()

    async def close(self) -> None:
        self.closed = True


async def _readyz(client: httpx.AsyncClient, port: int) -> int:
    return (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code


async def _until_ready(client: httpx.AsyncClient, port: int) -> None:
    for _ in range(200):
        try:
            if await _readyz(client, port) == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError("the stand-in never became ready")


async def test_not_ready_while_draining_then_a_clean_exit() -> None:
    port = free_port()
    service = Draining()
    running = asyncio.create_task(serve(service, Settings(ops_port=port, shutdown_grace_s=30)))
    async with httpx.AsyncClient(timeout=2) as client:
        await _until_ready(client, port)
        os.kill(os.getpid(), signal.SIGTERM)  # serve's handler takes it, not pytest
        await asyncio.wait_for(service.stopping.wait(), 10)

        assert await _readyz(client, port) == 503
        assert not running.done()

        service.finish.set()
        await asyncio.wait_for(running, 10)  # returns: exit code 0
    assert service.closed


async def test_a_drain_longer_than_the_grace_period_is_cut_off() -> None:
    port = free_port()
    service = Draining()
    running = asyncio.create_task(serve(service, Settings(ops_port=port, shutdown_grace_s=0.5)))
    async with httpx.AsyncClient(timeout=2) as client:
        await _until_ready(client, port)
    os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(ShutdownCutOff):  # the process exits 1 on it
        await asyncio.wait_for(running, 10)  # never finished by the test
    assert service.closed, "connections are let go of even when work is cut off"


async def test_risk_limits_reports_not_serving_while_it_drains(endpoints: Endpoints) -> None:
    port = free_port()
    settings = Settings(
        env="test",
        database_url=endpoints.database_url,
        kafka_bootstrap=endpoints.kafka_bootstrap,
        risk_grpc_port=port,
    )
    risk = build_risk(settings, group_id=None)
    await risk.start()
    running = asyncio.create_task(risk.run())
    stopping: asyncio.Task[None] | None = None
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            watch = health_pb2_grpc.HealthStub(channel).Watch(
                health_pb2.HealthCheckRequest(service=RISK_SERVICE)
            )
            first = await asyncio.wait_for(watch.read(), 10)
            assert first.status == health_pb2.HealthCheckResponse.SERVING
            stopping = asyncio.create_task(risk.stop())
            draining = await asyncio.wait_for(watch.read(), 10)
            assert draining.status == health_pb2.HealthCheckResponse.NOT_SERVING
            assert not risk.ready()
    finally:
        await (stopping or risk.stop())
        await running
        await risk.close()


# -- the platform -----------------------------------------------------------------


async def test_every_service_answers_its_probes(platform: Platform) -> None:
    async with httpx.AsyncClient(timeout=5) as client:
        for name, spec in platform.specs.items():
            for probe in ("healthz", "readyz"):
                response = await client.get(f"http://127.0.0.1:{spec.ops_port}/{probe}")
                assert response.status_code == 200, (name, probe, response.text)


RFQS = 20
WORKERS = 4  # traders, each sending its RFQs one after another
SIGTERM_AFTER = 3  # accepts answered 200 before the signal
EXIT_WAIT_S = 60.0  # well past the 20 s grace: a hang fails here, not a slow drain
WAIT_S = 120.0  # for anything that waits on a restart
# what an accept may get while order_core is down: its quote expired meanwhile
REFUSALS_WHILE_DOWN = {"quote_expired"}
FINAL = {"SETTLED", "SETTLEMENT_FAILED", "CANCELLED", "EXPIRED", "REJECTED"}
HOLD_AFTER_SIGTERM_S = 1.0


@dataclass(frozen=True)
class Flight:
    rfq_id: str
    status: int
    command_id: str


class Load:
    """RFQs quoted and accepted by a few traders at once."""

    def __init__(self, trader: TraderClient) -> None:
        self._trader = trader
        self._accepted = 0
        self.enough = asyncio.Event()

    async def run(self) -> list[Flight]:
        per_worker = await asyncio.gather(*(self._worker() for _ in range(WORKERS)))
        return [flight for flights in per_worker for flight in flights]

    async def _worker(self) -> list[Flight]:
        return [await self._lifecycle() for _ in range(RFQS // WORKERS)]

    async def _lifecycle(self) -> Flight:
        rfq = await _rfq(self._trader)
        rfq_id = rfq["rfq_id"]
        quotes = await self._trader.wait_quotes(rfq_id, count=1, timeout=WAIT_S)
        status, body = await self._trader.accept(rfq_id, best_quote(quotes, "buy")["quote_id"])
        assert status in (200, 202) or body["error"]["code"] in REFUSALS_WHILE_DOWN, body
        if status == 200:
            self._accepted += 1
            if self._accepted >= SIGTERM_AFTER:
                self.enough.set()
        return Flight(rfq_id, status, body.get("command_id", ""))


async def _rfq(trader: TraderClient) -> dict[str, Any]:
    # a window that outlasts any restart: an RFQ of this test never expires
    return await trader.create_rfq(
        client_rfq_id=new_id(),
        instrument="ETH-USD",
        side="buy",
        quantity="1",
        response_window_ms=300_000,
    )


async def test_sigterm_to_order_core_mid_load_loses_nothing(platform: Platform) -> None:
    await _sigterm_mid_load(platform, "order-core", "order_core", hold_an_accept=True)


async def test_sigterm_to_settlement_mid_load_loses_nothing(platform: Platform) -> None:
    flights = await _sigterm_mid_load(platform, "settlement", "settlement")
    assert all(f.status == 200 for f in flights), "order_core answered every accept"


async def _sigterm_mid_load(
    platform: Platform, service: str, schema: str, *, hold_an_accept: bool = False
) -> list[Flight]:
    """`hold_an_accept`: the signal comes while order_core has an accept in hand
    (see `_sigterm_holding_an_accept`), which it must finish before it exits."""
    assert platform.endpoints is not None
    db = await asyncpg.connect(platform.endpoints.database_url)
    try:
        async with TraderClient(base_url(platform), token_for(platform, "TRADER-A")) as trader:
            load = Load(trader)
            running = asyncio.create_task(load.run())
            await asyncio.wait_for(load.enough.wait(), WAIT_S)

            child = platform.children[service]
            assert child.proc is not None
            held = None
            if hold_an_accept:
                held = await _sigterm_holding_an_accept(platform, trader, child)
            else:
                child.proc.send_signal(signal.SIGTERM)
            exit_code = await asyncio.to_thread(child.proc.wait, EXIT_WAIT_S)
            assert exit_code == 0, "drained within its grace"
            if held is not None:
                assert await db.fetchval(
                    "SELECT count(*) FROM order_core.processed_events WHERE event_id = $1",
                    (await held).command_id,
                ), "the accept in hand was finished before the exit, not cut off"
            unsent = await db.fetchval(
                f"SELECT count(*) FROM {schema}.outbox WHERE sent_at IS NULL"  # noqa: S608
            )
            assert unsent == 0, "the outbox was flushed before the exit"

            await platform.restart(service, timeout=WAIT_S)
            flights = await running
            if held is not None:
                flights.append(await held)
            await _every_rfq_ends(db, trader, flights)
        await _nothing_applied_twice(db, [f.rfq_id for f in flights])
        return flights
    finally:
        if not platform.children[service].alive():  # the next tests need it
            await platform.restart(service, timeout=WAIT_S)
        await db.close()


async def _sigterm_holding_an_accept(
    platform: Platform, trader: TraderClient, child: Child
) -> asyncio.Task[Flight]:
    """SIGTERM while order_core's handler of an accept waits on a row lock the test
    holds; the lock goes only after the signal, so the accept is in hand while
    order_core drains. Returns the accept, answered once order_core has drained."""
    assert platform.endpoints is not None
    assert child.proc is not None
    rfq = await _rfq(trader)
    quotes = await trader.wait_quotes(rfq["rfq_id"], count=1, timeout=WAIT_S)
    blocker = await asyncpg.connect(platform.endpoints.database_url)
    try:
        async with blocker.transaction():
            await blocker.execute(
                "SELECT 1 FROM order_core.orders WHERE rfq_id = $1 FOR UPDATE", rfq["rfq_id"]
            )
            accept = asyncio.create_task(_accept(trader, rfq["rfq_id"], quotes))
            await _until_accept_blocked_by(blocker, rfq["rfq_id"])
            child.proc.send_signal(signal.SIGTERM)
            # what does not wait on the lock (the consumer's other lanes, the
            # relay) has time to finish first, as it would if it went first
            await asyncio.sleep(HOLD_AFTER_SIGTERM_S)
    finally:
        await blocker.close()
    return accept


async def _accept(trader: TraderClient, rfq_id: str, quotes: list[dict[str, Any]]) -> Flight:
    status, body = await trader.accept(rfq_id, best_quote(quotes, "buy")["quote_id"])
    assert status in (200, 202), body
    return Flight(rfq_id, status, body["command_id"])


async def _until_accept_blocked_by(blocker: asyncpg.Connection, rfq_id: str) -> None:
    """Until the accept is in order_core's hands: it has frozen credit, which comes
    right before its transaction, and something waits on the lock. A maker's later
    quote on the same order waits on that lock too, and alone it would mean the
    signal could come before order_core has even read the accept."""
    pid = await blocker.fetchval("SELECT pg_backend_pid()")
    for _ in range(int(WAIT_S * 10)):
        if await blocker.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))", pid
        ) and await blocker.fetchval(
            "SELECT count(*) FROM risk.reservations WHERE rfq_id = $1", rfq_id
        ):
            return
        await asyncio.sleep(0.1)
    raise AssertionError("order_core's accept never reached the locked order")


async def _every_rfq_ends(
    db: asyncpg.Connection, trader: TraderClient, flights: list[Flight]
) -> None:
    """Every accept gets its verdict; an accepted RFQ settles, unless its last look
    ran out while order_core was away (then it is open again, its credit released);
    an open RFQ takes its trader's cancel once order_core is back."""
    settled = 0
    for flight in flights:
        accepted = flight.status == 200
        if flight.status == 202:
            accepted = (await _verdict(db, flight)).accepted
        state = await _until(db, flight.rfq_id, FINAL | {"QUOTED"})
        reopened = state == "QUOTED"
        if reopened:
            assert not accepted or await _last_look_undone(db, flight.rfq_id), flight
            status, body = await trader.cancel(flight.rfq_id)
            assert status == 200, body
            state = await _until(db, flight.rfq_id, FINAL)
        assert state == ("SETTLED" if accepted and not reopened else "CANCELLED"), (flight, state)
        settled += state == "SETTLED"
    assert settled > 0, "trades settled across the restart"


async def _verdict(db: asyncpg.Connection, flight: Flight) -> ev.CommandResult:
    """order_core's published answer to an accept that was answered 202."""
    for _ in range(int(WAIT_S * 10)):
        for row in await db.fetch(
            "SELECT payload FROM order_core.outbox WHERE key = $1 AND sent_at IS NOT NULL",
            flight.rfq_id,
        ):
            payload = decode(row["payload"]).payload
            if isinstance(payload, ev.CommandResult) and payload.command_id == flight.command_id:
                return payload
        await asyncio.sleep(0.1)
    raise AssertionError(f"no verdict published for the accept of {flight}")


async def _until(db: asyncpg.Connection, rfq_id: str, states: set[str]) -> str:
    state = ""
    for _ in range(int(WAIT_S * 10)):
        state = str(
            await db.fetchval("SELECT state FROM order_core.orders WHERE rfq_id = $1", rfq_id)
        )
        if state in states:
            return state
        await asyncio.sleep(0.1)
    raise AssertionError(f"{rfq_id} still {state}")


async def _last_look_undone(db: asyncpg.Connection, rfq_id: str) -> bool:
    return bool(
        await db.fetchval(
            "SELECT count(*) FROM order_core.audit_events WHERE rfq_id = $1 "
            "AND payload->>'event' IN ('LastLookTimeout', 'CounterpartyReject')",
            rfq_id,
        )
    )


async def _nothing_applied_twice(db: asyncpg.Connection, rfq_ids: list[str]) -> None:
    audited_twice = await db.fetch(
        "SELECT causation_id, event_type, payload->>'state' AS state, count(*) "
        "FROM order_core.audit_events WHERE rfq_id = ANY($1) AND causation_id <> '' "
        "GROUP BY 1, 2, 3 HAVING count(*) > 1",
        rfq_ids,
    )
    assert audited_twice == [], "one message changed an order twice"
    for schema in ("order_core", "settlement"):
        rows = await db.fetch(
            f"SELECT payload FROM {schema}.outbox WHERE key = ANY($1)",  # noqa: S608
            rfq_ids,
        )
        caused = Counter(
            (m.causation_id, m.type)
            for m in (decode(row["payload"]) for row in rows)
            if m.causation_id
        )
        assert [c for c, n in caused.items() if n > 1] == [], f"{schema} emitted an event twice"
    posted_twice = await db.fetch(
        "SELECT e.trade_id, e.party, e.asset, count(*) FROM settlement.ledger_entries e "
        "JOIN settlement.trades t ON t.trade_id = e.trade_id WHERE t.rfq_id = ANY($1) "
        "GROUP BY 1, 2, 3 HAVING count(*) > 1",
        rfq_ids,
    )
    assert posted_twice == [], "a trade was booked twice"
    unbooked = await db.fetchval(
        "SELECT count(*) FROM order_core.orders o WHERE o.rfq_id = ANY($1) "
        "AND o.state = 'SETTLED' AND NOT EXISTS "
        "(SELECT 1 FROM settlement.ledger_entries e WHERE e.trade_id = o.trade_id)",
        rfq_ids,
    )
    assert unbooked == 0, "a settled order has no ledger postings"
    frozen = await db.fetchval(
        "SELECT count(*) FROM risk.reservations WHERE rfq_id = ANY($1) AND status = 'FROZEN'",
        rfq_ids,
    )
    assert frozen == 0, "no credit may stay frozen"
