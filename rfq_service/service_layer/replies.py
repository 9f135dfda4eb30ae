"""Request/reply over Kafka: the edge publishes a command and waits, bounded, for
order_core's `CommandResult` whose command id matches."""

from __future__ import annotations

import asyncio
import contextlib

from otc.contracts import events_pb2 as ev


class ReplyRegistry:
    def __init__(self) -> None:
        self._waiting: dict[str, asyncio.Future[ev.CommandResult]] = {}

    def expect(self, command_id: str) -> asyncio.Future[ev.CommandResult]:
        future: asyncio.Future[ev.CommandResult] = asyncio.get_running_loop().create_future()
        self._waiting[command_id] = future
        return future

    def forget(self, command_id: str) -> None:
        self._waiting.pop(command_id, None)

    def resolve(self, result: ev.CommandResult) -> None:
        future = self._waiting.pop(result.command_id, None)
        if future is not None and not future.done():
            future.set_result(result)

    async def wait(
        self, command_id: str, future: asyncio.Future[ev.CommandResult], timeout: float
    ) -> ev.CommandResult | None:
        try:
            with contextlib.suppress(TimeoutError):
                return await asyncio.wait_for(future, timeout)
            return None
        finally:
            self.forget(command_id)
