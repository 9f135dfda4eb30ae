"""One deal as a trader makes it through the public API, timed, and a maker's bot
on the gateway that notes when each RFQ reaches it: the parts `otc bench` builds
its runs from.

A deal's figures are measured from a start the caller gives: when the RFQ was
sent for a closed loop, when it was due for an open loop (so time spent waiting
for the platform to take it counts). Each figure is also kept as a wall-clock
mark, which the latency budget lines up with the Kafka records' timestamps.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import websockets

from otc.ids import new_id
from stack.bench.timeline import Marks
from stack.client import TraderClient
from stack.demo import best_quote

# perf_counter is the precise clock; the offset turns its readings into wall time
_WALL_OFFSET = time.time() - time.perf_counter()


def wall(perf: float) -> float:
    return perf + _WALL_OFFSET


@dataclass
class Deal:
    rfq_id: str = ""
    first_quote_ms: float | None = None
    accept_answer_ms: float | None = None
    accept_pending_ms: float | None = None  # when the answer is PENDING_CONFIRMATION
    accept_confirmed_ms: float | None = None
    failure: str | None = None
    transitions: int = 0
    marks: Marks = field(default_factory=Marks)


# which quote to accept, given the live quotes and the deal's turn
Choose = Callable[[list[dict[str, Any]], int], dict[str, Any]]


def pick_best(quotes: list[dict[str, Any]], _: int) -> dict[str, Any]:
    return best_quote(quotes, "buy")


async def deal(
    trader: TraderClient,
    *,
    quantity: str,
    started: float,
    makers: int,
    choose: Choose = pick_best,
    turn: int = 0,
) -> Deal:
    """One RFQ from creation to CONFIRMED; `started` is a perf_counter reading.
    `choose(quotes, turn)` picks the quote to accept once all `makers` quoted (or
    a second passed)."""
    result = Deal()
    try:
        result.marks.rfq_posted = wall(time.perf_counter())
        rfq = await trader.create_rfq(
            client_rfq_id=f"bench-{new_id()}", instrument="BTC-USD", side="buy", quantity=quantity
        )
        rfq_id = result.rfq_id = rfq["rfq_id"]
        await trader.wait_quotes(rfq_id, 1)
        track = trader.tracks[rfq_id]
        assert track.first_quote_at is not None
        result.first_quote_ms = (track.first_quote_at - started) * 1000
        result.marks.first_quote = wall(track.first_quote_at)
        with contextlib.suppress(TimeoutError):
            await trader.wait_quotes(rfq_id, makers, timeout=1.0)
        chosen = choose(track.live_quotes() or track.quotes, turn)
        mark = trader.mark(rfq_id)
        accepted = time.perf_counter()
        result.marks.accept_posted = wall(accepted)
        status, answer = await trader.accept(rfq_id, chosen["quote_id"])
        answered = time.perf_counter()
        if status not in (200, 202):
            result.failure = f"accept {status} {answer.get('error', {}).get('code', '')}"
            return result
        result.accept_answer_ms = (answered - accepted) * 1000
        if status == 200:  # the answer is order_core's PENDING_CONFIRMATION decision
            result.accept_pending_ms = result.accept_answer_ms
        outcome = await trader.wait_status(rfq_id, "CONFIRMED", "QUOTED", "EXPIRED", since=mark)
        if outcome != "CONFIRMED":
            result.failure = f"not confirmed: {outcome}"
            return result
        confirmed = track.state_at["CONFIRMED"]
        result.accept_confirmed_ms = (confirmed - accepted) * 1000
        result.marks.confirmed = wall(confirmed)
        # versions start at 1 and every transition bumps it once
        result.transitions = max(s["version"] for s in track.states) - 1
    except TimeoutError as exc:
        result.failure = f"timeout: {exc}"[:80]
    except Exception as exc:  # one refused or cut call must not end the whole bench
        result.failure = f"{type(exc).__name__}: {exc}"[:80]
    return result


@dataclass
class MakerBot:
    """A maker's bot on the gateway that only listens: it notes when each RFQ
    reaches it (perf_counter) and leaves quoting and last looks to the maker's
    quoting process."""

    ws: Any
    heartbeat_s: float
    seen: dict[str, float] = field(default_factory=dict)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def read(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in self.ws:
                now = time.perf_counter()
                message = json.loads(raw)
                if message.get("type") == "rfq":
                    self.seen.setdefault(message["data"]["rfq_id"], now)
                    self.arrived.set()

    async def beat(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            while True:
                await asyncio.sleep(self.heartbeat_s)
                await self.ws.send(json.dumps({"type": "heartbeat"}))

    async def received(self, rfq_id: str, timeout: float = 5.0) -> float | None:
        deadline = time.monotonic() + timeout
        while rfq_id not in self.seen:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), remaining)
        return self.seen[rfq_id]


@contextlib.asynccontextmanager
async def maker_bot(gateway_url: str, token: str) -> AsyncIterator[MakerBot]:
    ws_url = gateway_url.replace("http", "ws", 1) + "/v1/mm/ws?cancel_on_disconnect=false"
    ws = await websockets.connect(ws_url, additional_headers={"Authorization": f"Bearer {token}"})
    try:
        welcome = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if welcome.get("type") != "welcome":
            raise RuntimeError(f"the gateway did not welcome the bench's bot: {welcome}")
        bot = MakerBot(ws, welcome["heartbeat_timeout_ms"] / 3000)
        tasks = [asyncio.create_task(bot.read()), asyncio.create_task(bot.beat())]
        try:
            yield bot
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    finally:
        await ws.close()
