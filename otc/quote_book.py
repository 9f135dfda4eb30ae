"""Live quotes in Redis: the one shared piece of code that stores, replaces,
withdraws and takes them, so the quoting service and the order core cannot disagree.

A quote lives at `quote:{rfq_id}:<quote_id>` until its `valid_until` (the key
expires then, to the millisecond). Storing is put-if-absent and refuses a quote id
that was already taken, so a redelivered RFQ can neither change a live quote nor
bring back one that was accepted. Taking is one atomic script: it moves the quote
to a `taken:` record owned by the accept command, so one quote is taken at most
once, and the same command taking it again (a redelivered accept) gets the same
quote back. Keys of one RFQ share a hash tag, so the scripts work on a cluster.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from enum import StrEnum

from redis.asyncio import Redis

TAKEN_RECORD_TTL_MS = 24 * 3600 * 1000


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


@dataclass(frozen=True, slots=True)
class PutResult:
    outcome: PutOutcome
    quote: StoredQuote | None  # the live quote after the call (None when taken)
    replaced: str | None = None  # the maker's previous quote id it superseded


class TakeOutcome(StrEnum):
    TAKEN = "taken"
    ALREADY_TAKEN = "already_taken"
    MISSING = "missing"  # expired, withdrawn, replaced or never existed


def quote_key(rfq_id: str, quote_id: str) -> str:
    return f"quote:{{{rfq_id}}}:{quote_id}"


def taken_key(rfq_id: str, quote_id: str) -> str:
    return f"taken:{{{rfq_id}}}:{quote_id}"


def maker_key(rfq_id: str, maker: str) -> str:
    return f"maker-quote:{{{rfq_id}}}:{maker}"


# KEYS: quote key, maker pointer, taken key. ARGV: quote json, valid_until ms,
# quote id, key prefix of this RFQ's quotes. Supersedes the maker's previous quote.
_PUT = """
if redis.call('EXISTS', KEYS[3]) == 1 then
  return {'taken', ''}
end
local existing = redis.call('GET', KEYS[1])
if existing then
  return {'exists', existing}
end
local previous = redis.call('GET', KEYS[2])
if previous and previous ~= ARGV[3] then
  redis.call('DEL', ARGV[4] .. previous)
end
redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[2])
redis.call('SET', KEYS[2], ARGV[3], 'PXAT', ARGV[2])
return {'stored', previous or ''}
"""

# KEYS: quote key, taken key. ARGV: taker (accept command id), taken-record ttl ms.
_TAKE = """
local quote = redis.call('GET', KEYS[1])
if quote then
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[2], ARGV[1] .. '\\n' .. quote, 'PX', ARGV[2])
  return {'taken', quote}
end
local record = redis.call('GET', KEYS[2])
if record then
  local sep = string.find(record, '\\n', 1, true)
  if string.sub(record, 1, sep - 1) == ARGV[1] then
    return {'taken', string.sub(record, sep + 1)}
  end
  return {'already_taken', ''}
end
return {'missing', ''}
"""


class QuoteBook:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._put = redis.register_script(_PUT)
        self._take = redis.register_script(_TAKE)

    async def put(self, quote: StoredQuote) -> PutResult:
        """Stores a quote unless its id is live or was taken; supersedes the maker's
        previous quote on the RFQ."""
        outcome, value = await self._put(
            keys=[
                quote_key(quote.rfq_id, quote.quote_id),
                maker_key(quote.rfq_id, quote.maker),
                taken_key(quote.rfq_id, quote.quote_id),
            ],
            args=[
                quote.to_json(),
                quote.valid_until_ms,
                quote.quote_id,
                quote_key(quote.rfq_id, ""),
            ],
        )
        result = PutOutcome(_text(outcome))
        if result is PutOutcome.TAKEN:
            return PutResult(result, None)
        if result is PutOutcome.EXISTS:
            return PutResult(result, StoredQuote.from_json(value))
        return PutResult(result, quote, _text(value) or None)

    async def take(
        self, rfq_id: str, quote_id: str, taker: str
    ) -> tuple[TakeOutcome, StoredQuote | None]:
        outcome, raw = await self._take(
            keys=[quote_key(rfq_id, quote_id), taken_key(rfq_id, quote_id)],
            args=[taker, TAKEN_RECORD_TTL_MS],
        )
        result = TakeOutcome(_text(outcome))
        return result, StoredQuote.from_json(raw) if result is TakeOutcome.TAKEN else None

    async def taker(self, rfq_id: str, quote_id: str) -> str | None:
        """Who took the quote (the accept command's id), if anyone did."""
        record = await self._redis.get(taken_key(rfq_id, quote_id))
        if record is None:
            return None
        return _text(record).split("\n", 1)[0]

    async def withdraw(self, rfq_id: str, quote_id: str) -> bool:
        return bool(await self._redis.delete(quote_key(rfq_id, quote_id)))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
