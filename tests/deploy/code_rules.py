"""Rules that tie the manifests to the code they deploy: the topics of
otc/bus/topics.py, the settings of otc/settings.py, the `otc` commands, and the
services and demo makers that stack/infra/platform.py runs. Like rules.py, each
returns violations.
"""

from __future__ import annotations

import importlib
import tempfile
from pathlib import Path

import typer
from pydantic import ValidationError

from otc.bus.topics import ALL_TOPICS
from otc.settings import Settings
from stack.infra.platform import DEMO_MAKERS, Platform
from tests.deploy.render import Obj, ref
from tests.deploy.rules import (
    containers,
    is_platform,
    named,
    of_kind,
    pod_template,
    workloads,
)

SETTINGS_CONFIGMAP = "otc-settings"


def topic_violations(objs: list[Obj], replicas: int, min_insync: int) -> list[str]:
    """Every topic of otc/bus/topics.py (each `.dlq` included) is one KafkaTopic
    of the cluster, with the overlay's replication, on enough brokers."""
    out = []
    kafkas = {k["metadata"]["name"]: k for k in of_kind(objs, "Kafka")}
    found: dict[str, Obj] = {}
    for topic in of_kind(objs, "KafkaTopic"):
        name = topic["spec"].get("topicName", topic["metadata"]["name"])
        if name in found:
            out.append(f"{ref(topic)}: topic {name} is declared twice")
        found[name] = topic
        spec = topic["spec"]
        if topic["metadata"].get("labels", {}).get("strimzi.io/cluster") not in kafkas:
            out.append(f"{ref(topic)}: belongs to no Kafka cluster of the render")
        if spec.get("replicas") != replicas:
            out.append(f"{ref(topic)}: replicas {spec.get('replicas')}, expected {replicas}")
        if spec.get("config", {}).get("min.insync.replicas") != min_insync:
            out.append(f"{ref(topic)}: min.insync.replicas is not {min_insync}")
    for name in sorted(set(ALL_TOPICS) - set(found)):
        out.append(f"topic {name} has no KafkaTopic")
    for name in sorted(set(found) - set(ALL_TOPICS)):
        out.append(f"KafkaTopic {name} is not a topic of otc/bus/topics.py")
    brokers = sum(
        pool["spec"]["replicas"]
        for pool in of_kind(objs, "KafkaNodePool")
        if "broker" in pool["spec"]["roles"]
    )
    if brokers < replicas:
        out.append(f"{replicas} replicas per topic but only {brokers} brokers")
    for kafka in kafkas.values():
        config = kafka["spec"]["kafka"].get("config", {})
        for key, expected in (
            ("default.replication.factor", replicas),
            ("offsets.topic.replication.factor", replicas),
            ("min.insync.replicas", min_insync),
        ):
            if config.get(key) != expected:
                out.append(f"{ref(kafka)}: {key} is {config.get(key)}, expected {expected}")
    return out


def setting_names() -> set[str]:
    return {f"OTC_{name.upper()}" for name in Settings.model_fields}


def settings_violations(objs: list[Obj]) -> list[str]:
    """Every ConfigMap key and every OTC_* variable a container sets is a real
    setting, and the ConfigMap's values are ones the settings class accepts."""
    known = setting_names()
    out = []
    for configmap in of_kind(objs, "ConfigMap"):
        for key in configmap.get("data", {}):
            if key not in known:
                out.append(f"{ref(configmap)}: {key} is not a setting of otc/settings.py")
    for workload, template in workloads(objs):
        for c in containers(template):
            for env in c.get("env", []):
                if env["name"].startswith("OTC_") and env["name"] not in known:
                    out.append(f"{ref(workload)}: {env['name']} is not a setting")
    values = named(objs, "ConfigMap", SETTINGS_CONFIGMAP).get("data", {})
    fields = {k.removeprefix("OTC_").lower(): v for k, v in values.items() if k in known}
    try:
        # The JWT secret comes from a Secret; any non-default value stands for it.
        Settings(**{**fields, "jwt_secret": "stand-in-for-the-secret"})
    except ValidationError as exc:
        out.append(f"ConfigMap/{SETTINGS_CONFIGMAP}: {exc}")
    return out


def command_violations(objs: list[Obj]) -> list[str]:
    """Every container of our image runs an `otc` command with arguments that
    command accepts (parsed by the real CLI, without running it)."""
    from stack.cli import app

    group = typer.main.get_command(app)
    assert isinstance(group, typer.core.TyperGroup)
    out = []
    for workload, template in workloads(objs):
        for c in containers(template):
            if not is_platform(c):
                continue
            where = f"{ref(workload)} container {c['name']}"
            if "command" in c:
                out.append(f"{where}: overrides the image's `otc` entry point")
            args = [str(a) for a in c.get("args", [])]
            parent = typer.Context(group, info_name="otc")
            command = group.get_command(parent, args[0]) if args else None
            if command is None:
                out.append(f"{where}: `otc {' '.join(args)}` is no otc command")
                continue
            try:
                command.make_context(args[0], args[1:], parent=parent)
            except Exception as exc:  # the CLI's usage errors, whatever their class
                out.append(f"{where}: `otc {' '.join(args)}`: {exc}")
    return out


def deployment_violations(objs: list[Obj]) -> list[str]:
    """Every service that `otc up` runs is a Deployment running the same command."""
    platform = Platform(Settings(), state_dir=Path(tempfile.gettempdir()))
    running = [
        [str(a) for a in c.get("args", [])]
        for deployment in of_kind(objs, "Deployment")
        for c in containers(pod_template(deployment))
        if is_platform(c)
    ]
    return [
        f"`otc {' '.join(spec.args)}` ({spec.name}) has no Deployment"
        for spec in platform.service_specs()
        if spec.args not in running
    ]


def _option(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args[:-1] else None


def maker_violations(objs: list[Obj]) -> list[str]:
    """A quoter Deployment for each demo maker of stack/infra/platform.py, with
    its strategy; every strategy importable; OTC_MAKERS naming every quoter."""
    out = []
    quoters: dict[str, str | None] = {}
    for workload, template in workloads(objs):
        for c in containers(template):
            args = [str(a) for a in c.get("args", [])]
            if is_platform(c) and args[:1] == ["quoter"]:
                maker = _option(args, "--maker")
                if maker in quoters:
                    out.append(f"{ref(workload)}: a second quoter for {maker}")
                quoters[str(maker)] = _option(args, "--strategy")
    for maker, strategy in DEMO_MAKERS:
        if quoters.get(maker) != strategy:
            out.append(f"demo maker {maker} has no quoter running {strategy}")
    for strategy in filter(None, quoters.values()):
        module, _, cls = strategy.partition(":")
        try:
            getattr(importlib.import_module(module), cls)
        except (ImportError, AttributeError) as exc:
            out.append(f"strategy {strategy} cannot be loaded: {exc}")
    makers = named(objs, "ConfigMap", SETTINGS_CONFIGMAP).get("data", {}).get("OTC_MAKERS", "")
    routed = {m.strip() for m in makers.split(",") if m.strip()}
    if routed != set(quoters):
        out.append(f"OTC_MAKERS routes to {sorted(routed)}, quoters run {sorted(quoters)}")
    return out
