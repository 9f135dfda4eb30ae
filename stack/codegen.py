"""Generates the Python contracts in `otc/contracts/` from `proto/`.

The generated modules are committed so that a fresh clone runs without a build
step; `tests/test_contracts.py` regenerates them into a temporary folder and fails
when the committed copy differs, so the two can never drift apart silently.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
CONTRACTS = Path("otc") / "contracts"


def proto_files() -> list[Path]:
    return sorted((PROTO_ROOT / CONTRACTS).glob("*.proto"))


def generate(out_root: Path) -> list[Path]:
    """Writes the generated modules under `out_root/otc/contracts/`; returns them."""
    import grpc_tools
    from grpc_tools import protoc

    include = Path(grpc_tools.__file__).parent / "_proto"
    plugins = Path(sys.executable).parent
    (out_root / CONTRACTS).mkdir(parents=True, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--plugin=protoc-gen-mypy={plugins / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={plugins / 'protoc-gen-mypy_grpc'}",
        f"--python_out={out_root}",
        f"--grpc_python_out={out_root}",
        f"--mypy_out={out_root}",
        f"--mypy_grpc_out={out_root}",
        *[str(p.relative_to(PROTO_ROOT)) for p in proto_files()],
    ]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed; see the message above")
    return sorted(p for p in (out_root / CONTRACTS).iterdir() if "_pb2" in p.name)


def stale_files() -> list[str]:
    """Names of committed generated files that differ from a fresh generation."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = {p.name: p.read_bytes() for p in generate(Path(tmp))}
    committed = {p.name: p.read_bytes() for p in (ROOT / CONTRACTS).glob("*_pb2*")}
    return sorted(
        name for name in fresh.keys() | committed.keys() if fresh.get(name) != committed.get(name)
    )


if __name__ == "__main__":
    for path in generate(ROOT):
        print(f"generated {path.relative_to(ROOT)}")
    sys.exit(0)
