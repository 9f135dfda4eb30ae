"""order_core's unit of work: the shared one, plus the audit trail and the count
of committed state changes.

Every state change, every recorded quote and every recorded withdrawal leaves
order_core as an outbox message, so appending those messages to the audit trail at
commit time audits exactly what was published, in the same transaction, without
each handler having to remember it. The records are built from the outgoing
messages, so the trail has the very event id and timestamp that consumers see.
"""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf.json_format import MessageToDict
from sqlalchemy.ext.asyncio import AsyncConnection

from order_core.adapters.audit import AuditLog
from order_core.adapters.repository import OrderRepository
from order_core.domain.audit import AuditRecord
from order_core.metrics import count_committed
from otc.contracts import events_pb2 as ev
from otc.unit_of_work import Outgoing, UnitOfWork


def audit_record(msg: Outgoing) -> AuditRecord | None:
    """The audit record of an outgoing message, or None if it is not audited."""
    payload = msg.payload
    if isinstance(payload, ev.OrderStateChanged):
        rfq_id = payload.rfq_id
    elif isinstance(payload, ev.QuoteRecorded):
        rfq_id = payload.quote.rfq_id
    elif isinstance(payload, ev.QuoteWithdrawalRecorded):
        rfq_id = payload.withdrawal.rfq_id
    else:
        return None
    return AuditRecord(
        rfq_id=rfq_id,
        event_type=msg.type,
        occurred_at=msg.occurred_at,
        producer=msg.producer,
        event_id=msg.event_id,
        correlation_id=msg.correlation_id,
        causation_id=msg.causation_id,
        party=payload.requester,
        # The proto3 JSON mapping: every field present, names as in proto/, int64 and
        # decimals as strings, timestamps in RFC 3339; a standard auditors can read.
        payload=MessageToDict(
            payload, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
        ),
    )


class AuditedUnitOfWork(UnitOfWork):
    orders: OrderRepository

    def bind(self, conn: AsyncConnection) -> None:
        self.orders = OrderRepository(conn)

    async def before_commit(self, outgoing: Sequence[Outgoing]) -> None:
        records = [r for r in map(audit_record, outgoing) if r is not None]
        await AuditLog(self.conn).append(records)

    def after_commit(self, outgoing: Sequence[Outgoing]) -> None:
        count_committed(m.payload for m in outgoing)
