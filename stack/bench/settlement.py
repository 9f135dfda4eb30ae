"""Settlement's figures for `otc bench`: trades settled per second and how long a
confirmed trade takes to settle, on real deals made through the trader API.

CONFIRMED -> SETTLED is timed where the trader sees it (both states pushed on the
WebSocket: order_core -> settlement -> order_core -> edge), and, when the database
is known, inside settlement (the confirmation time order_core stamps on the trade
to the commit of its journal). Trades settled per second counts the deals settled
from the first confirmation to the last settlement, with `concurrency` deals in
flight, so it is bounded by the deal flow feeding settlement, as in production.
It measures; it asserts nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

import asyncpg

from otc.db import asyncpg_dsn
from otc.ids import new_id
from stack.bench.report import Report
from stack.client import TraderClient
from stack.demo import best_quote


@dataclass
class _Deals:
    confirmed_at: list[float] = field(default_factory=list)
    settled_at: list[float] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)
    trade_ids: list[str] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)

    def fail(self, reason: str) -> None:
        self.failures[reason] = self.failures.get(reason, 0) + 1


async def _deal(trader: TraderClient, deals: _Deals, quantity: str) -> None:
    try:
        rfq = await trader.create_rfq(
            client_rfq_id=f"bench-settle-{new_id()}",
            instrument="BTC-USD",
            side="buy",
            quantity=quantity,
        )
        rfq_id = rfq["rfq_id"]
        await trader.wait_quotes(rfq_id, 1)
        with contextlib.suppress(TimeoutError):
            await trader.wait_quotes(rfq_id, len(rfq["counterparties"]), timeout=1.0)
        track = trader.tracks[rfq_id]
        mark = trader.mark(rfq_id)
        status, body = await trader.accept(rfq_id, best_quote(track.quotes, "buy")["quote_id"])
        if status not in (200, 202):
            deals.fail(f"accept {status} {body.get('error', {}).get('code', '')}")
            return
        outcome = await trader.wait_status(
            rfq_id, "SETTLED", "SETTLEMENT_FAILED", "QUOTED", "EXPIRED", since=mark, timeout=30
        )
        if outcome != "SETTLED":
            deals.fail(f"ended {outcome}")
            return
        confirmed, settled = track.state_at["CONFIRMED"], track.state_at["SETTLED"]
        deals.confirmed_at.append(confirmed)
        deals.settled_at.append(settled)
        deals.latency_ms.append((settled - confirmed) * 1000)
        deals.trade_ids.append(str(track.states[-1].get("trade_id") or ""))
    except TimeoutError as exc:
        deals.fail(f"timeout: {exc}"[:80])


async def _inside_settlement(database_url: str, trade_ids: list[str]) -> list[float]:
    """Confirmation to journal commit per trade, as settlement recorded them (ms)."""
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        rows = await conn.fetch(
            "SELECT extract(epoch FROM settled_at - confirmed_at) * 1000 AS ms"
            " FROM settlement.trades WHERE trade_id = any($1::text[]) AND status = 'SETTLED'",
            trade_ids,
        )
    finally:
        await conn.close()
    return [float(r["ms"]) for r in rows]


async def run_settlement_bench(
    base_url: str,
    tokens: list[str],
    report: Report,
    *,
    deals: int,
    concurrency: int,
    quantity: str = "0.1",
    database_url: str | None = None,
) -> None:
    """Makes `deals` deals through the trader API and records their figures."""
    done = _Deals()
    clients = [TraderClient(base_url, token) for token in tokens]
    for client in clients:
        await client.__aenter__()
    try:
        await _deal(clients[0], _Deals(), quantity)  # warm-up, not measured
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(deals):
            queue.put_nowait(i)

        async def worker(index: int) -> None:
            while not queue.empty():
                queue.get_nowait()
                await _deal(clients[index % len(clients)], done, quantity)

        await asyncio.gather(*(worker(i) for i in range(concurrency)))
    finally:
        for client in clients:
            await client.__aexit__(None, None, None)
    inside = await _inside_settlement(database_url, done.trade_ids) if database_url else []
    span = max(done.settled_at, default=0.0) - min(done.confirmed_at, default=0.0)
    report.rate(
        f"trades settled, {concurrency} deals in flight",
        len(done.settled_at) / span if span > 0 else 0.0,
    )
    report.measure("CONFIRMED -> SETTLED at the trader", done.latency_ms)
    report.measure("confirmed -> booked, inside settlement", inside)
    for reason, count in done.failures.items():
        report.fail(f"settlement deal: {reason}", count)
