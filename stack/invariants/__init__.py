"""The platform's cross-service invariants, and the checker that proves them.

Each service keeps its own books in its own schema: order_core the orders,
risk_limits the credit lines and reservations, settlement the trades and the
ledger, order_core again the audit trail. Each is consistent by itself; this
checker proves they agree with each other, reading all of them in one snapshot:
no order stuck past its deadline, every line's frozen and used credit equal to
what its reservations hold, every live reservation owned by its order and every
order standing on its reservation, every confirmed trade booked once, the ledger
balanced and the audit chain intact. Operators run it as `otc check`, the
end-of-day batch adds its breaks to the report, and tests call it after traffic.

    snapshot.py   the rows read and the breaks answered (plain values)
    reading.py    the SQL: one REPEATABLE READ READ ONLY transaction
    orders.py     invariants across services: deadlines, reservations, bookings
    ledgers.py    invariants within one service's books: credit, ledger, audit
    rules.py      all of them over one snapshot
    check.py      check_invariants: read, then judge
"""

from .check import check_database, check_invariants
from .snapshot import Break

__all__ = ["Break", "check_database", "check_invariants"]
