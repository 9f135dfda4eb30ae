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


def read_checkpoints(path: Path) -> list[Checkpoint]:
    """Every checkpoint in the file; ValueError naming the line that is not one."""
    if not path.exists():
        return []
    found = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            found.append(checkpoint_from_json(json.loads(line)))
        except ValueError as exc:
            raise ValueError(f"{path}, line {number}: {exc}") from None
    return found


class CheckpointFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    async def last_size(self) -> int:
        found = await asyncio.to_thread(read_checkpoints, self.path)
        return max((c.tree_size for c in found), default=0)

    async def append(
        self, checkpoints: Sequence[Checkpoint], public_key: Ed25519PublicKey
    ) -> list[Checkpoint]:
        """Appends the checkpoints whose signature holds, durably; returns the others."""
        good = [c for c in checkpoints if signature_holds(c, public_key)]
        if good:
            await asyncio.to_thread(self._write, good)
        return [c for c in checkpoints if c not in good]

    def _write(self, checkpoints: Sequence[Checkpoint]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lines = "".join(json.dumps(checkpoint_json(c), sort_keys=True) + "\n" for c in checkpoints)
        with self.path.open("a", encoding="utf-8") as file:
            file.write(lines)
            file.flush()
            os.fsync(file.fileno())
