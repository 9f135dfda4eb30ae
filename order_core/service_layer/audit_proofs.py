"""The audit log's proofs: its signed checkpoints, inclusion and consistency proofs
(RFC 6962), and the verification of the whole trail, shared by `/v1/audit/*` and
`otc audit verify`.

A proof is computed from the log's leaf hashes up to the tree size asked for,
read in one pass: linear in that size (about a second per million events), which
suits an auditor's question, not a hot path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from order_core.adapters.audit import chained_record
from order_core.adapters.audit_log import LogStore
from order_core.adapters.audit_queries import (
    BATCH_SIZE,
    AuditFilter,
    in_log,
    not_yet_in_log,
    reading,
    streamed,
)
from order_core.adapters.checkpoint_file import read_checkpoints
from order_core.domain.audit import LoggedEvent, leaf_hash
from order_core.domain.checkpoints import Checkpoint
from order_core.domain.merkle import consistency_proof, inclusion_proof, root
from order_core.domain.trail_verifier import TrailVerifier, Verdict
from otc.errors import NotFound, ValidationFailed

EVERYTHING = AuditFilter()


@dataclass(frozen=True, slots=True)
class InclusionProof:
    log_index: int
    tree_size: int
    leaf_hash: str
    root_hash: str
    proof: list[str]
    checkpoint: Checkpoint | None  # the signed checkpoint of that size, if there is one


@dataclass(frozen=True, slots=True)
class ConsistencyProof:
    first: int
    second: int
    first_root: str
    second_root: str
    proof: list[str]


class AuditProofs:
    def __init__(
        self,
        engine: AsyncEngine,
        public_key: Ed25519PublicKey,
        *,
        checkpoint_file: Path | None = None,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        self._engine = engine
        self.public_key = public_key
        self._file = checkpoint_file
        self._batch_size = batch_size

    async def latest_checkpoint(self) -> Checkpoint:
        async with reading(self._engine) as conn:
            found = await LogStore(conn).latest_checkpoint()
        if found is None:
            raise NotFound("no checkpoint has been signed yet")
        return found

    async def checkpoints(
        self, *, size: int | None = None, after_size: int = 0, limit: int = 100
    ) -> list[Checkpoint]:
        async with reading(self._engine) as conn:
            return await LogStore(conn).checkpoints(size=size, after_size=after_size, limit=limit)

    async def inclusion(self, log_index: int, size: int | None) -> InclusionProof:
        async with reading(self._engine, isolation_level="REPEATABLE READ") as conn:
            store = LogStore(conn)
            tree_size = await self._tree_size(store, size)
            if not 0 <= log_index < tree_size:
                raise NotFound(f"no event at log index {log_index} in a tree of size {tree_size}")
            leaves = await store.leaves(tree_size)
            checkpoint = await store.checkpoint(tree_size)
        return InclusionProof(
            log_index=log_index,
            tree_size=tree_size,
            leaf_hash=leaves[log_index].hex(),
            root_hash=root(leaves).hex(),
            proof=[h.hex() for h in inclusion_proof(leaves, log_index, tree_size)],
            checkpoint=checkpoint,
        )

    async def consistency(self, first: int, second: int) -> ConsistencyProof:
        if not 0 < first <= second:
            raise ValidationFailed("first: must be at least 1 and at most second")
        async with reading(self._engine, isolation_level="REPEATABLE READ") as conn:
            store = LogStore(conn)
            if second > await store.size():
                raise NotFound(f"the log holds fewer than {second} events")
            leaves = await store.leaves(second)
        return ConsistencyProof(
            first=first,
            second=second,
            first_root=root(leaves[:first]).hex(),
            second_root=root(leaves).hex(),
            proof=[h.hex() for h in consistency_proof(leaves, first, second)],
        )

    async def _tree_size(self, store: LogStore, size: int | None) -> int:
        if size is None:
            latest = await store.latest_checkpoint()
            if latest is None:
                raise NotFound("no checkpoint has been signed yet; pass size")
            return latest.tree_size
        if size < 1:
            raise ValidationFailed("size: must be at least 1")
        if size > await store.size():
            raise NotFound(f"the log holds fewer than {size} events")
        return size

    async def verify(self) -> Verdict:
        """Checks every event, the log's and the rest, against the signed checkpoints
        in the database and in the file kept outside it, from one snapshot."""
        kept: list[Checkpoint] = []
        if self._file is not None:
            try:
                kept = await asyncio.to_thread(read_checkpoints, self._file)
            except ValueError as exc:
                return TrailVerifier((), self.public_key).fail_input(str(exc))
        async with reading(self._engine, isolation_level="REPEATABLE READ") as conn:
            return await verify_trail(conn, self.public_key, kept, batch_size=self._batch_size)


async def verify_trail(
    conn: AsyncConnection,
    public_key: Ed25519PublicKey | None,
    kept_outside: Sequence[Checkpoint] = (),
    *,
    batch_size: int = BATCH_SIZE,
) -> Verdict:
    """Verifies the trail as `conn`'s transaction sees it, against the database's
    checkpoints and `kept_outside` (a size they disagree on is a finding). Without
    a public key, signatures are not checked: the roots still are."""
    signed = await LogStore(conn).checkpoints()
    in_database = set(signed)
    verifier = TrailVerifier(signed + [c for c in kept_outside if c not in in_database], public_key)
    for query in (in_log(EVERYTHING), not_yet_in_log(EVERYTHING)):
        async with aclosing(streamed(conn, query, batch_size)) as batches:
            async for batch in batches:
                if any(verifier.check(_logged(row)) is not None for row in batch):
                    return verifier.finish()
    return verifier.finish()


def _logged(row: Row[Any]) -> LoggedEvent:
    mapping = row._mapping
    stored = mapping.get("leaf_hash")
    return LoggedEvent(
        log_index=mapping.get("log_index"),
        chained=chained_record(row),
        leaf_hash=stored if stored is not None else leaf_hash(mapping["hash"]),
    )
