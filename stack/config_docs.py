"""The configuration reference, generated from the settings class.

`docs/configuration.md` is this output: `python -m stack.config_docs` (or
`make docs`) writes it, and a test fails when the committed file is stale.
Every setting must carry a `Field(description=...)`: the generator refuses a
setting without one, so none can be added undocumented.
"""

from __future__ import annotations

import types
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from otc.settings import Settings
from stack.infra import containers

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "configuration.md"

_TYPE_NAMES: dict[Any, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    Decimal: "decimal",
    Path: "path",
    SecretStr: "secret string",
}
_BOUNDS = ((annotated_types.Gt, ">"), (annotated_types.Ge, "≥"), (annotated_types.Lt, "<"))


class UndocumentedSettingError(ValueError):
    """A setting has no description, so the reference cannot explain it."""


def _type_name(annotation: Any) -> str:
    args = get_args(annotation)
    if get_origin(annotation) is Literal:
        return "one of " + ", ".join(f"`{a}`" for a in args)
    if get_origin(annotation) in (Union, types.UnionType) and type(None) in args:
        (inner,) = (a for a in args if a is not type(None))
        return f"{_type_name(inner)}, optional"
    return _TYPE_NAMES.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _constraints(info: FieldInfo) -> str:
    bounds = [
        f"{sign} {getattr(meta, cls.__name__.lower())}"
        for meta in info.metadata
        for cls, sign in _BOUNDS
        if isinstance(meta, cls)
    ]
    return f" ({', '.join(bounds)})" if bounds else ""


def _default(info: FieldInfo) -> str:
    value = info.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if isinstance(value, SecretStr):
        return "a development-only value"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


def rows(settings: type[BaseSettings] = Settings) -> list[tuple[str, str, str, str]]:
    """(variable, type, default, meaning) for every setting, in declaration order,
    the class's own before those it inherits (the tuning knobs of `otc/tuning.py`)."""
    prefix = settings.model_config.get("env_prefix", "")
    undocumented = [name for name, info in settings.model_fields.items() if not info.description]
    if undocumented:
        raise UndocumentedSettingError(
            f"{settings.__name__}: give these settings a Field(description=...): "
            + ", ".join(undocumented)
        )
    return [
        (
            f"`{prefix}{name.upper()}`",
            _type_name(info.annotation) + _constraints(info),
            _default(info),
            str(info.description),
        )
        for name, info in sorted(
            settings.model_fields.items(),
            key=lambda item: item[0] not in vars(settings).get("__annotations__", {}),
        )
    ]


def document(settings: type[BaseSettings] = Settings) -> str:
    lines = [
        "# Configuration",
        "",
        "Generated from `otc/settings.py` and `otc/tuning.py` by `python -m stack.config_docs`",
        "(`make docs`); do not edit by hand: a test fails when this file and the code disagree.",
        "",
        "Every service reads the same settings from environment variables. Under",
        "`otc up` the launcher sets the server URLs and ports itself; on Kubernetes the",
        "ConfigMap `otc-settings` and the Secrets of `deploy/k8s` set them.",
        "",
        "| variable | type | default | meaning |",
        "| --- | --- | --- | --- |",
    ]
    lines += [
        "| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows(settings)
    ]
    return "\n".join(lines + providers()) + "\n"


def providers() -> list[str]:
    """What each `OTC_INFRA` value starts, with the container images named from the code."""
    return [
        "",
        "## Where the servers come from: `OTC_INFRA`",
        "",
        "- `embedded` (default): an embedded PostgreSQL, Valkey or Kafka (Tansu) server,",
        "  from PyPI wheels, for each of `OTC_DATABASE_URL`, `OTC_REDIS_URL` and",
        "  `OTC_KAFKA_BOOTSTRAP` that is not set.",
        "- `external`: those three URLs, all required; nothing is started.",
        "- `containers` (needs Docker): a testcontainers container for each of them not",
        f"  set: PostgreSQL `{containers.POSTGRES_IMAGE}`, Redis `{containers.REDIS_IMAGE}`,",
        f"  Apache Kafka in KRaft mode `{containers.KAFKA_IMAGE}`; database, user and",
        f"  password `{containers.DATABASE}`.",
    ]


def write(path: Path = DOC) -> Path:
    path.write_text(document())
    return path


if __name__ == "__main__":
    print(f"wrote {write().relative_to(ROOT)}")
