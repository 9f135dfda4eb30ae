"""The rules every rendered overlay must keep, as functions that list violations.

Each rule takes the rendered objects and returns one message per violation
(empty when the rule holds), so a test can both check the real manifests and
prove, on a mutated copy, that the rule notices a break.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from tests.deploy.render import Obj, ref

PLATFORM_IMAGE = "otc-rfq"
PLATFORM_LABEL = ("app.kubernetes.io/part-of", "otc-rfq")
RUN_AS_USER = 10001  # the Dockerfile's USER
WORKLOAD_KINDS = ("Deployment", "Job", "CronJob")
TMP = "/tmp"  # noqa: S108  (the path containers must get as an emptyDir)


def of_kind(objs: list[Obj], kind: str) -> list[Obj]:
    return [o for o in objs if o["kind"] == kind]


def named(objs: list[Obj], kind: str, name: str) -> Obj:
    matches = [o for o in of_kind(objs, kind) if o["metadata"]["name"] == name]
    if len(matches) != 1:
        raise LookupError(f"{kind}/{name}: {len(matches)} objects")
    return matches[0]


def pod_template(workload: Obj) -> Obj:
    spec = workload["spec"]
    if workload["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    template: Obj = spec["template"]
    return template


def workloads(objs: list[Obj]) -> Iterator[tuple[Obj, Obj]]:
    """Each Deployment, Job and CronJob with its pod template."""
    for obj in objs:
        if obj["kind"] in WORKLOAD_KINDS:
            yield obj, pod_template(obj)


def containers(template: Obj) -> list[Obj]:
    spec = template["spec"]
    found: list[Obj] = spec.get("initContainers", []) + spec["containers"]
    return found


def is_platform(container: Obj) -> bool:
    """Runs our image, whatever registry and tag an overlay pins it to."""
    image: str = container["image"]
    return image.split("@")[0].split(":")[0].rsplit("/", 1)[-1] == PLATFORM_IMAGE


def pod_labels(template: Obj) -> dict[str, str]:
    labels: dict[str, str] = template.get("metadata", {}).get("labels", {})
    return labels


def selects(selector: Obj | None, labels: dict[str, str]) -> bool:
    """Kubernetes label-selector semantics; an empty selector selects everything."""
    selector = selector or {}
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


# -- pods ---------------------------------------------------------------------


def probe_violations(objs: list[Obj]) -> list[str]:
    """Every Deployment's containers have liveness and readiness probes; ours
    check /healthz and /readyz (or gRPC health) on a port the container opens."""
    out = []
    for deployment in of_kind(objs, "Deployment"):
        for c in containers(pod_template(deployment)):
            where = f"{ref(deployment)} container {c['name']}"
            for kind in ("livenessProbe", "readinessProbe"):
                if kind not in c:
                    out.append(f"{where}: no {kind}")
            if not is_platform(c):
                continue
            ports = {p.get("name") for p in c.get("ports", [])} | {
                p["containerPort"] for p in c.get("ports", [])
            }
            for kind, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
                probe = c.get(kind, {})
                if "grpc" in probe:
                    port = probe["grpc"]["port"]
                elif "httpGet" in probe:
                    port = probe["httpGet"]["port"]
                    if probe["httpGet"].get("path") != path:
                        out.append(f"{where}: {kind} must GET {path}")
                else:
                    out.append(f"{where}: {kind} must be an HTTP or gRPC health check")
                    continue
                if port not in ports:
                    out.append(f"{where}: {kind} probes port {port!r}, which it does not open")
    return out


_SUFFIXES = {
    "m": Decimal("0.001"),
    "k": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
}


def quantity(value: str | int) -> Decimal:
    text = str(value)
    for suffix in sorted(_SUFFIXES, key=len, reverse=True):
        if text.endswith(suffix):
            return Decimal(text[: -len(suffix)]) * _SUFFIXES[suffix]
    return Decimal(text)


def resource_violations(objs: list[Obj]) -> list[str]:
    """Every container of every workload requests and limits CPU and memory,
    and requests no more than its limit."""
    out = []
    for workload, template in workloads(objs):
        for c in containers(template):
            where = f"{ref(workload)} container {c['name']}"
            resources = c.get("resources", {})
            for resource in ("cpu", "memory"):
                request = resources.get("requests", {}).get(resource)
                limit = resources.get("limits", {}).get(resource)
                if request is None or limit is None:
                    out.append(f"{where}: {resource} needs a request and a limit")
                elif quantity(request) > quantity(limit):
                    out.append(f"{where}: {resource} request {request} exceeds limit {limit}")
    return out


def _effective(key: str, container: Obj, pod: Obj) -> Any:
    """A container's security setting overrides the pod's."""
    return container.get(key, pod.get(key))


def security_violations(objs: list[Obj]) -> list[str]:
    """The restricted security context on every container of every workload:
    non-root, read-only root filesystem with an emptyDir at /tmp, no privilege
    escalation, no capabilities, the RuntimeDefault seccomp profile."""
    out = []
    for workload, template in workloads(objs):
        spec = template["spec"]
        pod = spec.get("securityContext", {})
        for key in ("hostNetwork", "hostPID", "hostIPC"):
            if spec.get(key):
                out.append(f"{ref(workload)}: {key}")
        empty_dirs = {v["name"] for v in spec.get("volumes", []) if "emptyDir" in v}
        for c in containers(template):
            where = f"{ref(workload)} container {c['name']}"
            sc = c.get("securityContext", {})
            uid = _effective("runAsUser", sc, pod)
            if _effective("runAsNonRoot", sc, pod) is not True:
                out.append(f"{where}: runAsNonRoot is not true")
            if uid == 0:
                out.append(f"{where}: runs as uid 0")
            if is_platform(c) and uid != RUN_AS_USER:
                out.append(f"{where}: runAsUser is not the image's uid {RUN_AS_USER}")
            if sc.get("readOnlyRootFilesystem") is not True:
                out.append(f"{where}: root filesystem is writable")
            if sc.get("allowPrivilegeEscalation") is not False:
                out.append(f"{where}: allowPrivilegeEscalation is not false")
            capabilities = sc.get("capabilities", {})
            if "ALL" not in capabilities.get("drop", []) or capabilities.get("add"):
                out.append(f"{where}: capabilities must drop ALL and add none")
            if (_effective("seccompProfile", sc, pod) or {}).get("type") != "RuntimeDefault":
                out.append(f"{where}: seccomp profile is not RuntimeDefault")
            tmp = [m for m in c.get("volumeMounts", []) if m["mountPath"] == TMP]
            if not tmp or tmp[0]["name"] not in empty_dirs:
                out.append(f"{where}: /tmp is not an emptyDir")
        if any(is_platform(c) for c in containers(template)) and (
            pod_labels(template).get(PLATFORM_LABEL[0]) != PLATFORM_LABEL[1]
        ):
            out.append(f"{ref(workload)}: pods lack the label {'='.join(PLATFORM_LABEL)}")
    return out


# -- availability -------------------------------------------------------------


def min_replicas(objs: list[Obj], deployment: Obj) -> int:
    """What the Deployment runs at least: its replicas, or its HPA's minimum."""
    for hpa in of_kind(objs, "HorizontalPodAutoscaler"):
        target = hpa["spec"]["scaleTargetRef"]
        if (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"]):
            return int(hpa["spec"].get("minReplicas", 1))
    return int(deployment["spec"].get("replicas", 1))


def pdb_violations(objs: list[Obj]) -> list[str]:
    """Every Deployment has a PodDisruptionBudget, and none blocks a node drain."""
    out = []
    pdbs = of_kind(objs, "PodDisruptionBudget")
    for deployment in of_kind(objs, "Deployment"):
        labels = pod_labels(pod_template(deployment))
        mine = [p for p in pdbs if selects(p["spec"]["selector"], labels)]
        if not mine:
            out.append(f"{ref(deployment)}: no PodDisruptionBudget")
        replicas = min_replicas(objs, deployment)
        for pdb in mine:
            spec = pdb["spec"]
            blocked = (
                spec.get("maxUnavailable") in (0, "0%")
                or (isinstance(spec.get("minAvailable"), int) and spec["minAvailable"] >= replicas)
                or spec.get("minAvailable") == "100%"
            )
            if blocked:
                out.append(f"{ref(pdb)}: never lets {ref(deployment)} ({replicas} replicas) drain")
    return out


# -- network ------------------------------------------------------------------

ANYONE = "<any source>"


def ingress_policies(objs: list[Obj], labels: dict[str, str]) -> list[Obj]:
    return [
        p
        for p in of_kind(objs, "NetworkPolicy")
        if "Ingress" in p["spec"].get("policyTypes", ["Ingress"])
        and selects(p["spec"]["podSelector"], labels)
    ]


def ingress_peers(
    objs: list[Obj], labels: dict[str, str], port: int, port_names: set[str]
) -> list[Obj]:
    """The peers allowed to reach `port` (or one of its names) on pods with
    `labels`; `{ANYONE: True}` stands for a rule that admits every source."""
    policies = ingress_policies(objs, labels)
    if not policies:
        return [{ANYONE: True}]  # no policy selects the pods: all traffic is allowed
    peers = []
    for policy in policies:
        for rule in policy["spec"].get("ingress", []):
            ports = rule.get("ports")
            if ports and not any(p.get("port") in {port, *port_names} for p in ports):
                continue
            sources = rule.get("from")
            peers.extend(sources if sources else [{ANYONE: True}])
    return peers


def is_local_pod_peer(peer: Obj) -> bool:
    """A peer naming pods of this namespace only (no namespace or IP range)."""
    return set(peer) == {"podSelector"}


def reachable_from(objs: list[Obj], peers: list[Obj]) -> set[str]:
    """The workloads of the render (and wider sources) that `peers` admit."""
    sources = set()
    for peer in peers:
        if not is_local_pod_peer(peer):
            sources.add(ANYONE if ANYONE in peer else f"<outside the namespace: {peer}>")
            continue
        sources |= {
            ref(w) for w, t in workloads(objs) if selects(peer["podSelector"], pod_labels(t))
        }
    return sources


# order_core freezes, commits and releases; the end-of-day batch expires what was
# left frozen and reads the committed reservations it reconciles.
RISK_GRPC_CLIENTS = {"Deployment/order-core", "CronJob/otc-eod"}


def risk_grpc_sources(objs: list[Obj]) -> set[str]:
    risk = pod_template(named(objs, "Deployment", "risk-limits"))
    (grpc_port,) = (
        p for c in containers(risk) for p in c.get("ports", []) if p.get("name") == "grpc"
    )
    peers = ingress_peers(objs, pod_labels(risk), grpc_port["containerPort"], {"grpc"})
    return reachable_from(objs, peers)


def network_policy_violations(objs: list[Obj]) -> list[str]:
    """Ingress is denied by default, every Deployment has a policy of its own,
    and only order-core and the end-of-day batch reach risk-limits' gRPC port."""
    out = []
    if not any(
        not p["spec"]["podSelector"]
        and "Ingress" in p["spec"].get("policyTypes", [])
        and not p["spec"].get("ingress")
        for p in of_kind(objs, "NetworkPolicy")
    ):
        out.append("no default-deny ingress NetworkPolicy")
    for deployment in of_kind(objs, "Deployment"):
        labels = pod_labels(pod_template(deployment))
        if not any(p["spec"]["podSelector"] for p in ingress_policies(objs, labels)):
            out.append(f"{ref(deployment)}: selected by no NetworkPolicy of its own")
    sources = risk_grpc_sources(objs)
    if sources != RISK_GRPC_CLIENTS:
        out.append(
            f"risk-limits gRPC is reachable from {sorted(sources)}, "
            f"not only {sorted(RISK_GRPC_CLIENTS)}"
        )
    return out


def requires_platform_label(peer: Obj) -> bool:
    selector = peer.get("podSelector", {})
    return bool(
        is_local_pod_peer(peer)
        and selector.get("matchLabels", {}).get(PLATFORM_LABEL[0]) == PLATFORM_LABEL[1]
    )


def datastore_violations(objs: list[Obj]) -> list[str]:
    """Only the platform's pods (and a database's own instances) reach
    PostgreSQL, Redis and Kafka, and the platform does reach them."""
    out = []
    redis = pod_template(named(objs, "Deployment", "otc-redis"))
    pg_name = named(objs, "Cluster", "otc-pg")["metadata"]["name"]
    pg_self = {"podSelector": {"matchLabels": {"cnpg.io/cluster": pg_name}}}
    stores = {
        "Redis": (pod_labels(redis), 6379, {"redis"}, []),
        "PostgreSQL": ({"cnpg.io/cluster": pg_name}, 5432, {"postgresql"}, [pg_self]),
    }
    for store, (labels, port, names, own) in stores.items():
        peers = ingress_peers(objs, labels, port, names)
        for peer in peers:
            if not requires_platform_label(peer) and peer not in own:
                out.append(f"{store} port {port} admits {peer}")
        if not any(requires_platform_label(p) for p in peers):
            out.append(f"{store} port {port} is closed to the platform")
    for kafka in of_kind(objs, "Kafka"):
        for listener in kafka["spec"]["kafka"]["listeners"]:
            peers = listener.get("networkPolicyPeers") or [{ANYONE: True}]
            for peer in peers:
                if not requires_platform_label(peer):
                    out.append(f"{ref(kafka)} listener {listener['name']} admits {peer}")
    return out


# -- wiring -------------------------------------------------------------------


def reference_violations(objs: list[Obj], external_secrets: set[str]) -> list[str]:
    """Every ConfigMap and Secret a container reads, or a pod mounts, exists (with
    the key it reads), or is a Secret created outside the render (`external_secrets`)."""
    data: dict[tuple[str, str], set[str]] = {}
    for obj in objs:
        if obj["kind"] in ("ConfigMap", "Secret"):
            keys = set(obj.get("data", {})) | set(obj.get("stringData", {}))
            data[(obj["kind"], obj["metadata"]["name"])] = keys
    out = []
    for workload, template in workloads(objs):
        for volume in template["spec"].get("volumes", []):
            name = volume.get("secret", {}).get("secretName")
            known = name is None or name in external_secrets or ("Secret", name) in data
            if not known:
                out.append(f"{ref(workload)} volume {volume['name']}: Secret/{name} does not exist")
        for c in containers(template):
            where = f"{ref(workload)} container {c['name']}"
            wanted: list[tuple[str, str, str | None]] = []
            for source in c.get("envFrom", []):
                if "configMapRef" in source:
                    wanted.append(("ConfigMap", source["configMapRef"]["name"], None))
                if "secretRef" in source:
                    wanted.append(("Secret", source["secretRef"]["name"], None))
            for env in c.get("env", []):
                value_from = env.get("valueFrom", {})
                if "configMapKeyRef" in value_from:
                    key_ref = value_from["configMapKeyRef"]
                    wanted.append(("ConfigMap", key_ref["name"], key_ref["key"]))
                if "secretKeyRef" in value_from:
                    key_ref = value_from["secretKeyRef"]
                    wanted.append(("Secret", key_ref["name"], key_ref["key"]))
            for kind, name, key in wanted:
                if kind == "Secret" and name in external_secrets:
                    continue
                if (kind, name) not in data:
                    out.append(f"{where}: reads {kind}/{name}, which does not exist")
                elif key is not None and key not in data[(kind, name)]:
                    out.append(f"{where}: reads key {key} that {kind}/{name} lacks")
    return out


def service_violations(objs: list[Obj]) -> list[str]:
    """Every Service selects a workload's pods and targets a port they open;
    every Ingress backend is such a Service port."""
    out = []
    templates = [t for _, t in workloads(objs)]
    services = {s["metadata"]["name"]: s for s in of_kind(objs, "Service")}
    for name, service in services.items():
        matched = [t for t in templates if selects(service["spec"]["selector"], pod_labels(t))]
        if not matched:
            out.append(f"Service/{name}: selects no pods")
            continue
        opened = {
            value
            for t in matched
            for c in containers(t)
            for p in c.get("ports", [])
            for value in (p.get("name"), p["containerPort"])
        }
        for port in service["spec"]["ports"]:
            if port.get("targetPort", port["port"]) not in opened:
                out.append(f"Service/{name}: port {port['port']} targets a port no pod opens")
    for ingress in of_kind(objs, "Ingress"):
        for rule in ingress["spec"].get("rules", []):
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                service = services.get(backend["name"])
                names = {
                    value
                    for p in (service or {}).get("spec", {}).get("ports", [])
                    for value in (p.get("name"), p["port"])
                }
                if not {backend["port"].get("name"), backend["port"].get("number")} & names:
                    out.append(f"{ref(ingress)}: backend {backend} is not a Service port")
    return out


def hpa_violations(objs: list[Obj], expected: set[str]) -> list[str]:
    """The HPAs scale exactly the `expected` Deployments, each from the replicas
    the Deployment itself asks for (so a re-apply never scales below the floor)."""
    out = []
    targets = {}
    for hpa in of_kind(objs, "HorizontalPodAutoscaler"):
        target = hpa["spec"]["scaleTargetRef"]
        targets[target["name"]] = hpa
        try:
            deployment = named(objs, target["kind"], target["name"])
        except LookupError:
            out.append(f"{ref(hpa)}: scales {target['kind']}/{target['name']}, which is missing")
            continue
        low, high = hpa["spec"].get("minReplicas", 1), hpa["spec"]["maxReplicas"]
        if not 1 <= low <= high:
            out.append(f"{ref(hpa)}: replicas {low}..{high}")
        if deployment["spec"].get("replicas", 1) != low:
            out.append(f"{ref(hpa)}: {ref(deployment)} asks for other replicas than {low}")
    if set(targets) != expected:
        out.append(f"HPAs scale {sorted(targets)}, expected {sorted(expected)}")
    return out
