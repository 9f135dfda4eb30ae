"""What the edge accepts as an RFQ, with no servers."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from otc.errors import ValidationFailed
from rfq_service.domain.rfq import validate_rfq

MAKERS = ("MM-1", "MM-2", "MM-3")


def _validate(**over: Any) -> Any:
    args: dict[str, Any] = {
        "requester": "TRADER-A",
        "client_rfq_id": "c-1",
        "instrument": "BTC-USD",
        "side": "buy",
        "quantity": "2.5",
        "counterparties": None,
        "response_window_ms": None,
        "anonymous": False,
        "enabled_makers": MAKERS,
        "now": datetime(2026, 1, 7, 12, tzinfo=UTC),  # a Wednesday: every market is open
    }
    args.update(over)
    return validate_rfq(**args)


def test_a_valid_rfq_goes_to_every_enabled_maker_by_default() -> None:
    spec = _validate()
    assert spec.counterparties == MAKERS
    assert spec.quantity == Decimal("2.5")


def test_a_maker_never_receives_its_own_rfq() -> None:
    assert "MM-1" not in _validate(requester="MM-1").counterparties


@pytest.mark.parametrize(
    ("over", "code"),
    [
        ({"instrument": "DOGE-USD"}, "unknown_instrument"),
        ({"quantity": "0"}, "invalid_quantity"),
        ({"quantity": "-1"}, "invalid_quantity"),
        ({"quantity": "abc"}, "invalid_quantity"),
        ({"quantity": "NaN"}, "invalid_quantity"),
        ({"quantity": "Infinity"}, "invalid_quantity"),
        ({"side": "long"}, "invalid_request"),
        ({"response_window_ms": 10}, "invalid_request"),
        ({"counterparties": []}, "invalid_request"),
        ({"counterparties": ["MM-9"]}, "unknown_counterparty"),
        ({"client_rfq_id": "  "}, "invalid_request"),
    ],
)
def test_bad_rfqs_are_refused_with_a_code(over: dict[str, Any], code: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        _validate(**over)
    assert refused.value.code == code


def test_the_request_hash_ignores_order_of_counterparties_and_trailing_zeros() -> None:
    a = _validate(counterparties=["MM-1", "MM-2"], quantity="2.50")
    b = _validate(counterparties=["MM-2", "MM-1"], quantity="2.5")
    assert a.request_hash() == b.request_hash()
    assert a.request_hash() != _validate(quantity="3").request_hash()


@pytest.mark.parametrize(
    ("instrument", "quantity", "message"),
    [
        ("BTC-USD", "0.001", "between 0.01 and 1000"),
        ("BTC-USD", "1000.0001", "between 0.01 and 1000"),
        ("BTC-USD", "1.00005", "multiple of 0.0001"),
        ("EUR-USD", "999", "between 1000 and 100000000"),
        ("EUR-USD", "10000.5", "multiple of 1"),
    ],
)
def test_quantity_outside_the_instruments_limits_is_refused(
    instrument: str, quantity: str, message: str
) -> None:
    with pytest.raises(ValidationFailed, match=message) as caught:
        _validate(instrument=instrument, quantity=quantity)
    assert caught.value.code == "invalid_quantity"


@pytest.mark.parametrize(("instrument", "quantity"), [("BTC-USD", "0.01"), ("BTC-USD", "1000")])
def test_quantity_on_the_instruments_limits_is_accepted(instrument: str, quantity: str) -> None:
    assert _validate(instrument=instrument, quantity=quantity).quantity == Decimal(quantity)
