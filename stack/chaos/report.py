"""What a chaos run saw, and the verdict on it: plain values, no I/O."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from stack.invariants import Break

FINAL = frozenset({"SETTLED", "SETTLEMENT_FAILED", "EXPIRED", "CANCELLED", "REJECTED"})
SETTLEMENT_ENDS = frozenset({"SETTLED", "SETTLEMENT_FAILED"})
# how an accepted RFQ ends when it made no trade: its maker declined the last look,
# or did not answer in time, and the RFQ closed afterwards
DECLINED_ENDS = frozenset({"EXPIRED", "CANCELLED"})


@dataclass(frozen=True, slots=True)
class Chaos:
    kills: int = 20
    interval_s: float = 3.0
    seed: int = 0
    rfqs_per_s: float = 2.0


@dataclass(slots=True)
class Rfq:
    rfq_id: str
    status: str  # the last one the edge showed
    accepted: bool = False  # the edge took our accept (200 or 202)
    trade_id: str | None = None

    def ended_well(self) -> bool:
        if self.status not in FINAL:
            return False
        if not self.accepted or self.status in SETTLEMENT_ENDS:
            return True
        return self.status in DECLINED_ENDS and self.trade_id is None


@dataclass
class Report:
    seed: int
    rfqs: list[Rfq]
    kills: Counter[str]
    # requests given up after retrying for a minute, by the last answer seen: the
    # platform was unavailable that long (a figure, not a broken guarantee: what
    # those requests may have done is still judged by the RFQs' ends and the books)
    unanswered: Counter[str] = field(default_factory=Counter)
    missed: Counter[str] = field(default_factory=Counter)  # accepts meant, not made: why
    breaks: list[Break] | None = None  # None: the checker could not run

    def problems(self) -> list[str]:
        found = [
            f"{r.rfq_id} {'accepted, ' if r.accepted else ''}ended {r.status}"
            if r.status in FINAL
            else f"{r.rfq_id} not final: {r.status}"
            for r in self.rfqs
            if not r.ended_well()
        ]
        if self.breaks is None:
            found.append("invariants not checked")
        else:
            found += [f"{b.invariant}: {b.detail}" for b in self.breaks]
        return found

    def lines(self) -> list[str]:
        ends = Counter(r.status for r in self.rfqs)
        open_ = sum(n for status, n in ends.items() if status not in FINAL)
        kills = ", ".join(f"{name} {n}" for name, n in sorted(self.kills.items()))
        missed = ", ".join(f"{why} {n}" for why, n in sorted(self.missed.items()))
        breaks = "not checked" if self.breaks is None else str(len(self.breaks))
        gave_up = ", ".join(f"{why} {n}" for why, n in sorted(self.unanswered.items()))
        problems = self.problems()
        return [
            f"seed {self.seed}",
            f"RFQs created {len(self.rfqs)}, accepted {sum(r.accepted for r in self.rfqs)}: "
            f"settled {ends['SETTLED']}, settlement failed {ends['SETTLEMENT_FAILED']}, "
            f"expired {ends['EXPIRED']}, cancelled {ends['CANCELLED']}, "
            f"rejected {ends['REJECTED']}, not final {open_}",
            f"accepts not made: {missed or 'none'}",
            f"kills {self.kills.total()}: {kills or 'none'}",
            f"requests given up after a minute of retries: {gave_up or 'none'}",
            f"invariant breaks: {breaks}",
            *(f"  {problem}" for problem in problems),
            f"verdict: {'FAILED' if problems else 'OK'}",
        ]
