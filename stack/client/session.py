"""The trader client's WebSocket: connected, reconnected and resumed.

After a drop it resumes its session from the last sequence number it saw, so the
server replays exactly what was missed; when the session cannot be resumed (the
server restarted, or the session expired) it applies the snapshot the server
sends instead. Either way `tracks` ends up with every quote and state of the
trader's RFQs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Self
from urllib.parse import urlencode

import websockets

from otc.ids import new_id
from otc.logging import get_logger
from stack.client.model import ApiError, RfqTrack

log = get_logger(__name__)

RECONNECT_DELAYS = (0.05, 0.2, 0.5, 1.0, 2.0)
SINCE_MARGIN = timedelta(seconds=30)
TOKEN_REFUSED = (4401, 4403)  # close codes after which reconnecting cannot help


class TraderSession:
    """The trader's WebSocket session: kept connected, resumed after a drop, and
    folded into `tracks` (per RFQ) and `prices` (per instrument)."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
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

    async def __aenter__(self) -> Self:
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
            if self._ws is not None and self._ws.close_code in TOKEN_REFUSED:
                # the same token would be refused again: renew() before it expires
                self._fail_pending(f"the server refused the token ({self._ws.close_code})")
                log.warning("token refused; not reconnecting", code=self._ws.close_code)
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

    async def renew(self, token: str) -> str:
        """Hands the server a fresh token before the current one expires (the socket
        is closed when it does); it is also the one used to reconnect from now on.
        Returns the new expiry, ISO 8601."""
        answer = await self.request("auth", {"token": token})
        if answer["type"] == "error":
            raise ApiError(403 if answer["error"]["code"] == "forbidden" else 401, answer)
        self._token = token
        return str(answer["data"]["expires_at"])

    async def subscribe_prices(self, *instruments: str) -> list[str]:
        answer = await self.request("subscribe_prices", {"instruments": list(instruments)})
        if answer["type"] == "error":
            raise ApiError(400, answer)
        return list(answer["data"]["instruments"])
