"""Checking payloads at the quoter's edge: what a strategy may see and what is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from otc.bus.envelope import InvalidMessage
from otc.clock import to_millis
from otc.contracts import events_pb2
from otc.quote_book import StoredQuote
from quoting_service.adapters.contracts import quote_submitted, rfq_view, trade_view
from quoting_service.strategy import Side

EXPIRES = datetime(2025, 6, 2, 12, 0, 30, tzinfo=UTC)


def rfq(**changes: object) -> events_pb2.RfqRequested:
    fields: dict[str, object] = {
        "rfq_id": "rfq-1",
        "requester": "TRADER-A",
        "instrument": "ETH-USD",
        "side": events_pb2.SIDE_SELL,
        "quantity": "12.5",
        "counterparties": ["MM-1"],
    }
    fields.update(changes)
    message = events_pb2.RfqRequested(**fields)  # type: ignore[arg-type]
    message.expires_at.FromDatetime(EXPIRES)
    return message


def last_look(**changes: object) -> events_pb2.LastLookRequested:
    fields: dict[str, object] = {
        "rfq_id": "rfq-1",
        "quote_id": "quote-1",
        "maker": "MM-1",
        "instrument": "ETH-USD",
        "maker_side": events_pb2.SIDE_BUY,
        "quantity": "12.5",
        "price": "3199.50",
        "reservation_id": "res-1",
    }
    fields.update(changes)
    return events_pb2.LastLookRequested(**fields)  # type: ignore[arg-type]


def test_an_rfq_becomes_a_view_with_exact_decimals() -> None:
    view = rfq_view(rfq())
    assert view.instrument.symbol == "ETH-USD"
    assert view.side is Side.SELL
    assert view.quantity == Decimal("12.5")
    assert view.expires_at == EXPIRES
    assert view.requester == "TRADER-A"


def test_the_strategy_never_learns_who_asked_an_anonymous_rfq() -> None:
    assert rfq_view(rfq(anonymous=True)).requester is None


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"quantity": "lots"}, "quantity is not a decimal"),
        ({"quantity": "-1"}, "must be positive"),
        ({"quantity": "NaN"}, "finite"),
        ({"instrument": "DOGE-USD"}, "unknown instrument"),
        ({"side": events_pb2.SIDE_UNSPECIFIED}, "side"),
        ({"rfq_id": ""}, "rfq_id"),
    ],
)
def test_a_malformed_rfq_is_invalid(changes: dict[str, object], reason: str) -> None:
    with pytest.raises(InvalidMessage, match=reason):
        rfq_view(rfq(**changes))


def test_an_rfq_without_expiry_is_invalid() -> None:
    message = rfq()
    message.ClearField("expires_at")
    with pytest.raises(InvalidMessage, match="expires_at"):
        rfq_view(message)


def test_a_last_look_becomes_a_trade_view() -> None:
    trade = trade_view(last_look())
    assert (trade.maker_side, trade.price, trade.quantity) == (
        Side.BUY,
        Decimal("3199.50"),
        Decimal("12.5"),
    )


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"maker_side": events_pb2.SIDE_TWO_WAY}, "no maker side"),
        ({"price": "1e"}, "price is not a decimal"),
        ({"price": "0"}, "positive"),
        ({"quote_id": ""}, "quote_id"),
    ],
)
def test_a_malformed_last_look_is_invalid(changes: dict[str, object], reason: str) -> None:
    with pytest.raises(InvalidMessage, match=reason):
        trade_view(last_look(**changes))


def test_a_published_quote_carries_the_stored_expiry_to_the_millisecond() -> None:
    valid_until = EXPIRES - timedelta(seconds=20, microseconds=123_000)
    stored = StoredQuote(
        "rfq-1", "quote-1", "MM-1", "ETH-USD", "", "3200.17", "12.5", to_millis(valid_until)
    )
    event = quote_submitted(stored)
    assert event.valid_until.ToDatetime(tzinfo=UTC) == valid_until
    assert (event.bid_px, event.offer_px, event.quantity) == ("", "3200.17", "12.5")
