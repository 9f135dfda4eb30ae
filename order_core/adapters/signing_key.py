"""The audit checkpoints' signing key on disk: a PKCS8 PEM file, read from where
the settings say (a Secret's mount in production); outside production a missing
file is made once, readable by its owner only, and kept across restarts so that
every checkpoint of a development trail verifies with one key."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm

from order_core.domain.checkpoints import CheckpointSigner
from otc.logging import get_logger

log = get_logger(__name__)


def load_signer(path: Path, *, create: bool) -> CheckpointSigner:
    if create and not path.exists():
        _create(path)
    try:
        return CheckpointSigner.from_pem(path.read_bytes())
    except FileNotFoundError:
        raise RuntimeError(f"the audit signing key {path} does not exist") from None
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:  # TypeError: encrypted
        raise RuntimeError(f"the audit signing key {path} is not usable: {exc}") from None


def _create(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(CheckpointSigner.generate().private_pem())
        file.flush()
        os.fsync(file.fileno())
    try:
        # A link appears whole and fails if the name is taken: of two services
        # starting at once, one key wins and both use it.
        os.link(draft, path)
        log.warning("made a development audit signing key", path=str(path))
    except FileExistsError:
        pass
    finally:
        draft.unlink()
