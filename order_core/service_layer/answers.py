"""The answers handlers share: refusing a trader's command, and what a message for
an RFQ not on record means."""

from __future__ import annotations

from order_core.service_layer.commands import Received
from order_core.service_layer.dependencies import Dependencies
from order_core.service_layer.transaction import DUPLICATE, transaction
from otc.bus.envelope import InvalidMessage
from otc.errors import NotYetKnown
from otc.logging import get_logger

log = get_logger(__name__)


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


def unknown_order(
    deps: Dependencies, message: Received, rfq_id: str, *, may_be_early: bool
) -> Exception:
    """Last-look answers and settlement results can only follow an order order_core
    created, so for them an unknown RFQ is final; a quote may just be early."""
    if not may_be_early or deps.waited_long_enough(message.event_id):
        return InvalidMessage(f"unknown rfq {rfq_id}")
    return NotYetKnown(f"rfq {rfq_id} not yet known")
