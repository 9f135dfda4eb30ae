"""The one transaction shape of every order_core handler.

`transaction(deps, work, once=message)` opens a unit of work, records the message
as processed in it (a duplicate ends there, with nothing written), runs `work` on a
`Tx`, and commits once. A version conflict (`ConcurrentUpdate`) rolls everything
back, outbox messages and processed mark included, and runs `work` again on fresh
rows, a bounded number of times. Anything else `work` raises rolls back and goes on
up. Calls to Redis or risk_limits never happen in `work`: a handler makes them
before (or after) its transaction, where the module of that handler says why.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from enum import Enum
from typing import Literal, TypeVar, overload

from google.protobuf.message import Message as ProtoMessage

from order_core.adapters.audited_uow import AuditedUnitOfWork
from order_core.adapters.repository import ConcurrentUpdate
from order_core.domain.order import Order
from order_core.service_layer import messages
from order_core.service_layer.commands import Received
from order_core.service_layer.dependencies import Dependencies
from otc.bus import topics
from otc.logging import get_logger

log = get_logger(__name__)

CONSUMER = "order-core"
VERSION_RETRIES = 8

T = TypeVar("T")


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
