"""The image's promises, read from the Dockerfile (no Docker engine needed):
multi-stage, `otc` as the entry point, a non-root numeric user that matches the
manifests, and nothing of the build toolchain in the runtime stage."""

from __future__ import annotations

import json
import re
import tomllib

from tests.deploy.render import ROOT
from tests.deploy.rules import RUN_AS_USER

Instruction = tuple[str, str]


def stages() -> list[list[Instruction]]:
    text = (ROOT / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    found: list[list[Instruction]] = [[]]
    for line in joined.splitlines():
        if not line.strip():
            continue
        keyword, _, rest = line.strip().partition(" ")
        if keyword.upper() == "FROM":
            found.append([])
        found[-1].append((keyword.upper(), rest.strip()))
    return found[1:]


def test_the_build_is_multi_stage_and_builds_wheels() -> None:
    build, *_, runtime = stages()
    assert len(stages()) >= 2
    assert any(k == "RUN" and "pip wheel" in arg for k, arg in build)
    assert ("COPY", "--from=build /opt/venv /opt/venv") in runtime


def test_the_runtime_stage_has_no_build_tools() -> None:
    runtime = stages()[-1]
    runs = " ".join(arg for k, arg in runtime if k == "RUN")
    for tool in ("build-essential", "gcc", "apt-get install", "pip install", "pip wheel"):
        assert tool not in runs


def test_the_runtime_runs_otc_as_the_manifests_non_root_user() -> None:
    runtime = stages()[-1]
    users = [arg for k, arg in runtime if k == "USER"]
    assert users == [f"{RUN_AS_USER}:{RUN_AS_USER}"]
    entrypoints = [json.loads(arg) for k, arg in runtime if k == "ENTRYPOINT"]
    assert entrypoints == [["otc"]]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["otc"] == "stack.cli:app"


def test_local_state_stays_out_of_the_build_context() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", ".otc"} <= ignored
