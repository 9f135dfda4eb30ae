"""order_core as the end-of-day batch sees it, through its own interfaces only.

Commands go on `order.commands`, as every caller's do, and the answer is read from
`order.events` (every partition, from its end: no consumer group to join) by the
kernel's command/reply adapter. What order_core confirmed, and how each order
ended, is read from its audit trail through the auditor API: the tamper-evident
record order_core publishes for readers outside it, so reconciliation never reads
order_core's tables.
"""

from __future__ import annotations

import json
from datetime import datetime

import httpx

from otc.bus.producer import Publisher
from otc.bus.requests import Replies, ReplyReader
from otc.bus.topics import ORDER_COMMANDS, ORDER_EVENTS
from otc.contracts import events_pb2 as ev
from otc.ids import new_id
from settlement.domain.eod_report import TradingDay
from settlement.domain.views import OpenRfq, OrderTrade, OrderView

STATE_CHANGED = "otc.v1.OrderStateChanged"
OPEN_STATES = ("RFQ_SENT", "QUOTED")
AUDIT_TIMEOUT = httpx.Timeout(120.0, connect=5.0)


class OrderCoreUnavailable(RuntimeError):
    """order_core did not answer, or not as it should."""


class OrderCore:
    def __init__(self, *, bootstrap: str, audit_url: str, token: str) -> None:
        self._bootstrap = bootstrap
        self._audit_url = audit_url.rstrip("/")
        self._token = token

    async def expire_open_rfqs(self, day: TradingDay, timeout: float) -> str:
        """Asks order_core to expire the RFQs still open at the day's close and
        returns its answer."""
        replies = Replies()
        publisher = Publisher(self._bootstrap, "settlement-eod")
        async with ReplyReader(self._bootstrap, ORDER_EVENTS, replies):
            await publisher.start()
            try:
                command = ev.ExpireOpenRfqs(business_date=day.date.isoformat())
                command.close.FromDatetime(day.close)
                command_id = new_id()
                with replies.expecting(command_id) as future:
                    await publisher.publish(
                        ORDER_COMMANDS,
                        f"eod:{day.date.isoformat()}",
                        command,
                        correlation_id=new_id(),
                        event_id=command_id,
                    )
                result = await replies.wait(command_id, future, timeout)
            finally:
                await publisher.stop()
        if result is None:
            raise OrderCoreUnavailable(
                f"order_core did not answer the end-of-day expiry in {timeout:.0f} s"
            )
        if not result.accepted:
            raise OrderCoreUnavailable(f"order_core refused: {result.reason}")
        return result.reason

    async def order_view(self, day: TradingDay, since: datetime) -> OrderView:
        """Every order's latest state from the audit trail since `since`: the trades
        confirmed in that span, and the RFQs created on `day` still open now."""
        latest: dict[str, str] = {}
        created: dict[str, datetime] = {}
        confirmed: dict[str, tuple[str, datetime]] = {}  # rfq -> (trade id, when)
        params = {"format": "jsonl", "since": since.isoformat()}
        headers = {"Authorization": f"Bearer {self._token}"}
        try:
            async with (
                httpx.AsyncClient(timeout=AUDIT_TIMEOUT) as client,
                client.stream(
                    "GET", f"{self._audit_url}/v1/audit/export", params=params, headers=headers
                ) as response,
            ):
                if response.status_code != 200:
                    body = (await response.aread()).decode(errors="replace")
                    raise OrderCoreUnavailable(
                        f"audit trail answered {response.status_code}: {body[:300]}"
                    )
                async for line in response.aiter_lines():
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    if event["event_type"] != STATE_CHANGED:
                        continue
                    payload = event["payload"]
                    # proto3 JSON leaves out empty fields: an event without an
                    # RFQ or a state says nothing about a trade
                    rfq_id, state = payload.get("rfq_id"), payload.get("state")
                    if not rfq_id or not state:
                        continue
                    at = datetime.fromisoformat(event["occurred_at"])
                    latest[rfq_id] = state
                    if state == "RFQ_SENT":
                        created.setdefault(rfq_id, at)
                    elif state == "CONFIRMED" and payload.get("trade_id"):
                        confirmed.setdefault(rfq_id, (payload["trade_id"], at))
        except httpx.TransportError as exc:
            raise OrderCoreUnavailable(f"audit trail at {self._audit_url}: {exc}") from None
        return OrderView(
            trades={
                trade_id: OrderTrade(trade_id, rfq_id, latest[rfq_id], at)
                for rfq_id, (trade_id, at) in confirmed.items()
            },
            open_rfqs=sorted(
                (
                    OpenRfq(rfq_id, at, latest[rfq_id])
                    for rfq_id, at in created.items()
                    if day.contains(at) and latest[rfq_id] in OPEN_STATES
                ),
                key=lambda r: (r.created_at, r.rfq_id),
            ),
        )
