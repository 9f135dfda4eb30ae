"""`free_port` hands out ports no outgoing connection can take first."""

from __future__ import annotations

import socket

import pytest

from stack.infra import processes
from stack.infra.processes import free_port


def test_ports_are_below_the_ephemeral_range_and_never_handed_out_twice() -> None:
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)
    assert all(1024 <= p < processes._ephemeral_low() for p in ports)


def test_a_port_bound_on_any_interface_is_not_handed_out(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        busy = taken.getsockname()[1]
        spare = free_port()
        processes._handed_out.discard(spare)
        candidates = iter([busy, spare])
        monkeypatch.setattr(processes.random, "choice", lambda _: next(candidates))
        assert free_port() == spare
