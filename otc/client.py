"""A small trader client for the v1 API (REST + WebSocket): what `otc demo`,
`otc bench` and the end-to-end tests drive the platform with, as a trader would."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import httpx
import websockets


@dataclass
class RfqTrack:
    """What the WebSocket told us about one RFQ, with local arrival times."""

    quotes: list[dict[str, Any]] = field(default_factory=list)
    states: list[dict[str, Any]] = field(default_factory=list)
    first_quote_at: float | None = None
    state_at: dict[str, float] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class ApiError(Exception):
    def __init__(self, status: int, body: Any) -> None:
        error = body.get("error", {}) if isinstance(body, dict) else {}
        super().__init__(f"{status} {error.get('code', '')}: {error.get('message', body)}")
        self.status = status
        self.code = error.get("code", "")
        self.body = body


class TraderClient:
    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=10.0
        )
        self.tracks: dict[str, RfqTrack] = defaultdict(RfqTrack)
        self._ws: Any = None
        self._reader: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()

    async def __aenter__(self) -> TraderClient:
        ws_url = self.base_url.replace("http", "ws", 1) + "/v1/ws"
        self._ws = await websockets.connect(
            ws_url, additional_headers={"Authorization": f"Bearer {self._token}"}, max_size=2**22
        )
        self._reader = asyncio.create_task(self._read())
        await asyncio.wait_for(self.ready.wait(), 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        if self._ws is not None:
            await self._ws.close()
        await self._http.aclose()

    async def _read(self) -> None:
        async for raw in self._ws:
            now = time.perf_counter()
            message = json.loads(raw)
            kind, data = message.get("type"), message.get("data") or {}
            if kind == "welcome":
                self.ready.set()
            elif kind == "quote":
                track = self.tracks[data["rfq_id"]]
                track.quotes.append(data)
                if track.first_quote_at is None:
                    track.first_quote_at = now
                track.changed.set()
            elif kind == "order":
                track = self.tracks[data["rfq_id"]]
                track.states.append(data)
                track.state_at.setdefault(data["status"], now)
                track.changed.set()

    async def _call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        response = await self._http.request(method, path, json=body)
        return response.status_code, response.json()

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

    async def wait_quotes(
        self, rfq_id: str, count: int = 1, timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        track = self.tracks[rfq_id]
        await self._wait(track, lambda: len(track.quotes) >= count, timeout, f"{count} quote(s)")
        return list(track.quotes)

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
