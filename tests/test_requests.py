"""The table of commands waiting for their reply: a reply resolves its own command
only, an unanswered one times out, a failed send leaves nothing waiting, and the
table never holds more than its bound."""

from __future__ import annotations

import pytest

from otc.bus.requests import Replies
from otc.contracts import events_pb2 as ev


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
