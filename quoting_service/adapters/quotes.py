"""The maker's side of the shared quote book.

Storing goes through `QuoteBook`. Before pricing, the runtime looks up what it
already did for the RFQ, so a redelivered RFQ republishes the stored quote (same
id, same prices, same event) instead of repricing it, and a quote already taken by
an accept is never put back.
"""

from __future__ import annotations

from enum import Enum

from redis.asyncio import Redis

from otc.quote_book import QuoteBook, StoredQuote, quote_key, taken_key


class Prior(Enum):
    NONE = "none"  # never quoted, or the quote expired or was withdrawn
    LIVE = "live"
    TAKEN = "taken"


class MakerQuotes:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._book = QuoteBook(redis)

    async def prior(self, rfq_id: str, quote_id: str) -> tuple[Prior, StoredQuote | None]:
        keys = quote_key(rfq_id, quote_id), taken_key(rfq_id, quote_id)
        live, taken = await self._redis.mget(keys)
        if taken is not None:
            return Prior.TAKEN, None
        if live is not None:
            return Prior.LIVE, StoredQuote.from_json(live)
        return Prior.NONE, None

    async def put(self, quote: StoredQuote) -> None:
        await self._book.put(quote)
