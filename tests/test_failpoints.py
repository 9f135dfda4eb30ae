"""Failpoints: armed only by the variable naming them, firing as many times as
asked, crashing the process for real, and refusing names the code does not have."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest
from starlette.applications import Starlette

from otc import failpoints
from otc.errors import is_transient
from otc.service import ops_routes


def test_an_unarmed_failpoint_does_nothing() -> None:
    for name in failpoints.POINTS:
        failpoints.hit(name)


def test_raise_fires_as_many_times_as_asked_and_is_transient() -> None:
    failpoints.arm("settlement.book.before=raise:2")
    try:
        for _ in range(2):
            with pytest.raises(failpoints.FailpointError) as fired:
                failpoints.hit("settlement.book.before")
            assert is_transient(fired.value)
        failpoints.hit("settlement.book.before")
        failpoints.hit("settlement.book.after")
    finally:
        failpoints.disarm()


@pytest.mark.parametrize(
    ("spec", "complaint"),
    [
        ("order_core.accept.after_tkae=crash", "unknown failpoint"),
        ("order_core.accept.after_take", "unknown failpoint"),
        ("order_core.accept.after_take=explode", "action must be crash or raise"),
        ("order_core.accept.after_take=raise:0", "count must be a positive integer"),
    ],
)
def test_a_misspelt_failpoint_is_refused(spec: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        failpoints.parse(spec)


def _run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_crash_ends_the_process_at_once_as_kill_9_would() -> None:
    done = _run(
        "from otc import failpoints\n"
        "failpoints.hit('order_core.accept.after_freeze')\n"
        "print('survived')\n",
        OTC_FAILPOINTS="order_core.accept.after_freeze=crash",
    )
    assert done.returncode == failpoints.CRASH_EXIT_CODE
    assert "survived" not in done.stdout
    assert "failpoint order_core.accept.after_freeze: crashing" in done.stderr


def test_production_refuses_failpoints() -> None:
    done = _run(
        "import otc.failpoints",
        OTC_FAILPOINTS="order_core.accept.after_freeze=crash",
        OTC_ENV="production",
    )
    assert done.returncode != 0
    assert "refused when OTC_ENV=production" in done.stderr


def _ops_client(monkeypatch: pytest.MonkeyPatch, env: str) -> httpx.AsyncClient:
    monkeypatch.setenv("OTC_ENV", env)
    app = Starlette(routes=ops_routes(lambda: True))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ops")


async def test_a_test_service_arms_and_disarms_failpoints_on_its_ops_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with _ops_client(monkeypatch, "test") as ops:
        try:
            armed = await ops.put("/failpoints", content="settlement.book.before=raise:2")
            assert armed.status_code == 200
            assert armed.json() == {"armed": ["settlement.book.before=raise:2"]}
            with pytest.raises(failpoints.FailpointError):
                failpoints.hit("settlement.book.before")

            misspelt = await ops.put("/failpoints", content="settlement.book.befor=crash")
            assert misspelt.status_code == 400
            assert misspelt.json()["error"]["code"] == "invalid_failpoint"
            assert "unknown failpoint" in misspelt.json()["error"]["message"]

            cleared = await ops.delete("/failpoints")
            assert cleared.json() == {"armed": []}
            failpoints.hit("settlement.book.before")
        finally:
            failpoints.disarm()


async def test_outside_tests_the_ops_port_has_no_failpoints(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with _ops_client(monkeypatch, "development") as ops:
        answer = await ops.put("/failpoints", content="settlement.book.before=crash")
        assert answer.status_code == 404
    failpoints.hit("settlement.book.before")
