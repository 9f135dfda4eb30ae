"""What the trader client keeps and raises: one RFQ's track as the WebSocket told
it, and the error of a refused API call."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

OPEN_STATES = ("RFQ_SENT", "QUOTED")


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
