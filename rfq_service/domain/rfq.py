"""What a valid RFQ is, before anything is written or sent."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from otc.calendar import EXCHANGE, TradingCalendar
from otc.errors import Conflict, ValidationFailed
from otc.instruments import INSTRUMENTS
from otc.money import InvalidDecimal, fmt, parse_decimal
from otc.sides import Side
from otc.text import control_character

DEFAULT_WINDOW_MS = 30_000
MIN_WINDOW_MS = 1_000
MAX_WINDOW_MS = 300_000


@dataclass(frozen=True, slots=True)
class RfqSpec:
    """A validated request: the counterparties are resolved, the quantity exact."""

    client_rfq_id: str
    instrument: str
    side: Side
    quantity: Decimal
    counterparties: tuple[str, ...]
    response_window_ms: int
    anonymous: bool

    def request_hash(self) -> str:
        """Identifies the request's content, for idempotent retries of `client_rfq_id`."""
        canonical = json.dumps(
            {
                "instrument": self.instrument,
                "side": self.side.value,
                "quantity": fmt(self.quantity.normalize()),
                "counterparties": sorted(self.counterparties),
                "response_window_ms": self.response_window_ms,
                "anonymous": self.anonymous,
            },
            sort_keys=True,
        )
        return hashlib.sha256(canonical.encode()).hexdigest()

    def expires_at(self, created_at: datetime) -> datetime:
        return created_at + timedelta(milliseconds=self.response_window_ms)


def validate_rfq(
    *,
    requester: str,
    client_rfq_id: str,
    instrument: str,
    side: str,
    quantity: str,
    counterparties: list[str] | None,
    response_window_ms: int | None,
    anonymous: bool,
    enabled_makers: tuple[str, ...],
    now: datetime,
    calendar: TradingCalendar = EXCHANGE,
) -> RfqSpec:
    if not client_rfq_id.strip():
        raise ValidationFailed("client_rfq_id must not be empty")
    if (found := control_character(client_rfq_id)) is not None:
        raise ValidationFailed(f"client_rfq_id must not contain control characters (found {found})")
    if instrument not in INSTRUMENTS:
        known = ", ".join(sorted(INSTRUMENTS))
        raise ValidationFailed(
            f"unknown instrument {instrument!r}; known: {known}", code="unknown_instrument"
        )
    try:
        parsed_side = Side(side)
    except ValueError:
        raise ValidationFailed(f"side must be buy, sell or two_way, not {side!r}") from None
    try:
        qty = parse_decimal(quantity, field="quantity", positive=True)
    except InvalidDecimal as exc:
        raise ValidationFailed(str(exc), code="invalid_quantity") from None
    spec = INSTRUMENTS[instrument]
    if not spec.min_quantity <= qty <= spec.max_quantity:
        raise ValidationFailed(
            f"quantity of {instrument} must be between {fmt(spec.min_quantity)} and "
            f"{fmt(spec.max_quantity)}",
            code="invalid_quantity",
        )
    if qty % spec.lot:
        raise ValidationFailed(
            f"quantity of {instrument} must be a multiple of {fmt(spec.lot)}",
            code="invalid_quantity",
        )
    window = DEFAULT_WINDOW_MS if response_window_ms is None else response_window_ms
    if not MIN_WINDOW_MS <= window <= MAX_WINDOW_MS:
        raise ValidationFailed(
            f"response_window_ms must be between {MIN_WINDOW_MS} and {MAX_WINDOW_MS}"
        )
    eligible = tuple(m for m in enabled_makers if m != requester)
    if counterparties is None:
        chosen = eligible
    else:
        if not counterparties:
            raise ValidationFailed("counterparties, when given, must name at least one maker")
        unknown = sorted(set(counterparties) - set(eligible))
        if unknown:
            raise ValidationFailed(
                f"not eligible market makers: {', '.join(unknown)}", code="unknown_counterparty"
            )
        chosen = tuple(dict.fromkeys(counterparties))
    reopens = calendar.closed_until(instrument, now)
    if reopens is not None:
        raise Conflict(
            f"the {instrument} market is closed; its next session starts at "
            f"{reopens.isoformat().replace('+00:00', 'Z')}",
            code="market_closed",
        )
    return RfqSpec(
        client_rfq_id=client_rfq_id,
        instrument=instrument,
        side=parsed_side,
        quantity=qty,
        counterparties=chosen,
        response_window_ms=window,
        anonymous=anonymous,
    )
