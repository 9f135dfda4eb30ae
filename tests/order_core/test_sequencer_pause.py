"""A quiet sequencer backs off, and any work brings it back to its poll."""

from __future__ import annotations

from datetime import UTC, datetime

from order_core.domain.checkpoints import Checkpoint
from order_core.service_layer.sequencing import IDLE_PAUSE_S, Round, next_pause

POLL = 0.05
IDLE = Round(0, None)


def test_idle_rounds_double_the_pause_up_to_the_idle_ceiling() -> None:
    pauses = [POLL]
    for _ in range(8):
        pauses.append(next_pause(pauses[-1], POLL, IDLE))
    assert pauses[:4] == [POLL, 2 * POLL, 4 * POLL, 8 * POLL]
    assert max(pauses) == IDLE_PAUSE_S == pauses[-1]


def test_integrating_or_signing_brings_the_pause_back_to_the_poll() -> None:
    signed = Checkpoint(1, "00" * 32, datetime(2026, 12, 7, tzinfo=UTC), "k", "s")
    assert next_pause(IDLE_PAUSE_S, POLL, Round(3, None)) == POLL
    assert next_pause(IDLE_PAUSE_S, POLL, Round(0, signed)) == POLL


def test_a_poll_longer_than_the_idle_ceiling_is_kept() -> None:
    assert next_pause(1.0, 1.0, IDLE) == 1.0
