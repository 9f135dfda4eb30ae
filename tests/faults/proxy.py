"""A TCP proxy on 127.0.0.1 that a test can cut, black-hole and restore: the
network failures between a service and its database or broker, made on purpose."""

from __future__ import annotations

import asyncio
import contextlib
from enum import Enum


class Mode(Enum):
    FORWARD = "forward"
    CUT = "cut"  # existing connections dropped, new ones closed at once
    BLACKHOLE = "blackhole"  # connections accepted, nothing ever answered


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.Task[None]] = set()
        self.mode = Mode.FORWARD
        self.port = 0

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def cut(self) -> None:
        self.mode = Mode.CUT
        for link in list(self._links):
            link.cancel()

    def blackhole(self) -> None:
        self.cut()
        self.mode = Mode.BLACKHOLE

    def restore(self) -> None:
        self.mode = Mode.FORWARD

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._links.add(task)
        try:
            if self.mode is Mode.CUT:
                return
            if self.mode is Mode.BLACKHOLE:
                await asyncio.Event().wait()
            up_reader, up_writer = await asyncio.open_connection(*self._target)
            try:
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            finally:
                up_writer.close()
        except (asyncio.CancelledError, ConnectionError):
            pass
        finally:
            self._links.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()
