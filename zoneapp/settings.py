"""Settings, all from environment variables prefixed ``ZONEAPP_``.

Secrets (the PKCS#11 PIN, the SASL password) come from a variable or from a file
named by ``<NAME>_FILE``, never from a command-line argument, and are wrapped so
they never print.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

PREFIX = "ZONEAPP_"
DEFAULT_POLICY = "deploy/policies/ecommerce.yaml"
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
#: ``ZONEAPP_ENV``: only ``development`` allows the in-memory key provider and vault.
ENVIRONMENTS = ("production", "development")
#: A cluster secret shorter than this is refused (it keys the peers' HMAC signatures).
MIN_CLUSTER_SECRET_BYTES = 32


# Per-process key for Secret.digest(): digests are comparable within this process only.
_DIGEST_KEY = os.urandom(32)


class Secret:
    """An opaque secret value (PIN, password); ``repr``/``str`` never show it."""

    __slots__ = ("_value",)

    def __init__(self, value: str | bytes) -> None:
        if isinstance(value, str):
            value = value.encode("utf-8")
        if not isinstance(value, bytes):
            # Do not echo the value: it may be the secret in the wrong type.
            raise TypeError("Secret value must be str or bytes")
        self._value = value

    def reveal(self) -> bytes:
        """The raw value; call this only where the secret is consumed."""
        return self._value

    def digest(self) -> bytes:
        """A per-process keyed digest, so a PIN can be compared later without keeping a copy."""
        return hmac.new(_DIGEST_KEY, self._value, hashlib.sha256).digest()

    def matches(self, digest: bytes) -> bool:
        """Constant-time comparison with a :meth:`digest` taken earlier in this process."""
        return hmac.compare_digest(self.digest(), digest)

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __format__(self, format_spec: str) -> str:
        return repr(self)

    def __reduce__(self) -> NoReturn:
        # Pickling would copy the secret into queues, caches or crash dumps.
        raise TypeError("Secret objects cannot be pickled")

    # Immutable: copies (dataclasses.replace, deepcopy of settings) share the instance.
    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> Secret:
        return self

    @classmethod
    def from_env_or_file(
        cls, env_name: str, file_env_name: str, env: Mapping[str, str] | None = None
    ) -> Secret | None:
        """Read a secret from ``env_name`` or from the file named by ``file_env_name``.

        The file form is for Kubernetes/Docker secrets mounted as files; one
        trailing newline (``\\n`` or ``\\r\\n``) is stripped because editors and
        ``echo`` add it. An empty variable counts as unset. Setting both is an
        error so that a stale value cannot silently win.
        """
        env = os.environ if env is None else env
        direct = env.get(env_name) or None
        file_name = env.get(file_env_name) or None
        if direct is not None and file_name is not None:
            raise ValueError(f"both {env_name} and {file_env_name} are set; set only one")
        if direct is not None:
            return cls(direct)
        if file_name is None:
            return None
        try:
            data = Path(file_name).read_bytes()
        except OSError as exc:
            # The path is configuration, not a secret; the content is never read into the message.
            raise ValueError(
                f"cannot read the secret file named by {file_env_name} ({file_name!r}): "
                f"{exc.strerror or type(exc).__name__}"
            ) from None
        if data.endswith(b"\r\n"):
            data = data[:-2]
        elif data.endswith(b"\n"):
            data = data[:-1]
        if not data:
            raise ValueError(f"the secret file named by {file_env_name} is empty")
        return cls(data)


def bootstrap_servers(broker: str) -> list[str]:
    """``kafka://h1:9092;h2:9092`` (Faust style) or ``h1:9092,h2:9092`` → ``["h1:9092", ...]``:
    the one broker-URL parser (settings, the demo feed, the stack tools)."""
    return [p.strip().split("://", 1)[-1] for p in broker.replace(",", ";").split(";") if p.strip()]


class SettingsError(ValueError):
    """A setting is missing or wrong; the message names the variable, never a secret."""


def _secret(env: Mapping[str, str], name: str) -> Secret | None:
    try:
        return Secret.from_env_or_file(PREFIX + name, PREFIX + name + "_FILE", env)
    except ValueError as exc:
        raise SettingsError(str(exc)) from None


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(PREFIX + name, "").strip().lower()
    if raw == "":
        return default
    if raw in ("true", "1", "yes", "on"):
        return True
    if raw in ("false", "0", "no", "off"):
        return False
    raise SettingsError(f"{PREFIX}{name} must be true or false, got {raw!r}")


def _path(env: Mapping[str, str], name: str) -> str | None:
    """A file path setting (certificates): it must name a readable file when set."""
    value = env.get(PREFIX + name) or None
    if value is not None and not Path(value).is_file():
        raise SettingsError(f"{PREFIX}{name}: {value} is not a readable file")
    return value


def _int(env: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = env.get(PREFIX + name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{PREFIX}{name} must be an integer, got {raw!r}") from None
    if not lo <= value <= hi:
        raise SettingsError(f"{PREFIX}{name} must be from {lo} to {hi}, got {value}")
    return value


@dataclass(frozen=True)
class KafkaSecurity:
    protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "PLAIN"
    sasl_username: str | None = None
    sasl_password: Secret | None = field(default=None, repr=False)
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_check_hostname: bool = True

    def ssl_context(self) -> ssl.SSLContext | None:
        if self.protocol not in ("SSL", "SASL_SSL"):
            return None
        context = ssl.create_default_context(cafile=self.ssl_cafile)
        context.check_hostname = self.ssl_check_hostname
        if self.ssl_certfile:
            context.load_cert_chain(self.ssl_certfile, self.ssl_keyfile)
        return context

    def aiokafka_kwargs(self) -> dict[str, Any]:
        """The same settings for plain aiokafka clients (the stack tools, tests, bench)."""
        if self.protocol == "PLAINTEXT":
            return {}
        kwargs: dict[str, Any] = {"security_protocol": self.protocol}
        context = self.ssl_context()
        if context is not None:
            kwargs["ssl_context"] = context
        if self.protocol.startswith("SASL"):
            kwargs["sasl_mechanism"] = self.sasl_mechanism
            kwargs["sasl_plain_username"] = self.sasl_username
            kwargs["sasl_plain_password"] = (
                self.sasl_password.reveal().decode() if self.sasl_password else None
            )
        return kwargs


@dataclass(frozen=True)
class WebTls:
    """HTTPS for the web server and for the calls workers make to each other.

    Certificate and key are files named by settings (``ZONEAPP_WEB_TLS_CERTFILE``,
    ``ZONEAPP_WEB_TLS_KEYFILE``), never command-line arguments; ``ZONEAPP_WEB_TLS_CAFILE``
    is what peers' certificates are verified against (default: the system CAs).
    """

    certfile: str | None = None
    keyfile: str | None = None
    cafile: str | None = None

    @property
    def enabled(self) -> bool:
        return self.certfile is not None

    @property
    def scheme(self) -> str:
        return "https" if self.enabled else "http"

    def server_context(self) -> ssl.SSLContext | None:
        if not self.enabled:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(str(self.certfile), self.keyfile)
        return context

    def client_context(self) -> ssl.SSLContext:
        """Verifies peers (hostname included) against the CA file or the system CAs."""
        context = ssl.create_default_context(cafile=self.cafile)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context


@dataclass(frozen=True)
class Settings:
    app_id: str = "zoneapp"
    broker: str = "kafka://127.0.0.1:9092"
    security: KafkaSecurity = field(default_factory=KafkaSecurity)
    vault_url: str = "redis://127.0.0.1:6379/0"
    #: Overrides the URL's password, so it can come from a file (secrets mount).
    vault_password: Secret | None = field(default=None, repr=False)
    keys_url: str = "pkcs11:///usr/lib/softhsm/libsofthsm2.so?token=zoneapp"
    pkcs11_pin: Secret | None = field(default=None, repr=False)
    policy_path: str = DEFAULT_POLICY
    #: A candidate policy run in shadow mode beside the active one (zoneapp.pipeline.shadow).
    policy_candidate: str | None = None
    #: Seconds between checks of the policy files for a change (0: only SIGHUP or a command).
    policy_watch: float = 0.0
    web_port: int = 6066
    web_bind: str = "127.0.0.1"
    datadir: str = ".zoneapp/worker"
    topic_partitions: int = 4
    declare_topics: bool = True
    #: Comma-separated boundary names this worker runs; empty means all of them.
    boundaries: tuple[str, ...] = ()
    batch_size: int = 500
    #: How long a batch waits to fill (``ZONEAPP_BATCH_WITHIN_MS``): Faust's take_events
    #: waits this long every round, so it adds up to this much latency; shorter windows
    #: give smaller batches and lower throughput (measured: README, benchmark).
    batch_within: float = 0.05
    #: The consumer's fetch wait in ms (``ZONEAPP_FETCH_MAX_WAIT_MS``); None keeps Faust's
    #: 1500. Only tansu needs it low (it answers a fetch only when the wait runs out);
    #: the embedded stack sets 50 there (README, benchmark; agents/fetch_wait.py).
    fetch_max_wait_ms: int | None = None
    retry_max_backoff: float = 10.0
    #: Operators' views (zoneapp.web): hashed API keys, the host other workers reach
    #: this one at (table_route / gathering; default: the bind address), stats flushes.
    api_keys_file: str | None = None
    web_host: str | None = None
    stats_flush_interval: float = 2.0
    #: How long a worker reuses a /reconcile answer for the same question (seconds).
    reconcile_cache: float = 30.0
    violations_keep: int = 10_000
    #: Seconds a release request waits for its second officer (zoneapp.release).
    release_ttl: float = 86_400.0
    #: Seconds a done or expired release is kept in the releases table before it is purged.
    release_retention: float = 30 * 86_400.0
    #: Detokenize/decrypt calls per second per caller, and the burst allowed.
    access_rate: int = 5
    access_burst: int = 20
    #: How often a worker re-reads the current key version (bounds rotation pickup).
    key_version_check_interval: int = 60
    #: ``production`` (default) or ``development`` (allows memory:// keys and vault).
    environment: str = "production"
    #: Keys the HMAC signatures of worker-to-worker calls (zoneapp.web.cluster).
    cluster_secret: Secret | None = field(default=None, repr=False)
    #: ``host:port`` of the peers this worker may call; empty: any the group advertises.
    cluster_peers: tuple[str, ...] = ()
    web_tls: WebTls = field(default_factory=WebTls)
    #: ``/metrics`` without a key (for a scraper that cannot send one); off by default.
    metrics_public: bool = False
    #: API key verifications (hashing) per second per source address, and the burst.
    auth_rate: int = 5
    auth_burst: int = 10
    #: Audited refusals of unauthenticated calls per second per source, and the burst.
    anonymous_rate: int = 1
    anonymous_burst: int = 5

    @property
    def development(self) -> bool:
        return self.environment == "development"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        protocol = env.get(PREFIX + "KAFKA_SECURITY_PROTOCOL", "PLAINTEXT").upper()
        if protocol not in SECURITY_PROTOCOLS:
            raise SettingsError(
                f"{PREFIX}KAFKA_SECURITY_PROTOCOL must be one of {', '.join(SECURITY_PROTOCOLS)}"
            )
        mechanism = env.get(PREFIX + "SASL_MECHANISM", "PLAIN").upper()
        if mechanism not in SASL_MECHANISMS:
            raise SettingsError(
                f"{PREFIX}SASL_MECHANISM must be one of {', '.join(SASL_MECHANISMS)}"
            )
        security = KafkaSecurity(
            protocol=protocol,
            sasl_mechanism=mechanism,
            sasl_username=env.get(PREFIX + "SASL_USERNAME") or None,
            sasl_password=_secret(env, "SASL_PASSWORD"),
            ssl_cafile=env.get(PREFIX + "SSL_CAFILE") or None,
            ssl_certfile=env.get(PREFIX + "SSL_CERTFILE") or None,
            ssl_keyfile=env.get(PREFIX + "SSL_KEYFILE") or None,
            ssl_check_hostname=env.get(PREFIX + "SSL_CHECK_HOSTNAME", "true").lower() != "false",
        )
        names = tuple(n.strip() for n in env.get(PREFIX + "BOUNDARIES", "").split(",") if n.strip())
        environment = env.get(PREFIX + "ENV", "production").strip().lower() or "production"
        if environment not in ENVIRONMENTS:
            raise SettingsError(f"{PREFIX}ENV must be one of {', '.join(ENVIRONMENTS)}")
        cluster_secret = _secret(env, "CLUSTER_SECRET")
        if cluster_secret is not None and len(cluster_secret.reveal()) < MIN_CLUSTER_SECRET_BYTES:
            raise SettingsError(
                f"{PREFIX}CLUSTER_SECRET must be at least {MIN_CLUSTER_SECRET_BYTES} bytes "
                "(e.g. 64 random hex digits)"
            )
        tls = WebTls(
            certfile=_path(env, "WEB_TLS_CERTFILE"),
            keyfile=_path(env, "WEB_TLS_KEYFILE"),
            cafile=_path(env, "WEB_TLS_CAFILE"),
        )
        if (tls.certfile is None) != (tls.keyfile is None):
            raise SettingsError(f"{PREFIX}WEB_TLS_CERTFILE and {PREFIX}WEB_TLS_KEYFILE go together")
        peers = tuple(
            p.strip().lower() for p in env.get(PREFIX + "CLUSTER_PEERS", "").split(",") if p.strip()
        )
        defaults = cls()
        broker = env.get(PREFIX + "BROKER", defaults.broker)
        fetch_wait: int | None = None
        if env.get(PREFIX + "FETCH_MAX_WAIT_MS"):
            fetch_wait = _int(env, "FETCH_MAX_WAIT_MS", 0, 1, 60_000)
            scheme = broker.split("://", 1)[0].strip().lower() if "://" in broker else "kafka"
            if scheme not in ("kafka", "aiokafka"):
                raise SettingsError(
                    f"{PREFIX}FETCH_MAX_WAIT_MS applies to the kafka:// (aiokafka) driver only, "
                    f"not {scheme}://"
                )
        return cls(
            app_id=env.get(PREFIX + "APP_ID", defaults.app_id),
            broker=broker,
            security=security,
            vault_url=env.get(PREFIX + "VAULT", defaults.vault_url),
            vault_password=_secret(env, "VAULT_PASSWORD"),
            keys_url=env.get(PREFIX + "KEYS", defaults.keys_url),
            pkcs11_pin=_secret(env, "PKCS11_PIN"),
            policy_path=env.get(PREFIX + "POLICY", defaults.policy_path),
            policy_candidate=env.get(PREFIX + "POLICY_CANDIDATE") or None,
            policy_watch=float(_int(env, "POLICY_WATCH_S", 0, 0, 3600)),
            web_port=_int(env, "WEB_PORT", defaults.web_port, 1, 65535),
            web_bind=env.get(PREFIX + "WEB_BIND", defaults.web_bind),
            datadir=env.get(PREFIX + "DATADIR", defaults.datadir),
            topic_partitions=_int(env, "TOPIC_PARTITIONS", defaults.topic_partitions, 1, 10_000),
            declare_topics=env.get(PREFIX + "DECLARE_TOPICS", "true").lower() != "false",
            boundaries=names,
            batch_size=_int(env, "BATCH_SIZE", defaults.batch_size, 1, 100_000),
            batch_within=_int(
                env, "BATCH_WITHIN_MS", round(defaults.batch_within * 1000), 1, 60_000
            )
            / 1000.0,
            fetch_max_wait_ms=fetch_wait,
            key_version_check_interval=_int(
                env, "KEY_VERSION_CHECK_INTERVAL", defaults.key_version_check_interval, 1, 86_400
            ),
            api_keys_file=env.get(PREFIX + "API_KEYS_FILE") or None,
            web_host=env.get(PREFIX + "WEB_HOST") or None,
            stats_flush_interval=_int(env, "STATS_FLUSH_MS", 2000, 100, 600_000) / 1000.0,
            reconcile_cache=float(_int(env, "RECONCILE_CACHE_S", 30, 1, 3600)),
            violations_keep=_int(env, "VIOLATIONS_KEEP", defaults.violations_keep, 10, 10**7),
            release_ttl=float(_int(env, "RELEASE_TTL_S", 86_400, 60, 30 * 86_400)),
            release_retention=float(
                _int(env, "RELEASE_RETENTION_S", 30 * 86_400, 3_600, 365 * 86_400)
            ),
            access_rate=_int(env, "ACCESS_RATE", defaults.access_rate, 1, 100_000),
            access_burst=_int(env, "ACCESS_BURST", defaults.access_burst, 1, 100_000),
            environment=environment,
            cluster_secret=cluster_secret,
            cluster_peers=peers,
            web_tls=tls,
            metrics_public=_bool(env, "METRICS_PUBLIC", False),
            auth_rate=_int(env, "AUTH_RATE", defaults.auth_rate, 1, 100_000),
            auth_burst=_int(env, "AUTH_BURST", defaults.auth_burst, 1, 100_000),
            anonymous_rate=_int(env, "ANONYMOUS_RATE", defaults.anonymous_rate, 1, 100_000),
            anonymous_burst=_int(env, "ANONYMOUS_BURST", defaults.anonymous_burst, 1, 100_000),
        )

    def broker_urls(self) -> list[str]:
        """The broker setting as plain aiokafka clients want it (see bootstrap_servers)."""
        return bootstrap_servers(self.broker)
