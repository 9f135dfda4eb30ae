"""kill -9 at every step of a deal: for each named failpoint, RFQs run through the
real platform, the service holding that point crashes right there (the failpoint
ends the process with `os._exit`, as SIGKILL would), it is restarted, and then
every RFQ must end final and every invariant hold, across all services."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from otc import failpoints
from tests.e2e_helpers import base_url, token_for
from tests.faults.platform import SERVICE_OF_PACKAGE, Isolated, exit_code
from tests.faults.traffic import Traffic

DEALS = 3
MAX_DEALS = 4 * DEALS
# Past this, a pending order or a frozen reservation is a break: the last look is
# 3 s on the test platform, and nothing in flight is older once all RFQs are final.
CHECK_GRACE = timedelta(seconds=5)


@pytest.mark.parametrize("point", list(failpoints.POINTS))
async def test_a_crash_at_this_step_is_recovered_with_every_invariant_intact(
    isolated: Isolated, point: str
) -> None:
    platform = isolated.platform
    service = SERVICE_OF_PACKAGE[point.split(".", 1)[0]]
    token = token_for(platform, "TRADER-A")
    async with Traffic(base_url(platform), token, isolated.database_url) as traffic:
        await isolated.arm(service, f"{point}=crash")
        deals = [asyncio.create_task(traffic.deal()) for _ in range(DEALS)]
        code = None
        deadline = asyncio.get_running_loop().time() + 90
        while code is None and asyncio.get_running_loop().time() < deadline:
            code = await exit_code(platform.children[service], timeout=2)
            # A deal may end on another path (its quote expired before the accept
            # came, on a slow machine) and never pass the point: deal again.
            if code is None and all(d.done() for d in deals) and len(deals) < MAX_DEALS:
                deals += [asyncio.create_task(traffic.deal()) for _ in range(DEALS)]
        assert code is not None, f"{service} never reached {point} in {len(deals)} deals"
        assert code == failpoints.CRASH_EXIT_CODE, f"{service} exited {code}, not at {point}"
        await platform.restart(service, timeout=120)
        await asyncio.gather(*deals)
        final = await traffic.finish()

    assert len(final) == len(deals)
    breaks = await isolated.check(CHECK_GRACE)
    assert breaks == [], "\n".join(f"{b.invariant}: {b.detail}" for b in breaks)
