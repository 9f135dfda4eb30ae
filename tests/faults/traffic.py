"""RFQs driven through the trader edge as a patient client would while services
crash and connections drop: every request is retried until the edge answers it (an
RFQ under the same client id, so a retry never opens a second one), and at the end
every RFQ is brought to a final state and read back from the database."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import httpx

from otc.ids import new_id

FINAL = frozenset({"SETTLED", "SETTLEMENT_FAILED", "EXPIRED", "CANCELLED", "REJECTED"})
OPEN = frozenset({"RFQ_SENT", "QUOTED"})
RETRY_FOR_S = 180.0


class Traffic:
    def __init__(self, base_url: str, token: str, database_url: str) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=10.0
        )
        self._database_url = database_url
        self._db: asyncpg.Pool | None = None
        self.rfqs: list[str] = []
        self.accepts: Counter[int] = Counter()  # by HTTP status

    async def __aenter__(self) -> Traffic:
        self._db = await asyncpg.create_pool(self._database_url, min_size=1, max_size=4)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._http.aclose()
        if self._db is not None:
            await self._db.close()

    @property
    def db(self) -> asyncpg.Pool:
        assert self._db is not None, "use Traffic in `async with`"
        return self._db

    async def deal(self, *, accept: bool = True) -> str:
        """Opens an RFQ and accepts its best quote, if one comes; returns the RFQ id."""
        body = {
            "client_rfq_id": new_id(),
            "instrument": "ETH-USD",
            "side": "buy",
            "quantity": "1",
            "response_window_ms": 30_000,
        }
        status, rfq = await self._until_answered(lambda: self._http.post("/v1/rfqs", json=body))
        assert status in (200, 201), rfq
        rfq_id = str(rfq["rfq_id"])
        self.rfqs.append(rfq_id)
        quote_id = await self._best_quote(rfq_id) if accept else None
        if quote_id is not None:
            path = f"/v1/rfqs/{rfq_id}/accept"
            status, answer = await self._until_answered(
                lambda: self._http.post(path, json={"quote_id": quote_id})
            )
            assert status in (200, 202, 409), answer
            self.accepts[status] += 1
        return rfq_id

    async def _best_quote(self, rfq_id: str, timeout: float = 20.0) -> str | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            quote_id = await self.db.fetchval(
                "SELECT quote_id FROM order_core.quotes WHERE rfq_id = $1"
                " AND valid_until > now() + interval '1 second' ORDER BY offer_px LIMIT 1",
                rfq_id,
            )
            if quote_id is not None:
                return str(quote_id)
            await asyncio.sleep(0.1)
        return None

    async def _until_answered(
        self, send: Callable[[], Awaitable[httpx.Response]]
    ) -> tuple[int, Any]:
        """Retries while the edge is down or not ready (a connection refused, a 5xx)."""
        deadline = time.monotonic() + RETRY_FOR_S
        while True:
            try:
                response = await send()
                if response.status_code < 500:
                    return response.status_code, response.json()
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the edge never answered"
            await asyncio.sleep(0.3)

    async def states(self) -> dict[str, str | None]:
        rows = await self.db.fetch(
            "SELECT rfq_id, state FROM order_core.orders WHERE rfq_id = ANY($1)", self.rfqs
        )
        found = {row["rfq_id"]: row["state"] for row in rows}
        return {rfq_id: found.get(rfq_id) for rfq_id in self.rfqs}

    async def finish(self, timeout: float = 180.0) -> dict[str, str]:
        """Cancels what is still open and waits until every RFQ is final."""
        deadline = time.monotonic() + timeout
        while True:
            states = await self.states()
            if all(state in FINAL for state in states.values()):
                return {rfq_id: str(state) for rfq_id, state in states.items()}
            assert time.monotonic() < deadline, f"RFQs not final: {_not_final(states)}"
            for rfq_id, state in states.items():
                if state in OPEN:
                    await self._until_answered(
                        lambda rfq_id=rfq_id: self._http.post(f"/v1/rfqs/{rfq_id}/cancel")
                    )
            await asyncio.sleep(0.5)


def _not_final(states: dict[str, str | None]) -> dict[str, str | None]:
    return {rfq_id: state for rfq_id, state in states.items() if state not in FINAL}
