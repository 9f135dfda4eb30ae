"""The life of a reservation: its states, the moves between them as a table, what
each move does to the credit it holds, and what a repeated Freeze of a known
reservation id must answer.

    FROZEN ── Commit ──> COMMITTED ── Settle ─────────> SETTLED
       │                     └─────── FailSettlement ─> SETTLEMENT_FAILED
       ├──── Release ──> RELEASED
       └──── Expire ───> EXPIRED      (the sweeper, once the deadline has passed)
    REJECTED                          (a Freeze the credit lines refused)

Committed credit stays used until settlement reports on the trade: settled or
failed, either way the exposure is over and the credit is available again.

A Release of an id never seen leaves a RELEASED tombstone with no legs and an empty
request hash, so that a Freeze arriving late (after its own Release) freezes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from .credit import Hold, Leg
from .errors import CreditRefused, IllegalTransition, ReleasedBeforeFrozen, ReservationIdReused

TOMBSTONE_HASH = ""


class Status(StrEnum):
    FROZEN = "FROZEN"
    COMMITTED = "COMMITTED"
    RELEASED = "RELEASED"
    EXPIRED = "EXPIRED"
    REJECTED = "REJECTED"
    SETTLED = "SETTLED"
    SETTLEMENT_FAILED = "SETTLEMENT_FAILED"


class Action(StrEnum):
    COMMIT = "commit"
    RELEASE = "release"
    EXPIRE = "expire"
    SETTLE = "settle"
    FAIL_SETTLEMENT = "fail settlement"


class Movement(StrEnum):
    """Where an applied action moves the held credit on every line."""

    COMMIT = "frozen to used"
    UNFREEZE = "frozen to available"
    FREE_USED = "used to available"


class Decision(StrEnum):
    APPLY = "apply"  # move the frozen credit and change the status
    ALREADY_DONE = "already_done"  # idempotent repeat: answer with the current status


TARGET: dict[Action, Status] = {
    Action.COMMIT: Status.COMMITTED,
    Action.RELEASE: Status.RELEASED,
    Action.EXPIRE: Status.EXPIRED,
    Action.SETTLE: Status.SETTLED,
    Action.FAIL_SETTLEMENT: Status.SETTLEMENT_FAILED,
}

MOVEMENT: dict[Action, Movement] = {
    Action.COMMIT: Movement.COMMIT,
    Action.RELEASE: Movement.UNFREEZE,
    Action.EXPIRE: Movement.UNFREEZE,
    Action.SETTLE: Movement.FREE_USED,
    Action.FAIL_SETTLEMENT: Movement.FREE_USED,
}

# Any (status, action) pair missing here is illegal.
TRANSITIONS: dict[tuple[Status, Action], Decision] = {
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
    # A Commit retried after the trade settled was committed all the same.
    (Status.SETTLED, Action.COMMIT): Decision.ALREADY_DONE,
    (Status.SETTLEMENT_FAILED, Action.COMMIT): Decision.ALREADY_DONE,
}


@dataclass(frozen=True, slots=True)
class Reservation:
    reservation_id: str
    rfq_id: str
    status: Status
    legs: tuple[Leg, ...]
    holds: tuple[Hold, ...]
    request_hash: str
    reason: str
    deadline: datetime

    @property
    def is_tombstone(self) -> bool:
        return self.status is Status.RELEASED and self.request_hash == TOMBSTONE_HASH


def decide(reservation_id: str, status: Status, action: Action) -> Decision:
    decision = TRANSITIONS.get((status, action))
    if decision is None:
        raise IllegalTransition(status, action, subject=f"reservation {reservation_id}")
    return decision


def past_deadline(reservation: Reservation, now: datetime) -> bool:
    """A FROZEN reservation whose deadline has come can only be released: a Commit
    then is refused, so "not committed by its deadline" always means "released"."""
    return reservation.status is Status.FROZEN and reservation.deadline <= now


def replay_freeze(stored: Reservation, request_hash: str) -> Status:
    """The answer to a Freeze whose reservation id is already recorded: the same as
    the first time for the same request, a refusal for anything else."""
    if stored.is_tombstone:
        raise ReleasedBeforeFrozen(
            f"reservation {stored.reservation_id} was released before it was frozen"
        )
    if stored.request_hash != request_hash:
        raise ReservationIdReused(
            f"reservation {stored.reservation_id} already exists with a different request"
        )
    if stored.status is Status.REJECTED:
        raise CreditRefused(stored.reason)
    return stored.status


def deadline_for(requested: datetime | None, now: datetime, ttl: timedelta) -> datetime:
    if requested is None:
        return now + ttl
    if requested.tzinfo is None:
        raise ValueError("a reservation deadline must be timezone-aware")
    return requested
