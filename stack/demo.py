"""`otc demo`: one RFQ end to end as a trader, printed as a timeline."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from rich.console import Console

from otc.ids import new_id
from stack.client import ApiError, TraderClient


class DemoFailed(Exception):
    def __init__(self, step: str, reason: str) -> None:
        super().__init__(f"stopped at step '{step}': {reason}")
        self.step = step


@dataclass
class Timeline:
    console: Console
    started: float = field(default_factory=time.perf_counter)
    last: float = field(default_factory=time.perf_counter)

    def step(self, what: str, detail: str = "") -> None:
        """One line per step: wall time, elapsed since start, and since the last step."""
        now = time.perf_counter()
        wall = time.strftime("%H:%M:%S", time.gmtime()) + f".{int((time.time() % 1) * 1000):03d}"
        self.console.print(
            f"{wall}  +{(now - self.started) * 1000:8.1f} ms  (Δ {(now - self.last) * 1000:7.1f})  "
            f"[bold]{what}[/bold]  {detail}",
            soft_wrap=True,
        )
        self.last = now


def best_quote(quotes: list[dict[str, Any]], side: str) -> dict[str, Any]:
    if side == "buy":
        offers = [q for q in quotes if q.get("offer_px")]
        return min(offers, key=lambda q: Decimal(q["offer_px"]))
    bids = [q for q in quotes if q.get("bid_px")]
    return max(bids, key=lambda q: Decimal(q["bid_px"]))


async def run_demo(
    base_url: str,
    token: str,
    *,
    instrument: str = "BTC-USD",
    side: str = "buy",
    quantity: str = "2.5",
    makers: int = 3,
    console: Console | None = None,
) -> dict[str, Any]:
    out = console or Console()
    timeline = Timeline(out)
    step = "connect"
    try:
        async with TraderClient(base_url, token) as trader:
            timeline.step("connected", f"{base_url} (WebSocket open)")
            step = "create RFQ"
            rfq = await trader.create_rfq(
                client_rfq_id=f"demo-{new_id()[:8]}",
                instrument=instrument,
                side=side,
                quantity=quantity,
            )
            rfq_id = rfq["rfq_id"]
            timeline.step(
                "RFQ sent",
                f"{rfq_id} {side} {quantity} {instrument} to {', '.join(rfq['counterparties'])}",
            )
            step = "quotes"
            wanted = min(makers, len(rfq["counterparties"]))
            quotes = await trader.wait_quotes(rfq_id, 1)
            timeline.step("first quote", _describe(quotes[0]))
            try:
                quotes = await trader.wait_quotes(rfq_id, wanted, timeout=3.0)
            except TimeoutError:
                quotes = trader.tracks[rfq_id].quotes
            for q in quotes[1:]:
                timeline.step("quote", _describe(q))
            chosen = best_quote(quotes, side)
            step = "accept"
            mark = trader.mark(rfq_id)
            status, body = await trader.accept(rfq_id, chosen["quote_id"])
            if status not in (200, 202):
                raise ApiError(status, body)
            timeline.step("accepted", f"{chosen['maker']} {chosen['quote_id']} -> {body['status']}")
            step = "last look"
            outcome = await trader.wait_status(rfq_id, "CONFIRMED", "QUOTED", "EXPIRED", since=mark)
            if outcome != "CONFIRMED":
                raise DemoFailed(step, f"market maker did not confirm (order is {outcome})")
            timeline.step("confirmed", "credit committed, trade sent to settlement")
            step = "settlement"
            final = await trader.wait_status(
                rfq_id, "SETTLED", "SETTLEMENT_FAILED", since=mark, timeout=15
            )
            if final != "SETTLED":
                raise DemoFailed(step, "settlement failed")
            done = await trader.get_rfq(rfq_id)
            timeline.step("SETTLED", f"trade {done['trade_id']} at {done['price']}")
            return done
    except DemoFailed:
        raise
    except (ApiError, TimeoutError, OSError) as exc:
        raise DemoFailed(step, str(exc) or type(exc).__name__) from exc


def _describe(quote: dict[str, Any]) -> str:
    return f"{quote['maker']}: bid {quote['bid_px'] or '-'} / offer {quote['offer_px'] or '-'}"
