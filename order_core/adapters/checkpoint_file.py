"""A copy of the signed audit checkpoints in a file outside the database, one JSON
object per line, only ever appended to: what catches a rewrite of the whole trail
by someone who can write to the database but does not hold the signing key.

`otc audit verify --checkpoints` reads this file as it is.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Sequence
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from order_core.domain.checkpoints import (
    Checkpoint,
    checkpoint_from_json,
    checkpoint_json,
    signature_holds,
)

TAIL = 4096


def read_checkpoints(path: Path) -> list[Checkpoint]:
    """Every checkpoint in the file; ValueError naming the line that is not one. A
    last line without its newline is a write cut short (or still going on), not a
    checkpoint: it is left out."""
    if not path.exists():
        return []
    found = []
    text = path.read_text(encoding="utf-8")
    for number, line in enumerate(text.split("\n")[:-1], start=1):
        if not line.strip():
            continue
        try:
            found.append(checkpoint_from_json(json.loads(line)))
        except ValueError as exc:
            raise ValueError(f"{path}, line {number}: {exc}") from None
    return found


class CheckpointFile:
    """Written by one process: the size it last wrote is read from the file once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._last_size: int | None = None

    async def last_size(self) -> int:
        if self._last_size is None:
            found = await asyncio.to_thread(read_checkpoints, self.path)
            self._last_size = max((c.tree_size for c in found), default=0)
        return self._last_size

    async def append(
        self, checkpoints: Sequence[Checkpoint], public_key: Ed25519PublicKey
    ) -> list[Checkpoint]:
        """Appends the checkpoints whose signature holds, durably; returns the others."""
        good = [c for c in checkpoints if signature_holds(c, public_key)]
        if good:
            await asyncio.to_thread(self._write, good)
            self._last_size = max(c.tree_size for c in good)
        return [c for c in checkpoints if c not in good]

    def _write(self, checkpoints: Sequence[Checkpoint]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lines = "".join(json.dumps(checkpoint_json(c), sort_keys=True) + "\n" for c in checkpoints)
        self._drop_cut_line()
        with self.path.open("a", encoding="utf-8") as file:
            file.write(lines)
            file.flush()
            os.fsync(file.fileno())

    def _drop_cut_line(self) -> None:
        """A crash mid-write leaves a line without its newline; the next line
        written after it would read as garbage, so it goes."""
        if not self.path.exists():
            return
        with self.path.open("r+b") as file:
            end = file.seek(0, os.SEEK_END)
            start = max(0, end - TAIL)  # a checkpoint's line is far shorter
            file.seek(start)
            tail = file.read()
            if tail and not tail.endswith(b"\n"):
                file.truncate(start + tail.rfind(b"\n") + 1)
