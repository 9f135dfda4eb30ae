"""The table of commands waiting for their reply: a reply resolves its own command
only, an unanswered one times out, a failed send leaves nothing waiting, and the
table never holds more than its bound. A table given its own answer waits on other
keys and values, and the reader hands it whatever the topic carries."""

from __future__ import annotations

import pytest
from google.protobuf.message import Message as ProtoMessage

from otc.bus.producer import Publisher
from otc.bus.requests import Replies, ReplyReader, Waiters
from otc.bus.topics import RFQ_QUOTES
from otc.contracts import events_pb2 as ev
from otc.ids import new_id
from stack.infra.provider import Endpoints


def _quote_of_mm1(payload: ProtoMessage) -> tuple[str, str] | None:
    if isinstance(payload, ev.QuoteSubmitted) and payload.maker == "MM-1":
        return payload.rfq_id, payload.quote_id
    return None


async def test_a_reply_resolves_the_command_with_its_id() -> None:
    replies = Replies()
    future = replies.expect("c1")
    other = replies.expect("c2")
    replies.resolve(ev.CommandResult(command_id="c1", accepted=True, state="QUOTED"))
    result = await replies.wait("c1", future, timeout=1)
    assert result is not None
    assert (result.accepted, result.state) == (True, "QUOTED")
    assert not other.done()


async def test_a_command_nobody_answers_gets_none_after_the_timeout() -> None:
    replies = Replies()
    future = replies.expect("c1")
    assert await replies.wait("c1", future, timeout=0.01) is None
    replies.resolve(ev.CommandResult(command_id="c1", accepted=True))  # too late: ignored


async def test_a_command_whose_sending_failed_is_not_waited_for() -> None:
    replies = Replies()
    with pytest.raises(ConnectionError), replies.expecting("c1") as future:
        raise ConnectionError("broker down")
    replies.resolve(ev.CommandResult(command_id="c1", accepted=True))
    assert not future.done()


async def test_the_oldest_waiter_gives_up_when_the_table_is_full() -> None:
    replies = Replies(max_waiting=2)
    first, second = replies.expect("c1"), replies.expect("c2")
    third = replies.expect("c3")
    assert await replies.wait("c1", first, timeout=1) is None
    assert not second.done()
    assert not third.done()


async def test_when_replies_can_no_longer_be_read_every_waiter_sees_why() -> None:
    replies = Replies()
    future = replies.expect("c1")
    replies.fail(ConnectionError("reader stopped"))
    with pytest.raises(ConnectionError, match="reader stopped"):
        await replies.wait("c1", future, timeout=1)


async def test_a_table_with_its_own_answer_resolves_by_its_key_with_its_value() -> None:
    quotes = Waiters(_quote_of_mm1)
    future = quotes.expect("rfq-1")
    quotes.resolve(ev.CommandResult(command_id="rfq-1", rfq_id="rfq-1", accepted=True))
    quotes.resolve(ev.QuoteSubmitted(rfq_id="rfq-1", quote_id="q-other", maker="MM-2"))
    assert not future.done()
    quotes.resolve(ev.QuoteSubmitted(rfq_id="rfq-1", quote_id="q-1", maker="MM-1"))
    assert await quotes.wait("rfq-1", future, timeout=1) == "q-1"


async def test_the_reader_hands_the_table_any_payload_of_its_topic(endpoints: Endpoints) -> None:
    quotes = Waiters(_quote_of_mm1)
    rfq_id = new_id()
    publisher = Publisher(endpoints.kafka_bootstrap, "requests-test")
    async with ReplyReader(endpoints.kafka_bootstrap, RFQ_QUOTES, quotes):
        await publisher.start()
        try:
            with quotes.expecting(rfq_id) as future:
                for maker, quote_id in (("MM-2", "q-other"), ("MM-1", "q-1")):
                    quote = ev.QuoteSubmitted(rfq_id=rfq_id, quote_id=quote_id, maker=maker)
                    await publisher.publish(RFQ_QUOTES, rfq_id, quote, correlation_id=rfq_id)
            assert await quotes.wait(rfq_id, future, timeout=30) == "q-1"
        finally:
            await publisher.stop()
