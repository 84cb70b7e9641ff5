"""The scripts the deploy/ image runs: entrypoint, topic init, HSM init, Redis start."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import redis.asyncio as aioredis

from tests.waiting import wait_for
from zoneapp.policy import load_policy
from zoneapp.stack.process import free_port
from zoneapp.stack.softhsm import find_softhsm_module

from .conftest import DEPLOY, EXAMPLE_POLICY, ROOT, load_script

entrypoint = load_script("entrypoint")
init_topics = load_script("init_topics")
hsm_init = load_script("hsm_init")


# -- entrypoint: ZONEAPP_VAULT_PASSWORD_FILE ------------------------------------------


def redis_password_of(url: str) -> tuple[str | None, str | None]:
    kwargs = aioredis.Redis.from_url(url).connection_pool.connection_kwargs
    return kwargs.get("username"), kwargs.get("password")


@pytest.mark.parametrize(
    ("url", "username"),
    [
        ("redis://redis:6379/0", "default"),
        ("redis://zoneapp@redis:6379/0", "zoneapp"),
        ("rediss://zoneapp@redis.example:6380/2", "zoneapp"),
    ],
)
def test_vault_password_reaches_redis_py_intact(url: str, username: str) -> None:
    password = "p@ss:w/rd%?#"  # every character a URL gives meaning to
    result = entrypoint.vault_url_with_password(url, password)
    assert redis_password_of(result) == (username, password)
    assert result.rsplit("@", 1)[1] == url.rsplit("@", 1)[-1].split("://", 1)[-1]


def test_vault_password_file_is_consumed(tmp_path: Path) -> None:
    secret = tmp_path / "redis_password"
    secret.write_text("s3cret\n", encoding="utf-8")
    env = {"ZONEAPP_VAULT": "redis://redis:6379/0", "ZONEAPP_VAULT_PASSWORD_FILE": str(secret)}
    entrypoint.apply_vault_password(env)
    assert env == {"ZONEAPP_VAULT": "redis://default:s3cret@redis:6379/0"}


def test_without_a_password_file_nothing_changes() -> None:
    env = {"ZONEAPP_VAULT": "memory://"}
    entrypoint.apply_vault_password(env)
    assert env == {"ZONEAPP_VAULT": "memory://"}


@pytest.mark.parametrize(
    ("vault", "content"),
    [
        ("redis://:old@redis:6379/0", "s3cret"),  # two passwords: refuse
        ("memory://", "s3cret"),  # not a Redis URL
        ("redis://redis:6379/0", ""),  # empty secret
    ],
)
def test_bad_vault_settings_fail_without_showing_the_password(
    tmp_path: Path, vault: str, content: str
) -> None:
    secret = tmp_path / "redis_password"
    secret.write_text(content, encoding="utf-8")
    env = {"ZONEAPP_VAULT": vault, "ZONEAPP_VAULT_PASSWORD_FILE": str(secret)}
    with pytest.raises(entrypoint.EntrypointError) as info:
        entrypoint.apply_vault_password(env)
    assert "s3cret" not in str(info.value)


def test_entrypoint_execs_the_command_with_the_vault_url(tmp_path: Path) -> None:
    secret = tmp_path / "redis_password"
    secret.write_text("s3cret", encoding="utf-8")
    env = {
        **os.environ,
        "ZONEAPP_VAULT": "redis://redis:6379/0",
        "ZONEAPP_VAULT_PASSWORD_FILE": str(secret),
    }
    script = DEPLOY / "scripts" / "entrypoint.py"
    probe = (
        "import os; e = os.environ; print(e['ZONEAPP_VAULT'], 'ZONEAPP_VAULT_PASSWORD_FILE' in e)"
    )
    result = subprocess.run(
        [sys.executable, str(script), sys.executable, "-c", probe],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.split() == ["redis://default:s3cret@redis:6379/0", "False"]


# -- topic init -------------------------------------------------------------------------


class FakeAdmin:
    """A broker's CreateTopics / DescribeTopics answers: topics by partition count."""

    def __init__(self, existing: dict[str, int], failing: frozenset[str] = frozenset()) -> None:
        self.topics = dict(existing)
        self.failing = failing
        self.requests: list[tuple[str, int, int]] = []

    async def create_topics(self, new_topics: list[Any], timeout_ms: int | None = None) -> Any:
        errors: list[tuple[str, int, str | None]] = []
        for t in new_topics:
            self.requests.append((t.name, t.num_partitions, t.replication_factor))
            if t.name in self.failing:
                errors.append((t.name, 29, "Topic authorization failed."))
            elif t.name in self.topics:
                errors.append((t.name, init_topics.TOPIC_ALREADY_EXISTS, "exists"))
            else:
                self.topics[t.name] = t.num_partitions
                errors.append((t.name, 0, None))
        return SimpleNamespace(topic_errors=errors)

    async def describe_topics(self, topics: list[str] | None = None) -> list[Any]:
        return [
            {"topic": n, "error_code": 0, "partitions": [{}] * self.topics[n]}
            if n in self.topics
            else {"topic": n, "error_code": 3, "partitions": []}
            for n in topics or []
        ]


async def test_topic_init_creates_every_policy_topic_with_the_partition_count() -> None:
    topics = init_topics.policy_topics(str(EXAMPLE_POLICY))
    assert topics == load_policy(str(EXAMPLE_POLICY)).topics()
    admin = FakeAdmin({topics[0]: 6})
    report = await init_topics.ensure_topics(admin, topics, partitions=6, replication=3)
    assert report.created == topics[1:] and report.existing == topics[:1]
    assert not report.problems
    assert admin.topics == dict.fromkeys(topics, 6)
    assert {(p, r) for _, p, r in admin.requests} == {(6, 3)}


async def test_topic_init_refuses_a_topic_with_another_partition_count() -> None:
    admin = FakeAdmin({"restricted.payments": 8})
    names = ["restricted.payments", "confidential.payments"]
    report = await init_topics.ensure_topics(admin, names, partitions=4, replication=1)
    assert list(report.problems) == ["restricted.payments"]
    assert "has 8 partitions" in report.problems["restricted.payments"]
    assert admin.topics["restricted.payments"] == 8  # never changed behind the operator's back


async def test_topic_init_reports_a_topic_it_may_not_create() -> None:
    admin = FakeAdmin({}, failing=frozenset({"security.violations"}))
    report = await init_topics.ensure_topics(
        admin, ["security.violations", "public.x"], partitions=4, replication=1
    )
    assert report.created == ["public.x"]
    assert "error 29" in report.problems["security.violations"]


# -- HSM init (real SoftHSM2) ---------------------------------------------------------

MODULE = find_softhsm_module()

VERIFY = """
import asyncio, sys
from zoneapp.keys import build_key_provider
from zoneapp.settings import Secret
sys.path.insert(0, sys.argv[3])
import hsm_init

async def main(url, pin):
    zones = ["confidential", "internal", "public", "restricted"]
    provider = build_key_provider(url, Secret(pin))
    await provider.open(zones)
    try:
        for zone in zones:
            assert await provider.current_kek_version(zone) >= 1, zone
            assert len(await provider.derive_hmac_key(zone, b"deploy-test")) == 32, zone
    finally:
        await provider.close()

asyncio.run(main(sys.argv[1], sys.argv[2]))
module = hsm_init.Pkcs11Module(sys.argv[4])
module.initialize()
print(sum(1 for _, label, ok in module.tokens() if ok and label == "deploytest"))
module.finalize()
"""


@pytest.mark.skipif(MODULE is None, reason="softhsm2 is not installed")
def test_hsm_init_creates_the_token_and_every_zone_key_idempotently(tmp_path: Path) -> None:
    assert MODULE is not None
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n")
    (tmp_path / "pin").write_text("user-pin-1234\n")
    (tmp_path / "so_pin").write_text("so-pin-5678\n")
    url = f"pkcs11://{MODULE}?token=deploytest"
    env = {
        **os.environ,
        "SOFTHSM2_CONF": str(conf),
        "ZONEAPP_KEYS": url,
        "ZONEAPP_PKCS11_PIN_FILE": str(tmp_path / "pin"),
        "ZONEAPP_POLICY": str(EXAMPLE_POLICY),
    }
    env.pop("ZONEAPP_PKCS11_PIN", None)
    script = [sys.executable, str(DEPLOY / "scripts" / "hsm_init.py")]
    script += ["--so-pin-file", str(tmp_path / "so_pin")]

    def run_init() -> subprocess.CompletedProcess[str]:
        return subprocess.run(script, env=env, capture_output=True, text=True, cwd=ROOT)

    first = run_init()
    assert first.returncode == 0, first.stderr
    assert "token 'deploytest' created" in first.stdout
    second = run_init()
    assert second.returncode == 0, second.stderr
    assert "already there" in second.stdout
    for result in (first, second):
        assert "user-pin-1234" not in result.stdout + result.stderr
        assert "so-pin-5678" not in result.stdout + result.stderr

    verify = subprocess.run(
        [sys.executable, "-c", VERIFY, url, "user-pin-1234", str(DEPLOY / "scripts"), MODULE],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert verify.returncode == 0, verify.stderr
    assert verify.stdout.split() == ["1"]  # one token with the label, after two runs

    (tmp_path / "pin").write_text("wrong-pin-0000\n")
    wrong = run_init()
    assert wrong.returncode != 0
    assert "wrong-pin-0000" not in wrong.stdout + wrong.stderr


def test_hsm_init_parses_the_keys_url() -> None:
    module, label = hsm_init.parse_keys_url("pkcs11:///usr/lib/softhsm/libsofthsm2.so?token=z")
    assert (module, label) == ("/usr/lib/softhsm/libsofthsm2.so", "z")
    with pytest.raises(hsm_init.HsmInitError):
        hsm_init.parse_keys_url("memory://")


# -- Redis start script (real redis-server) ---------------------------------------------


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    def listening() -> bool:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True

    wait_for(listening, timeout, f"something to listen on {port}", interval=0.05)


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed")
@pytest.mark.parametrize("acl_user", ["", "zoneapp"])
async def test_redis_starts_with_aof_and_the_secret_password(tmp_path: Path, acl_user: str) -> None:
    port = free_port()
    base = (DEPLOY / "redis" / "redis.conf").read_text(encoding="utf-8")
    base = base.replace("port 6379", f"port {port}").replace("dir /data", f"dir {tmp_path}")
    base = base.replace("bind 0.0.0.0 -::*", "bind 127.0.0.1")
    (tmp_path / "base.conf").write_text(base, encoding="utf-8")
    (tmp_path / "password").write_text("r3dis-secret\n", encoding="utf-8")
    env = {
        **os.environ,
        "REDIS_BASE_CONF": str(tmp_path / "base.conf"),
        "REDIS_PASSWORD_FILE": str(tmp_path / "password"),
        "REDIS_RUNTIME_CONF": str(tmp_path / "runtime.conf"),
        "REDIS_ACL_USER": acl_user,
    }
    proc = subprocess.Popen(
        ["sh", str(DEPLOY / "redis" / "start.sh")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    user = acl_user or "default"
    try:
        wait_for_port(port)
        client = aioredis.Redis(port=port, username=user, password="r3dis-secret")
        assert await client.ping()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as anonymous:
            anonymous.sendall(b"GET x\r\n")
            assert anonymous.recv(100).startswith(b"-NOAUTH")
        assert await client.set("zoneapp:tok:{t}:tok_1", b"v", nx=True)
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
        assert b"r3dis-secret" not in cmdline
        assert (tmp_path / "appendonlydir").is_dir()  # appendonly yes
        assert oct((tmp_path / "runtime.conf").stat().st_mode & 0o777) == "0o600"
        await client.aclose()  # type: ignore[attr-defined]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# -- make-secrets.sh: the certificates, keys and API keys compose mounts ----------------------


def tls_handshake(server: ssl.SSLContext, client: ssl.SSLContext, hostname: str) -> bool:
    """A real TLS handshake on loopback: the client verifies the server as ``hostname``."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def serve() -> None:
            conn, _ = listener.accept()
            with (
                contextlib.suppress(ssl.SSLError, OSError),
                server.wrap_socket(conn, server_side=True) as tls,
            ):
                tls.sendall(b"ok")

        thread = threading.Thread(target=serve)
        thread.start()
        try:
            with (
                socket.create_connection(("127.0.0.1", port)) as raw,
                client.wrap_socket(raw, server_hostname=hostname) as tls,
            ):
                return tls.recv(2) == b"ok"
        finally:
            thread.join(5)


def test_make_secrets_creates_what_compose_mounts_and_it_works(tmp_path: Path) -> None:
    import hashlib

    import yaml

    from zoneapp.settings import Settings
    from zoneapp.web.auth import ApiKeys

    script = tmp_path / "make-secrets.sh"
    shutil.copy(DEPLOY / "make-secrets.sh", script)
    subprocess.run(["sh", str(script)], check=True, capture_output=True)
    secrets = tmp_path / "secrets"
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    for name, spec in compose["secrets"].items():
        assert (tmp_path / spec["file"]).is_file(), f"{name}: {spec['file']} not created"
    before = {p.name: p.read_bytes() for p in secrets.iterdir()}
    again = subprocess.run(["sh", str(script)], check=True, capture_output=True, text=True)
    assert "created" not in again.stdout
    assert {p.name: p.read_bytes() for p in secrets.iterdir()} == before  # kept

    # The metrics key is a viewer key in the API keys file (hashed, never in clear).
    metrics_key = (secrets / "metrics_key").read_text()
    api_keys = (secrets / "api_keys.yaml").read_text()
    assert metrics_key not in api_keys
    assert hashlib.sha256(metrics_key.encode()).hexdigest() in api_keys
    principal = ApiKeys.load(secrets / "api_keys.yaml").authenticate(f"Bearer {metrics_key}")
    assert principal.may_view_stats() and not principal.may_view_violations()
    settings = Settings.from_env({"ZONEAPP_CLUSTER_SECRET_FILE": str(secrets / "cluster_secret")})
    assert settings.cluster_secret is not None

    # Each worker's certificate is valid for its service name, under the CA peers trust.
    for worker in ("worker-restricted", "worker-confidential"):
        settings = Settings.from_env(
            {
                "ZONEAPP_WEB_TLS_CERTFILE": str(secrets / f"{worker}_tls.pem"),
                "ZONEAPP_WEB_TLS_KEYFILE": str(secrets / f"{worker}_tls.key"),
                "ZONEAPP_WEB_TLS_CAFILE": str(secrets / "web_ca.pem"),
            }
        )
        server_context = settings.web_tls.server_context()
        assert server_context is not None
        client = settings.web_tls.client_context()
        assert tls_handshake(server_context, client, worker)
        with pytest.raises(ssl.SSLCertVerificationError):
            tls_handshake(server_context, client, "evil.example")
