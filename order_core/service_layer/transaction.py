"""What every order_core handler is given, and the one transaction shape it runs in.

`Dependencies` are the database, the quote book, the risk client, the clock and
the timings, built once by bootstrap (or a test).

`transaction(deps, work, once=message)` opens a unit of work, records the message
as processed in it (a duplicate ends there, with nothing written), runs `work` on a
`Tx`, and commits once. A version conflict (`ConcurrentUpdate`) rolls everything
back, outbox messages and processed mark included, and runs `work` again on fresh
rows, a bounded number of times. Anything else `work` raises rolls back and goes on
up. Calls to Redis or risk_limits never happen in `work`: a handler makes them
before (or after) its transaction, where the module of that handler says why.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from typing import Literal, TypeVar, overload

from google.protobuf.message import Message as ProtoMessage
from sqlalchemy.ext.asyncio import AsyncEngine

from order_core.adapters.audited_uow import AuditedUnitOfWork
from order_core.adapters.repository import ConcurrentUpdate, OrderQueries
from order_core.adapters.risk_client import RiskClient
from order_core.adapters.tables import OUTBOX_TABLES
from order_core.domain.order import Order
from order_core.service_layer import messages
from order_core.service_layer.commands import Received
from otc.bus import topics
from otc.bus.envelope import InvalidMessage
from otc.clock import Clock
from otc.errors import NotYetKnown
from otc.logging import get_logger
from otc.quote_book import QuoteBook

log = get_logger(__name__)

CONSUMER = "order-core"
VERSION_RETRIES = 8

T = TypeVar("T")

# A quote or command for an RFQ order_core has not seen may simply have overtaken
# the RfqRequested on the other topic; it is retried (holding up its partition) for
# at most this long from its first attempt in this process, then given up on. The
# clock starts at the first attempt, not at the message's age, because after a
# restart every waiting message is old and its RFQ is still on its way.
UNKNOWN_ORDER_GRACE = timedelta(seconds=10)
FIRST_ATTEMPTS_KEPT = 10_000


@dataclass(frozen=True)
class Dependencies:
    engine: AsyncEngine
    quotes: QuoteBook
    risk: RiskClient
    clock: Clock
    last_look_window: timedelta
    reservation_ttl: timedelta
    # how long after a last-look window the sweeper waits for an answer in transit
    last_look_grace: timedelta = timedelta(0)
    first_attempts: OrderedDict[str, datetime] = field(default_factory=OrderedDict)

    def waited_long_enough(self, event_id: str) -> bool:
        """Whether a message waiting for its RFQ has been retried for the full grace."""
        now = self.clock.now()
        first = self.first_attempts.setdefault(event_id, now)
        while len(self.first_attempts) > FIRST_ATTEMPTS_KEPT:
            self.first_attempts.popitem(last=False)
        return now - first > UNKNOWN_ORDER_GRACE

    def uow(self) -> AuditedUnitOfWork:
        return AuditedUnitOfWork(
            self.engine, OUTBOX_TABLES, producer="order-core", clock=self.clock
        )

    @property
    def reads(self) -> OrderQueries:
        return OrderQueries(self.engine)


def unknown_order(
    deps: Dependencies, message: Received, rfq_id: str, *, may_be_early: bool
) -> Exception:
    """Last-look answers and settlement results can only follow an order order_core
    created, so for them an unknown RFQ is final; a quote may just be early."""
    if not may_be_early or deps.waited_long_enough(message.event_id):
        return InvalidMessage(f"unknown rfq {rfq_id}")
    return NotYetKnown(f"rfq {rfq_id} not yet known")


class Duplicate(Enum):
    """What `transaction` answers for a message already processed."""

    DUPLICATE = "duplicate"


DUPLICATE = Duplicate.DUPLICATE


class Tx:
    """A handler's view of its transaction: the orders, the clock, and the outbox,
    whose messages name the message being handled as their cause."""

    def __init__(self, uow: AuditedUnitOfWork, cause: Received | None) -> None:
        self.orders = uow.orders
        self.uow = uow
        self._cause = cause

    def now(self) -> datetime:
        return self.uow.clock.now()

    def emit(self, topic: str, key: str, payload: ProtoMessage) -> None:
        cause = self._cause
        self.uow.emit(
            topic,
            key,
            payload,
            correlation_id=(cause.correlation_id if cause else "") or key,
            causation_id=cause.event_id if cause else "",
        )

    def emit_state(self, order: Order, event: str, reason: str = "") -> None:
        self.emit(topics.ORDER_EVENTS, order.rfq_id, messages.state_changed(order, event, reason))

    def emit_result(
        self,
        rfq_id: str,
        order: Order | None,
        *,
        accepted: bool,
        code: str = "",
        reason: str = "",
    ) -> None:
        """The answer to a trader's command (the cause), which the edge is waiting for."""
        assert self._cause is not None, "only a command is answered"
        result = messages.command_result(
            command_id=self._cause.event_id,
            rfq_id=rfq_id,
            requester=order.requester if order else "",
            state=order.state.value if order else "",
            accepted=accepted,
            reason_code=code,
            reason=reason,
        )
        self.emit(topics.ORDER_EVENTS, rfq_id, result)

    async def refuse(self, rfq_id: str, code: str, reason: str) -> None:
        self.emit_result(
            rfq_id, await self.orders.get(rfq_id), accepted=False, code=code, reason=reason
        )


@overload
async def transaction(
    deps: Dependencies,
    work: Callable[[Tx], Awaitable[T]],
    *,
    once: Received,
    attempts: int = VERSION_RETRIES,
) -> T | Literal[Duplicate.DUPLICATE]: ...


@overload
async def transaction(
    deps: Dependencies,
    work: Callable[[Tx], Awaitable[T]],
    *,
    once: None = None,
    cause: Received | None = None,
    attempts: int = VERSION_RETRIES,
) -> T: ...


async def transaction(
    deps: Dependencies,
    work: Callable[[Tx], Awaitable[T]],
    *,
    once: Received | None = None,
    cause: Received | None = None,
    attempts: int = VERSION_RETRIES,
) -> T | Literal[Duplicate.DUPLICATE]:
    """Runs `work` in one committed transaction, retried on a version conflict up to
    `attempts` times. With `once`, at most once per that message, which is the cause
    of what `work` emits (DUPLICATE if it was processed before); `cause` names the
    cause of a transaction that does not record its message."""
    for _ in range(attempts - 1):
        try:
            return await _attempt(deps, work, once, cause or once)
        except ConcurrentUpdate:
            continue
    return await _attempt(deps, work, once, cause or once)


async def _attempt(
    deps: Dependencies,
    work: Callable[[Tx], Awaitable[T]],
    once: Received | None,
    cause: Received | None,
) -> T | Literal[Duplicate.DUPLICATE]:
    async with deps.uow() as uow:
        if once is not None and not await uow.mark_processed(CONSUMER, once.event_id):
            return DUPLICATE
        result = await work(Tx(uow, cause))
        await uow.commit()
        return result


async def record_processed(deps: Dependencies, cause: Received) -> None:
    """Records a message whose only effect is that it was handled."""
    await transaction(deps, _no_effect, once=cause, attempts=1)


async def _no_effect(_: Tx) -> None:
    return None


async def already_processed(deps: Dependencies, event_id: str) -> bool:
    """Whether the message was handled before: checked before calling out, so a
    duplicate does not take a quote or freeze credit again."""
    return await deps.reads.processed(CONSUMER, event_id)


async def refuse(
    deps: Dependencies, command: Received, rfq_id: str, code: str, reason: str
) -> str | None:
    """Answers a command with a refusal; returns its code, or None if the command
    had already been answered."""
    answered = await transaction(
        deps, lambda tx: tx.refuse(rfq_id, code, reason), once=command, attempts=1
    )
    return None if answered is DUPLICATE else refused(rfq_id, code, reason)


def refused(rfq_id: str, code: str, reason: str) -> str:
    """Logs a refusal once it is on record; returns its code."""
    log.info("command refused", rfq_id=rfq_id, code=code, reason=reason)
    return code


def unknown_command_target(rfq_id: str) -> tuple[str, str]:
    """An RFQ's creation precedes its commands on the same `order.commands`
    partition, so a command for an RFQ not on record has nothing to wait for."""
    return ("not_found", f"no RFQ {rfq_id}")
