"""Named points in the code where a test makes the process crash or fail, to prove
that every step of a deal survives a crash or a failure right there.

`OTC_FAILPOINTS` switches them on, e.g. `order_core.accept.after_freeze=crash` or
`settlement.book.before=raise:3`, several separated by commas:

- `crash` ends the process at once with `os._exit` (as kill -9 would: no cleanup,
  no flush, open transactions rolled back by the database);
- `raise` raises `FailpointError`, a transient error, as a database or network
  blip would, so the caller's retry path runs.

Each fires the first time its point is reached, or its first N times with `:N`.
With the variable unset, `hit` is one dict lookup on an empty dict. Unknown names
are refused at start-up, so a misspelt failpoint can never make a test pass by
not firing; production refuses failpoints altogether.

With `OTC_ENV=test`, a running service also takes them on its ops port
(`PUT /failpoints` with the same text), so a test arms one without a restart.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

from otc.errors import TransientError

# Every failpoint the code has; the kill-at-every-step test goes through all of them.
POINTS: dict[str, str] = {
    "order_core.accept.after_take": "the quote was taken in Redis, no credit frozen yet",
    "order_core.accept.after_freeze": "credit frozen, the order not yet pending",
    "order_core.confirm.after_commit": "credit committed, the order not yet confirmed",
    "order_core.uow.before_commit": "an order_core transaction with events, about to commit",
    "order_core.uow.after_commit": "an order_core transaction committed, its events unpublished",
    "settlement.book.before": "a confirmed trade about to be booked",
    "settlement.book.after": "a trade booked, the transaction not yet committed",
    "settlement.uow.after_commit": "a trade booked and committed, its outcome not yet published",
    "rfq_service.uow.after_commit": "the edge wrote a command, not yet published",
}

CRASH_EXIT_CODE = 137  # what a shell reports for a process killed by SIGKILL
ENV = "OTC_FAILPOINTS"


class FailpointError(TransientError):
    code = "failpoint"


@dataclass
class _Armed:
    action: str
    remaining: int


def parse(spec: str) -> dict[str, _Armed]:
    armed: dict[str, _Armed] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, sep, action = item.partition("=")
        action, _, count = action.partition(":")
        if not sep or name not in POINTS:
            raise ValueError(f"unknown failpoint {name!r} in {ENV}; known: {', '.join(POINTS)}")
        if action not in ("crash", "raise"):
            raise ValueError(f"failpoint {name}: action must be crash or raise, not {action!r}")
        if count and (not count.isdigit() or int(count) < 1):
            raise ValueError(f"failpoint {name}: count must be a positive integer, not {count!r}")
        armed[name] = _Armed(action, int(count or 1))
    return armed


def _from_environment() -> dict[str, _Armed]:
    spec = os.environ.get(ENV, "")
    if spec and os.environ.get("OTC_ENV") == "production":
        raise RuntimeError(f"{ENV} is for tests; it is refused when OTC_ENV=production")
    return parse(spec)


_ARMED = _from_environment()


def hit(name: str) -> None:
    """Fires the failpoint `name` if a test armed it; otherwise does nothing."""
    if not _ARMED:
        return
    armed = _ARMED.get(name)
    if armed is None or armed.remaining <= 0:
        return
    armed.remaining -= 1
    if armed.action == "crash":
        sys.stderr.write(f"failpoint {name}: crashing\n")
        sys.stderr.flush()
        os._exit(CRASH_EXIT_CODE)
    raise FailpointError(f"failpoint {name} fired")


def armable_at_runtime() -> bool:
    return os.environ.get("OTC_ENV") == "test"


def armed() -> list[str]:
    return [f"{name}={a.action}:{a.remaining}" for name, a in _ARMED.items() if a.remaining]


def arm(spec: str) -> None:
    """Arms failpoints in this process (in-process tests); `disarm` undoes it."""
    _ARMED.update(parse(spec))


def disarm() -> None:
    _ARMED.clear()
