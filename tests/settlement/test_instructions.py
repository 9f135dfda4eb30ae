"""When a refused settlement is tried again, and when it is given up on; what
blocks and shortfalls say. No server."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from otc.instruments import INSTRUMENTS
from settlement.domain.instructions import GiveUp, Instruction, Retry, RetryPolicy, after_refusal
from settlement.domain.ledger import (
    EXTERNAL,
    Account,
    Blocked,
    InvalidTrade,
    Posting,
    Shortfall,
    Trade,
    dvp_postings,
    funding_postings,
    refusal,
    unbalanced_assets,
)

NOW = datetime(2026, 1, 7, 12, tzinfo=UTC)
POLICY = RetryPolicy(3, timedelta(milliseconds=100), timedelta(milliseconds=150))
TRADE = Trade(
    "T-1", "R-1", INSTRUMENTS["BTC-USD"], "BUYER", "SELLER", *[Decimal(2)] * 2, Decimal(4)
)
SHORT = Shortfall("SELLER", "BTC", Decimal(2), Decimal(1))


def test_the_wait_doubles_up_to_the_cap() -> None:
    policy = RetryPolicy(10, timedelta(seconds=1), timedelta(seconds=5))
    assert [policy.delay_after(n).total_seconds() for n in range(1, 6)] == [1, 2, 4, 5, 5]


def test_a_refusal_is_retried_until_the_attempts_are_spent() -> None:
    assert after_refusal(SHORT, 1, POLICY, NOW) == Retry(
        NOW + timedelta(milliseconds=100), SHORT.describe()
    )
    assert after_refusal(SHORT, 2, POLICY, NOW) == Retry(
        NOW + timedelta(milliseconds=150), SHORT.describe()
    )
    given_up = after_refusal(SHORT, 3, POLICY, NOW)
    assert isinstance(given_up, GiveUp)
    assert given_up.reason.startswith(SHORT.describe())
    assert "3 attempts" in given_up.reason


def test_one_attempt_allowed_means_failing_at_once() -> None:
    once = RetryPolicy(1, timedelta(seconds=1), timedelta(seconds=1))
    assert after_refusal(SHORT, 1, once, NOW) == GiveUp(
        f"{SHORT.describe()} (gave up after 1 attempt)"
    )


def test_a_policy_must_allow_an_attempt_and_positive_waits() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(0, timedelta(seconds=1), timedelta(seconds=1))
    with pytest.raises(ValueError, match="delays"):
        RetryPolicy(2, timedelta(seconds=2), timedelta(seconds=1))


def test_an_instruction_is_due_from_its_value_date_on() -> None:
    instruction = Instruction(TRADE, NOW, date(2026, 1, 9), 0, "c", "e")
    assert not instruction.due_by(datetime(2026, 1, 8, 23, 59, tzinfo=UTC))
    assert instruction.due_by(datetime(2026, 1, 9, 0, 0, tzinfo=UTC))


def test_a_block_comes_before_a_shortfall_and_names_the_reason() -> None:
    postings = dvp_postings(TRADE)
    balances = {Account("BUYER", "USD"): Decimal(100)}  # the seller holds no BTC
    blocked = {Account("SELLER", "USD"): "KYC review"}
    assert refusal(balances, blocked, postings) == Blocked("SELLER", "USD", "KYC review")
    assert "SELLER USD is blocked: KYC review" in Blocked("SELLER", "USD", "KYC review").describe()
    assert refusal(balances, {}, postings) == Shortfall("SELLER", "BTC", Decimal(2), Decimal(0))
    enough = balances | {Account("SELLER", "BTC"): Decimal(2)}
    assert refusal(enough, {}, postings) is None


def test_funding_is_posted_against_the_outside_world_which_may_go_negative() -> None:
    postings = funding_postings("P", "USD", Decimal(50))
    assert postings == (Posting("P", "USD", Decimal(50)), Posting(EXTERNAL, "USD", Decimal(-50)))
    assert unbalanced_assets(postings) == {}
    assert refusal({}, {}, postings) is None
    withdrawal = funding_postings("P", "USD", Decimal(-60))
    assert refusal({Account("P", "USD"): Decimal(50)}, {}, withdrawal) == Shortfall(
        "P", "USD", Decimal(60), Decimal(50)
    )


def test_unbalanced_assets_names_each_asset_and_its_sum() -> None:
    postings = (*dvp_postings(TRADE)[1:], Posting("X", "ETH", Decimal(1)))
    assert unbalanced_assets(postings) == {"BTC": Decimal(-2), "ETH": Decimal(1)}


def test_the_outside_world_cannot_trade() -> None:
    with pytest.raises(InvalidTrade, match="not a party"):
        Trade("T-2", "R-2", INSTRUMENTS["BTC-USD"], EXTERNAL, "SELLER", *[Decimal(1)] * 3)
