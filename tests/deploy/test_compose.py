"""docker-compose.yml: validated by the compose client when one is installed, and its structure
and settings checked on every machine (no Docker engine is needed for either)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
CLUSTER_ENV = ROOT / "deploy" / "env" / "kafka-cluster.env"
EXTERNAL_ENV = ROOT / "deploy" / "env" / "external-kafka.env.example"
INIT_SCRIPT = ROOT / "deploy" / "kafka" / "create-topics.sh"
PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"
BROKERS = ("kafka", "kafka-2", "kafka-3")
APP_SERVICES = ("worker", "gpu-worker", "api")
# TEXTROUTE_* variables read by something other than a settings class.
NOT_SETTINGS = {
    "TEXTROUTE_HEALTHCHECK_URL": "the image's HEALTHCHECK",
    "TEXTROUTE_TOPIC_MIN_INSYNC_REPLICAS": "create-topics.sh",
}

_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
GRAFANA_PROVISIONING = ROOT / "deploy" / "grafana"


def read_env_file(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs if not k.strip().startswith("#")}


def _interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR-default} substitution and $$ escape,
    recursively; ${VAR:?message} raises KeyError when VAR is unset or empty, as compose fails."""
    if isinstance(value, dict):
        return {k: _interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name, op, default = m.group(1), m.group(2), m.group(3) or ""
        if op in (":?", "?") and not env.get(name):
            raise KeyError(f"required variable {name} is missing a value: {default}")
        if op == ":-":
            return env.get(name) or default
        if op == "-":
            return env.get(name, default)
        return env.get(name, "")

    return _VAR.sub(sub, value)


def rendered(env: dict[str, str] | None = None) -> dict[str, Any]:
    """The compose file with YAML anchors merged, variables substituted from `env`, and
    valueless `environment` entries passed through from `env` as compose does."""
    env = env or {}
    data = dict(_interpolate(yaml.safe_load(COMPOSE.read_text()), env))
    for service in data["services"].values():
        variables = service.get("environment") or {}
        for key, value in variables.items():
            if value is None and key in env:
                variables[key] = env[key]
    return data


def environment(service: dict[str, Any]) -> dict[str, str]:
    """The service's variables; valueless ones pass through only when set, so none here."""
    env = service.get("environment") or {}
    return {k: str(v) for k, v in env.items() if v is not None}


@pytest.fixture(scope="module")
def default() -> dict[str, Any]:
    return rendered()


@pytest.fixture(scope="module")
def cluster() -> dict[str, Any]:
    return rendered(read_env_file(CLUSTER_ENV))


# ---- the compose client itself ----


def compose_client() -> list[str] | None:
    """`docker compose` (v2 plugin) when it works, else `docker-compose`, else None."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=60)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--env-file", str(CLUSTER_ENV)],
        ["--profile", "gpu", "--profile", "grafana"],
    ],
    ids=["default", "kafka-cluster", "gpu-and-grafana"],
)
def test_compose_client_accepts_the_file(args: list[str]) -> None:
    client = compose_client()
    if client is None:
        pytest.skip("no docker compose client here; the structure tests below still run")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "TEXTROUTE_"))}
    proc = subprocess.run(
        [*client, "-f", str(COMPOSE), *args, "config", "-q"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr


# ---- Kafka ----


def test_kafka_is_the_official_image_in_kraft_mode(default: dict[str, Any]) -> None:
    services = default["services"]
    assert not [name for name in services if "zookeeper" in name]
    for name in BROKERS:
        broker = services[name]
        assert broker["image"].startswith("apache/kafka:")
        env = environment(broker)
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] == "CONTROLLER"
        assert "kafka-broker-api-versions.sh" in " ".join(broker["healthcheck"]["test"])


def test_one_broker_by_default_and_two_more_under_the_cluster_profile(
    default: dict[str, Any],
) -> None:
    services = default["services"]
    assert "profiles" not in services["kafka"]
    assert services["kafka-2"]["profiles"] == ["kafka-cluster"]
    assert services["kafka-3"]["profiles"] == ["kafka-cluster"]
    env = environment(services["kafka"])
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka:9093"
    assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"


def test_cluster_env_makes_three_voters_with_rf3_and_min_isr2(cluster: dict[str, Any]) -> None:
    assert read_env_file(CLUSTER_ENV)["COMPOSE_PROFILES"] == "kafka-cluster"
    services = cluster["services"]
    voters = {environment(services[b])["KAFKA_CONTROLLER_QUORUM_VOTERS"] for b in BROKERS}
    assert len(voters) == 1, "every broker must see the same controller quorum"
    quorum = dict(v.split("@") for v in voters.pop().split(","))
    for broker in BROKERS:
        env = environment(services[broker])
        assert quorum[env["KAFKA_NODE_ID"]] == f"{services[broker]['hostname']}:9093"
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
    assert len({environment(services[b])["KAFKA_NODE_ID"] for b in BROKERS}) == 3
    init = environment(services["topic-init"])
    assert (init["TEXTROUTE_TOPIC_REPLICATION"], init["TEXTROUTE_TOPIC_MIN_INSYNC_REPLICAS"]) == (
        "3",
        "2",
    )
    bootstrap = environment(services["worker"])["TEXTROUTE_BROKER_BOOTSTRAP_SERVERS"]
    assert sorted(bootstrap.split(",")) == sorted(f"{b}:9092" for b in BROKERS)


def test_each_broker_advertises_the_host_port_it_publishes(default: dict[str, Any]) -> None:
    for name in BROKERS:
        broker = default["services"][name]
        [published] = broker["ports"]
        host_port, container_port = published.rsplit(":", 2)[-2:]
        advertised = environment(broker)["KAFKA_ADVERTISED_LISTENERS"]
        assert f"EXTERNAL://localhost:{host_port}" in advertised
        assert f"EXTERNAL://:{container_port}" in environment(broker)["KAFKA_LISTENERS"]
        assert f"INTERNAL://{broker['hostname']}:9092" in advertised


# ---- topic init ----


def test_topic_init_runs_once_after_kafka_is_healthy_and_gates_the_app(
    default: dict[str, Any],
) -> None:
    services = default["services"]
    init = services["topic-init"]
    assert init["restart"] == "no"
    assert init["depends_on"]["kafka"]["condition"] == "service_healthy"
    mount = next(v for v in init["volumes"] if "create-topics.sh" in v)
    host_path, container_path = mount.split(":")[:2]
    assert (ROOT / host_path).resolve() == INIT_SCRIPT
    assert init["entrypoint"][-1] == container_path
    for name in APP_SERVICES:
        condition = services[name]["depends_on"]["topic-init"]["condition"]
        assert condition == "service_completed_successfully"


def test_topic_init_reads_the_same_topic_settings_as_the_app(default: dict[str, Any]) -> None:
    services = default["services"]
    init = environment(services["topic-init"])
    script_vars = set(re.findall(r"\$\{(TEXTROUTE_[A-Z_]+)", INIT_SCRIPT.read_text()))
    assert script_vars <= set(init), "compose must set every TEXTROUTE_* the script reads"
    for name in APP_SERVICES:
        app = environment(services[name])
        shared = {k: v for k, v in init.items() if k.startswith("TEXTROUTE_")}
        assert {k: app.get(k) for k in shared} == shared, name


# ---- textroute services ----


def test_worker_scales_with_replicas(default: dict[str, Any]) -> None:
    worker = default["services"]["worker"]
    assert "container_name" not in worker
    assert "ports" not in worker, "a fixed host port would stop `--scale worker=N`"
    assert worker["command"] == ["worker"]
    assert worker["build"]["target"] == "cpu"
    assert environment(worker)["TEXTROUTE_INFERENCE_BACKEND"] == "onnx"


def test_gpu_worker_reserves_an_nvidia_gpu_and_runs_torch(default: dict[str, Any]) -> None:
    gpu = default["services"]["gpu-worker"]
    assert gpu["profiles"] == ["gpu"]
    assert gpu["build"]["target"] == "gpu"
    [device] = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia"
    assert "gpu" in device["capabilities"]
    assert environment(gpu)["TEXTROUTE_INFERENCE_BACKEND"] == "torch"
    assert "ports" not in gpu


def test_api_publishes_its_port_and_checks_its_health_there(default: dict[str, Any]) -> None:
    api = default["services"]["api"]
    env = environment(api)
    assert api["command"] == ["serve"]
    assert env["TEXTROUTE_API_HOST"] == "0.0.0.0"
    [published] = api["ports"]
    assert published.endswith(f":{env['TEXTROUTE_API_PORT']}")
    assert (
        env["TEXTROUTE_HEALTHCHECK_URL"] == f"http://127.0.0.1:{env['TEXTROUTE_API_PORT']}/healthz"
    )


def test_the_api_gets_its_key_from_the_environment_and_will_not_start_without_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from stream.api.errors import ApiConfigError
    from stream.api.server import check_exposure
    from stream.api.settings import ApiSettings

    raw = yaml.safe_load(COMPOSE.read_text())["services"]["api"]["environment"]
    assert raw["TEXTROUTE_API_API_KEY"] == "${TEXTROUTE_API_API_KEY:-}", "no default key"
    assert "TEXTROUTE_API_API_KEY_FILE" in raw and raw["TEXTROUTE_API_API_KEY_FILE"] is None
    assert "TEXTROUTE_API_INSECURE" not in raw
    for name in [k for k in os.environ if k.startswith("TEXTROUTE_")]:
        monkeypatch.delenv(name)

    def api_settings(env: dict[str, str]) -> ApiSettings:
        for name, value in environment(rendered(env)["services"]["api"]).items():
            if name.startswith("TEXTROUTE_API_"):
                monkeypatch.setenv(name, value)
        return ApiSettings()

    unset = api_settings({})
    assert not unset.binds_loopback()
    with pytest.raises(ApiConfigError, match="without an API key"):
        check_exposure(unset)
    keyed = api_settings({"TEXTROUTE_API_API_KEY": "from-the-shell"})
    check_exposure(keyed)
    key = keyed.effective_api_key()
    assert key is not None and key.get_secret_value() == "from-the-shell"


def test_grafana_has_no_default_password_and_no_anonymous_access(tmp_path: Path) -> None:
    grafana = yaml.safe_load(COMPOSE.read_text())["services"]["grafana"]
    env = {k: str(v) for k, v in grafana["environment"].items()}
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert "GF_AUTH_ANONYMOUS_ORG_ROLE" not in env
    [(name, op, default)] = [
        (m.group(1), m.group(2), m.group(3) or "")
        for m in _VAR.finditer(env["GF_SECURITY_ADMIN_PASSWORD"])
    ]
    assert name == "GRAFANA_ADMIN_PASSWORD"
    assert op in (":?", "?") or default == "", "the admin password must have no default"
    for path in GRAFANA_PROVISIONING.rglob("*"):
        if path.is_file() and path.suffix in (".ini", ".yml", ".yaml"):
            text = path.read_text().lower()
            assert "admin_password" not in text and "anonymous" not in text, path

    # The entrypoint guard, run as the container would (image entrypoint stubbed): it refuses
    # an empty or default password and hands over to Grafana otherwise.
    shell, flag, script, arg0 = _interpolate(grafana["entrypoint"], {})
    stub = tmp_path / "run.sh"
    stub.write_text("#!/bin/sh\necho grafana-started\n")
    stub.chmod(0o755)
    script = script.replace("/run.sh", str(stub))
    for password, starts in (("", False), ("admin", False), ("s3cret-Pa55", True)):
        proc = subprocess.run(
            [shell, flag, script, arg0],
            env={"PATH": os.environ.get("PATH", ""), "GF_SECURITY_ADMIN_PASSWORD": password},
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert (proc.returncode == 0) is starts, (password, proc.stderr)
        if starts:
            assert proc.stdout.strip() == "grafana-started"
        else:
            assert "set GRAFANA_ADMIN_PASSWORD" in proc.stderr


def test_worker_and_api_share_models_and_rules(default: dict[str, Any]) -> None:
    services = default["services"]
    for name in APP_SERVICES:
        env = environment(services[name])
        assert env["TEXTROUTE_WORKER_RULES_PATH"] == env["TEXTROUTE_API_RULES_PATH"]
        assert env["TEXTROUTE_WORKER_CLASSIFIER_DIR"] == env["TEXTROUTE_API_CLASSIFIER_DIR"]
        mounts = {v.split(":")[1]: v.split(":")[0] for v in services[name]["volumes"]}
        assert mounts[env["TEXTROUTE_API_RULES_PATH"]] == "./deploy/rules.example.yaml"
        assert mounts["/models"] == "./models"
        assert env["TEXTROUTE_API_CLASSIFIER_DIR"].startswith("/models/")
        assert env["TEXTROUTE_API_NER_DIR"].startswith("/models/")


def test_sasl_and_tls_settings_reach_the_app_services_when_set() -> None:
    external = read_env_file(EXTERNAL_ENV)
    services = rendered(external)["services"]
    for name in APP_SERVICES:
        env = environment(services[name])
        for key in ("SASL_MECHANISM", "SASL_USERNAME", "SASL_PASSWORD", "SSL_CAFILE"):
            assert env[f"TEXTROUTE_BROKER_{key}"] == external[f"TEXTROUTE_BROKER_{key}"]
        mounts = {v.split(":")[1]: v.split(":")[0] for v in services[name]["volumes"]}
        assert env["TEXTROUTE_BROKER_SSL_CAFILE"].startswith("/etc/textroute/certs/")
        assert (ROOT / mounts["/etc/textroute/certs"]).is_dir()
    assert "TEXTROUTE_BROKER_SASL_PASSWORD" not in environment(rendered()["services"]["worker"])


def test_bind_mounted_files_exist_in_the_repository(default: dict[str, Any]) -> None:
    for name, service in default["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./") and source != "./models":
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"


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


@pytest.mark.parametrize(
    "env_file", [None, CLUSTER_ENV, EXTERNAL_ENV], ids=lambda p: getattr(p, "name", "default")
)
def test_textroute_variables_are_real_settings_with_valid_values(
    env_file: Path | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = rendered(read_env_file(env_file) if env_file else None)
    classes = _settings_classes()
    for name, service in data["services"].items():
        env = {k: v for k, v in environment(service).items() if k.startswith("TEXTROUTE_")}
        used: set[type[BaseSettings]] = set()
        for key in env:
            if key in NOT_SETTINGS:
                continue
            prefix = next((p for p in classes if key.startswith(p)), None)
            assert prefix is not None, f"{name}: {key} has no settings class"
            field = key[len(prefix) :].lower()
            assert field in classes[prefix].model_fields, f"{name}: {key} is not a setting"
            used.add(classes[prefix])
        for key in [k for k in os.environ if k.startswith("TEXTROUTE_")]:
            monkeypatch.delenv(key)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        for cls in used:
            cls()  # raises ValidationError when compose sets a value the settings refuse


# ---- Prometheus ----


def test_prometheus_scrapes_every_worker_replica_and_the_api(default: dict[str, Any]) -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    services = default["services"]
    for job, service in (("textroute-worker", "worker"), ("textroute-gpu-worker", "gpu-worker")):
        [sd] = jobs[job]["dns_sd_configs"]
        assert sd["names"] == [service] and sd["type"] == "A"
        assert str(sd["port"]) == environment(services[service])["TEXTROUTE_WORKER_METRICS_PORT"]
    [static] = jobs["textroute-api"]["static_configs"]
    assert static["targets"] == [f"api:{environment(services['api'])['TEXTROUTE_API_PORT']}"]
    mount = next(v for v in services["prometheus"]["volumes"] if "prometheus.yml" in v)
    assert (ROOT / mount.split(":")[0]).resolve() == PROMETHEUS
