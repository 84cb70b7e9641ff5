"""deploy/compose.yaml agrees with the app, the example policy and deploy/prometheus.yml.

Docker is not needed: the file is parsed with PyYAML and checked against what the
code reads (variable names are derived from zoneapp/settings.py, not copied here).
"""

from __future__ import annotations

import ast
import re
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import opentelemetry.sdk.environment_variables as otel_env
import pytest
import yaml

import zoneapp
from zoneapp.policy import load_policy
from zoneapp.settings import PREFIX

from .conftest import DEPLOY, EXAMPLE_POLICY, ROOT, load_script

Services = dict[str, dict[str, Any]]

SETTINGS_PY = ROOT / "zoneapp" / "settings.py"
SCRIPTS_IN_IMAGE = PurePosixPath("/opt/zoneapp/bin")
STACK_SERVICES = ("kafka", "topic-init", "redis", "hsm-init", "jaeger", "prometheus")
HEALTHY_DEPENDENCIES = {
    "kafka": "service_healthy",
    "redis": "service_healthy",
    "hsm-init": "service_completed_successfully",
    "topic-init": "service_completed_successfully",
}
#: OTLP port per protocol (zoneapp.observability supports these two; http/protobuf is its default).
OTLP_PORTS = {"grpc": 4317, "http/protobuf": 4318}


# -- what the app reads ---------------------------------------------------------------


def _prefix_plus(node: ast.AST) -> list[str] | None:
    """Parts after ``PREFIX`` of ``PREFIX + a + b ...`` (str constants or names), else None."""
    parts: list[str] = []
    while isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        right = node.right
        if isinstance(right, ast.Constant) and isinstance(right.value, str):
            parts.append(right.value)
        elif isinstance(right, ast.Name):
            parts.append("{" + right.id + "}")
        else:
            return None
        node = node.left
    if isinstance(node, ast.Name) and node.id == "PREFIX" and parts:
        return list(reversed(parts))
    return None


def app_variables() -> set[str]:
    """Every ``ZONEAPP_*`` name zoneapp/settings.py reads.

    ``PREFIX + "NAME"`` directly, and calls of helpers such as ``_secret(env, "NAME")``
    or ``_int(env, "NAME", ...)`` whose body reads ``PREFIX + name [+ "_SUFFIX"]``:
    each call's string argument with every suffix that helper uses (``_FILE``).
    """
    tree = ast.parse(SETTINGS_PY.read_text(encoding="utf-8"))
    names: set[str] = set()
    helpers: dict[str, tuple[int, set[str]]] = {}  # function -> (index of `name`, suffixes)
    for func in ast.walk(tree):
        if not isinstance(func, ast.FunctionDef):
            continue
        params = [a.arg for a in func.args.args]
        suffixes: set[str] = set()
        for node in ast.walk(func):
            parts = _prefix_plus(node)
            if parts and parts[0] == "{name}" and "name" in params:
                suffixes.add("".join(parts[1:]))
        if suffixes:
            helpers[func.name] = (params.index("name"), suffixes)
    for node in ast.walk(tree):
        parts = _prefix_plus(node)
        if parts and all(not p.startswith("{") for p in parts):
            names.add(PREFIX + "".join(parts))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            helper = helpers.get(node.func.id)
            if helper is None or len(node.args) <= helper[0]:
                continue
            arg = node.args[helper[0]]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                names.update(PREFIX + arg.value + suffix for suffix in helper[1])
    return names


def otel_variables() -> set[str]:
    """The OTEL_* variables the installed OpenTelemetry SDK knows."""
    return {n for n in dir(otel_env) if n.startswith("OTEL_")}


def allowed_variables() -> set[str]:
    entrypoint = load_script("entrypoint")
    return app_variables() | otel_variables() | {"SOFTHSM2_CONF", entrypoint.VAULT_PASSWORD_FILE}


# -- compose helpers ------------------------------------------------------------------


def env_of(service: dict[str, Any]) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        return dict(item.split("=", 1) for item in raw)
    return {k: str(v) for k, v in raw.items()}


def zoneapp_services(services: Services) -> Services:
    return {
        name: s
        for name, s in services.items()
        if (s.get("build") or {}).get("dockerfile") == "deploy/Dockerfile"
    }


def workers(services: Services) -> Services:
    """zoneapp services running the image's CMD (the Faust worker)."""
    return {n: s for n, s in zoneapp_services(services).items() if "command" not in s}


def published_ports(service: dict[str, Any]) -> set[tuple[int, int]]:
    """(host port, container port) pairs."""
    pairs: set[tuple[int, int]] = set()
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            pairs.add((int(entry["published"]), int(entry["target"])))
            continue
        assert isinstance(entry, str), f"quote port {entry!r}: YAML reads 1:2 as a number"
        host, container = entry.split("/")[0].rsplit(":", 2)[-2:]
        pairs.add((int(host), int(container)))
    return pairs


def mounts(service: dict[str, Any]) -> list[dict[str, Any]]:
    """Volumes in long form: type, source, target, read_only."""
    result: list[dict[str, Any]] = []
    for entry in service.get("volumes", []):
        if isinstance(entry, dict):
            result.append(entry)
            continue
        source, target, *mode = entry.split(":")
        kind = "bind" if source.startswith((".", "/")) else "volume"
        result.append(
            {"type": kind, "source": source, "target": target, "read_only": mode == ["ro"]}
        )
    return result


def mount_at(service: dict[str, Any], target: str) -> dict[str, Any]:
    found = [m for m in mounts(service) if m["target"] == target]
    assert len(found) == 1, f"expected one mount at {target}, got {found}"
    return found[0]


def command_of(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    assert isinstance(command, list), "use the exec form for commands"
    return [str(c) for c in command]


def softhsm_tokendir() -> str:
    text = (DEPLOY / "softhsm2.conf").read_text(encoding="utf-8")
    match = re.search(r"^directories\.tokendir\s*=\s*(\S+)", text, re.MULTILINE)
    assert match
    return match.group(1).rstrip("/")


# -- structure ------------------------------------------------------------------------


def test_the_stack_has_every_service(services: Services) -> None:
    assert set(STACK_SERVICES) <= set(services)
    assert set(zoneapp_services(services)) >= {"topic-init", "hsm-init"}
    assert len(workers(services)) >= 2


def test_images_are_pinned_to_a_version_tag(services: Services) -> None:
    for name, service in services.items():
        image = service.get("image")
        assert image, f"{name}: no image"
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, f"{name}: {image} has no tag"
        assert tag != "latest" and re.search(r"\d", tag), f"{name}: {image} is not a version"
    for service in zoneapp_services(services).values():
        assert service["image"] == f"zoneapp:{zoneapp.__version__}"
        assert (DEPLOY / service["build"]["context"] / service["build"]["dockerfile"]).is_file()


def test_kafka_runs_kraft_without_auto_create(services: Services) -> None:
    env = env_of(services["kafka"])
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert not any("ZOOKEEPER" in key for key in env)
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(f"{env['KAFKA_NODE_ID']}@kafka:")
    assert "INTERNAL://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]


def test_redis_persists_with_aof_and_needs_a_password(services: Services) -> None:
    redis = services["redis"]
    conf = mount_at(redis, "/usr/local/etc/redis/redis.conf")
    lines = set((DEPLOY / conf["source"]).read_text(encoding="utf-8").splitlines())
    assert {"appendonly yes", "appendfsync everysec"} <= lines
    assert mount_at(redis, "/data")["type"] == "volume"
    start = mount_at(redis, command_of(redis)[-1])
    script = (DEPLOY / start["source"]).read_text(encoding="utf-8")
    assert "/run/secrets/redis_password" in script and "requirepass" in script
    assert "redis_password" in redis["secrets"]
    assert "redis_password" in " ".join(redis["healthcheck"]["test"])


def test_workers_use_the_vaults_acl_user(services: Services) -> None:
    """The shipped ACL runs the vault (tests/integration/test_vault_acl.py), so it is the
    default: the workers log in as the user start.sh restricts to the vault's rule."""
    user = env_of(services["redis"])["REDIS_ACL_USER"]
    assert user == "zoneapp"
    for name, worker in workers(services).items():
        assert env_of(worker)["ZONEAPP_VAULT"] == f"redis://{user}@redis:6379/0", name
    script = (DEPLOY / "redis" / "start.sh").read_text(encoding="utf-8")
    assert "user default off" in script and "$ZONEAPP_VAULT_ACL" in script


def test_jaeger_takes_otlp(services: Services) -> None:
    jaeger = services["jaeger"]
    assert env_of(jaeger)["COLLECTOR_OTLP_ENABLED"] == "true"
    assert {(4317, 4317), (4318, 4318), (16686, 16686)} <= published_ports(jaeger)


def test_dependencies_wait_for_health_and_init(services: Services) -> None:
    for name in ("kafka", "redis"):
        assert services[name]["healthcheck"]["test"], f"{name} needs a healthcheck"
    for name, worker in workers(services).items():
        conditions = {dep: cfg["condition"] for dep, cfg in worker["depends_on"].items()}
        for dep, condition in HEALTHY_DEPENDENCIES.items():
            assert conditions.get(dep) == condition, f"{name} -> {dep}"
    assert services["topic-init"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    for name in ("topic-init", "hsm-init"):
        assert services[name]["restart"] == "no"


def test_named_volumes_secrets_and_bind_sources_exist(
    compose: dict[str, Any], services: Services
) -> None:
    for name, service in services.items():
        for mount in mounts(service):
            if mount["type"] == "volume":
                assert mount["source"] in compose["volumes"], f"{name}: {mount}"
            else:
                assert (DEPLOY / mount["source"]).exists(), f"{name}: {mount['source']}"
        for secret in service.get("secrets", []):
            assert secret in compose["secrets"], f"{name}: secret {secret}"
    for secret in compose["secrets"].values():
        assert secret["file"].startswith("./secrets/")  # deploy/make-secrets.sh writes them


# -- variables ------------------------------------------------------------------------


def test_settings_parser_finds_the_documented_variables() -> None:
    found = app_variables()
    for name in ("BROKER", "VAULT", "KEYS", "PKCS11_PIN", "WEB_PORT", "BOUNDARIES", "APP_ID"):
        assert PREFIX + name in found
    assert {PREFIX + "PKCS11_PIN_FILE", PREFIX + "SASL_PASSWORD_FILE"} <= found
    assert {"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SERVICE_NAME"} <= otel_variables()


def test_every_variable_set_on_zoneapp_services_is_read(services: Services) -> None:
    allowed = allowed_variables()
    for name, service in zoneapp_services(services).items():
        unknown = sorted(set(env_of(service)) - allowed)
        assert not unknown, f"{name} sets variables nothing reads: {unknown}"


def test_secrets_come_from_files_named_in_the_service(services: Services) -> None:
    for name, service in zoneapp_services(services).items():
        env = env_of(service)
        for key, value in env.items():
            assert not re.search(r"(PIN|PASSWORD)$", key), f"{name}: {key} puts a secret in env"
            if key.endswith("_FILE"):
                path = PurePosixPath(value)
                assert path.parent == PurePosixPath("/run/secrets"), f"{name}: {key}"
                assert path.name in service["secrets"], f"{name}: {key} secret not mounted"
        command = " ".join(service.get("command", []))
        assert "--pin " not in command and "--so-pin " not in command


def test_hsm_init_shares_the_token_volume_with_the_workers(services: Services) -> None:
    hsm = services["hsm-init"]
    command = command_of(hsm)
    assert command[:2] == ["python", str(SCRIPTS_IN_IMAGE / "hsm_init.py")]
    so_pin = PurePosixPath(command[command.index("--so-pin-file") + 1])
    assert so_pin.parent == PurePosixPath("/run/secrets") and so_pin.name in hsm["secrets"]
    tokendir = softhsm_tokendir()
    init_mount = mount_at(hsm, tokendir)
    assert init_mount["type"] == "volume" and not init_mount.get("read_only")
    keys = env_of(hsm)["ZONEAPP_KEYS"]
    for name, worker in workers(services).items():
        mount = mount_at(worker, tokendir)
        assert mount["source"] == init_mount["source"] and not mount.get("read_only"), name
        env = env_of(worker)
        assert env["ZONEAPP_KEYS"] == keys, name
        assert env["SOFTHSM2_CONF"] == env_of(hsm)["SOFTHSM2_CONF"], name
        assert env["ZONEAPP_PKCS11_PIN_FILE"] == env_of(hsm)["ZONEAPP_PKCS11_PIN_FILE"], name
    assert urlsplit(keys).scheme == "pkcs11"


# -- policy, topics, boundaries -------------------------------------------------------


def test_topic_init_and_workers_read_the_example_policy(services: Services) -> None:
    init = services["topic-init"]
    assert command_of(init)[:2] == ["python", str(SCRIPTS_IN_IMAGE / "init_topics.py")]
    policy_path = env_of(init)["ZONEAPP_POLICY"]
    for name, service in zoneapp_services(services).items():
        env = env_of(service)
        assert env["ZONEAPP_POLICY"] == policy_path, name
        mount = mount_at(service, policy_path)
        assert mount["type"] == "bind" and mount.get("read_only"), name
        assert (DEPLOY / mount["source"]).resolve() == EXAMPLE_POLICY.resolve(), name
    partitions = env_of(init)["ZONEAPP_TOPIC_PARTITIONS"]
    for name, worker in workers(services).items():
        assert env_of(worker)["ZONEAPP_TOPIC_PARTITIONS"] == partitions, name


def test_topic_init_creates_exactly_the_policy_topics() -> None:
    script = load_script("init_topics")
    expected = load_policy(str(EXAMPLE_POLICY)).topics()
    assert script.policy_topics(str(EXAMPLE_POLICY)) == expected
    assert {"restricted.payments", "public.marketing-profiles", "security.violations"} <= set(
        expected
    )


def test_every_boundary_runs_in_exactly_one_worker_group(services: Services) -> None:
    policy = load_policy(str(EXAMPLE_POLICY))
    known = {b.name for b in policy.boundaries}
    owners: dict[str, list[str]] = {name: [] for name in known}
    app_ids: set[str] = set()
    for name, worker in workers(services).items():
        env = env_of(worker)
        group = [b.strip() for b in env["ZONEAPP_BOUNDARIES"].split(",") if b.strip()]
        assert group and set(group) <= known, f"{name}: unknown boundaries {set(group) - known}"
        for boundary in group:
            owners[boundary].append(name)
        # One source zone per group: each worker opens only that zone's keys.
        zones = {policy.boundary(b).source_zone.name for b in group}
        assert len(zones) == 1, f"{name} reads from several zones: {zones}"
        assert env["ZONEAPP_APP_ID"] not in app_ids, f"{name}: app id (consumer group) reused"
        app_ids.add(env["ZONEAPP_APP_ID"])
    assert {b: len(o) for b, o in owners.items()} == dict.fromkeys(known, 1)


# -- ports, Prometheus, tracing -------------------------------------------------------


def prometheus_targets() -> tuple[dict[str, Any], set[str]]:
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text(encoding="utf-8"))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    job = jobs["zoneapp"]
    targets = {t for group in job["static_configs"] for t in group["targets"]}
    return job, targets


def test_web_ports_are_published_and_scraped(services: Services) -> None:
    job, targets = prometheus_targets()
    assert job.get("metrics_path", "/metrics") == "/metrics"
    expected: set[str] = set()
    ports: list[int] = []
    for name, worker in workers(services).items():
        env = env_of(worker)
        port = int(env["ZONEAPP_WEB_PORT"])
        assert env["ZONEAPP_WEB_BIND"] == "0.0.0.0", f"{name}: web server unreachable"
        assert env.get("ZONEAPP_WEB_HOST", name) == name, f"{name}: peers cannot reach it"
        assert (port, port) in published_ports(worker), f"{name}: {port} not published"
        ports.append(port)
        expected.add(f"{name}:{port}")
    assert len(set(ports)) == len(ports)
    assert targets == expected


def test_prometheus_mounts_its_config(services: Services) -> None:
    prometheus = services["prometheus"]
    flag = next(c for c in command_of(prometheus) if c.startswith("--config.file="))
    mount = mount_at(prometheus, flag.split("=", 1)[1])
    assert (DEPLOY / mount["source"]).resolve() == (DEPLOY / "prometheus.yml").resolve()
    assert (9090, 9090) in published_ports(prometheus)


def test_traces_go_to_jaeger_otlp(services: Services) -> None:
    jaeger_ports = {container for _, container in published_ports(services["jaeger"])}
    service_names: set[str] = set()
    for name, worker in workers(services).items():
        env = env_of(worker)
        endpoint = urlsplit(env["OTEL_EXPORTER_OTLP_ENDPOINT"])
        assert endpoint.hostname == "jaeger", name
        protocol = env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        assert endpoint.port == OTLP_PORTS[protocol] and endpoint.port in jaeger_ports, name
        assert env["OTEL_SERVICE_NAME"] not in service_names, name
        service_names.add(env["OTEL_SERVICE_NAME"])


@pytest.mark.parametrize("path", ["compose.yaml", "prometheus.yml"])
def test_deploy_yaml_has_no_tabs_and_parses(path: str) -> None:
    text = (DEPLOY / path).read_text(encoding="utf-8")
    assert "\t" not in text
    assert isinstance(yaml.safe_load(text), dict)


# -- the HTTP API: HTTPS, API keys, signed peer calls, a scraper with a key ------------------


def secret_file(compose: dict[str, Any], service: dict[str, Any], path: str) -> str:
    """The host file (under deploy/) behind ``/run/secrets/<name>``, which must be mounted."""
    target = PurePosixPath(path)
    assert target.parent == PurePosixPath("/run/secrets"), path
    assert target.name in service.get("secrets", []), f"secret {target.name} not mounted"
    return str(compose["secrets"][target.name]["file"])


def test_workers_serve_https_with_their_own_certificate(
    compose: dict[str, Any], services: Services
) -> None:
    certs: set[str] = set()
    for name, worker in workers(services).items():
        env = env_of(worker)
        cert = secret_file(compose, worker, env["ZONEAPP_WEB_TLS_CERTFILE"])
        secret_file(compose, worker, env["ZONEAPP_WEB_TLS_KEYFILE"])
        secret_file(compose, worker, env["ZONEAPP_WEB_TLS_CAFILE"])
        assert name in cert, f"{name}: {cert} is not its certificate"
        certs.add(cert)
        check = " ".join(worker["healthcheck"]["test"])
        assert "https://" in check and "ZONEAPP_WEB_TLS_CAFILE" in check, name
    assert len(certs) == len(workers(services))


def test_workers_sign_peer_calls_and_call_only_listed_peers(
    compose: dict[str, Any], services: Services
) -> None:
    addresses = {
        f"{env_of(w)['ZONEAPP_WEB_HOST']}:{env_of(w)['ZONEAPP_WEB_PORT']}"
        for w in workers(services).values()
    }
    for name, worker in workers(services).items():
        env = env_of(worker)
        secret_file(compose, worker, env["ZONEAPP_CLUSTER_SECRET_FILE"])
        secret_file(compose, worker, env["ZONEAPP_API_KEYS_FILE"])
        assert set(env["ZONEAPP_CLUSTER_PEERS"].split(",")) == addresses, name
        assert "ZONEAPP_METRICS_PUBLIC" not in env, f"{name}: /metrics must need a key"
        assert "ZONEAPP_ENV" not in env, f"{name}: production settings only"


def test_prometheus_scrapes_over_https_with_a_key(
    compose: dict[str, Any], services: Services
) -> None:
    job, _ = prometheus_targets()
    prometheus = services["prometheus"]
    assert job["scheme"] == "https"
    ca = secret_file(compose, prometheus, job["tls_config"]["ca_file"])
    assert job["authorization"]["type"] == "Bearer"
    secret_file(compose, prometheus, job["authorization"]["credentials_file"])
    for name, worker in workers(services).items():
        worker_ca = secret_file(compose, worker, env_of(worker)["ZONEAPP_WEB_TLS_CAFILE"])
        assert worker_ca == ca, name
