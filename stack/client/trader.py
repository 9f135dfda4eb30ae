"""The trader client for the v1 API (REST + WebSocket): what `otc demo`, `otc bench`
and the end-to-end tests drive the platform with, as a trader would.

The WebSocket reconnects by itself (`session.py`), and the `wait_*` helpers and
`stream_quotes` keep working across a drop.

    async with TraderClient("http://127.0.0.1:8000", token) as trader:
        rfq = await trader.create_rfq(client_rfq_id="c1", instrument="BTC-USD",
                                      side="buy", quantity="2")
        async for quote in trader.stream_quotes(rfq["rfq_id"], timeout=3):
            ...
        status, answer = await trader.accept(rfq["rfq_id"], quote["quote_id"])
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx

from stack.client.model import OPEN_STATES, ApiError, RfqTrack
from stack.client.session import TraderSession

RATE_LIMIT_RETRIES = 3


class TraderClient(TraderSession):
    def __init__(self, base_url: str, token: str) -> None:
        super().__init__(base_url, token)
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=10.0
        )

    async def __aexit__(self, *exc: object) -> None:
        await super().__aexit__(*exc)
        await self._http.aclose()

    async def renew(self, token: str) -> str:
        expires_at = await super().renew(token)
        self._http.headers["Authorization"] = f"Bearer {token}"
        return expires_at

    # -- REST -------------------------------------------------------------------

    async def _call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        for attempt in range(RATE_LIMIT_RETRIES + 1):
            response = await self._http.request(method, path, json=body)
            if response.status_code != 429 or attempt == RATE_LIMIT_RETRIES:
                return response.status_code, response.json()
            await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
        raise AssertionError("unreachable")

    async def create_rfq(self, **body: Any) -> dict[str, Any]:
        status, payload = await self._call("POST", "/v1/rfqs", body)
        if status not in (200, 201):
            raise ApiError(status, payload)
        return dict(payload)

    async def get_rfq(self, rfq_id: str) -> dict[str, Any]:
        status, payload = await self._call("GET", f"/v1/rfqs/{rfq_id}")
        if status != 200:
            raise ApiError(status, payload)
        return dict(payload)

    async def accept(self, rfq_id: str, quote_id: str, side: str | None = None) -> tuple[int, Any]:
        body: dict[str, Any] = {"quote_id": quote_id}
        if side:
            body["side"] = side
        return await self._call("POST", f"/v1/rfqs/{rfq_id}/accept", body)

    async def cancel(self, rfq_id: str) -> tuple[int, Any]:
        return await self._call("POST", f"/v1/rfqs/{rfq_id}/cancel")

    # -- waiting on what the WebSocket says -------------------------------------

    async def wait_quotes(
        self, rfq_id: str, count: int = 1, timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        track = self.tracks[rfq_id]
        await self._wait(track, lambda: len(track.quotes) >= count, timeout, f"{count} quote(s)")
        return list(track.quotes)

    async def stream_quotes(
        self, rfq_id: str, timeout: float = 10.0
    ) -> AsyncIterator[dict[str, Any]]:
        """Yields each live quote of the RFQ as it arrives, until the RFQ stops
        taking quotes or `timeout` seconds pass."""
        track = self.tracks[rfq_id]
        deadline = time.monotonic() + timeout
        given = 0
        while True:
            while given < len(track.quotes):
                quote = track.quotes[given]
                given += 1
                if quote["quote_id"] not in track.withdrawn:
                    yield quote
            if track.states and track.states[-1]["status"] not in OPEN_STATES:
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            track.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(track.changed.wait(), remaining)

    async def wait_until(
        self, rfq_id: str, condition: Callable[[], bool], timeout: float = 10.0
    ) -> None:
        """Waits until `condition` holds, re-checking whenever the RFQ's track changes."""
        await self._wait(self.tracks[rfq_id], condition, timeout, "the condition")

    def mark(self, rfq_id: str) -> int:
        """A point in the RFQ's history, for `wait_status(..., since=...)`."""
        return len(self.tracks[rfq_id].states)

    async def wait_status(
        self, rfq_id: str, *statuses: str, since: int = 0, timeout: float = 10.0
    ) -> str:
        """Waits until the RFQ reaches one of `statuses` (after the `since` mark)."""
        track = self.tracks[rfq_id]

        def reached() -> str | None:
            return next(
                (s["status"] for s in track.states[since:] if s["status"] in statuses), None
            )

        await self._wait(track, lambda: reached() is not None, timeout, " or ".join(statuses))
        found = reached()
        assert found is not None
        return found

    @staticmethod
    async def _wait(track: RfqTrack, done: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                seen = [s["status"] for s in track.states]
                raise TimeoutError(f"no {what} within {timeout}s (states seen: {seen})")
            track.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(track.changed.wait(), remaining)
