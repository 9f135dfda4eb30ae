"""The order state machine, pair by pair, with no servers."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from order_core.domain.lifecycle import (
    TRANSITIONS,
    IllegalTransition,
    OrderEvent,
    OrderState,
    next_state,
)
from order_core.domain.order import AcceptRefused, Order, Quote
from otc.sides import Side

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
OPEN = NOW + timedelta(seconds=30)
CLOSED = NOW - timedelta(seconds=1)

EXPECTED: dict[tuple[OrderState, OrderEvent], tuple[OrderState, OrderState]] = {
    # (state, event): (destination while the RFQ is open, destination once it closed)
    (OrderState.RFQ_SENT, OrderEvent.RECEIVE_QUOTE): (OrderState.QUOTED, OrderState.QUOTED),
    (OrderState.QUOTED, OrderEvent.RECEIVE_QUOTE): (OrderState.QUOTED, OrderState.QUOTED),
    (OrderState.QUOTED, OrderEvent.ACCEPT_QUOTE): (
        OrderState.PENDING_CONFIRMATION,
        OrderState.PENDING_CONFIRMATION,
    ),
    (OrderState.PENDING_CONFIRMATION, OrderEvent.COUNTERPARTY_CONFIRM): (
        OrderState.CONFIRMED,
        OrderState.CONFIRMED,
    ),
    (OrderState.PENDING_CONFIRMATION, OrderEvent.COUNTERPARTY_REJECT): (
        OrderState.QUOTED,
        OrderState.EXPIRED,
    ),
    (OrderState.PENDING_CONFIRMATION, OrderEvent.LAST_LOOK_TIMEOUT): (
        OrderState.QUOTED,
        OrderState.EXPIRED,
    ),
    (OrderState.QUOTED, OrderEvent.RISK_REJECTED): (OrderState.QUOTED, OrderState.QUOTED),
    (OrderState.RFQ_SENT, OrderEvent.RFQ_REJECTED): (OrderState.REJECTED, OrderState.REJECTED),
    (OrderState.RFQ_SENT, OrderEvent.CANCEL): (OrderState.CANCELLED, OrderState.CANCELLED),
    (OrderState.QUOTED, OrderEvent.CANCEL): (OrderState.CANCELLED, OrderState.CANCELLED),
    (OrderState.RFQ_SENT, OrderEvent.RFQ_EXPIRED): (OrderState.EXPIRED, OrderState.EXPIRED),
    (OrderState.QUOTED, OrderEvent.RFQ_EXPIRED): (OrderState.EXPIRED, OrderState.EXPIRED),
    (OrderState.CONFIRMED, OrderEvent.SETTLE): (OrderState.SETTLED, OrderState.SETTLED),
    (OrderState.CONFIRMED, OrderEvent.SETTLEMENT_FAIL): (
        OrderState.SETTLEMENT_FAILED,
        OrderState.SETTLEMENT_FAILED,
    ),
}

ALL_PAIRS = [(s, e) for s in OrderState for e in OrderEvent]


@pytest.mark.parametrize(("state", "event"), ALL_PAIRS, ids=lambda x: str(x))
def test_every_state_event_pair_goes_where_the_design_says_or_is_refused(
    state: OrderState, event: OrderEvent
) -> None:
    expected = EXPECTED.get((state, event))
    for expires_at, column in ((OPEN, 0), (CLOSED, 1)):
        if expected is None:
            with pytest.raises(IllegalTransition) as refused:
                next_state(state, event, rfq_expires_at=expires_at, now=NOW)
            assert state.value in str(refused.value)
            assert event.value in str(refused.value)
        else:
            assert next_state(state, event, rfq_expires_at=expires_at, now=NOW) is expected[column]


def test_the_table_and_the_expectations_cover_the_same_pairs() -> None:
    from_table = {(s, t.event) for t in TRANSITIONS for s in t.sources}
    assert from_table == set(EXPECTED)


def _order(state: OrderState = OrderState.QUOTED, side: Side = Side.BUY) -> Order:
    return Order(
        rfq_id="rfq-1",
        requester="TRADER-A",
        instrument="BTC-USD",
        side=side,
        quantity=Decimal("2"),
        counterparties=("MM-1",),
        anonymous=False,
        rfq_expires_at=OPEN,
        created_at=NOW,
        updated_at=NOW,
        state=state,
    )


def _quote(**over: object) -> Quote:
    values: dict[str, object] = {
        "quote_id": "q-1",
        "rfq_id": "rfq-1",
        "maker": "MM-1",
        "bid_px": Decimal("99"),
        "offer_px": Decimal("101"),
        "quantity": Decimal("2"),
        "valid_until": NOW + timedelta(seconds=5),
    }
    values.update(over)
    return Quote(**values)  # type: ignore[arg-type]


def test_an_illegal_event_changes_nothing_on_the_order() -> None:
    order = _order(OrderState.SETTLED)
    before = dataclasses.replace(order)
    with pytest.raises(IllegalTransition):
        order.apply(OrderEvent.CANCEL, NOW)
    assert order.state is OrderState.SETTLED
    assert order == before


def test_a_buy_fills_at_the_offer_with_the_trader_as_buyer() -> None:
    fill = _order().fill_for(_quote(), None, NOW)
    assert (fill.price, fill.buyer, fill.seller) == (Decimal("101"), "TRADER-A", "MM-1")


def test_a_sell_fills_at_the_bid_with_the_maker_as_buyer() -> None:
    fill = _order(side=Side.SELL).fill_for(_quote(), None, NOW)
    assert (fill.price, fill.buyer, fill.seller) == (Decimal("99"), "MM-1", "TRADER-A")


@pytest.mark.parametrize(
    ("order", "quote", "side", "code"),
    [
        (_order(), _quote(valid_until=NOW), None, "quote_expired"),
        (_order(), _quote(rfq_id="other"), None, "unknown_quote"),
        (_order(side=Side.TWO_WAY), _quote(), None, "side_required"),
        (_order(), _quote(), Side.SELL, "wrong_side"),
        (_order(), _quote(offer_px=None), None, "no_price"),
    ],
)
def test_an_accept_that_cannot_succeed_is_refused_with_a_reason(
    order: Order, quote: Quote, side: Side | None, code: str
) -> None:
    with pytest.raises(AcceptRefused) as refused:
        order.fill_for(quote, side, NOW)
    assert refused.value.code == code


def test_a_rejected_last_look_forgets_the_accepted_quote() -> None:
    order = _order()
    quote = _quote()
    order.begin_confirmation(
        quote=quote,
        fill=order.fill_for(quote, None, NOW),
        reservation_id="res",
        lastlook_deadline=NOW + timedelta(seconds=3),
        now=NOW,
    )
    assert order.state is OrderState.PENDING_CONFIRMATION
    assert order.price == Decimal("101")
    order.end_confirmation(OrderEvent.COUNTERPARTY_REJECT, NOW)
    assert order.state is OrderState.QUOTED
    assert (order.reservation_id, order.price, order.accepted_quote_id) == (None, None, None)


def test_the_committed_diagram_is_drawn_from_the_current_table() -> None:
    from pathlib import Path

    from order_core.domain.diagram import document

    committed = Path(__file__).resolve().parents[2] / "docs" / "order-lifecycle.md"
    assert committed.read_text() == document(), (
        "regenerate: python -m order_core.domain.diagram > docs/order-lifecycle.md"
    )
