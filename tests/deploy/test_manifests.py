"""The Kubernetes manifests, rendered from each overlay as `kubectl apply -k`
would send them: schema-valid offline, and keeping the rules of issue 8.

Every rule is also run on a copy of the render broken on purpose, so that a
rule that stopped looking (and would pass anything) fails here.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from otc.bus.topics import ALL_TOPICS
from tests.deploy import code_rules, rules
from tests.deploy.render import OVERLAYS, Obj, crd_kinds, ref, render, schema_errors

# (replicas, min.insync.replicas) of every topic, per overlay.
REPLICATION = {"dev": (1, 1), "prod": (3, 2)}
# Created outside the render: by CloudNativePG, and in prod by the operator.
EXTERNAL_SECRETS = {
    "dev": {"otc-pg-app"},
    "prod": {"otc-pg-app", "otc-secrets", "otc-audit-signing-key"},
}
# Deployments that must stay at one replica: two price feeds would publish two
# random walks; Redis is a single pod on a ReadWriteOnce volume.
SINGLETONS = {"price-feed", "otc-redis"}

Rule = Callable[[list[Obj]], list[str]]


def quoter_names(objs: list[Obj]) -> set[str]:
    return {
        d["metadata"]["name"]
        for d in rules.of_kind(objs, "Deployment")
        if rules.containers(rules.pod_template(d))[0].get("args", [])[:1] == ["quoter"]
    }


RULES: dict[str, Rule] = {
    "probes": rules.probe_violations,
    "resources": rules.resource_violations,
    "security": rules.security_violations,
    "disruption budgets": rules.pdb_violations,
    "network policies": rules.network_policy_violations,
    "datastores": rules.datastore_violations,
    "services": rules.service_violations,
    "settings": code_rules.settings_violations,
    "commands": code_rules.command_violations,
    "makers": code_rules.maker_violations,
    "a Deployment per service": code_rules.deployment_violations,
}


@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def objs(overlay: str) -> list[Obj]:
    return render(overlay)


def test_every_object_is_valid_against_its_schema(objs: list[Obj]) -> None:
    errors = [error for obj in objs for error in schema_errors(obj)]
    assert errors == []


def test_the_operators_resources_are_all_there(objs: list[Obj]) -> None:
    kinds = {(o["apiVersion"], o["kind"]) for o in objs}
    assert crd_kinds() <= kinds
    assert len(rules.of_kind(objs, "KafkaTopic")) == len(ALL_TOPICS)


@pytest.mark.parametrize("rule", RULES.values(), ids=RULES.keys())
def test_the_rule_holds(objs: list[Obj], rule: Rule) -> None:
    assert rule(objs) == []


def test_every_topic_has_a_kafka_topic_with_the_overlays_replication(
    objs: list[Obj], overlay: str
) -> None:
    assert code_rules.topic_violations(objs, *REPLICATION[overlay]) == []


def test_every_configmap_and_secret_read_exists(objs: list[Obj], overlay: str) -> None:
    assert rules.reference_violations(objs, EXTERNAL_SECRETS[overlay]) == []


def test_only_order_core_and_the_eod_batch_reach_the_risk_grpc_port(objs: list[Obj]) -> None:
    assert rules.risk_grpc_sources(objs) == rules.RISK_GRPC_CLIENTS


def test_the_eod_batch_reaches_the_audit_api_on_order_core(objs: list[Obj]) -> None:
    core = rules.pod_template(rules.named(objs, "Deployment", "order-core"))
    peers = rules.ingress_peers(objs, rules.pod_labels(core), 9100, {"ops"})
    assert "CronJob/otc-eod" in rules.reachable_from(objs, peers)


def test_the_edge_reaches_the_audit_api_on_order_core(objs: list[Obj]) -> None:
    core = rules.pod_template(rules.named(objs, "Deployment", "order-core"))
    peers = rules.ingress_peers(objs, rules.pod_labels(core), 9100, {"ops"})
    assert "Deployment/rfq-service" in rules.reachable_from(objs, peers)


def test_dev_runs_one_replica_of_everything_and_no_autoscaler() -> None:
    objs = render("dev")
    assert {ref(d): d["spec"].get("replicas", 1) for d in rules.of_kind(objs, "Deployment")} == {
        ref(d): 1 for d in rules.of_kind(objs, "Deployment")
    }
    assert rules.hpa_violations(objs, expected=set()) == []


def test_prod_runs_replicas_and_autoscales_the_edge_and_the_quoters() -> None:
    objs = render("prod")
    single = {
        d["metadata"]["name"]
        for d in rules.of_kind(objs, "Deployment")
        if rules.min_replicas(objs, d) < 2
    }
    assert single == SINGLETONS
    assert quoter_names(objs) == {"quoter-mm-1", "quoter-mm-2", "quoter-mm-3"}
    expected = {"rfq-service"} | quoter_names(objs)
    assert rules.hpa_violations(objs, expected) == []


def test_every_object_is_labelled_as_part_of_the_platform(objs: list[Obj]) -> None:
    key, value = rules.PLATFORM_LABEL
    assert [ref(o) for o in objs if o["metadata"].get("labels", {}).get(key) != value] == []


def test_one_image_runs_every_service(objs: list[Obj]) -> None:
    images = {
        c["image"]
        for _, template in rules.workloads(objs)
        for c in rules.containers(template)
        if rules.is_platform(c)
    }
    assert images == {"otc-rfq:latest"}


# -- each rule notices a break -------------------------------------------------


def container(objs: list[Obj], kind: str, name: str) -> Obj:
    return rules.containers(rules.pod_template(rules.named(objs, kind, name)))[0]


def policy(objs: list[Obj], name: str) -> Obj:
    return rules.named(objs, "NetworkPolicy", name)


def _drop_readiness(objs: list[Obj]) -> None:
    del container(objs, "Deployment", "order-core")["readinessProbe"]


def _ready_on_healthz(objs: list[Obj]) -> None:
    container(objs, "Deployment", "settlement")["readinessProbe"]["httpGet"]["path"] = "/healthz"


def _probe_wrong_port(objs: list[Obj]) -> None:
    container(objs, "Deployment", "quoter-mm-2")["livenessProbe"]["httpGet"]["port"] = "http"


def _drop_memory_limit(objs: list[Obj]) -> None:
    del container(objs, "Deployment", "price-feed")["resources"]["limits"]["memory"]


def _request_over_limit(objs: list[Obj]) -> None:
    container(objs, "CronJob", "otc-eod")["resources"]["requests"]["cpu"] = "2"


def _writable_root(objs: list[Obj]) -> None:
    container(objs, "Deployment", "quoter-mm-1")["securityContext"]["readOnlyRootFilesystem"] = (
        False
    )


def _escalation(objs: list[Obj]) -> None:
    del container(objs, "Job", "otc-migrate")["securityContext"]["allowPrivilegeEscalation"]


def _add_capability(objs: list[Obj]) -> None:
    container(objs, "Deployment", "rfq-service")["securityContext"]["capabilities"]["add"] = [
        "NET_ADMIN"
    ]


def _root_user(objs: list[Obj]) -> None:
    container(objs, "Deployment", "risk-limits")["securityContext"]["runAsUser"] = 0


def _no_tmp(objs: list[Obj]) -> None:
    container(objs, "Deployment", "order-core")["volumeMounts"] = []


def _drop_pdb(objs: list[Obj]) -> None:
    objs.remove(rules.named(objs, "PodDisruptionBudget", "settlement"))


def _pdb_blocks_drain(objs: list[Obj]) -> None:
    spec = rules.named(objs, "PodDisruptionBudget", "price-feed")["spec"]
    del spec["maxUnavailable"]
    spec["minAvailable"] = 1


def _drop_default_deny(objs: list[Obj]) -> None:
    objs.remove(policy(objs, "default-deny-ingress"))


def _rfq_service_reaches_risk(objs: list[Obj]) -> None:
    rule = policy(objs, "risk-limits-grpc-from-order-core")["spec"]["ingress"][0]
    rule["from"].append({"podSelector": {"matchLabels": {"app.kubernetes.io/name": "rfq-service"}}})


def _risk_open_to_all(objs: list[Obj]) -> None:
    del policy(objs, "risk-limits-grpc-from-order-core")["spec"]["ingress"][0]["from"]


def _monitoring_reaches_grpc(objs: list[Obj]) -> None:
    policy(objs, "ops-from-monitoring")["spec"]["ingress"][0]["ports"] = []


def _redis_from_anywhere(objs: list[Obj]) -> None:
    rule = policy(objs, "redis-from-platform")["spec"]["ingress"][0]
    rule["from"].append({"namespaceSelector": {}})


def _kafka_open(objs: list[Obj]) -> None:
    del rules.of_kind(objs, "Kafka")[0]["spec"]["kafka"]["listeners"][0]["networkPolicyPeers"]


def _postgres_closed_to_platform(objs: list[Obj]) -> None:
    policy(objs, "postgres-from-platform")["spec"]["ingress"][0]["from"].pop(0)


def _service_wrong_port(objs: list[Obj]) -> None:
    rules.named(objs, "Service", "order-core")["spec"]["ports"][0]["targetPort"] = "metrics"


def _unknown_setting(objs: list[Obj]) -> None:
    rules.named(objs, "ConfigMap", "otc-settings")["data"]["OTC_HTTP_PROT"] = "8000"


def _bad_setting_value(objs: list[Obj]) -> None:
    rules.named(objs, "ConfigMap", "otc-settings")["data"]["OTC_LOG_FORMAT"] = "xml"


def _misspelled_option(objs: list[Obj]) -> None:
    args = container(objs, "Deployment", "quoter-mm-3")["args"]
    args[args.index("--strategy")] = "--stratgey"


def _unknown_command(objs: list[Obj]) -> None:
    container(objs, "Deployment", "order-core")["args"] = ["order_core"]


def _missing_maker(objs: list[Obj]) -> None:
    objs.remove(rules.named(objs, "Deployment", "quoter-mm-2"))


def _missing_gateway(objs: list[Obj]) -> None:
    objs.remove(rules.named(objs, "Deployment", "mm-gateway"))


BREAKS: dict[str, tuple[Rule, Callable[[list[Obj]], None]]] = {
    "no readiness probe": (rules.probe_violations, _drop_readiness),
    "readiness on /healthz": (rules.probe_violations, _ready_on_healthz),
    "probe on a closed port": (rules.probe_violations, _probe_wrong_port),
    "no memory limit": (rules.resource_violations, _drop_memory_limit),
    "request over limit": (rules.resource_violations, _request_over_limit),
    "writable root": (rules.security_violations, _writable_root),
    "privilege escalation": (rules.security_violations, _escalation),
    "added capability": (rules.security_violations, _add_capability),
    "root user": (rules.security_violations, _root_user),
    "no /tmp emptyDir": (rules.security_violations, _no_tmp),
    "no PDB": (rules.pdb_violations, _drop_pdb),
    "PDB blocks drains": (rules.pdb_violations, _pdb_blocks_drain),
    "no default deny": (rules.network_policy_violations, _drop_default_deny),
    "rfq-service reaches risk": (rules.network_policy_violations, _rfq_service_reaches_risk),
    "risk open to all": (rules.network_policy_violations, _risk_open_to_all),
    "monitoring reaches gRPC": (rules.network_policy_violations, _monitoring_reaches_grpc),
    "Redis from anywhere": (rules.datastore_violations, _redis_from_anywhere),
    "Kafka open": (rules.datastore_violations, _kafka_open),
    "Postgres closed": (rules.datastore_violations, _postgres_closed_to_platform),
    "Service on a closed port": (rules.service_violations, _service_wrong_port),
    "unknown setting": (code_rules.settings_violations, _unknown_setting),
    "bad setting value": (code_rules.settings_violations, _bad_setting_value),
    "misspelled option": (code_rules.command_violations, _misspelled_option),
    "unknown command": (code_rules.command_violations, _unknown_command),
    "missing maker": (code_rules.maker_violations, _missing_maker),
    "missing service": (code_rules.deployment_violations, _missing_gateway),
}


@pytest.mark.parametrize(("rule", "breaking"), BREAKS.values(), ids=BREAKS.keys())
def test_the_rule_notices_a_break(rule: Rule, breaking: Callable[[list[Obj]], None]) -> None:
    objs = render("prod")
    before = set(rule(objs))  # empty when test_the_rule_holds passes
    breaking(objs)
    assert set(rule(objs)) - before


def _drop_dlq(objs: list[Obj]) -> None:
    topic = next(
        t for t in rules.of_kind(objs, "KafkaTopic") if t["spec"]["topicName"] == "rfq.quotes.dlq"
    )
    objs.remove(topic)


def _one_topic_on_two_replicas(objs: list[Obj]) -> None:
    rules.of_kind(objs, "KafkaTopic")[0]["spec"]["replicas"] = 2


def _two_brokers(objs: list[Obj]) -> None:
    rules.of_kind(objs, "KafkaNodePool")[0]["spec"]["replicas"] = 2


@pytest.mark.parametrize("breaking", [_drop_dlq, _one_topic_on_two_replicas, _two_brokers])
def test_the_topic_rule_notices_a_break(breaking: Callable[[list[Obj]], None]) -> None:
    objs = render("prod")
    breaking(objs)
    assert code_rules.topic_violations(objs, *REPLICATION["prod"]) != []


def test_a_missing_secret_is_noticed() -> None:
    objs = render("dev")
    objs.remove(next(o for o in objs if o["kind"] == "Secret"))
    assert rules.reference_violations(objs, EXTERNAL_SECRETS["dev"]) != []


@pytest.mark.parametrize(
    ("kind", "name", "path", "value"),
    [
        # strict Kubernetes schema: a misspelled field of a core object
        ("Deployment", "order-core", ("spec", "template", "spec", "restartpolicy"), "Always"),
        # our Strimzi schema: a field the v1 API removed
        ("Kafka", "otc-kafka", ("spec", "kafka", "replicas"), 3),
        ("KafkaTopic", "rfq-requests", ("spec", "replica"), 3),
        # our CloudNativePG schema: parameters are strings
        ("Cluster", "otc-pg", ("spec", "postgresql", "parameters", "max_connections"), 500),
    ],
    ids=["core object", "Kafka", "KafkaTopic", "Cluster"],
)
def test_schema_validation_rejects_a_wrong_field(
    kind: str, name: str, path: tuple[str, ...], value: object
) -> None:
    objs = render("prod")
    obj = rules.named(objs, kind, name)
    assert schema_errors(obj) == []
    target = obj
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert schema_errors(obj) != []
