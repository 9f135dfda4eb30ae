"""`otc bench`'s runs of whole deals through a running platform, as traders make
them: RFQ, quotes, accept, the maker's last look, CONFIRMED. It measures; it
asserts nothing.

- **sequential**: one trader, one RFQ at a time, nothing else in flight; a maker's
  bot on the gateway notes when each RFQ reaches it. The latency of one RFQ, to
  compare with other RFQ services measured the same way.
- **closed loop**: `concurrency` traders' RFQs in flight, each starting when the
  one before it ended; sustained throughput.
- **open loop**: RFQs started on a fixed schedule whatever the platform does,
  latency measured from when each was due, so queueing shows instead of hiding in
  a slower arrival rate. Its traders are parties of the bench's own (the edge
  rate-limits each party) and accept each maker's quote in turn, so market-maker
  protection, which halts a maker hit too often, is not what gets measured.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack
from typing import Any

from stack.bench.deals import Choose, Deal, deal, maker_bot, pick_best, wall
from stack.bench.report import Report
from stack.bench.timeline import Timeline
from stack.client import TraderClient
from stack.seed import MAKERS

# enough parties that a hundred RFQs a second, each with an accept, stay within
# the edge's default per-party rate limit
OPEN_LOOP_TRADERS = tuple(f"BENCH-TRADER-{i:02d}" for i in range(16))
SEQUENTIAL_MAKER = MAKERS[0]


def record(report: Report, label: str, deals: Sequence[Deal]) -> int:
    """Files the deals' figures under `label`; returns how many were confirmed."""
    report.measure(
        f"{label}: RFQ -> first quote",
        [d.first_quote_ms for d in deals if d.first_quote_ms is not None],
    )
    report.measure(
        f"{label}: accept -> answer",
        [d.accept_answer_ms for d in deals if d.accept_answer_ms is not None],
    )
    report.measure(
        f"{label}: accept -> PENDING_CONFIRMATION",
        [d.accept_pending_ms for d in deals if d.accept_pending_ms is not None],
    )
    confirmed = [d.accept_confirmed_ms for d in deals if d.accept_confirmed_ms is not None]
    report.measure(f"{label}: accept -> CONFIRMED", confirmed)
    for d in deals:
        if d.failure:
            report.fail(f"{label}: {d.failure}")
    return len(confirmed)


async def clients(
    stack: AsyncExitStack, base_url: str, tokens: Sequence[str]
) -> list[TraderClient]:
    return [await stack.enter_async_context(TraderClient(base_url, t)) for t in tokens]


async def sequential(
    trader: TraderClient,
    report: Report,
    timeline: Timeline | None,
    *,
    gateway_url: str | None,
    maker_token: str,
    rfqs: int,
    quantity: str,
) -> list[Deal]:
    label = "sequential"
    deals: list[Deal] = []
    async with AsyncExitStack() as stack:
        bot = (
            await stack.enter_async_context(maker_bot(gateway_url, maker_token))
            if gateway_url
            else None
        )
        to_bot: list[float] = []
        for turn in range(rfqs + 1):
            started = time.perf_counter()
            one = await deal(trader, quantity=quantity, started=started, makers=len(MAKERS))
            # the first deal warms connections and code paths up: not measured
            if turn == 0:
                continue
            if bot is not None and one.rfq_id:
                at = await bot.received(one.rfq_id)
                if at is None:
                    report.fail(f"{label}: RFQ never reached the bot")
                else:
                    to_bot.append((at - started) * 1000)
            deals.append(one)
        report.measure(f"{label}: RFQ -> {SEQUENTIAL_MAKER}'s bot on the gateway has it", to_bot)
    if gateway_url is None:
        report.note("sequential: RFQ -> maker bot not measured: where the gateway runs is unknown")
    if timeline is not None:
        if not await timeline.caught_up(timeout_s=10):
            report.note(f"{label}: the timeline had not read every event yet")
        report.measure(
            f"{label}: maker quote published -> trader has it",
            [
                (d.marks.first_quote - published) * 1000
                for d in deals
                if d.marks.first_quote is not None
                and (published := timeline.first_quote_published(d.rfq_id)) is not None
            ],
        )
    record(report, label, deals)
    return deals


async def closed_loop(
    traders: Sequence[TraderClient],
    report: Report,
    *,
    rfqs: int,
    concurrency: int,
    quantity: str,
) -> list[Deal]:
    label = f"closed loop, {concurrency} in flight"
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(rfqs):
        queue.put_nowait(i)
    deals: list[Deal] = []

    async def worker(index: int) -> None:
        trader = traders[index % len(traders)]
        while not queue.empty():
            queue.get_nowait()
            started = time.perf_counter()
            deals.append(await deal(trader, quantity=quantity, started=started, makers=len(MAKERS)))

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - started
    done = record(report, label, deals)
    report.rate(f"{label}: RFQs confirmed end to end", done / elapsed)
    report.rate(f"{label}: order transitions", sum(d.transitions for d in deals) / elapsed)
    return deals


def each_maker_in_turn(quotes: list[dict[str, Any]], turn: int) -> dict[str, Any]:
    wanted = MAKERS[turn % len(MAKERS)]
    mine = [q for q in quotes if q.get("maker") == wanted and q.get("offer_px")]
    return mine[0] if mine else pick_best(quotes, turn)


async def open_loop(
    traders: Sequence[TraderClient],
    report: Report,
    *,
    rate: float,
    seconds: float,
    quantity: str,
    choose: Choose = each_maker_in_turn,
) -> list[Deal]:
    label = f"open loop, {rate:g} RFQs/s"
    count = max(1, round(rate * seconds))
    first_due = time.perf_counter() + 0.2
    running: list[asyncio.Task[Deal]] = []
    for i in range(count):
        due = first_due + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        running.append(
            asyncio.create_task(
                deal(
                    traders[i % len(traders)],
                    quantity=quantity,
                    started=due,
                    makers=len(MAKERS),
                    choose=choose,
                    turn=i,
                )
            )
        )
    late = time.perf_counter() - (first_due + (count - 1) / rate)
    deals = list(await asyncio.gather(*running))
    done = record(report, label, deals)
    confirmed_at = [d.marks.confirmed for d in deals if d.marks.confirmed is not None]
    if confirmed_at:
        span = max(confirmed_at) - wall(first_due)
        report.rate(f"{label}: RFQs confirmed end to end", done / span)
    if late > 0.05:
        report.note(f"{label}: the bench itself fell {late * 1000:.0f} ms behind its schedule")
    return deals
