"""deploy/k8s: the Kubernetes manifests, checked offline. Core kinds are validated against the
Kubernetes OpenAPI schemas bundled in `kubernetes-validate`, the KEDA ScaledObject against a
JSON Schema written here from KEDA's documentation, and the manifests against each other and
against the application (its settings classes, its HTTP endpoints, its images). No cluster is
needed, or contacted."""

from __future__ import annotations

import copy
import os
import re
import shutil
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema
import pytest
import yaml
from pydantic_settings import BaseSettings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
KUSTOMIZATION = K8S / "kustomization.yaml"
SECRET_TEMPLATE = K8S / "secret.example.yaml"
RULES_EXAMPLE = ROOT / "deploy" / "rules.example.yaml"
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"

WORKER = "textroute-worker"
API = "textroute-api"
REVIEW_STORE = "textroute-review-store"
SHARED_CONFIG = "textroute-config"
RULES_CONFIG = "textroute-rules"
MODELS_CLAIM = "textroute-models"
REVIEW_CLAIM = "textroute-review-store"
# The oldest Kubernetes the manifests claim to work on (autoscaling/v2 and policy/v1 are GA well
# before it), and the newest whose schemas kubernetes-validate bundles.
OLDEST_KUBERNETES = "1.27.0"
# Inference time of one batch of 32 on one CPU is about a second; ten leaves room for long texts.
BATCH_BUDGET_S = 10.0
KEDA_API_VERSION = "keda.sh/v1alpha1"

Manifest = dict[str, Any]


# ---- loading ----


def manifest_files() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p != KUSTOMIZATION)


def documents(path: Path) -> list[Manifest]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]


@pytest.fixture(scope="module")
def objects() -> dict[tuple[str, str], Manifest]:
    """Every object of deploy/k8s (the Secret template included) by (kind, name)."""
    out: dict[tuple[str, str], Manifest] = {}
    for path in manifest_files():
        for doc in documents(path):
            key = (doc["kind"], doc["metadata"]["name"])
            assert key not in out, f"{key} is defined twice"
            out[key] = doc
    return out


def container(deployment: Manifest) -> Manifest:
    only: Manifest
    [only] = deployment["spec"]["template"]["spec"]["containers"]
    return only


def pod_env(
    deployment: Manifest, objects: dict[tuple[str, str], Manifest], *, secrets: bool = False
) -> dict[str, str]:
    """The container's variables as the kubelet would set them: the ConfigMaps of `envFrom`,
    then `env` (which wins). Variables from a Secret get the Secret's value when `secrets`,
    else are left out."""
    c = container(deployment)
    env: dict[str, str] = {}
    for source in c.get("envFrom", []):
        ref = source["configMapRef"]["name"]
        env.update(objects[("ConfigMap", ref)]["data"])
    for var in c.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
        elif secrets and "secretKeyRef" in var.get("valueFrom", {}):
            ref = var["valueFrom"]["secretKeyRef"]
            env[var["name"]] = objects[("Secret", ref["name"])]["stringData"][ref["key"]]
    return env


def named_port(deployment: Manifest, port: int | str) -> int:
    """A probe's or Service's port, by name or number, as the container's port number."""
    ports = {p["name"]: p["containerPort"] for p in container(deployment).get("ports", [])}
    if isinstance(port, str):
        assert port in ports, f"{port!r} is not a named port of {deployment['metadata']['name']}"
        return int(ports[port])
    assert port in ports.values(), f"{port} is not a container port"
    return port


def volume_at(deployment: Manifest, path: str) -> tuple[Manifest, str]:
    """The volume a path in the container lies on (the deepest mount holding it), and the path
    relative to that mount; the mount must be read-only."""
    name = deployment["metadata"]["name"]
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    mounts = {m["mountPath"]: m for m in container(deployment)["volumeMounts"]}
    hits = [m for m in mounts if PurePosixPath(path).is_relative_to(m)]
    assert hits, f"{name}: {path} is on no volume"
    mount = max(hits, key=len)
    assert mounts[mount].get("readOnly") is True, f"{name}: {mount} should be read-only"
    return volumes[mounts[mount]["name"]], str(PurePosixPath(path).relative_to(mount))


def pod_labels(deployment: Manifest) -> dict[str, str]:
    return dict(deployment["spec"]["template"]["metadata"]["labels"])


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def cpu_cores(quantity: str) -> float:
    return float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


@pytest.fixture()
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No TEXTROUTE_* variable of this machine leaks into the settings built from manifests."""
    for name in [k for k in os.environ if k.startswith("TEXTROUTE_")]:
        monkeypatch.delenv(name)
    return monkeypatch


def _settings_classes() -> dict[str, type[BaseSettings]]:
    from inference.settings import InferenceSettings
    from stream.api.settings import ApiSettings
    from stream.config import BrokerSettings, TopicSettings, WorkerSettings

    classes: list[type[BaseSettings]] = [
        ApiSettings,
        BrokerSettings,
        TopicSettings,
        WorkerSettings,
        InferenceSettings,
    ]
    return {str(c.model_config.get("env_prefix")): c for c in classes}


# ---- parsing and schemas ----


def test_every_manifest_parses_into_named_kubernetes_objects() -> None:
    files = manifest_files()
    assert files, "deploy/k8s has no manifests"
    for path in [*files, KUSTOMIZATION]:
        docs = documents(path)
        assert docs, f"{path.name} is empty"
        for doc in docs:
            assert isinstance(doc, dict), path.name
            assert doc.get("apiVersion") and doc.get("kind"), path.name
            if path != KUSTOMIZATION:
                assert doc["metadata"]["name"], path.name


@pytest.fixture(scope="module")
def kubernetes_validate() -> Any:
    return pytest.importorskip(
        "kubernetes_validate",
        reason="kubernetes-validate (dev extra) is not installed: the OpenAPI checks need it",
    )


def _core_objects() -> Iterator[Any]:
    for path in manifest_files():
        for doc in documents(path):
            if doc["apiVersion"] != KEDA_API_VERSION:
                yield pytest.param(doc, id=f"{path.name}:{doc['kind']}")


@pytest.mark.parametrize("version", [OLDEST_KUBERNETES, "latest"])
@pytest.mark.parametrize("doc", list(_core_objects()))
def test_core_kinds_validate_against_the_kubernetes_openapi_schemas(
    kubernetes_validate: Any, doc: Manifest, version: str
) -> None:
    if version == "latest":
        version = kubernetes_validate.latest_version()
    # strict: unknown fields (a typo'd key) are errors too, as the API server rejects them.
    kubernetes_validate.validate(doc, version, strict=True)


def test_the_kubernetes_validator_rejects_what_the_api_server_would(
    kubernetes_validate: Any, objects: dict[tuple[str, str], Manifest]
) -> None:
    # The checks above mean something only if the validator is not vacuous.
    version = kubernetes_validate.latest_version()
    broken = copy.deepcopy(objects[("Deployment", WORKER)])
    container(broken)["env"][0]["value"] = 9100  # env values must be strings
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, version, strict=True)
    typo = copy.deepcopy(objects[("Deployment", WORKER)])
    container(typo)["livenesProbe"] = container(typo)["livenessProbe"]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(typo, version, strict=True)


# KEDA's ScaledObject (keda.sh/v1alpha1) and its kafka trigger, from KEDA's documentation
# (https://keda.sh/docs/latest/reference/scaledobject-spec/ and .../scalers/apache-kafka/):
# trigger metadata is a map of strings, and the kafka keys are the documented ones, so a
# misspelt key (which KEDA would silently ignore) is an error here.
_KAFKA_METADATA_KEYS = [
    "bootstrapServers",
    "bootstrapServersFromEnv",
    "consumerGroup",
    "consumerGroupFromEnv",
    "topic",
    "topicFromEnv",
    "lagThreshold",
    "activationLagThreshold",
    "offsetResetPolicy",
    "allowIdleConsumers",
    "excludePersistentLag",
    "scaleToZeroOnInvalidOffset",
    "limitToPartitionsWithLag",
    "ensureEvenDistributionOfPartitions",
    "partitionLimitation",
    "version",
    "sasl",
    "tls",
    "unsafeSsl",
]
_BOOL_STRING = {"type": "string", "enum": ["true", "false"]}
SCALED_OBJECT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": KEDA_API_VERSION},
        "kind": {"const": "ScaledObject"},
        "metadata": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
                "namespace": {"type": "string"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
        "spec": {
            "type": "object",
            "required": ["scaleTargetRef", "triggers"],
            "additionalProperties": False,
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "required": ["name"],
                    "additionalProperties": False,
                    "properties": {
                        "name": {"type": "string", "minLength": 1},
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "envSourceContainerName": {"type": "string"},
                    },
                },
                "pollingInterval": {"type": "integer", "minimum": 1},
                "cooldownPeriod": {"type": "integer", "minimum": 0},
                "initialCooldownPeriod": {"type": "integer", "minimum": 0},
                "idleReplicaCount": {"type": "integer", "minimum": 0},
                "minReplicaCount": {"type": "integer", "minimum": 0},
                "maxReplicaCount": {"type": "integer", "minimum": 1},
                "fallback": {
                    "type": "object",
                    "required": ["failureThreshold", "replicas"],
                    "properties": {
                        "failureThreshold": {"type": "integer", "minimum": 1},
                        "replicas": {"type": "integer", "minimum": 0},
                    },
                },
                "advanced": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "restoreToOriginalReplicaCount": {"type": "boolean"},
                        "horizontalPodAutoscalerConfig": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "name": {"type": "string"},
                                # Checked against the Kubernetes HPA schema in its own test.
                                "behavior": {"type": "object"},
                            },
                        },
                        "scalingModifiers": {"type": "object"},
                    },
                },
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["type", "metadata"],
                        "additionalProperties": False,
                        "properties": {
                            "type": {"type": "string"},
                            "name": {"type": "string"},
                            "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                            "useCachedMetrics": {"type": "boolean"},
                            "authenticationRef": {
                                "type": "object",
                                "required": ["name"],
                                "properties": {
                                    "name": {"type": "string"},
                                    "kind": {
                                        "enum": [
                                            "TriggerAuthentication",
                                            "ClusterTriggerAuthentication",
                                        ]
                                    },
                                },
                            },
                            "metadata": {
                                "type": "object",
                                "additionalProperties": {"type": "string"},
                            },
                        },
                        # This deployment scales on Kafka only.
                        "allOf": [
                            {
                                "properties": {"type": {"const": "kafka"}},
                            },
                            {
                                "properties": {
                                    "metadata": {
                                        "required": [
                                            "bootstrapServers",
                                            "consumerGroup",
                                            "lagThreshold",
                                        ],
                                        "anyOf": [
                                            {"required": ["topic"]},
                                            {"required": ["allowIdleConsumers"]},
                                        ],
                                        "propertyNames": {"enum": _KAFKA_METADATA_KEYS},
                                        "properties": {
                                            "bootstrapServers": {
                                                "type": "string",
                                                "pattern": r"^[^,\s:]+:\d+(,[^,\s:]+:\d+)*$",
                                            },
                                            "consumerGroup": {"type": "string", "minLength": 1},
                                            "topic": {"type": "string", "minLength": 1},
                                            "lagThreshold": {
                                                "type": "string",
                                                "pattern": "^[1-9][0-9]*$",
                                            },
                                            "activationLagThreshold": {
                                                "type": "string",
                                                "pattern": "^[0-9]+$",
                                            },
                                            "offsetResetPolicy": {"enum": ["latest", "earliest"]},
                                            "allowIdleConsumers": _BOOL_STRING,
                                            "excludePersistentLag": _BOOL_STRING,
                                            "scaleToZeroOnInvalidOffset": _BOOL_STRING,
                                            "limitToPartitionsWithLag": _BOOL_STRING,
                                        },
                                    }
                                }
                            },
                        ],
                    },
                },
            },
        },
    },
}


@pytest.fixture(scope="module")
def scaled_object(objects: dict[tuple[str, str], Manifest]) -> Manifest:
    [found] = [o for (kind, _), o in objects.items() if kind == "ScaledObject"]
    return found


def test_keda_scaled_object_matches_kedas_documented_schema(scaled_object: Manifest) -> None:
    jsonschema.Draft202012Validator.check_schema(SCALED_OBJECT_SCHEMA)
    jsonschema.validate(scaled_object, SCALED_OBJECT_SCHEMA, jsonschema.Draft202012Validator)
    spec = scaled_object["spec"]
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("spec", "triggers", 0, "metadata", "lagThreshold"), 1000),  # not a string: CRD refuses
        (("spec", "triggers", 0, "metadata", "lagTreshold"), "1000"),  # misspelt: KEDA ignores
        (("spec", "triggers", 0, "type"), "kafka-typo"),
        (("spec", "scaleTargetRef", "name"), ""),
        (("apiVersion",), "keda.k8s.io/v1alpha1"),  # KEDA 1.x
    ],
    ids=["int-lag-threshold", "misspelt-key", "not-kafka", "no-target", "keda-v1-api"],
)
def test_the_keda_schema_rejects_what_keda_would_refuse_or_ignore(
    scaled_object: Manifest, path: tuple[str | int, ...], value: Any
) -> None:
    broken = copy.deepcopy(scaled_object)
    node: Any = broken
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, SCALED_OBJECT_SCHEMA, jsonschema.Draft202012Validator)


def test_keda_hpa_behavior_is_a_valid_kubernetes_hpa_behavior(
    kubernetes_validate: Any, scaled_object: Manifest
) -> None:
    behavior = scaled_object["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "keda-hpa"},
        "spec": {
            "scaleTargetRef": scaled_object["spec"]["scaleTargetRef"],
            "maxReplicas": scaled_object["spec"]["maxReplicaCount"],
            "behavior": behavior,
        },
    }
    kubernetes_validate.validate(hpa, kubernetes_validate.latest_version(), strict=True)


# ---- kustomize ----


def test_kustomization_lists_every_manifest_but_the_secret_template(
    objects: dict[tuple[str, str], Manifest],
) -> None:
    kustomization = yaml.safe_load(KUSTOMIZATION.read_text(encoding="utf-8"))
    listed = kustomization["resources"]
    assert len(listed) == len(set(listed))
    expected = {p.name for p in manifest_files()} - {SECRET_TEMPLATE.name}
    assert set(listed) == expected
    # Applying the template would overwrite the real key with an empty one.
    assert SECRET_TEMPLATE.name not in listed
    [namespace] = [name for kind, name in objects if kind == "Namespace"]
    assert kustomization["namespace"] == namespace
    for (kind, name), obj in objects.items():
        if kind != "Namespace":
            assert obj["metadata"].get("namespace") == namespace, (kind, name)


def test_kubectl_kustomize_renders_the_whole_set_into_one_namespace(
    objects: dict[tuple[str, str], Manifest],
) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("no kubectl here to render the kustomization (the listing test still runs)")
    proc = subprocess.run(
        [kubectl, "kustomize", str(K8S)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    rendered = [d for d in yaml.safe_load_all(proc.stdout) if d]
    keys = {(d["kind"], d["metadata"]["name"]) for d in rendered}
    assert keys == set(objects) - {("Secret", API)}
    namespace = yaml.safe_load(KUSTOMIZATION.read_text(encoding="utf-8"))["namespace"]
    assert all(
        d["metadata"].get("namespace") == namespace for d in rendered if d["kind"] != "Namespace"
    )


# ---- the worker and KEDA ----


def test_scaled_object_targets_the_worker_deployment(
    scaled_object: Manifest, objects: dict[tuple[str, str], Manifest]
) -> None:
    ref = scaled_object["spec"]["scaleTargetRef"]
    assert ref.get("kind", "Deployment") == "Deployment"
    assert ref.get("apiVersion", "apps/v1") == "apps/v1"
    assert ref["name"] == WORKER
    assert ("Deployment", ref["name"]) in objects


def test_scaled_object_reads_the_lag_of_the_workers_consumer_group(
    scaled_object: Manifest, objects: dict[tuple[str, str], Manifest], clean_env: Any
) -> None:
    from stream.config import WorkerSettings

    env = pod_env(objects[("Deployment", WORKER)], objects)
    for name, value in env.items():
        clean_env.setenv(name, value)
    # The group id the worker really joins: faust's app id is WorkerSettings.app_id.
    group = WorkerSettings().app_id
    assert env["TEXTROUTE_WORKER_APP_ID"] == group
    for trigger in scaled_object["spec"]["triggers"]:
        assert trigger["metadata"]["consumerGroup"] == group


def test_scaled_object_watches_every_inbound_topic_on_the_configured_brokers(
    scaled_object: Manifest, objects: dict[tuple[str, str], Manifest], clean_env: Any
) -> None:
    from stream.config import BrokerSettings, TopicSettings

    for name, value in pod_env(objects[("Deployment", WORKER)], objects).items():
        clean_env.setenv(name, value)
    inbound = set(TopicSettings().inbound())
    servers = BrokerSettings().servers
    triggers = scaled_object["spec"]["triggers"]
    assert {t["metadata"]["topic"] for t in triggers} == inbound
    assert len(triggers) == len(inbound)
    for trigger in triggers:
        assert trigger["metadata"]["bootstrapServers"].split(",") == servers


def test_max_worker_replicas_do_not_exceed_the_topic_partitions(
    scaled_object: Manifest, objects: dict[tuple[str, str], Manifest], clean_env: Any
) -> None:
    from stream.config import TopicSettings

    for name, value in pod_env(objects[("Deployment", WORKER)], objects).items():
        clean_env.setenv(name, value)
    partitions = TopicSettings().partitions
    assert partitions == 6
    spec = scaled_object["spec"]
    assert spec["minReplicaCount"] == 1
    assert spec["maxReplicaCount"] <= partitions, "workers beyond the partitions sit idle"
    for trigger in spec["triggers"]:
        assert trigger["metadata"].get("allowIdleConsumers", "false") == "false"


def test_keda_counts_uncommitted_partitions_as_the_worker_reads_them(
    scaled_object: Manifest, objects: dict[tuple[str, str], Manifest], clean_env: Any
) -> None:
    from stream.config import WorkerSettings

    for name, value in pod_env(objects[("Deployment", WORKER)], objects).items():
        clean_env.setenv(name, value)
    reset = WorkerSettings().auto_offset_reset
    for trigger in scaled_object["spec"]["triggers"]:
        # KEDA's default is latest; the worker's is earliest.
        assert trigger["metadata"].get("offsetResetPolicy", "latest") == reset


def test_autoscaled_deployments_leave_the_replica_count_to_their_autoscaler(
    scaled_object: Manifest, objects: dict[tuple[str, str], Manifest]
) -> None:
    [hpa] = [o for (kind, _), o in objects.items() if kind == "HorizontalPodAutoscaler"]
    targets = {
        scaled_object["spec"]["scaleTargetRef"]["name"],
        hpa["spec"]["scaleTargetRef"]["name"],
    }
    assert targets == {WORKER, API}
    for name in targets:
        # `kubectl apply` would otherwise reset the count the autoscaler chose.
        assert "replicas" not in objects[("Deployment", name)]["spec"], name


@pytest.mark.parametrize("name", [WORKER, REVIEW_STORE])
def test_worker_probes_hit_the_metrics_server_the_worker_starts(
    objects: dict[tuple[str, str], Manifest], clean_env: Any, name: str
) -> None:
    # `textroute review-store` serves the same StreamMetrics on the same setting.
    from stream.config import WorkerSettings
    from stream.metrics import StreamMetrics

    worker = objects[("Deployment", name)]
    c = container(worker)
    for key, value in pod_env(worker, objects).items():
        clean_env.setenv(key, value)
    metrics_port = WorkerSettings().metrics_port
    assert metrics_port is not None, (
        "without TEXTROUTE_WORKER_METRICS_PORT the worker serves nothing"
    )
    probes = {kind: c[kind] for kind in ("startupProbe", "livenessProbe", "readinessProbe")}

    # The worker's own metrics server (stream.worker: `metrics.serve(settings.metrics_port)`),
    # here on a free loopback port standing in for the pod's.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    StreamMetrics().serve(free, addr="127.0.0.1")
    no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    for kind, probe in probes.items():
        get = probe["httpGet"]
        assert named_port(worker, get["port"]) == metrics_port, kind
        # prometheus_client answers any path; /metrics is the one Prometheus and compose use.
        assert get["path"] == "/metrics", kind
        with no_proxy.open(f"http://127.0.0.1:{free}{get['path']}", timeout=10) as r:
            assert r.status == 200, kind
            assert b"textroute_consumer_lag" in r.read(), kind
    # A model load may take minutes: the startup probe, not liveness, waits it out (the review
    # store loads none and serves its metrics at once).
    startup = probes["startupProbe"]
    wait = 120 if name == WORKER else 30
    assert startup["periodSeconds"] * startup["failureThreshold"] >= wait


def test_worker_grace_period_covers_a_batch_its_produce_and_the_offset_commit(
    objects: dict[tuple[str, str], Manifest], clean_env: Any
) -> None:
    from stream.config import BrokerSettings

    worker = objects[("Deployment", WORKER)]
    for name, value in pod_env(worker, objects).items():
        clean_env.setenv(name, value)
    broker = BrokerSettings()
    # SIGTERM: finish the batch in hand, wait for the broker's acks (produce timeout), commit
    # and leave the group (one request).
    needed = BATCH_BUDGET_S + broker.produce_timeout_s + broker.request_timeout_s
    assert worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= needed


def test_cpu_deployments_size_inference_threads_to_their_cpu_limit(
    objects: dict[tuple[str, str], Manifest],
) -> None:
    for name in (WORKER, API):
        deployment = objects[("Deployment", name)]
        resources = container(deployment)["resources"]
        # Guaranteed QoS: requests equal limits, for CPU and memory.
        assert resources["requests"] == resources["limits"], name
        limit = cpu_cores(str(resources["limits"]["cpu"]))
        env = pod_env(deployment, objects)
        assert env["TEXTROUTE_INFERENCE_BACKEND"] == "onnx", name
        assert int(env["TEXTROUTE_INFERENCE_THREADS"]) == max(1, int(limit)), name
        assert int(env["TEXTROUTE_INFERENCE_CONCURRENCY"]) <= int(
            env["TEXTROUTE_INFERENCE_THREADS"]
        )
    worker = container(objects[("Deployment", WORKER)])["resources"]["limits"]
    assert (cpu_cores(str(worker["cpu"])), worker["memory"]) == (1.0, "1536Mi")


def test_containers_run_the_cpu_image_with_the_compose_commands(
    objects: dict[tuple[str, str], Manifest],
) -> None:
    services = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))["services"]
    for name, service in ((WORKER, "worker"), (API, "api"), (REVIEW_STORE, "review-store")):
        c = container(objects[("Deployment", name)])
        assert c["image"] == "textroute:cpu", name
        assert c["args"] == services[service]["command"], name
        assert "command" not in c, "the image's ENTRYPOINT is `textroute`"


def test_pods_run_as_the_images_non_root_user_with_writable_dirs_where_needed(
    objects: dict[tuple[str, str], Manifest], clean_env: Any
) -> None:
    from stream.config import WorkerSettings

    cpu_stage = DOCKERFILE.read_text(encoding="utf-8").split(" AS cpu")[-1]
    [user] = re.findall(r"^USER (\d+):(\d+)", cpu_stage, re.M)
    for name in (WORKER, API, REVIEW_STORE):
        spec = objects[("Deployment", name)]["spec"]["template"]["spec"]
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, name
        assert (str(pod["runAsUser"]), str(pod["runAsGroup"])) == user, name
        assert spec["automountServiceAccountToken"] is False, name
        c = container(objects[("Deployment", name)])
        assert c["securityContext"]["allowPrivilegeEscalation"] is False, name
        assert c["securityContext"]["readOnlyRootFilesystem"] is True, name
        emptydirs = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
        writable = [m["mountPath"] for m in c["volumeMounts"] if m["name"] in emptydirs]
        assert "/tmp" in writable, name
    # The root filesystem is read-only: faust's directory must be on an emptyDir.
    worker = objects[("Deployment", WORKER)]
    for key, value in pod_env(worker, objects).items():
        clean_env.setenv(key, value)
    data_dir = PurePosixPath(str(WorkerSettings().data_dir))
    spec = worker["spec"]["template"]["spec"]
    emptydirs = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
    mounts = [m for m in container(worker)["volumeMounts"] if m["name"] in emptydirs]
    assert any(data_dir.is_relative_to(m["mountPath"]) for m in mounts), data_dir


# ---- settings, models and rules ----


def test_textroute_variables_are_real_settings_with_valid_values(
    objects: dict[tuple[str, str], Manifest], clean_env: Any
) -> None:
    classes = _settings_classes()
    names: set[str] = set(objects[("ConfigMap", SHARED_CONFIG)]["data"])
    for name in (WORKER, API, REVIEW_STORE):
        names |= {v["name"] for v in container(objects[("Deployment", name)])["env"]}
    names = {n for n in names if n.startswith("TEXTROUTE_")}
    assert names
    for key in sorted(names):
        prefix = next((p for p in classes if key.startswith(p)), None)
        assert prefix is not None, f"{key} has no settings class"
        field = key[len(prefix) :].lower()
        assert field in classes[prefix].model_fields, f"{key} is not a setting"
    for name in (WORKER, API, REVIEW_STORE):
        env = pod_env(objects[("Deployment", name)], objects)
        env.setdefault("TEXTROUTE_API_API_KEY", "a-key-from-the-secret")
        for key in [k for k in os.environ if k.startswith("TEXTROUTE_")]:
            clean_env.delenv(key)
        for key, value in env.items():
            clean_env.setenv(key, value)
        for prefix, cls in classes.items():
            if any(k.startswith(prefix) for k in env):
                cls()  # raises ValidationError on a value the settings refuse


def test_models_and_rules_paths_lie_in_the_volumes_that_hold_them(
    objects: dict[tuple[str, str], Manifest],
) -> None:
    assert ("PersistentVolumeClaim", MODELS_CLAIM) in objects
    rules_keys = set(objects[("ConfigMap", RULES_CONFIG)]["data"])
    for name, prefix in ((WORKER, "TEXTROUTE_WORKER_"), (API, "TEXTROUTE_API_")):
        deployment = objects[("Deployment", name)]
        env = pod_env(deployment, objects)
        for key in (f"{prefix}CLASSIFIER_DIR", f"{prefix}NER_DIR"):
            volume, _ = volume_at(deployment, env[key])
            assert volume["persistentVolumeClaim"]["claimName"] == MODELS_CLAIM, key
        volume, relative = volume_at(deployment, env[f"{prefix}RULES_PATH"])
        assert volume["configMap"]["name"] == RULES_CONFIG
        assert relative in rules_keys, f"{name}: the rules ConfigMap has no key {relative}"
        for source in container(deployment)["envFrom"]:
            assert ("ConfigMap", source["configMapRef"]["name"]) in objects


def test_rules_configmap_is_the_example_rules_and_they_load() -> None:
    from stream.routing import parse_rules

    [configmap] = documents(K8S / "rules-configmap.yaml")
    [text] = configmap["data"].values()
    example = RULES_EXAMPLE.read_text(encoding="utf-8")
    assert yaml.safe_load(text) == yaml.safe_load(example), "copy deploy/rules.example.yaml again"
    parse_rules(text, source="deploy/k8s/rules-configmap.yaml")


# ---- the review store ----


def _settings_of(
    deployment: Manifest, objects: dict[tuple[str, str], Manifest], env: pytest.MonkeyPatch
) -> Any:
    """WorkerSettings as the pod's variables (and only they) make them."""
    from stream.config import WorkerSettings

    for key in [k for k in os.environ if k.startswith("TEXTROUTE_")]:
        env.delenv(key)
    for key, value in pod_env(deployment, objects).items():
        env.setenv(key, value)
    return WorkerSettings()


def test_review_store_is_one_pod_on_a_persistent_volume_and_workers_keep_no_store(
    scaled_object: Manifest, objects: dict[tuple[str, str], Manifest], clean_env: Any
) -> None:
    from stream.config import WorkerSettings

    store = objects[("Deployment", REVIEW_STORE)]
    spec = store["spec"]
    # It assigns itself every partition of the archive and feedback topics: a second pod would
    # not share the work but write a second store. One replica, never two at once (a rolling
    # update would briefly run both), and no autoscaler that could add one.
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    [hpa] = [o for (kind, _), o in objects.items() if kind == "HorizontalPodAutoscaler"]
    autoscaled = {
        scaled_object["spec"]["scaleTargetRef"]["name"],
        hpa["spec"]["scaleTargetRef"]["name"],
    }
    assert REVIEW_STORE not in autoscaled
    assert container(store)["args"] == ["review-store"]

    # The SQLite file `textroute review-store` opens lies on a writable persistent volume of
    # its own (an emptyDir would lose the store with the pod).
    settings = _settings_of(store, objects, clean_env)
    path = PurePosixPath(str(settings.review_store_file()))
    assert path.name == "review.sqlite"
    volumes = {v["name"]: v for v in spec["template"]["spec"]["volumes"]}
    mounts = [m for m in container(store)["volumeMounts"] if path.is_relative_to(m["mountPath"])]
    assert mounts, f"{path} is on no volume"
    mount = max(mounts, key=lambda m: len(m["mountPath"]))
    assert mount.get("readOnly") is not True
    claim = volumes[mount["name"]]["persistentVolumeClaim"]["claimName"]
    assert claim == REVIEW_CLAIM
    assert objects[("PersistentVolumeClaim", claim)]["spec"]["accessModes"] == ["ReadWriteOnce"]
    for (kind, name), other in objects.items():
        if kind == "Deployment" and name != REVIEW_STORE:
            used = {
                v["persistentVolumeClaim"]["claimName"]
                for v in other["spec"]["template"]["spec"]["volumes"]
                if "persistentVolumeClaim" in v
            }
            assert claim not in used, f"{name} mounts the review store's volume"

    # The workers keep none of their own (a worker keeps one unless told not to), and they
    # archive what the store joins feedback with, on the same topics and the same app id
    # (the store's consumer group is APP_ID.review).
    assert WorkerSettings.model_fields["review_store"].default is True
    worker = _settings_of(objects[("Deployment", WORKER)], objects, clean_env)
    assert worker.review_store is False
    assert worker.archive is True
    assert worker.topics == settings.topics
    assert worker.app_id == settings.app_id


# ---- the API ----


def test_api_probes_answer_on_healthz_and_readyz_without_the_key(
    objects: dict[tuple[str, str], Manifest], clean_env: Any
) -> None:
    from fastapi.testclient import TestClient

    from stream.api.app import create_app
    from stream.api.settings import ApiSettings

    api = objects[("Deployment", API)]
    c = container(api)
    env = pod_env(api, objects)
    env["TEXTROUTE_API_API_KEY"] = "a-key-the-kubelet-does-not-send"
    for key, value in env.items():
        clean_env.setenv(key, value)
    settings = ApiSettings()
    liveness, readiness = c["livenessProbe"]["httpGet"], c["readinessProbe"]["httpGet"]
    for probe in (liveness, readiness):
        assert named_port(api, probe["port"]) == settings.port
        assert not probe.get("httpHeaders"), "probes carry no key: the paths must be open"
    # The app as `textroute serve` builds it, models not loaded yet (no lifespan run here).
    client = TestClient(create_app(settings))
    live = client.get(liveness["path"])
    assert (liveness["path"], live.status_code) == ("/healthz", 200), live.text
    # Readiness must be the endpoint that waits for the models: 503 while they load.
    ready = client.get(readiness["path"])
    assert (readiness["path"], ready.status_code) == ("/readyz", 503), ready.text
    assert ready.json()["status"] == "loading"
    assert client.get("/metrics").status_code == 200
    assert client.get("/v1/classify").status_code == 401, "the key must still guard the API"


def test_api_service_selects_the_api_pods_on_the_api_port(
    objects: dict[tuple[str, str], Manifest],
) -> None:
    service = objects[("Service", API)]
    selector = service["spec"]["selector"]
    assert selects(selector, pod_labels(objects[("Deployment", API)]))
    assert not selects(selector, pod_labels(objects[("Deployment", WORKER)]))
    api = objects[("Deployment", API)]
    port = int(pod_env(api, objects)["TEXTROUTE_API_PORT"])
    [service_port] = service["spec"]["ports"]
    assert named_port(api, service_port["targetPort"]) == port


def test_api_key_comes_from_the_secret_and_the_api_refuses_to_start_without_one(
    objects: dict[tuple[str, str], Manifest], clean_env: Any
) -> None:
    from stream.api.errors import ApiConfigError
    from stream.api.server import check_exposure
    from stream.api.settings import ApiSettings

    api = objects[("Deployment", API)]
    [var] = [v for v in container(api)["env"] if v["name"] == "TEXTROUTE_API_API_KEY"]
    ref = var["valueFrom"]["secretKeyRef"]
    assert "value" not in var and ref.get("optional") is not True
    template = objects[("Secret", ref["name"])]
    assert template["stringData"] == {ref["key"]: ""}, "the template must carry no real key"
    assert "TEXTROUTE_API_INSECURE" not in pod_env(api, objects)

    # As applied from the template (empty key): the API must not start.
    for key, value in pod_env(api, objects, secrets=True).items():
        clean_env.setenv(key, value)
    unset = ApiSettings()
    assert not unset.binds_loopback()
    with pytest.raises(ApiConfigError, match="without an API key"):
        check_exposure(unset)
    # With the key the operator puts in the Secret, it starts and requires it.
    clean_env.setenv("TEXTROUTE_API_API_KEY", "from-the-secret")
    keyed = ApiSettings()
    check_exposure(keyed)
    secret = keyed.effective_api_key()
    assert secret is not None and secret.get_secret_value() == "from-the-secret"


def test_api_hpa_scales_the_api_on_cpu_utilisation_of_requested_cpu(
    objects: dict[tuple[str, str], Manifest],
) -> None:
    [hpa] = [o for (kind, _), o in objects.items() if kind == "HorizontalPodAutoscaler"]
    spec = hpa["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": API}
    assert 2 <= spec["minReplicas"] <= spec["maxReplicas"]
    [metric] = spec["metrics"]
    assert metric["type"] == "Resource" and metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"]["type"] == "Utilization"
    assert 0 < metric["resource"]["target"]["averageUtilization"] <= 100
    # Utilization is a share of the request: without a CPU request the HPA cannot compute it.
    assert "cpu" in container(objects[("Deployment", API)])["resources"]["requests"]


def test_api_grace_period_covers_prestop_and_the_longest_request(
    objects: dict[tuple[str, str], Manifest], clean_env: Any
) -> None:
    from stream.api.settings import ApiSettings

    api = objects[("Deployment", API)]
    env = pod_env(api, objects)
    env["TEXTROUTE_API_API_KEY"] = "k"
    for key, value in env.items():
        clean_env.setenv(key, value)
    command = container(api)["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    needed = float(command[1]) + ApiSettings().request_timeout_s
    assert api["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= needed


# ---- disruption budgets ----


def test_each_deployment_has_a_disruption_budget_that_lets_a_drain_proceed(
    scaled_object: Manifest, objects: dict[tuple[str, str], Manifest]
) -> None:
    budgets = [o for (kind, _), o in objects.items() if kind == "PodDisruptionBudget"]
    [hpa] = [o for (kind, _), o in objects.items() if kind == "HorizontalPodAutoscaler"]
    fewest = {WORKER: scaled_object["spec"]["minReplicaCount"], API: hpa["spec"]["minReplicas"]}
    for name, replicas in fewest.items():
        labels = pod_labels(objects[("Deployment", name)])
        mine = [b for b in budgets if selects(b["spec"]["selector"]["matchLabels"], labels)]
        assert len(mine) == 1, f"{name} needs exactly one PodDisruptionBudget"
        [budget] = mine
        # Exactly this Deployment's pods, not the other's.
        others = [pod_labels(objects[("Deployment", n)]) for n in fewest if n != name]
        assert not any(selects(budget["spec"]["selector"]["matchLabels"], o) for o in others)
        spec = budget["spec"]
        if "minAvailable" in spec:
            # With the fewest replicas, one pod can still be evicted.
            assert int(spec["minAvailable"]) < replicas, name
        else:
            assert int(spec["maxUnavailable"]) >= 1, name
