"""The fault suites' own platform, shared by the crash and soak tests of this package."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.faults.platform import Isolated, isolated_platform


@pytest.fixture(scope="package")
async def isolated(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Isolated]:
    async with isolated_platform(tmp_path_factory.mktemp("faults")) as running:
        yield running
