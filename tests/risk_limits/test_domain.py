"""The pure rules of the credit service: no server, no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from otc.errors import ValidationFailed
from risk_limits.domain.commands import LegRequest
from risk_limits.domain.credit import (
    CreditLine,
    Hold,
    Leg,
    LineKey,
    currencies_to_convert,
    holds_for,
    lines_of,
    parse_amount,
    parse_leg,
    parse_legs,
    refusal,
    request_hash,
    require_id,
    require_uuid,
    sum_holds,
)
from risk_limits.domain.errors import (
    CreditRefused,
    IllegalTransition,
    ReleasedBeforeFrozen,
    ReservationIdReused,
    UnknownParty,
)
from risk_limits.domain.reservation import (
    MOVEMENT,
    TOMBSTONE_HASH,
    Action,
    Decision,
    Movement,
    Reservation,
    Status,
    deadline_for,
    decide,
    replay_freeze,
)

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def leg(party: str, counterparty: str, amount: str, currency: str = "USD") -> Leg:
    return parse_leg(party, counterparty, amount, currency)


def reservation(status: Status, digest: str = "h") -> Reservation:
    return Reservation("res-1", "rfq-1", status, (), (), digest, "why", NOW)


def line(key: LineKey, currency: str, limit: str, used: str = "0", frozen: str = "0") -> CreditLine:
    return CreditLine(key, currency, Decimal(limit), Decimal(used), Decimal(frozen))


def test_available_is_limit_minus_used_minus_frozen() -> None:
    assert line(LineKey("A"), "USD", "100.50", "20.25", "0.25").available == Decimal("80.00")


def test_available_can_be_negative_after_a_limit_cut() -> None:
    assert line(LineKey("A", "B"), "USD", "10", "30").available == Decimal("-20")


@pytest.mark.parametrize(
    "text",
    ["", "res-1", "1b4e28ba2fa111d2883f0016d3cca427", "1B4E28BA-2FA1-11D2-883F-0016D3CCA427"],
)
def test_reservation_ids_are_canonical_uuids(text: str) -> None:
    with pytest.raises(ValidationFailed, match="must be a UUID"):
        require_uuid(text, "reservation_id")
    canonical = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"
    assert require_uuid(canonical, "reservation_id") == canonical


@pytest.mark.parametrize(
    "text",
    ["abc", "-1", "0", "0.000", "NaN", "Infinity", "-Infinity", "", " ", "1e-19", "1e20", "1,5"],
)
def test_malformed_or_non_positive_amounts_are_refused(text: str) -> None:
    with pytest.raises(ValidationFailed):
        parse_leg("A", "B", text, "USD")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1", "1"), ("0.000000000000000001", "1E-18"), ("1e6", "1000000"), (" 2.50 ", "2.50")],
)
def test_well_formed_amounts_are_exact_decimals(text: str, expected: str) -> None:
    assert parse_leg("A", "B", text, "USD").amount == Decimal(expected)


def test_a_limit_may_be_zero_but_not_negative() -> None:
    assert parse_amount("0", "limit", positive=False) == 0
    with pytest.raises(ValidationFailed, match="negative"):
        parse_amount("-0.01", "limit", positive=False)


@pytest.mark.parametrize("currency", ["usd", "US", "USDT", "", "U$D", "XYZ"])
def test_currency_must_be_a_supported_three_letter_code(currency: str) -> None:
    with pytest.raises(ValidationFailed, match="currency"):
        parse_leg("A", "B", "1", currency)


@pytest.mark.parametrize(("party", "counterparty"), [("", "B"), ("A", ""), (" A", "B"), ("A", "A")])
def test_parties_must_be_named_and_distinct(party: str, counterparty: str) -> None:
    with pytest.raises(ValidationFailed):
        parse_leg(party, counterparty, "1", "USD")


def test_ids_must_be_present() -> None:
    assert require_id("r-1", "reservation_id") == "r-1"
    with pytest.raises(ValidationFailed, match="reservation_id"):
        require_id("", "reservation_id")


def test_a_freeze_needs_legs() -> None:
    with pytest.raises(ValidationFailed, match="at least one leg"):
        parse_legs([])
    assert parse_legs([LegRequest("A", "B", "5", "USD")]) == (leg("A", "B", "5"),)


USD_LINES = {
    LineKey("A"): "USD",
    LineKey("A", "B"): "USD",
    LineKey("B"): "USD",
    LineKey("B", "A"): "USD",
    LineKey("A", "C"): "USD",
}


def test_a_leg_holds_on_the_gross_and_the_bilateral_line_of_its_party() -> None:
    legs = [leg("B", "A", "5"), leg("A", "B", "5")]
    assert lines_of(legs) == (LineKey("A"), LineKey("A", "B"), LineKey("B"), LineKey("B", "A"))
    assert holds_for(legs, USD_LINES, {}) == tuple(
        Hold(key, Decimal("5"), "USD") for key in lines_of(legs)
    )


def test_holds_are_summed_per_line_in_lock_order() -> None:
    legs = [leg("A", "C", "1.5"), leg("A", "B", "2"), leg("A", "C", "0.5")]
    assert holds_for(legs, USD_LINES, {}) == (
        Hold(LineKey("A"), Decimal("4.0"), "USD"),
        Hold(LineKey("A", "B"), Decimal("2"), "USD"),
        Hold(LineKey("A", "C"), Decimal("2.0"), "USD"),
    )


def test_sums_of_large_amounts_are_not_rounded() -> None:
    big = "99999999999999999999.99"
    [gross, *_] = sum_holds(
        [Hold(LineKey("A"), Decimal(big), "USD"), Hold(LineKey("A"), Decimal(big), "USD")]
    )
    # The default decimal context (28 digits) would round this sum.
    assert str(gross.amount) == "199999999999999999999.98"


def test_each_line_holds_the_leg_converted_into_its_own_currency() -> None:
    currencies = {LineKey("A"): "EUR", LineKey("A", "B"): "USD"}
    rates = {"USD": Decimal("1"), "EUR": Decimal("1.08")}
    assert currencies_to_convert([leg("A", "B", "108")], currencies) == {"USD", "EUR"}
    assert holds_for([leg("A", "B", "108")], currencies, rates) == (
        Hold(LineKey("A"), Decimal("100.00"), "EUR"),
        Hold(LineKey("A", "B"), Decimal("108"), "USD"),
    )


def test_a_notional_finer_than_the_line_currency_is_rounded_up() -> None:
    # 0.1 BTC at 65000.01 USD: a tenth of a cent more than cents can say.
    [gross, _] = holds_for([leg("A", "B", "6500.001")], USD_LINES, {})
    assert gross.amount == Decimal("6500.01")


def test_an_unknown_party_is_named() -> None:
    with pytest.raises(UnknownParty, match="unknown party B: it has no credit line"):
        holds_for([leg("A", "B", "1"), leg("B", "A", "1")], {LineKey("A"): "USD"}, {})


def test_a_pair_without_a_bilateral_line_has_no_credit() -> None:
    lines = {LineKey("A"): "USD", LineKey("B"): "USD", LineKey("A", "B"): "USD"}
    with pytest.raises(CreditRefused, match="no credit line for B with A"):
        holds_for([leg("A", "B", "1"), leg("B", "A", "1")], lines, {})


def test_holds_of_one_line_in_two_currencies_are_a_bug() -> None:
    with pytest.raises(ValueError, match="holds on A in USD and EUR"):
        sum_holds([Hold(LineKey("A"), Decimal(1), "USD"), Hold(LineKey("A"), Decimal(1), "EUR")])


def test_refusal_names_line_amount_asked_and_available() -> None:
    asked = Hold(LineKey("ACME", "MM-1"), Decimal("1500000"), "USD")
    why = refusal(asked, line(LineKey("ACME", "MM-1"), "USD", "2000000", "600000"))
    assert isinstance(why, CreditRefused)
    assert why.message == (
        "insufficient credit for ACME with MM-1: asked 1500000 USD, available 1400000 USD"
    )


def test_refusal_without_a_line_or_after_a_currency_change() -> None:
    asked = Hold(LineKey("ACME"), Decimal("1"), "USD")
    missing = refusal(asked, None)
    assert isinstance(missing, CreditRefused)
    assert missing.message == "no credit line for ACME"
    changed = refusal(asked, line(LineKey("ACME"), "EUR", "9"))
    assert not isinstance(changed, CreditRefused)
    assert "changed currency" in changed.message


def test_request_hash_ignores_leg_order_and_amount_spelling() -> None:
    first = request_hash("rfq", [leg("A", "B", "1000000"), leg("B", "A", "5")])
    again = request_hash("rfq", [leg("B", "A", "5.00"), leg("A", "B", "1e6")])
    assert first == again
    assert len(first) == 64


@pytest.mark.parametrize(
    "other",
    [
        ("rfq-2", [leg("A", "B", "1")]),
        ("rfq", [leg("A", "B", "1.01")]),
        ("rfq", [leg("A", "C", "1")]),
        ("rfq", [leg("A", "B", "1", "EUR")]),
        ("rfq", [leg("B", "A", "1")]),
        ("rfq", [leg("A", "B", "1"), leg("A", "B", "1")]),
    ],
)
def test_request_hash_changes_with_what_is_asked(other: tuple[str, list[Leg]]) -> None:
    assert request_hash("rfq", [leg("A", "B", "1")]) != request_hash(*other)


ALL_PAIRS = [(status, action) for status in Status for action in Action]
LEGAL = {
    (Status.FROZEN, Action.COMMIT): Decision.APPLY,
    (Status.COMMITTED, Action.COMMIT): Decision.ALREADY_DONE,
    (Status.FROZEN, Action.RELEASE): Decision.APPLY,
    (Status.RELEASED, Action.RELEASE): Decision.ALREADY_DONE,
    (Status.EXPIRED, Action.RELEASE): Decision.ALREADY_DONE,
    (Status.REJECTED, Action.RELEASE): Decision.ALREADY_DONE,
    (Status.FROZEN, Action.EXPIRE): Decision.APPLY,
    (Status.COMMITTED, Action.SETTLE): Decision.APPLY,
    (Status.SETTLED, Action.SETTLE): Decision.ALREADY_DONE,
    (Status.COMMITTED, Action.FAIL_SETTLEMENT): Decision.APPLY,
    (Status.SETTLEMENT_FAILED, Action.FAIL_SETTLEMENT): Decision.ALREADY_DONE,
    (Status.SETTLED, Action.COMMIT): Decision.ALREADY_DONE,
    (Status.SETTLEMENT_FAILED, Action.COMMIT): Decision.ALREADY_DONE,
}


@pytest.mark.parametrize(("status", "action"), ALL_PAIRS)
def test_every_status_and_action_pair(status: Status, action: Action) -> None:
    if (status, action) in LEGAL:
        assert decide("res-1", status, action) is LEGAL[(status, action)]
    else:
        with pytest.raises(IllegalTransition) as refused:
            decide("res-1", status, action)
        assert refused.value.message == f"reservation res-1 is {status}; cannot {action}"


def test_every_applied_action_moves_credit_once() -> None:
    applying = {action for (_, action), d in LEGAL.items() if d is Decision.APPLY}
    assert applying == set(Action) == set(MOVEMENT)
    assert {MOVEMENT[a] for a in (Action.SETTLE, Action.FAIL_SETTLEMENT)} == {Movement.FREE_USED}


def test_commit_after_release_names_the_state() -> None:
    with pytest.raises(IllegalTransition, match="reservation res-1 is RELEASED; cannot commit"):
        decide("res-1", Status.RELEASED, Action.COMMIT)


@pytest.mark.parametrize("status", [Status.FROZEN, Status.COMMITTED, Status.EXPIRED])
def test_replay_of_the_same_request_answers_the_current_status(status: Status) -> None:
    assert replay_freeze(reservation(status), "h") is status


def test_replay_of_a_refused_request_refuses_again_with_the_same_reason() -> None:
    with pytest.raises(CreditRefused, match=r"^why$"):
        replay_freeze(reservation(Status.REJECTED), "h")


def test_replay_with_a_different_request_is_a_reused_id() -> None:
    with pytest.raises(ReservationIdReused, match="res-1"):
        replay_freeze(reservation(Status.FROZEN), "other")


def test_a_tombstone_refuses_any_late_freeze() -> None:
    tombstone = reservation(Status.RELEASED, TOMBSTONE_HASH)
    assert tombstone.is_tombstone
    with pytest.raises(ReleasedBeforeFrozen, match="released before it was frozen"):
        replay_freeze(tombstone, "h")


def test_a_released_reservation_with_a_request_is_no_tombstone() -> None:
    assert replay_freeze(reservation(Status.RELEASED), "h") is Status.RELEASED


def test_deadline_defaults_to_now_plus_ttl() -> None:
    ttl = timedelta(seconds=30)
    assert deadline_for(None, NOW, ttl) == NOW + ttl
    assert deadline_for(NOW - ttl, NOW, ttl) == NOW - ttl
    with pytest.raises(ValueError, match="timezone-aware"):
        deadline_for(datetime(2026, 1, 1), NOW, ttl)  # noqa: DTZ001 - the naive input under test
