"""The maker's side of the shared quote book."""

from __future__ import annotations

from redis.asyncio import Redis

from otc.quote_book import PutResult, QuoteBook, StoredQuote


class MakerQuotes:
    def __init__(self, redis: Redis) -> None:
        self._book = QuoteBook(redis)

    async def put(self, quote: StoredQuote) -> PutResult:
        return await self._book.put(quote)
