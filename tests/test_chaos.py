"""`otc chaos` without a platform: the verdict on what the traders saw, and that only
our services are ever signalled."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from otc.settings import Settings
from stack.chaos import Chaos, Report, Rfq, drill
from stack.chaos.kills import kill_service, kill_services, read_services
from stack.invariants import Break


def _report(
    *rfqs: Rfq, breaks: list[Break] | None = None, unanswered: Counter[str] | None = None
) -> Report:
    given_up = unanswered or Counter()
    return Report(7, list(rfqs), Counter({"order-core": 2}), given_up, breaks=breaks)


def test_a_run_where_everything_ended_and_the_books_agree_passes() -> None:
    report = _report(
        Rfq("r1", "SETTLED", accepted=True, trade_id="t1"),
        Rfq("r2", "SETTLEMENT_FAILED", accepted=True, trade_id="t2"),
        Rfq("r3", "EXPIRED", accepted=True),  # the maker declined the last look
        Rfq("r4", "EXPIRED"),
        Rfq("r5", "CANCELLED"),
        breaks=[],
    )

    assert report.problems() == []
    lines = report.lines()
    assert lines[-1] == "verdict: OK"
    assert "RFQs created 5, accepted 3: settled 1, settlement failed 1, expired 2" in lines[1]
    assert "kills 2: order-core 2" in lines


@pytest.mark.parametrize(
    ("rfq", "problem"),
    [
        (Rfq("r1", "QUOTED"), "r1 not final: QUOTED"),
        (Rfq("r1", "CONFIRMED", accepted=True, trade_id="t1"), "r1 not final: CONFIRMED"),
        (Rfq("r1", "EXPIRED", accepted=True, trade_id="t1"), "r1 accepted, ended EXPIRED"),
        (Rfq("r1", "REJECTED", accepted=True), "r1 accepted, ended REJECTED"),
    ],
)
def test_an_rfq_not_final_or_an_accepted_one_lost_fails_the_run(rfq: Rfq, problem: str) -> None:
    report = _report(rfq, breaks=[])

    assert report.problems() == [problem]
    assert report.lines()[-1] == "verdict: FAILED"


def test_breaks_and_an_unchecked_database_fail_the_run() -> None:
    broken = _report(breaks=[Break("ledger_unbalanced", "USD off by 1")])
    assert broken.problems() == ["ledger_unbalanced: USD off by 1"]
    assert "invariant breaks: 1" in broken.lines()

    assert _report(breaks=None).problems() == ["invariants not checked"]


def test_requests_given_up_are_reported_as_downtime_not_as_a_broken_guarantee() -> None:
    report = _report(breaks=[], unanswered=Counter({"503 unavailable": 2, "no connection": 1}))

    assert report.problems() == []
    lines = report.lines()
    assert "requests given up after a minute of retries: 503 unavailable 2, no connection 1" in (
        lines
    )
    assert lines[-1] == "verdict: OK"


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        proc.kill()
        proc.wait(5)


def _start(started: list[subprocess.Popen[bytes]], *argv: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", *argv])
    started.append(proc)
    return proc


def test_only_a_process_started_as_one_of_our_services_is_killed(
    processes: list[subprocess.Popen[bytes]],
) -> None:
    service = _start(processes, "stack.cli", "price-feed")  # as the platform starts one
    stranger = _start(processes, "postgres")

    assert not kill_service(stranger.pid)
    assert kill_service(service.pid)

    assert service.wait(5) == -9
    assert stranger.poll() is None


@pytest.mark.parametrize(
    ("seed", "expected", "spared"),
    [(1, {"svc-1": 1, "svc-0": 1}, 0), (3, {"svc-1": 1}, 1)],  # seed 3 picks svc-1 twice
)
async def test_kills_follow_the_seed_and_never_signal_a_dead_pid_again(
    processes: list[subprocess.Popen[bytes]],
    tmp_path: Path,
    seed: int,
    expected: dict[str, int],
    spared: int,
) -> None:
    services = {f"svc-{n}": _start(processes, "stack.cli", f"svc-{n}").pid for n in range(4)}
    services_file = tmp_path / "services.json"
    services_file.write_text(json.dumps(services))
    said: list[str] = []

    plan = Chaos(kills=2, interval_s=0.01, seed=seed)
    killed = await kill_services(services_file, random.Random(seed), plan, said.append)

    assert killed == Counter(expected)
    assert sum("gone already" in line for line in said) == spared
    for name in expected:
        assert f"kill -9 {name} (pid {services[name]})" in said


def test_a_missing_or_garbled_services_file_lists_nothing(tmp_path: Path) -> None:
    assert read_services(tmp_path / "absent.json") == {}
    (tmp_path / "garbled.json").write_text("{")
    assert read_services(tmp_path / "garbled.json") == {}


async def test_without_a_running_otc_up_the_drill_refuses_to_start(tmp_path: Path) -> None:
    said: list[str] = []
    code = await drill(
        Settings(state_dir=tmp_path),
        kills=1,
        interval_s=1,
        seed=1,
        rfqs_per_s=1,
        database_url="postgresql://127.0.0.1:1/none",
        mint=lambda party: party,
        say=said.append,
    )

    assert code == 2
    assert "no `otc up` runs here" in said[0]
