"""Telling order_core about a test's RFQ, as the edge does, so the quotes the test
makes are recorded like any other instead of being held up on their partition as
quotes for an RFQ that has not arrived yet (which would stall other tests)."""

from __future__ import annotations

from otc.bus.producer import Publisher
from otc.bus.topics import ORDER_COMMANDS
from otc.contracts import events_pb2


async def announce(publisher: Publisher, rfq: events_pb2.RfqRequested) -> None:
    full = events_pb2.RfqRequested()
    full.CopyFrom(rfq)
    full.requester = full.requester or "TRADER-A"  # the makers' copy hides it when anonymous
    await publisher.publish(ORDER_COMMANDS, rfq.rfq_id, full, correlation_id=rfq.rfq_id)
