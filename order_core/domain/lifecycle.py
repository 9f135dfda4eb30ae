"""The order state machine of docs/design.md, as data, run by the `transitions` library.

The table below is the whole truth: an event not listed for the order's current
state is refused with `IllegalTransition` naming both, and nothing changes. The
machine is built once from the table and drives no model: its transitions and
their conditions, read once at import, decide every next state.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from transitions import Machine
from transitions import Transition as MachineTransition

from otc.errors import IllegalTransition as IllegalTransition


class OrderState(StrEnum):
    RFQ_SENT = "RFQ_SENT"
    QUOTED = "QUOTED"
    PENDING_CONFIRMATION = "PENDING_CONFIRMATION"
    CONFIRMED = "CONFIRMED"
    SETTLED = "SETTLED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"
    REJECTED = "REJECTED"
    SETTLEMENT_FAILED = "SETTLEMENT_FAILED"


# An RFQ still taking quotes: it can be accepted, cancelled or expired.
OPEN_STATES = frozenset({OrderState.RFQ_SENT, OrderState.QUOTED})

TERMINAL_STATES = frozenset(
    {
        OrderState.SETTLED,
        OrderState.CANCELLED,
        OrderState.EXPIRED,
        OrderState.REJECTED,
        OrderState.SETTLEMENT_FAILED,
    }
)


class OrderEvent(StrEnum):
    RECEIVE_QUOTE = "ReceiveQuote"
    ACCEPT_QUOTE = "AcceptQuote"
    COUNTERPARTY_CONFIRM = "CounterpartyConfirm"
    COUNTERPARTY_REJECT = "CounterpartyReject"
    LAST_LOOK_TIMEOUT = "LastLookTimeout"
    RISK_REJECTED = "RiskRejected"
    RFQ_REJECTED = "RfqRejected"
    CANCEL = "Cancel"
    RFQ_EXPIRED = "RfqExpired"
    SETTLE = "Settle"
    SETTLEMENT_FAIL = "SettlementFail"


@dataclass(frozen=True, slots=True)
class Transition:
    event: OrderEvent
    sources: tuple[OrderState, ...]
    dest: OrderState
    only_if_rfq_open: bool | None = None  # None: unconditional


S, E = OrderState, OrderEvent

TRANSITIONS: tuple[Transition, ...] = (
    Transition(E.RECEIVE_QUOTE, (S.RFQ_SENT, S.QUOTED), S.QUOTED),
    Transition(E.ACCEPT_QUOTE, (S.QUOTED,), S.PENDING_CONFIRMATION),
    Transition(E.COUNTERPARTY_CONFIRM, (S.PENDING_CONFIRMATION,), S.CONFIRMED),
    Transition(E.COUNTERPARTY_REJECT, (S.PENDING_CONFIRMATION,), S.QUOTED, only_if_rfq_open=True),
    Transition(E.COUNTERPARTY_REJECT, (S.PENDING_CONFIRMATION,), S.EXPIRED, only_if_rfq_open=False),
    Transition(E.LAST_LOOK_TIMEOUT, (S.PENDING_CONFIRMATION,), S.QUOTED, only_if_rfq_open=True),
    Transition(E.LAST_LOOK_TIMEOUT, (S.PENDING_CONFIRMATION,), S.EXPIRED, only_if_rfq_open=False),
    Transition(E.RISK_REJECTED, (S.QUOTED,), S.QUOTED),
    Transition(E.RFQ_REJECTED, (S.RFQ_SENT,), S.REJECTED),
    Transition(E.CANCEL, (S.RFQ_SENT, S.QUOTED), S.CANCELLED),
    Transition(E.RFQ_EXPIRED, (S.RFQ_SENT, S.QUOTED), S.EXPIRED),
    Transition(E.SETTLE, (S.CONFIRMED,), S.SETTLED),
    Transition(E.SETTLEMENT_FAIL, (S.CONFIRMED,), S.SETTLEMENT_FAILED),
)


def _machine_config() -> list[dict[str, object]]:
    config: list[dict[str, object]] = []
    for t in TRANSITIONS:
        entry: dict[str, object] = {
            "trigger": t.event.value,
            "source": [s.value for s in t.sources],
            "dest": t.dest.value,
        }
        if t.only_if_rfq_open is True:
            entry["conditions"] = "rfq_open"
        elif t.only_if_rfq_open is False:
            entry["unless"] = "rfq_open"
        config.append(entry)
    return config


MACHINE = Machine(
    model=None,
    states=[s.value for s in OrderState],
    transitions=_machine_config(),
    initial=OrderState.RFQ_SENT.value,
    auto_transitions=False,
    ignore_invalid_triggers=False,
)

# A candidate move: where it leads, and the (condition, wanted value) pairs it needs.
_Candidate = tuple[OrderState, tuple[tuple[str, bool], ...]]


def _candidates(machine: Machine) -> dict[tuple[OrderState, OrderEvent], tuple[_Candidate, ...]]:
    """The machine's own transitions by (state, event), in the order it tries them:
    read once, so deciding a move adds no model to the machine."""
    return {
        (OrderState(source), OrderEvent(trigger)): tuple(_candidate(t) for t in transitions)
        for trigger, event in machine.events.items()
        for source, transitions in event.transitions.items()
    }


def _candidate(transition: MachineTransition) -> _Candidate:
    assert transition.dest is not None, "every move of the table names where it leads"
    conditions = []
    for condition in transition.conditions:
        assert isinstance(condition.func, str), "the table names its conditions"
        conditions.append((condition.func, condition.target))
    return OrderState(transition.dest), tuple(conditions)


_CANDIDATES = _candidates(MACHINE)


def next_state(
    state: OrderState, event: OrderEvent, *, rfq_expires_at: datetime, now: datetime
) -> OrderState:
    """The state `event` leads to from `state`, or `IllegalTransition`."""
    facts = {"rfq_open": now < rfq_expires_at}
    for dest, conditions in _CANDIDATES.get((state, event), ()):
        if all(facts[name] is wanted for name, wanted in conditions):
            return dest
    raise IllegalTransition(state, event)
