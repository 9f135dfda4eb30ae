"""The credit service run in-process on a free port against the session's Postgres,
and a real grpc.aio channel to it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest

from otc.contracts import risk_limits_pb2_grpc as pb_grpc
from otc.infra.platform import Endpoints
from otc.infra.processes import free_port
from otc.service import Service
from otc.settings import Settings
from risk_limits.bootstrap import build


@dataclass(frozen=True)
class Running:
    service: Service
    target: str


def risk_settings(endpoints: Endpoints, port: int) -> Settings:
    return Settings(env="test", database_url=endpoints.database_url, risk_grpc_port=port)


@pytest.fixture(scope="package")
async def risk(endpoints: Endpoints) -> AsyncIterator[Running]:
    port = free_port()
    service = build(risk_settings(endpoints, port))
    await service.start()
    sweeper = asyncio.create_task(service.run())
    try:
        yield Running(service, f"127.0.0.1:{port}")
    finally:
        await service.stop()
        await sweeper
        await service.close()


@pytest.fixture(scope="package")
async def channel(risk: Running) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(risk.target) as chan:
        yield chan


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> pb_grpc.RiskLimitsAsyncStub:
    return pb_grpc.RiskLimitsStub(channel)
