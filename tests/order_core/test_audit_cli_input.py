"""`otc audit verify` offline, on input that is not what it should be: each is a
clear message naming the option or the line, never a traceback."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from typer.testing import CliRunner, Result

from order_core.domain.checkpoints import CheckpointSigner, checkpoint_json
from order_core.entrypoints.audit_cli import audit_app

AT = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
EVENT = {
    "log_index": 0,
    "rfq_id": "R-1",
    "rfq_seq": 1,
    "event_type": "otc.v1.OrderStateChanged",
    "occurred_at": "2026-12-07T09:00:00.000000Z",
    "producer": "order-core",
    "event_id": "E-1",
    "correlation_id": "R-1",
    "causation_id": "",
    "party": "TRADER-A",
    "payload": {},
    "prev_hash": "0" * 64,
    "hash": "0" * 64,
    "leaf_hash": "0" * 64,
}


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """An empty export, one checkpoint that no event backs, and the right key."""
    signer = CheckpointSigner.generate()
    paths = {name: tmp_path / name for name in ("export", "checkpoints", "key")}
    paths["export"].write_text("")
    checkpoint = signer.sign(1, "ab" * 32, AT)
    paths["checkpoints"].write_text(json.dumps(checkpoint_json(checkpoint)) + "\n")
    paths["key"].write_text(signer.public_pem())
    return paths


def said(result: Result) -> str:
    """The output as one line of words: the usage error's box wraps long messages."""
    return " ".join(result.output.replace("│", " ").split())


def verify(files: dict[str, Path]) -> Result:
    args = ["verify", "--export", str(files["export"])]
    args += ["--checkpoints", str(files["checkpoints"]), "--public-key", str(files["key"])]
    return CliRunner().invoke(audit_app, args)


def test_the_fixture_is_well_formed_and_its_cut_tail_is_named(files: dict[str, Path]) -> None:
    result = verify(files)
    assert result.exit_code == 1, result.output
    assert "covers 1 events but the log holds 0" in result.output


@pytest.mark.parametrize(
    ("content", "named"),
    [
        (b"not a key", "not a PEM public key"),
        (
            ec.generate_private_key(ec.SECP256R1())
            .public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
            "not an Ed25519 key",
        ),
    ],
)
def test_a_key_that_is_not_ed25519_is_refused_naming_the_option(
    files: dict[str, Path], content: bytes, named: str
) -> None:
    files["key"].write_bytes(content)
    result = verify(files)
    assert result.exit_code == 2, result.output
    assert "--public-key" in said(result)
    assert named in said(result)


@pytest.mark.parametrize(
    ("content", "named"),
    [
        (b'{"tree_size": 0}\n', "line 1: tree_size"),
        (b"\n{not json\n", "line 2"),
        (b"\xff\xfe\n", "utf-8"),
    ],
)
def test_checkpoints_that_do_not_parse_are_refused_naming_the_line(
    files: dict[str, Path], content: bytes, named: str
) -> None:
    files["checkpoints"].write_bytes(content)
    result = verify(files)
    assert result.exit_code == 2, result.output
    assert "--checkpoints" in said(result)
    assert named in said(result)


@pytest.mark.parametrize(
    ("content", "named"),
    [
        (b"\n\n[1, 2]\n", "line 3: an event is a JSON object"),
        (b"\xff\n", "line 1"),
        (b'{"payload": {}, "log_index": null}\n', "line 1: occurred_at"),
        # valid JSON, but a lone surrogate has no UTF-8 form to hash
        (json.dumps(EVENT | {"payload": {"note": "\ud800"}}).encode(), "cannot be hashed"),
        (b"[" * 100_000 + b"]" * 100_000, "line 1"),
    ],
)
def test_an_export_line_that_is_not_an_event_is_named(
    files: dict[str, Path], content: bytes, named: str
) -> None:
    files["export"].write_bytes(content)
    result = verify(files)
    assert result.exit_code == 1, result.output
    assert result.output.startswith("trail broken: "), result.output
    assert named in result.output


def test_an_export_needs_its_checkpoints_and_key(files: dict[str, Path]) -> None:
    result = CliRunner().invoke(audit_app, ["verify", "--export", str(files["export"])])
    assert result.exit_code == 2, result.output
    assert "--export needs --checkpoints and --public-key" in said(result)
