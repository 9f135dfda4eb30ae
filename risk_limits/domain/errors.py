"""The credit service's refusals, as subclasses of the platform taxonomy (otc.errors).

    Conflict
    ├── CreditRefused             no bilateral line, or not enough available credit
    ├── ReservationIdReused       one id, two different requests
    ├── ReleasedBeforeFrozen      a Freeze arriving after its own Release
    ├── IllegalTransition         e.g. Commit of a RELEASED reservation (the kernel's,
    │                             shared with the order lifecycle)
    ├── ReservationExpired        a Commit after the reservation's deadline
    ├── CurrencyChangeRefused     a line's currency changed while it carries credit
    ├── MissingReferenceRate      a conversion needs a rate no admin has set
    └── RfqAlreadyCommitted       a second committed reservation for one RFQ
    NotFound
    ├── ReservationNotFound
    ├── CreditLineNotFound
    └── UnknownParty              a Freeze naming a party without a gross line
    ValidationFailed              malformed request (amounts, currencies, ids)

ReservationIdReused answers ALREADY_EXISTS and every other Conflict
FAILED_PRECONDITION (the request was well formed, the state said no), following
the registry in otc.errors.
"""

from __future__ import annotations

from otc.errors import Conflict, NotFound
from otc.errors import IllegalTransition as IllegalTransition


class CreditRefused(Conflict):
    code = "credit_refused"


class ReservationIdReused(Conflict):
    code = "reservation_id_reused"
    grpc_code = "ALREADY_EXISTS"


class ReleasedBeforeFrozen(Conflict):
    code = "released_before_frozen"


class ReservationExpired(Conflict):
    code = "reservation_expired"


class CurrencyChangeRefused(Conflict):
    code = "currency_change_refused"


class MissingReferenceRate(Conflict):
    code = "missing_reference_rate"


class RfqAlreadyCommitted(Conflict):
    code = "rfq_already_committed"


class ReservationNotFound(NotFound):
    pass


class CreditLineNotFound(NotFound):
    pass


class UnknownParty(NotFound):
    code = "unknown_party"
