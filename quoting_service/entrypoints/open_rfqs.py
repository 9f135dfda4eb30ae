"""The RFQs this gateway delivered to its bots, which are the only ones a bot may quote on."""

from __future__ import annotations

from collections import OrderedDict

from otc.clock import Clock
from quoting_service.service_layer.desk import Refused
from quoting_service.strategy import RfqView

RFQS_KEPT = 100_000


class OpenRfqs:
    """RFQs delivered to bots here, by id, with the makers they were addressed to,
    kept until they expire: a bot quotes only on those."""

    def __init__(self, clock: Clock, limit: int = RFQS_KEPT) -> None:
        self._clock = clock
        self._limit = limit
        self._rfqs: OrderedDict[str, tuple[RfqView, frozenset[str]]] = OrderedDict()

    def add(self, rfq: RfqView, makers: frozenset[str]) -> None:
        self._rfqs[rfq.rfq_id] = (rfq, makers)
        now = self._clock.now()
        # RFQs arrive roughly in expiry order, so the expired ones are at the front
        while self._rfqs and (
            len(self._rfqs) > self._limit or next(iter(self._rfqs.values()))[0].expires_at <= now
        ):
            self._rfqs.popitem(last=False)

    def get(self, rfq_id: str, maker: str) -> RfqView:
        found = self._rfqs.get(rfq_id)
        if found is None or maker not in found[1] or found[0].expires_at <= self._clock.now():
            raise Refused(f"no open RFQ {rfq_id} addressed to you", code="unknown_rfq")
        return found[0]
