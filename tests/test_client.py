"""The trader client rides out a dropped connection (resuming its session) and a
restart of the edge (from a snapshot), and misses nothing of its RFQs either way."""

from __future__ import annotations

from otc.ids import new_id
from stack.client import TraderClient
from stack.infra.platform import Platform
from tests.e2e_helpers import base_url, token_for

FINAL = ("SETTLED", "SETTLEMENT_FAILED", "QUOTED", "EXPIRED")


async def _quoted(trader: TraderClient) -> tuple[str, dict[str, object]]:
    rfq = await trader.create_rfq(
        client_rfq_id=new_id(), instrument="ETH-USD", side="sell", quantity="2"
    )
    async for quote in trader.stream_quotes(rfq["rfq_id"], timeout=15):
        await trader.wait_status(rfq["rfq_id"], "QUOTED")
        return rfq["rfq_id"], quote
    raise AssertionError("no quote streamed in")


async def test_a_dropped_connection_is_resumed_and_replays_what_was_missed(
    platform: Platform,
) -> None:
    async with TraderClient(base_url(platform), token_for(platform, "TRADER-A")) as trader:
        rfq_id, quote = await _quoted(trader)
        session, mark = trader.session_id, trader.mark(rfq_id)
        await trader.drop_connection()
        status, answer = await trader.accept(rfq_id, str(quote["quote_id"]))
        assert status in (200, 202), answer
        final = await trader.wait_status(rfq_id, *FINAL, since=mark, timeout=30)
        assert trader.resumes >= 1
        assert trader.session_id == session, "the same session, resumed"
        states = [s["status"] for s in trader.tracks[rfq_id].states]
        assert states[-1] == final
        assert "PENDING_CONFIRMATION" in states, "the transitions made while away were replayed"


async def test_after_an_edge_restart_the_client_catches_up_from_a_snapshot(
    platform: Platform,
) -> None:
    async with TraderClient(base_url(platform), token_for(platform, "TRADER-A")) as trader:
        rfq_id, quote = await _quoted(trader)
        mark = trader.mark(rfq_id)
        status, answer = await trader.accept(rfq_id, str(quote["quote_id"]))
        assert status in (200, 202), answer
        platform.children["rfq-service"].kill()
        # the lifecycle goes on without the edge: confirmed, then settled
        await platform.restart("rfq-service", timeout=90)
        final = await trader.wait_status(rfq_id, *FINAL, since=mark, timeout=60)
        assert trader.snapshots >= 1, "the new edge could not resume and sent a snapshot"
        rfq = await trader.get_rfq(rfq_id)
        states = [(s["status"], s["version"]) for s in trader.tracks[rfq_id].states]
        assert rfq["status"] == final, f"the read model caught up with what happened: {states}"
