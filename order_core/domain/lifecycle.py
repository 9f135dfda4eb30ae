"""The order state machine of DESIGN.md, as data, run by the `transitions` library.

The table below is the whole truth: an event not listed for the order's current
state is refused with `IllegalTransition` naming both, and nothing changes. The
machine has no callbacks with side effects; it only decides the next state.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from transitions import Machine, MachineError

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


class _Model:
    """What `transitions` drives: a state and the facts its conditions read."""

    def __init__(self, state: OrderState, rfq_open: bool) -> None:
        self.state = state.value
        self._rfq_open = rfq_open

    def rfq_open(self) -> bool:
        return self._rfq_open


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


_MACHINE = Machine(
    model=None,
    states=[s.value for s in OrderState],
    transitions=_machine_config(),
    initial=OrderState.RFQ_SENT.value,
    auto_transitions=False,
    ignore_invalid_triggers=False,
)


def next_state(
    state: OrderState, event: OrderEvent, *, rfq_expires_at: datetime, now: datetime
) -> OrderState:
    """The state `event` leads to from `state`, or `IllegalTransition`."""
    model = _Model(state, rfq_open=now < rfq_expires_at)
    _MACHINE.add_model(model, initial=state.value)
    try:
        if not model.trigger(event.value):  # type: ignore[attr-defined]
            raise IllegalTransition(state, event)
        return OrderState(model.state)
    except MachineError:
        raise IllegalTransition(state, event) from None
    finally:
        _MACHINE.remove_model(model)
