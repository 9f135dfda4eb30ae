"""Live quotes in Redis: the one shared piece of code that stores, replaces,
withdraws and takes them, so the quoting service and the order core cannot disagree.

Every operation is one Lua script, so each is atomic against all the others: of a
replace (or a withdraw) racing a take, exactly one happens and the other is told
why it cannot. Per quote there are:

- `quote:{rfq_id}:<quote_id>`, the live quote, expiring at its `valid_until`;
- `fate:{rfq_id}:<quote_id>`, its owner and what became of it (live, taken,
  withdrawn, replaced), kept for a while after the quote is gone, so a refused
  take says why and a quote id that was withdrawn, replaced, taken or expired
  never comes back (a redelivered RFQ cannot revive it);
- `taken:{rfq_id}:<quote_id>`, the accept command that took it and the quote, so
  the same command taking it again (a redelivered accept) gets the same answer.

Per maker, `maker-quote:{rfq_id}:<maker>` names its one live quote on an RFQ (a
second one must replace it), `live-quotes:<maker>` indexes all its live quotes, and
`halted:<maker>` (market-maker protection or a kill switch) refuses new quotes
until the maker is reset. `withdraw_all` reads the index and withdraws every quote
in one script, so no quote survives a kill switch and none is stored after it.
Because the scripts touch an RFQ's keys together with its maker's, the book needs
one Redis primary (as deployed), not a sharded cluster.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from enum import StrEnum

from redis.asyncio import Redis

from otc import quote_scripts as lua
from otc.quote_scripts import (
    FATE_PREFIX,
    MAKER_PREFIX,
    QUOTE_PREFIX,
    fate_key,
    halt_key,
    index_member,
    maker_key,
    taken_key,
)
from otc.quote_scripts import live_key as live_key
from otc.quote_scripts import quote_key as quote_key

TAKEN_RECORD_TTL_MS = 24 * 3600 * 1000
# How long a withdrawn, replaced or expired quote is remembered: long enough that
# a late accept is refused with the precise reason; after it, "unknown".
TOMBSTONE_TTL_MS = 3600 * 1000


@dataclass(frozen=True, slots=True)
class StoredQuote:
    rfq_id: str
    quote_id: str
    maker: str
    instrument: str
    bid_px: str
    offer_px: str
    quantity: str
    valid_until_ms: int

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> StoredQuote:
        return cls(**json.loads(raw))


class PutOutcome(StrEnum):
    STORED = "stored"
    EXISTS = "exists"  # this quote id is live already: the stored quote stands
    TAKEN = "taken"  # this quote id was accepted: it never comes back
    GONE = "gone"  # this quote id was withdrawn, replaced or expired: nor does it
    QUOTING = "quoting"  # the maker has another live quote on the RFQ: replace that
    HALTED = "halted"  # the maker is halted (protection or kill switch) until reset


@dataclass(frozen=True, slots=True)
class PutResult:
    outcome: PutOutcome
    quote: StoredQuote | None = None  # the live quote after the call, if any
    detail: str = ""  # the other live quote id (QUOTING) or why it is halted


class Fate(StrEnum):
    """Why a quote is not live (any more), or LIVE once a take was given back."""

    LIVE = "live"
    TAKEN = "taken"
    EXPIRED = "expired"
    WITHDRAWN = "withdrawn"
    REPLACED = "replaced"
    UNKNOWN = "unknown"  # never stored here, or gone for longer than the tombstones last


class TakeOutcome(StrEnum):
    TAKEN = "taken"
    ALREADY_TAKEN = "already_taken"
    EXPIRED = "expired"
    WITHDRAWN = "withdrawn"
    REPLACED = "replaced"
    UNKNOWN = "unknown"


class ChangeOutcome(StrEnum):
    """What a maker's replace or withdraw did."""

    DONE = "done"
    NOT_FOUND = "not_found"  # no quote of this maker by that id
    NOT_LIVE = "not_live"  # its quote, but no longer live: `fate` says why
    HALTED = "halted"


@dataclass(frozen=True, slots=True)
class ChangeResult:
    outcome: ChangeOutcome
    quote: StoredQuote | None = None  # the quote withdrawn or replaced
    fate: Fate | None = None
    detail: str = ""


class QuoteBook:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._put = redis.register_script(lua.PUT)
        self._replace = redis.register_script(lua.REPLACE)
        self._withdraw = redis.register_script(lua.WITHDRAW)
        self._take = redis.register_script(lua.TAKE)
        self._withdraw_all = redis.register_script(lua.WITHDRAW_ALL)
        self._give_back = redis.register_script(lua.GIVE_BACK)

    async def put(self, quote: StoredQuote) -> PutResult:
        """Stores a new quote. Refused while the maker is halted, when the maker
        already has another live quote on the RFQ, or when this id was ever used
        and is not live; the same live id again is EXISTS with the stored quote."""
        outcome, value = await self._put(
            keys=[
                quote_key(quote.rfq_id, quote.quote_id),
                taken_key(quote.rfq_id, quote.quote_id),
                fate_key(quote.rfq_id, quote.quote_id),
                maker_key(quote.rfq_id, quote.maker),
                live_key(quote.maker),
                halt_key(quote.maker),
            ],
            args=[
                quote.to_json(),
                quote.quote_id,
                index_member(quote.rfq_id, quote.quote_id),
                quote.maker,
                quote.valid_until_ms,
                quote.valid_until_ms + TOMBSTONE_TTL_MS,
            ],
        )
        result = PutOutcome(_text(outcome))
        if result is PutOutcome.STORED:
            return PutResult(result, quote)
        if result is PutOutcome.EXISTS:
            return PutResult(result, StoredQuote.from_json(value))
        return PutResult(result, None, _text(value))

    async def replace(self, old_quote_id: str, quote: StoredQuote) -> ChangeResult:
        """Atomically supersedes the maker's live quote `old_quote_id` with `quote`
        (same RFQ, same maker, a new id): afterwards the old one cannot be taken."""
        rfq_id, maker = quote.rfq_id, quote.maker
        outcome, value, old = await self._replace(
            keys=[
                quote_key(rfq_id, old_quote_id),
                fate_key(rfq_id, old_quote_id),
                maker_key(rfq_id, maker),
                live_key(maker),
                halt_key(maker),
                quote_key(rfq_id, quote.quote_id),
                fate_key(rfq_id, quote.quote_id),
            ],
            args=[
                maker,
                old_quote_id,
                index_member(rfq_id, old_quote_id),
                quote.to_json(),
                quote.quote_id,
                index_member(rfq_id, quote.quote_id),
                quote.valid_until_ms,
                quote.valid_until_ms + TOMBSTONE_TTL_MS,
                TOMBSTONE_TTL_MS,
            ],
        )
        return _change(outcome, value, old)

    async def withdraw(self, rfq_id: str, quote_id: str, maker: str) -> ChangeResult:
        """Withdraws the maker's live quote; another maker's quote is NOT_FOUND."""
        outcome, value, quote = await self._withdraw(
            keys=[
                quote_key(rfq_id, quote_id),
                fate_key(rfq_id, quote_id),
                maker_key(rfq_id, maker),
                live_key(maker),
            ],
            args=[maker, quote_id, index_member(rfq_id, quote_id), TOMBSTONE_TTL_MS],
        )
        return _change(outcome, value, quote)

    async def take(
        self, rfq_id: str, quote_id: str, *, taker: str, maker: str
    ) -> tuple[TakeOutcome, StoredQuote | None]:
        """Takes a live quote for the accept command `taker`; `maker` is the quote's
        maker, whose index of live quotes loses it."""
        outcome, raw = await self._take(
            keys=[
                quote_key(rfq_id, quote_id),
                taken_key(rfq_id, quote_id),
                fate_key(rfq_id, quote_id),
                maker_key(rfq_id, maker),
                live_key(maker),
            ],
            args=[taker, TAKEN_RECORD_TTL_MS, quote_id, index_member(rfq_id, quote_id)],
        )
        result = TakeOutcome(_text(outcome))
        return result, StoredQuote.from_json(raw) if result is TakeOutcome.TAKEN else None

    async def give_back(self, rfq_id: str, quote_id: str, *, taker: str, maker: str) -> Fate | None:
        """Undoes `taker`'s take of a quote whose accept could not go through: the
        quote is live again as it was, unless it expired, its maker was halted or
        quoted anew meanwhile (then that is its fate). None when `taker` holds no
        take of it (never took it, or gave it back already)."""
        outcome = await self._give_back(
            keys=[
                quote_key(rfq_id, quote_id),
                taken_key(rfq_id, quote_id),
                fate_key(rfq_id, quote_id),
                maker_key(rfq_id, maker),
                live_key(maker),
                halt_key(maker),
            ],
            args=[taker, quote_id, index_member(rfq_id, quote_id), TOMBSTONE_TTL_MS],
        )
        result = _text(outcome)
        if result == "not_taken":
            return None
        return Fate.LIVE if result == "restored" else Fate(result)

    async def taker(self, rfq_id: str, quote_id: str) -> str | None:
        """Who took the quote (the accept command's id), if anyone did."""
        record = await self._redis.get(taken_key(rfq_id, quote_id))
        if record is None:
            return None
        return _text(record).split("\n", 1)[0]

    async def withdraw_all(self, maker: str, *, halt: str | None = None) -> list[StoredQuote]:
        """Withdraws every live quote of the maker at once and, given a reason,
        halts it: no quote is stored for it again until `resume`."""
        withdrawn = await self._withdraw_all(
            keys=[live_key(maker), halt_key(maker)],
            args=[maker, halt or "", TOMBSTONE_TTL_MS, QUOTE_PREFIX, FATE_PREFIX, MAKER_PREFIX],
        )
        return [StoredQuote.from_json(raw) for raw in withdrawn]

    async def halted(self, maker: str) -> str | None:
        """Why the maker is halted, or None when it may quote."""
        reason = await self._redis.get(halt_key(maker))
        return None if reason is None else _text(reason)

    async def resume(self, maker: str) -> bool:
        """Lifts a halt; False if the maker was not halted."""
        return bool(await self._redis.delete(halt_key(maker)))

    async def live(self, maker: str, now_ms: int) -> list[tuple[str, str]]:
        """(rfq_id, quote_id) of the maker's quotes still valid at `now_ms`."""
        members = await self._redis.zrangebyscore(live_key(maker), now_ms, "+inf")
        pairs = [_text(m).split("\n", 1) for m in members if isinstance(m, bytes | str)]
        return [(rfq_id, quote_id) for rfq_id, quote_id in pairs]


def _change(outcome: bytes | str, value: bytes | str, quote: bytes | str) -> ChangeResult:
    result = ChangeOutcome(_text(outcome))
    if result is ChangeOutcome.DONE:
        return ChangeResult(result, StoredQuote.from_json(quote))
    if result is ChangeOutcome.NOT_LIVE:
        return ChangeResult(result, fate=Fate(_text(value)))
    return ChangeResult(result, detail=_text(value))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
