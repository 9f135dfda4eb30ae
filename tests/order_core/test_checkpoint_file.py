"""The copy of the checkpoints kept in a file: a line cut short by a crash is not
read as a checkpoint, and the next append leaves the file whole again."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from order_core.adapters.checkpoint_file import CheckpointFile, read_checkpoints
from order_core.domain.checkpoints import CheckpointSigner, checkpoint_json

AT = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


async def test_a_line_cut_short_is_left_out_and_replaced_by_the_next_append(
    tmp_path: Path,
) -> None:
    signer = CheckpointSigner.generate()
    first, second = (signer.sign(size, f"{size:02x}" * 32, AT) for size in (4, 8))
    path = tmp_path / "checkpoints.jsonl"
    whole = json.dumps(checkpoint_json(first)) + "\n"
    path.write_text(whole + json.dumps(checkpoint_json(second))[:40])  # the crash

    assert read_checkpoints(path) == [first]
    copy = CheckpointFile(path)
    assert await copy.last_size() == 4
    assert await copy.append([second], signer.public_key) == []
    assert read_checkpoints(path) == [first, second]
    assert path.read_text().count("\n") == 2
    assert await copy.last_size() == 8


async def test_a_checkpoint_that_does_not_verify_is_not_copied(tmp_path: Path) -> None:
    signer, other = CheckpointSigner.generate(), CheckpointSigner.generate()
    path = tmp_path / "checkpoints.jsonl"
    forged = other.sign(4, "ab" * 32, AT)
    copy = CheckpointFile(path)
    assert await copy.append([forged], signer.public_key) == [forged]
    assert read_checkpoints(path) == []
    assert await copy.last_size() == 0
