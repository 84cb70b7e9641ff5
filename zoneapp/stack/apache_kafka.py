"""Apache Kafka (KRaft, one node as broker and controller) for the embedded stack.

Why: tansu is memory-only and lacks TLS, SASL users, transactions and persistence, so
a guard tested only on it is not proven on the brokers users run. This module:

* **installs** the broker with Maven from Maven Central at a pinned version
  (``KAFKA_VERSION``) into ``~/.cache/zoneapp/kafka-<version>/jars`` (or
  ``$ZONEAPP_KAFKA_CACHE``). Transitive versions come from Maven's released POMs, which
  never change; ``apache_kafka_lock.JARS`` (name -> SHA-256) still pins the exact jar
  set, so a fresh install on another day either gets the same bytes or fails. The
  fetch happens lazily on the first Kafka start (about 10 s with an empty ``~/.m2``),
  so the tansu lane never needs Java or Maven.
* **formats** storage (``kafka.tools.StorageTool format``) in ``<workdir>/kafka`` once;
  later starts on the same directory reuse it, so the log survives a broker restart.
  SCRAM users are created by that same Kafka tool (``--add-scram``). Its passwords go
  into a mode-0600 Java argument file (``java @file``), never into a process's argv.
* **configures** free loopback ports (client listener and controller listener),
  remembered in ``<workdir>/kafka/ports.json`` so a restart uses the same ones.
* optionally serves the client listener as **SASL_SSL** with SCRAM-SHA-512 (PEM
  keystore and truststore, as Kafka reads them natively); the controller listener
  stays PLAINTEXT on 127.0.0.1 (single node, nobody else on it).

Readiness (metadata answers, topics can be created) and the process itself (SIGTERM,
SIGKILL after a timeout) are the embedded stack's, shared with tansu.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from zoneapp.formats import b64url
from zoneapp.settings import Secret
from zoneapp.stack.apache_kafka_lock import JARS, KAFKA_VERSION, LOG4J_VERSION
from zoneapp.stack.process import StackError, free_port, tail

__all__ = [
    "KAFKA_VERSION",
    "BrokerSecurity",
    "BrokerTls",
    "KafkaBroker",
    "ScramUser",
    "install_kafka",
    "java_binary",
    "kafka_cache_dir",
    "kafka_prerequisites",
    "lock_differences",
]

HOST = "127.0.0.1"
MECHANISM = "SCRAM-SHA-512"
#: The Maven coordinates the jar set is resolved from (runtime scope, transitively).
#: log4j-slf4j-impl binds Kafka's slf4j logging to log4j2, as Kafka's own tarball does;
#: without it the broker logs nothing at all.
ARTIFACTS = (
    ("org.apache.kafka", "kafka_2.13", KAFKA_VERSION),
    ("org.apache.logging.log4j", "log4j-slf4j-impl", LOG4J_VERSION),
)
INSTALL_HINT = "install Java 17 and Maven (`apt-get install -y openjdk-17-jre-headless maven`)"
#: Heap for the dev broker: Kafka's scripts default to 1 GiB; 512 MiB is plenty here.
HEAP = "512m"
#: SCRAM names and passwords go into StorageTool's ``[name=..,password=..]`` syntax and
#: a Java argument file: keep them to characters neither can misread.
_SAFE = re.compile(r"[A-Za-z0-9._~+/-]{1,200}")
_LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = OUT
logger.state.name = state.change.logger
logger.state.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
"""


def kafka_cache_dir() -> Path:
    """Where the jars of ``KAFKA_VERSION`` live: ``$ZONEAPP_KAFKA_CACHE`` or the XDG cache."""
    explicit = os.environ.get("ZONEAPP_KAFKA_CACHE")
    if explicit:
        return Path(explicit).absolute()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "zoneapp" / f"kafka-{KAFKA_VERSION}"


def java_binary() -> str | None:
    """``java`` from ``$JAVA_HOME`` or PATH."""
    home = os.environ.get("JAVA_HOME")
    if home and os.access(Path(home) / "bin" / "java", os.X_OK):
        return str(Path(home) / "bin" / "java")
    return shutil.which("java")


def kafka_prerequisites() -> list[str]:
    """What the Kafka lane lacks on this machine (Maven only matters before the first fetch)."""
    problems: list[str] = []
    if java_binary() is None:
        problems.append(f"java is not installed; {INSTALL_HINT}")
    if not _installed(kafka_cache_dir() / "jars") and shutil.which("mvn") is None:
        problems.append(f"mvn is not installed (needed once, to fetch Kafka); {INSTALL_HINT}")
    return problems


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _jar_digests(jars: Path) -> dict[str, str]:
    return {p.name: _sha256(p) for p in sorted(jars.glob("*.jar"))}


def lock_differences(got: Mapping[str, str], lock: Mapping[str, str]) -> str | None:
    """How a jar set (name -> SHA-256) differs from a lock, or None if it is the same."""
    if dict(got) == dict(lock):
        return None
    missing = sorted(set(lock) - set(got))
    extra = sorted(set(got) - set(lock))
    changed = sorted(n for n in set(got) & set(lock) if got[n] != lock[n])
    return f"missing {missing}, unexpected {extra}, different bytes {changed}"


def _installed(jars: Path) -> bool:
    """The cache is complete and still matches the lock (re-hashed on every call, about
    0.1 s: a jar changed or removed in the cache is fetched again, never run)."""
    if not (jars / ".verified").is_file():
        return False
    return lock_differences(_jar_digests(jars), JARS) is None


def _pom() -> str:
    deps = "".join(
        f"<dependency><groupId>{g}</groupId><artifactId>{a}</artifactId>"
        f"<version>{v}</version></dependency>"
        for g, a, v in ARTIFACTS
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>'
        "<groupId>zoneapp.stack</groupId><artifactId>kafka-broker</artifactId>"
        f"<version>{KAFKA_VERSION}</version><packaging>pom</packaging>"
        f"<dependencies>{deps}</dependencies></project>\n"
    )


def install_kafka(cache: Path | None = None, *, timeout: float = 900.0) -> Path:
    """The ``jars`` directory of the pinned Kafka, fetched with Maven on first use.

    Idempotent and safe to call from parallel processes (an exclusive lock on the cache).
    The fetched set must equal ``apache_kafka_lock.JARS`` (names and SHA-256), else
    nothing is installed and StackError names the differences.
    """
    cache = (cache or kafka_cache_dir()).absolute()
    jars = cache / "jars"
    if _installed(jars):
        return jars
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".install.lock").open("wb") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _installed(jars):
            return jars
        mvn = shutil.which("mvn")
        if mvn is None:
            raise StackError(
                f"kafka: Maven is needed to fetch Kafka {KAFKA_VERSION}; {INSTALL_HINT}"
            )
        with tempfile.TemporaryDirectory(dir=cache, prefix=".fetch-") as tmp:
            work = Path(tmp)
            (work / "pom.xml").write_text(_pom(), encoding="utf-8")
            log = work / "mvn.log"
            with log.open("wb") as out:
                try:
                    result = subprocess.run(
                        [
                            mvn,
                            "-B",
                            "-q",
                            "-f",
                            str(work / "pom.xml"),
                            "dependency:copy-dependencies",
                            "-DincludeScope=runtime",
                            f"-DoutputDirectory={work / 'jars'}",
                        ],
                        stdin=subprocess.DEVNULL,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        timeout=timeout,
                        check=False,
                    )
                except subprocess.TimeoutExpired:
                    raise StackError(f"kafka: Maven fetch took over {timeout:.0f}s") from None
            if result.returncode != 0:
                raise StackError(
                    f"kafka: Maven could not fetch Kafka {KAFKA_VERSION} "
                    f"(exit {result.returncode}):\n{tail(log)}"
                )
            differences = lock_differences(_jar_digests(work / "jars"), JARS)
            if differences is not None:
                raise StackError(
                    f"kafka: the fetched jars differ from apache_kafka_lock.JARS ({differences})"
                )
            (work / "jars" / ".verified").write_text(KAFKA_VERSION + "\n")
            shutil.rmtree(jars, ignore_errors=True)
            os.replace(work / "jars", jars)
    return jars


@dataclass(frozen=True)
class ScramUser:
    """A SCRAM-SHA-512 user created when the storage is formatted."""

    name: str
    password: Secret = field(repr=False)


@dataclass(frozen=True)
class BrokerTls:
    """PEM files: the CA clients verify the broker with, and the broker's certificate+key."""

    cafile: Path
    certfile: Path
    keyfile: Path


@dataclass(frozen=True)
class BrokerSecurity:
    """A SASL_SSL (SCRAM-SHA-512) client listener.

    ``admin`` is the broker's own login (inter-broker) and the stack's tools' user;
    ``users`` are created too (only when the storage is first formatted).
    """

    tls: BrokerTls
    admin: ScramUser
    users: tuple[ScramUser, ...] = ()


def _safe(what: str, value: str) -> str:
    if not _SAFE.fullmatch(value):
        # The value is not echoed: it may be a password.
        raise StackError(f"kafka: a SCRAM {what} may only use letters, digits and ._~+/-")
    return value


class KafkaBroker:
    """Files and command line of one KRaft node in ``<workdir>/kafka``.

    ``prepare`` installs (if needed), writes the configuration and formats the storage
    unless it is formatted already; ``argv`` is the command that runs the node.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        port: int | None = None,
        partitions: int = 4,
        security: BrokerSecurity | None = None,
        cache: Path | None = None,
        advertised_port: int | None = None,
    ) -> None:
        self.home = Path(workdir).absolute() / "kafka"
        self.advertised_port = advertised_port
        self._requested_port = port
        self.port: int | None = port
        self.controller_port: int | None = None
        self.partitions = partitions
        self.security = security
        self._cache = cache
        self._jars: Path | None = None

    def __repr__(self) -> str:
        return f"KafkaBroker(home={str(self.home)!r}, port={self.port})"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def config_file(self) -> Path:
        return self.home / "server.properties"

    @property
    def formatted(self) -> bool:
        return (self.data_dir / "meta.properties").is_file()

    def wipe(self) -> None:
        """Forget the log and the ports (a fresh broker on the next ``prepare``)."""
        shutil.rmtree(self.home, ignore_errors=True)
        self.port, self.controller_port = self._requested_port, None

    def prepare(self, *, fresh_ports: bool = False) -> None:
        """Install, pick ports (those of the last run on this directory, if any), write the
        configuration and format the storage if it is not formatted yet.

        ``fresh_ports``: pick new free ports (after losing a port race).
        """
        self._jars = install_kafka(self._cache)
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._choose_ports(fresh_ports)
        self._write_config()
        if not self.formatted:
            self._format()

    def _choose_ports(self, fresh: bool) -> None:
        ports_file = self.home / "ports.json"
        saved: dict[str, int] = {}
        if not fresh:
            with contextlib.suppress(OSError, ValueError):
                saved = json.loads(ports_file.read_text())
        self.port = self._requested_port or (None if fresh else saved.get("client")) or free_port()
        self.controller_port = (None if fresh else saved.get("controller")) or free_port()
        while self.controller_port == self.port:  # Kafka refuses two listeners on one port
            self.controller_port = free_port()
        ports_file.write_text(
            json.dumps({"client": self.port, "controller": self.controller_port}) + "\n"
        )

    def _java_base(self) -> list[str]:
        java = java_binary()
        if java is None or self._jars is None:
            raise StackError(f"kafka: java is not installed; {INSTALL_HINT}")
        return [
            java,
            f"-Xms{HEAP}",
            f"-Xmx{HEAP}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}",
            "-cp",
            f"{self._jars}/*",
        ]

    def _jar_list(self) -> list[Path]:
        assert self._jars is not None
        return sorted(self._jars.glob("*.jar"))

    def argv(self) -> list[str]:
        """``java ... kafka.Kafka server.properties`` (after ``prepare``)."""
        return [*self._java_base(), "kafka.Kafka", str(self.config_file)]

    def _write_config(self) -> None:
        protocol = "SASL_SSL" if self.security else "PLAINTEXT"
        props: dict[str, str] = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{HOST}:{self.controller_port}",
            "listeners": f"CLIENT://{HOST}:{self.port},CONTROLLER://{HOST}:{self.controller_port}",
            "advertised.listeners": f"CLIENT://{HOST}:{self.advertised_port or self.port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": f"CLIENT:{protocol},CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "CLIENT",
            "log.dirs": str(self.data_dir),
            # Topics a client names before creating them get the stack's partition count.
            "num.partitions": str(self.partitions),
            "offsets.topic.replication.factor": "1",
            # 50 partitions by default: slow to create on 2 cores, useless on one node.
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "4",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
        }
        if self.security is not None:
            tls, admin = self.security.tls, self.security.admin
            keystore = self.home / "keystore.pem"
            fd = os.open(keystore, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(tls.keyfile.read_bytes() + b"\n" + tls.certfile.read_bytes())
            name = _safe("user name", admin.name)
            password = _safe("password", admin.password.reveal().decode())
            props.update(
                {
                    "sasl.enabled.mechanisms": MECHANISM,
                    "sasl.mechanism.inter.broker.protocol": MECHANISM,
                    "listener.name.client.scram-sha-512.sasl.jaas.config": (
                        "org.apache.kafka.common.security.scram.ScramLoginModule required "
                        f'username="{name}" password="{password}";'
                    ),
                    "ssl.keystore.type": "PEM",
                    "ssl.keystore.location": str(keystore),
                    "ssl.truststore.type": "PEM",
                    "ssl.truststore.location": str(tls.cafile),
                    "ssl.endpoint.identification.algorithm": "https",
                }
            )
        text = "".join(f"{k}={v}\n" for k, v in props.items())
        # Mode 0600: in SASL mode the file holds the broker's own password.
        fd = os.open(self.config_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        (self.home / "log4j2.properties").write_text(_LOG4J2, encoding="utf-8")

    def _format(self, timeout: float = 120.0) -> None:
        args = [
            "kafka.tools.StorageTool", "format",
            "--cluster-id", _cluster_id(),
            "--config", str(self.config_file),
            "--ignore-formatted",
        ]  # fmt: skip
        users: Sequence[ScramUser] = ()
        if self.security is not None:
            users = (self.security.admin, *self.security.users)
        for user in users:
            name = _safe("user name", user.name)
            password = _safe("password", user.password.reveal().decode())
            args += ["--add-scram", f"{MECHANISM}=[name={name},password={password}]"]
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        argfile = self.home / "format.args"
        fd = os.open(argfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            # The launcher does not expand a class-path wildcard read from an argument file.
            jars = os.pathsep.join(str(j) for j in self._jar_list())
            base = [*self._java_base()[1:-1], jars]
            fh.write("\n".join(f'"{a}"' for a in [*base, *args]) + "\n")
        log = self.home / "format.log"
        java = self._java_base()[0]
        try:
            with log.open("wb") as out:
                result = subprocess.run(
                    [java, f"@{argfile}"],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    timeout=timeout,
                    check=False,
                    env=_java_env(),
                )
        except subprocess.TimeoutExpired:
            raise StackError(f"kafka: formatting the storage took over {timeout:.0f}s") from None
        finally:
            argfile.unlink(missing_ok=True)
        if result.returncode != 0 or not self.formatted:
            raise StackError(
                f"kafka: formatting {self.data_dir} failed (exit {result.returncode}); "
                f"last lines of {log}:\n{tail(log)}"
            )

    def env(self) -> dict[str, str]:
        """The broker's environment: only what Java needs (no ZONEAPP_*, no secrets)."""
        return _java_env()


def _cluster_id() -> str:
    """Kafka's cluster id format: a random UUID, base64url without padding (22 chars).
    Like Kafka's own ``Uuid.randomUuid``, never one starting with ``-``: StorageTool's
    argument parser would read it as an option (1 start in 64 failed that way)."""
    while True:
        cluster = b64url(uuid.uuid4().bytes)
        if not cluster.startswith("-"):
            return cluster


def _java_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
    }
    source = os.environ if base is None else base
    if source.get("JAVA_HOME"):
        env["JAVA_HOME"] = source["JAVA_HOME"]
    return env


def fetch_for_lock(directory: Path) -> Path:
    """Fetch the jar set of ``ARTIFACTS`` into ``directory/jars`` without checking the lock."""
    (directory / "pom.xml").write_text(_pom(), encoding="utf-8")
    subprocess.run(
        ["mvn", "-B", "-q", "-f", str(directory / "pom.xml"), "dependency:copy-dependencies",
         "-DincludeScope=runtime", f"-DoutputDirectory={directory / 'jars'}"],
        check=True,
        stdout=sys.stderr,  # the lock goes to stdout
    )  # fmt: skip
    return directory / "jars"


def write_lock(jars: Path) -> str:
    """The text of apache_kafka_lock.py for the jars in ``jars`` (after a version bump)."""
    lines = [
        "# ruff: noqa: E501",
        '"""Generated by `python -m zoneapp.stack.kafka_install --lock`: the exact jars of the',
        'pinned Kafka (name -> SHA-256). A fresh install must reproduce this set."""',
        "",
        f'KAFKA_VERSION = "{KAFKA_VERSION}"',
        f'LOG4J_VERSION = "{LOG4J_VERSION}"',
        "",
        "JARS: dict[str, str] = {",
        *(f'    "{name}": "{digest}",' for name, digest in _jar_digests(jars).items()),
        "}",
        "",
    ]
    return "\n".join(lines)
