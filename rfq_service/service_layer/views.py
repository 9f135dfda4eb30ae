"""JSON shapes the API answers with (FIX names where FIX has one). Decimals are
strings, times ISO 8601 UTC."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.engine import RowMapping

from otc.money import fmt


def _dec(value: Decimal | None) -> str | None:
    return fmt(value) if value is not None else None


def _time(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def quote_view(row: RowMapping | dict[str, Any]) -> dict[str, Any]:
    return {
        "quote_id": row["quote_id"],
        "rfq_id": row["rfq_id"],
        "maker": row["maker"],
        "bid_px": _dec(row["bid_px"]),
        "offer_px": _dec(row["offer_px"]),
        "quantity": _dec(row["quantity"]),
        "valid_until": _time(row["valid_until"]),
        "withdrawn_reason": row.get("withdrawn_reason"),
    }


def rfq_view(row: RowMapping, quotes: list[RowMapping] | None = None) -> dict[str, Any]:
    view: dict[str, Any] = {
        "rfq_id": row["rfq_id"],
        "order_id": row["rfq_id"],
        "client_rfq_id": row["client_rfq_id"],
        "instrument": row["instrument"],
        "side": row["side"],
        "quantity": _dec(row["quantity"]),
        "counterparties": list(row["counterparties"]),
        "anonymous": row["anonymous"],
        "response_window_ms": row["response_window_ms"],
        "created_at": _time(row["created_at"]),
        "expires_at": _time(row["expires_at"]),
        "status": row["status"],
        "version": row["status_version"],
        "status_reason": row["status_reason"],
        "accepted_quote_id": row["accepted_quote_id"],
        "price": _dec(row["price"]),
        "trade_id": row["trade_id"],
        "updated_at": _time(row["updated_at"]),
    }
    if quotes is not None:
        view["quotes"] = [quote_view(q) for q in quotes]
    return view
