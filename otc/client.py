"""The trader client for the v1 API (REST + WebSocket): what `otc demo`, `otc bench`
and the end-to-end tests drive the platform with, as a trader would.

The WebSocket reconnects by itself: after a drop it resumes its session from the
last sequence number it saw, so the server replays exactly what was missed; when
the session cannot be resumed (the server restarted, or the session expired) it
applies the snapshot the server sends instead. Either way `tracks` ends up with
every quote and state of the trader's RFQs, and the `wait_*` helpers and
`stream_quotes` keep working across the drop.

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
import json
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import websockets

from otc.ids import new_id
from otc.logging import get_logger

log = get_logger(__name__)

OPEN_STATES = ("RFQ_SENT", "QUOTED")
RECONNECT_DELAYS = (0.05, 0.2, 0.5, 1.0, 2.0)
RATE_LIMIT_RETRIES = 3
SINCE_MARGIN = timedelta(seconds=30)


@dataclass
class RfqTrack:
    """What the WebSocket told us about one RFQ, with local arrival times."""

    quotes: list[dict[str, Any]] = field(default_factory=list)
    withdrawn: dict[str, str] = field(default_factory=dict)  # quote_id -> reason
    states: list[dict[str, Any]] = field(default_factory=list)
    first_quote_at: float | None = None
    state_at: dict[str, float] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def live_quotes(self) -> list[dict[str, Any]]:
        return [q for q in self.quotes if q["quote_id"] not in self.withdrawn]

    def add_quote(self, quote: dict[str, Any], now: float) -> None:
        if any(q["quote_id"] == quote["quote_id"] for q in self.quotes):
            return
        self.quotes.append(quote)
        if quote.get("withdrawn_reason"):
            self.withdrawn[quote["quote_id"]] = quote["withdrawn_reason"]
        if self.first_quote_at is None:
            self.first_quote_at = now
        self.changed.set()

    def add_state(self, state: dict[str, Any], now: float) -> None:
        last = self.states[-1] if self.states else None
        if last is not None and last.get("version", -1) >= state.get("version", 0):
            return  # a snapshot repeating what we have
        self.states.append(state)
        self.state_at.setdefault(state["status"], now)
        self.changed.set()


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
        self.prices: dict[str, dict[str, Any]] = {}
        self.ready = asyncio.Event()
        self.session_id: str | None = None
        self.last_seq = 0
        self.resumes = 0
        self.snapshots = 0
        self.on_message: Callable[[dict[str, Any], float], None] | None = None
        self._last_heard: datetime | None = None
        self._ws: Any = None
        self._runner: asyncio.Task[None] | None = None
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._closing = False
        self._welcomed = False

    async def __aenter__(self) -> TraderClient:
        self._runner = asyncio.create_task(self._run())
        try:
            await asyncio.wait_for(self.ready.wait(), 10)
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._closing = True
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._runner
        if self._ws is not None:
            await self._ws.close()
        await self._http.aclose()

    # -- the WebSocket, reconnected and resumed --------------------------------

    def _ws_url(self) -> str:
        url = self.base_url.replace("http", "ws", 1) + "/v1/ws"
        if self.session_id is None:
            return url
        query = {"session_id": self.session_id, "last_seq": str(self.last_seq)}
        if self._last_heard is not None:
            # a margin for the clocks of client and server: a snapshot a little
            # too wide only repeats what is already known
            query["since"] = (self._last_heard - SINCE_MARGIN).isoformat()
        return f"{url}?{urlencode(query)}"

    async def _run(self) -> None:
        failures = 0
        while not self._closing:
            try:
                self._ws = await websockets.connect(
                    self._ws_url(),
                    additional_headers={"Authorization": f"Bearer {self._token}"},
                    max_size=2**22,
                )
                async for raw in self._ws:
                    try:
                        self._receive(json.loads(raw))
                    except (ValueError, KeyError, TypeError) as exc:
                        log.warning("unreadable message from the server", error=repr(exc))
            except (OSError, websockets.WebSocketException, TimeoutError):
                pass
            if self._closing:
                return
            self._fail_pending("connection lost; retry the request")
            failures = 0 if self._welcomed else failures + 1
            self._welcomed = False
            await asyncio.sleep(RECONNECT_DELAYS[min(failures, len(RECONNECT_DELAYS) - 1)])

    async def drop_connection(self) -> None:
        """Cuts the socket as a network failure would (for tests and drills)."""
        if self._ws is not None:
            self._ws.transport.abort()

    def _receive(self, message: dict[str, Any]) -> None:
        now = time.perf_counter()
        kind = message.get("type")
        seq = message.get("seq")
        if isinstance(seq, int):
            if seq <= self.last_seq:
                return  # already seen: replays start after last_seq, so only a bug repeats
            self.last_seq = seq
            self._last_heard = datetime.now(UTC)
        if kind == "welcome":
            self._welcome(message)
        elif kind == "snapshot":
            self.snapshots += 1
            for rfq in message["data"]["rfqs"]:
                self._apply_rfq(rfq, now)
        elif kind == "quote":
            self.tracks[message["data"]["rfq_id"]].add_quote(message["data"], now)
        elif kind == "quote_withdrawn":
            data = message["data"]
            track = self.tracks[data["rfq_id"]]
            track.withdrawn[data["quote_id"]] = data.get("reason") or "withdrawn"
            track.changed.set()
        elif kind == "order":
            self.tracks[message["data"]["rfq_id"]].add_state(message["data"], now)
        elif kind == "price":
            self.prices[message["data"]["instrument"]] = message["data"]
        elif kind in ("response", "error"):
            future = self._pending.pop(str(message.get("request_id")), None)
            if future is not None and not future.done():
                future.set_result(message)
        if self.on_message is not None:
            self.on_message(message, now)

    def _welcome(self, message: dict[str, Any]) -> None:
        self._welcomed = True
        if message.get("resumed"):
            self.resumes += 1
        elif self.session_id != message["session_id"]:
            self.last_seq = message.get("after_seq", 0)
        self.session_id = message["session_id"]
        self.ready.set()

    def _apply_rfq(self, rfq: dict[str, Any], now: float) -> None:
        track = self.tracks[rfq["rfq_id"]]
        for quote in rfq.get("quotes", ()):
            track.add_quote(quote, now)
            if quote.get("withdrawn_reason"):
                track.withdrawn[quote["quote_id"]] = quote["withdrawn_reason"]
        track.add_state(
            {
                "rfq_id": rfq["rfq_id"],
                "order_id": rfq["rfq_id"],
                "status": rfq["status"],
                "version": rfq["version"],
                "reason": rfq.get("status_reason", ""),
                "quote_id": rfq.get("accepted_quote_id"),
                "price": rfq.get("price"),
                "trade_id": rfq.get("trade_id"),
            },
            now,
        )

    def _fail_pending(self, reason: str) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionError(reason))
        self._pending.clear()

    async def request(self, kind: str, data: dict[str, Any], timeout: float = 10) -> dict[str, Any]:
        """Sends a WebSocket request and returns its `response` (or `error`) message."""
        request_id = new_id()
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            await self._ws.send(json.dumps({"type": kind, "request_id": request_id, "data": data}))
            return await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(request_id, None)

    async def subscribe_prices(self, *instruments: str) -> list[str]:
        answer = await self.request("subscribe_prices", {"instruments": list(instruments)})
        if answer["type"] == "error":
            raise ApiError(400, answer)
        return list(answer["data"]["instruments"])

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
