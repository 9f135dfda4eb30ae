"""Identifiers: time-ordered UUIDs so that ids sort roughly by creation."""

from __future__ import annotations

import os
import time
import uuid


def new_id() -> str:
    """A UUIDv7 string: 48-bit millisecond timestamp, then randomness."""
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (millis & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= (rand >> 68) << 64 & (0xFFF << 64)
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return str(uuid.UUID(int=value))


def derived_id(namespace: str, *parts: str) -> str:
    """A stable id derived from others, e.g. the reservation id of an accept command."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "otc:" + namespace + ":" + ":".join(parts)))
