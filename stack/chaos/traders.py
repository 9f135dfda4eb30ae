"""Traders that keep RFQs flowing while services die under them.

They are patient, as a client of a platform that restarts its services must be: a
request is retried until the edge answers it (no connection and 5xx are retried;
any other answer is final), an RFQ under the same client id so that a retry never
opens a second one. Every wait is bounded, so a drill ends by itself.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import httpx

from otc.ids import new_id
from stack.client import ApiError, TraderClient
from stack.demo import best_quote

from .report import FINAL, Rfq

DEALS = (("BTC-USD", "0.01"), ("ETH-USD", "0.1"))
ACCEPT_SHARE = 0.8
RESPONSE_WINDOW_MS = 10_000  # short, so the RFQs left unaccepted end soon after the drill
QUOTE_WAIT_S = 5.0
RETRY_FOR_S = 60.0  # longer than a supervised service takes to come back
RETRY_PAUSE_S = 0.3
FINAL_WAIT_S = 120.0

Answer = tuple[int, Any]


async def _create(client: TraderClient, body: dict[str, Any]) -> Answer:
    try:
        return 201, await client.create_rfq(**body)
    except ApiError as exc:
        return exc.status, exc.body


async def _get(client: TraderClient, rfq_id: str) -> Answer:
    try:
        return 200, await client.get_rfq(rfq_id)
    except ApiError as exc:
        return exc.status, exc.body


def _status(answer: Answer) -> str:
    status, body = answer
    error = body.get("error", {}) if isinstance(body, dict) else {}
    return f"{status} {error.get('code', '')}".rstrip()


@dataclass
class Traders:
    """RFQs through the trader edge, taking the best quote of most of them."""

    clients: Sequence[TraderClient]
    rng: random.Random
    rfqs: list[Rfq] = field(default_factory=list)
    unanswered: Counter[str] = field(default_factory=Counter)  # by the last answer seen
    # why an RFQ we meant to accept was not: "no quote", or the accept's answer
    missed: Counter[str] = field(default_factory=Counter)
    _owners: dict[str, TraderClient] = field(default_factory=dict)
    _deals: set[asyncio.Task[None]] = field(default_factory=set)

    async def flow(self, rfqs_per_s: float, stop: asyncio.Event) -> None:
        """An RFQ every 1/rfqs_per_s s until `stop`, then waits for those in hand."""
        n = 0
        try:
            while not stop.is_set():
                deal = asyncio.create_task(self._deal(self.clients[n % len(self.clients)]))
                self._deals.add(deal)
                deal.add_done_callback(self._deals.discard)
                n += 1
                with suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1 / rfqs_per_s)
        except asyncio.CancelledError:
            for deal in self._deals:
                deal.cancel()
            raise
        await asyncio.gather(*self._deals)

    async def finish(self, timeout: float = FINAL_WAIT_S) -> None:
        """Reads the RFQs back until each is final, or `timeout` seconds pass."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            waiting = [r for r in self.rfqs if r.status not in FINAL]
            if not waiting:
                return
            for rfq in waiting:
                with suppress(httpx.TransportError, ValueError):
                    status, view = await _get(self._owners[rfq.rfq_id], rfq.rfq_id)
                    if status == 200:
                        rfq.status, rfq.trade_id = view["status"], view.get("trade_id")
                        # an accept whose answer was lost, and that the retry found taken
                        rfq.accepted = rfq.accepted or view.get("accepted_quote_id") is not None
            await asyncio.sleep(1.0)

    async def _deal(self, client: TraderClient) -> None:
        instrument, quantity = self.rng.choice(DEALS)
        side = self.rng.choice(("buy", "sell"))
        accept = self.rng.random() < ACCEPT_SHARE
        body = {
            "client_rfq_id": f"chaos-{new_id()}",
            "instrument": instrument,
            "side": side,
            "quantity": quantity,
            "response_window_ms": RESPONSE_WINDOW_MS,
        }
        answer = await self._answered(lambda: _create(client, body))
        if answer is None or answer[0] not in (200, 201):
            return
        created = answer[1]
        rfq = Rfq(created["rfq_id"], created["status"])
        self.rfqs.append(rfq)
        self._owners[rfq.rfq_id] = client
        if not accept:
            return  # left to expire at the end of its window
        price = "offer_px" if side == "buy" else "bid_px"
        quotes = [q for q in await self._quotes(client, created) if q.get(price)]
        if not quotes:
            self.missed["no quote"] += 1
            return
        chosen = best_quote(quotes, side)["quote_id"]
        taken = await self._answered(lambda: client.accept(rfq.rfq_id, chosen))
        if taken is None:
            return
        rfq.accepted = taken[0] in (200, 202)
        if not rfq.accepted:
            self.missed[f"accept {_status(taken)}"] += 1

    async def _quotes(self, client: TraderClient, rfq: dict[str, Any]) -> list[dict[str, Any]]:
        rfq_id = rfq["rfq_id"]
        try:
            await client.wait_quotes(rfq_id, 1, timeout=QUOTE_WAIT_S)
        except TimeoutError:  # the socket may have been down: ask the edge
            answer = await self._answered(lambda: _get(client, rfq_id))
            if answer is None or answer[0] != 200:
                return []
            return [q for q in answer[1].get("quotes", []) if not q.get("withdrawn_reason")]
        with suppress(TimeoutError):
            await client.wait_quotes(rfq_id, len(rfq["counterparties"]), timeout=1.0)
        return client.tracks[rfq_id].live_quotes()

    async def _answered(self, send: Callable[[], Awaitable[Answer]]) -> Answer | None:
        """Retries while the edge is down or not ready (no connection, a 5xx)."""
        deadline = time.monotonic() + RETRY_FOR_S
        last = "no connection"
        while time.monotonic() < deadline:
            try:
                answer = await send()
            except (httpx.TransportError, ValueError):
                last = "no connection"
            else:
                if answer[0] < 500:
                    return answer
                last = _status(answer)
            await asyncio.sleep(RETRY_PAUSE_S)
        self.unanswered[last] += 1
        return None
