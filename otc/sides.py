"""Trade sides as the API spells them, and their protobuf twins."""

from __future__ import annotations

from enum import StrEnum

from otc.contracts import events_pb2


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"
    TWO_WAY = "two_way"


_TO_PROTO = {
    Side.BUY: events_pb2.SIDE_BUY,
    Side.SELL: events_pb2.SIDE_SELL,
    Side.TWO_WAY: events_pb2.SIDE_TWO_WAY,
}
_FROM_PROTO = {v: k for k, v in _TO_PROTO.items()}


def to_proto(side: Side) -> events_pb2.Side.ValueType:
    return _TO_PROTO[side]


def from_proto(value: int) -> Side:
    """Raises ValueError for SIDE_UNSPECIFIED or an unknown number."""
    try:
        return _FROM_PROTO[events_pb2.Side.ValueType(value)]
    except KeyError:
        raise ValueError(f"not a valid side: {value}") from None
