"""The pure rules of the credit service: no server, no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from otc.errors import ValidationFailed
from risk_limits.domain.commands import LegRequest
from risk_limits.domain.credit import (
    CreditLine,
    Leg,
    PartyAmount,
    amounts_by_party,
    parse_amount,
    parse_leg,
    parse_legs,
    refusal,
    request_hash,
    require_id,
)
from risk_limits.domain.errors import (
    CreditRefused,
    IllegalTransition,
    ReleasedBeforeFrozen,
    ReservationIdReused,
)
from risk_limits.domain.reservation import (
    TOMBSTONE_HASH,
    Action,
    Decision,
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
    return Reservation("res-1", "rfq-1", status, (), digest, "why", NOW)


def test_available_is_limit_minus_used_minus_frozen() -> None:
    line = CreditLine("A", "USD", Decimal("100.50"), Decimal("20.25"), Decimal("0.25"))
    assert line.available == Decimal("80.00")


def test_available_can_be_negative_after_a_limit_cut() -> None:
    line = CreditLine("A", "USD", Decimal("10"), Decimal("30"), Decimal("0"))
    assert line.available == Decimal("-20")


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


@pytest.mark.parametrize("currency", ["usd", "US", "USDT", "", "U$D"])
def test_currency_must_be_a_three_letter_code(currency: str) -> None:
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


def test_amounts_are_summed_per_party_in_party_order() -> None:
    legs = [leg("Z", "A", "1.5"), leg("A", "Z", "2"), leg("Z", "B", "0.5")]
    assert amounts_by_party(legs) == (
        PartyAmount("A", "USD", Decimal("2")),
        PartyAmount("Z", "USD", Decimal("2.0")),
    )


def test_sums_of_large_amounts_are_not_rounded() -> None:
    big = "99999999999999999999.999999999999999999"
    total = amounts_by_party([leg("A", "B", big), leg("A", "C", big)])[0].amount
    # The default decimal context (28 digits) would round this sum.
    assert str(total) == "199999999999999999999.999999999999999998"


def test_one_party_cannot_mix_currencies() -> None:
    with pytest.raises(ValidationFailed, match="mix currencies"):
        amounts_by_party([leg("A", "B", "1", "USD"), leg("A", "C", "1", "EUR")])


def test_refusal_names_party_amount_asked_and_available() -> None:
    asked = PartyAmount("ACME", "USD", Decimal("1500000"))
    line = CreditLine("ACME", "USD", Decimal("2000000"), Decimal("600000"), Decimal("0"))
    why = refusal(asked, line)
    assert isinstance(why, CreditRefused)
    assert why.message == ("insufficient credit for ACME: asked 1500000 USD, available 1400000 USD")


def test_refusal_without_a_line_or_in_the_wrong_currency() -> None:
    asked = PartyAmount("ACME", "USD", Decimal("1"))
    missing = refusal(asked, None)
    assert isinstance(missing, CreditRefused)
    assert missing.message == "no credit line for ACME"
    wrong = refusal(asked, CreditLine("ACME", "EUR", Decimal("9"), Decimal("0"), Decimal("0")))
    assert isinstance(wrong, ValidationFailed)
    assert not isinstance(wrong, CreditRefused)
    assert "EUR" in wrong.message


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
}


@pytest.mark.parametrize(("status", "action"), ALL_PAIRS)
def test_every_status_and_action_pair(status: Status, action: Action) -> None:
    if (status, action) in LEGAL:
        assert decide("res-1", status, action) is LEGAL[(status, action)]
    else:
        with pytest.raises(IllegalTransition) as refused:
            decide("res-1", status, action)
        assert refused.value.message == f"reservation res-1 is {status}; cannot {action}"


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
