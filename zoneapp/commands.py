"""Command-line tools on the app: ``faust -A zoneapp check-policy FILE``."""

from __future__ import annotations

import getpass
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import faust
import orjson
from aiokafka import AIOKafkaProducer
from faust.cli import AppCommand, argument, option

from zoneapp.access.erasure import erase_subject, subject_zones
from zoneapp.access.fields import AccessError, FieldAccess, KafkaAuditSink, audit_event
from zoneapp.keys import KeyAdmin, KeyRing, build_key_admin, build_key_provider
from zoneapp.ops import reconcile as reconciliation
from zoneapp.ops.ledger import Ledger
from zoneapp.ops.reconcile import Window
from zoneapp.policy import CompiledBoundary, PolicyError, load_policy
from zoneapp.policy.flow import explain as explain_flow
from zoneapp.policy.flow import prove_flow, refusal, trace_crossings
from zoneapp.policy.ingress import unnamed_fields
from zoneapp.runtime import Runtime
from zoneapp.vault import build_vault
from zoneapp.web.auth import hash_key, new_key

log = logging.getLogger(__name__)


def check_policy_file(path: str, explain: bool = False) -> tuple[bool, str, str]:
    """Validate a policy file and prove its flows (:mod:`zoneapp.policy.flow`); returns
    (ok, the report for stdout, the errors for stderr). ``explain`` adds the table of
    every path, hop and class to the report, whether the proof holds or not."""
    try:
        policy = load_policy(path)
    except PolicyError as exc:
        return False, "", str(exc)
    proof = prove_flow(policy)
    table = explain_flow(proof) if explain else ""
    if not proof.ok:
        return False, table, refusal(path, proof)
    lines = [f"{path}: OK (version {policy.version}, sha256 {policy.digest})"]
    for b in policy.boundaries:
        rules = sum(1 for _ in b.fields.rules()) + len(b.derived)
        lines.append(
            f"  {b.name}: {', '.join(b.sources)} ({b.source_zone.name}) -> {b.destination} "
            f"({b.destination_zone.name}), {rules} field rules, unclassified fields: "
            f"{'block' if b.unclassified_blocks else 'suppress'}"
        )
        lines.extend(ingress_lines(b))
    lines.append(
        f"  flow proof: {len(proof.paths)} field paths, {proof.hop_count} hops; every class "
        "reaches lower zones only through sanitizing transforms"
    )
    lines.append(f"  {trace_crossings(policy)}")
    if table:
        lines.append(table)
    return True, "\n".join(lines), ""


def ingress_lines(b: CompiledBoundary) -> list[str]:
    """check-policy's ingress lines: each schema, the fields it allows that no rule names
    (what default-deny drops, or what blocks the record), and the rate limit."""
    if b.ingress is None:
        return []
    lines: list[str] = []
    drop = "quarantine the record (unclassified: block)" if b.unclassified_blocks else "dropped"
    for topic in b.sources:
        schema = b.ingress.schemas.get(topic)
        if schema is None:
            lines.append(f"    schema of {topic}: none")
            continue
        lines.append(
            f"    schema of {topic}: {schema.name} ({schema.draft}, sha256 {schema.digest[:12]})"
        )
        unnamed = unnamed_fields(schema, b.fields)
        if unnamed:
            lines.append(
                f"      allowed by the schema but named by no rule ({drop}): {', '.join(unnamed)}"
            )
        else:
            lines.append("      every field the schema allows is named by a rule")
    if b.ingress.rate_limit is not None:
        lines.append(f"    rate limit: {b.ingress.rate_limit.describe()}")
    return lines


def _describe(exc: BaseException) -> str:
    """An error's type and message: broker and client errors name hosts and topics, never
    record contents (reconcile reads only offsets and lineage headers)."""
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def render_ledger(ledger: Ledger) -> str:
    """The operator's table: one line per boundary and source partition, then the verdict."""
    summary = ledger.summary()
    lines = [
        f"{'boundary':<28} {'partition':<28} {'consumed':>15} {'fwd':>7} {'quar':>6} "
        f"{'dup':>5}  missing"
    ]
    for row in summary["partitions"]:
        span = f"{row['consumed'][0]}-{row['consumed'][1]}" if row["consumed"] else "-"
        gaps = ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in row["missing"]) or "none"
        lines.append(
            f"{row['boundary']:<28} {row['topic'] + '/' + str(row['partition']):<28} "
            f"{span:>15} {row['forwarded']:>7} {row['quarantined']:>6} {row['duplicated']:>5}  "
            f"{gaps}"
        )
    verdict = (
        "OK"
        if summary["ok"]
        else f"MISSING {summary['missing']}"
        + (f", NOT COMMITTED {', '.join(summary['uncommitted'])}" if summary["uncommitted"] else "")
    )
    lines.append(
        f"{verdict}: {summary['source_records']} source records, {summary['forwarded']} "
        f"forwarded, {summary['quarantined']} quarantined, {summary['duplicated']} duplicated"
        + (f", {summary['released']} released from quarantine" if summary.get("released") else "")
    )
    return "\n".join(lines)


def register_commands(app: faust.App, runtime: Runtime) -> None:
    @app.command(
        argument("path", required=False),
        option("--explain", is_flag=True, default=False, help="print every field path by hop"),
    )
    async def check_policy(self: AppCommand, path: str | None = None, explain: bool = False) -> Any:
        """Validate a zone policy file (default: ZONEAPP_POLICY), prove that no field class
        reaches a lower zone unsanitized, and exit non-zero if it is bad."""
        ok, report, errors = check_policy_file(path or runtime.settings.policy_path, explain)
        if report:
            self.say(report)
        if not ok:
            print(errors, file=sys.stderr, flush=True)
            raise SystemExit(1)

    @app.command(
        option("--since", help="check source records from this time (ISO-8601 or epoch ms)"),
        option("--until", help="... up to this time"),
        option("--offsets", help="FIRST:END source offsets, on every partition"),
        option("--boundary", "boundaries", multiple=True, help="only this boundary (repeatable)"),
        option("--json", "as_json", is_flag=True, default=False, help="print JSON"),
    )
    async def reconcile(
        self: AppCommand,
        since: str | None = None,
        until: str | None = None,
        offsets: str | None = None,
        boundaries: tuple[str, ...] = (),
        as_json: bool = False,
    ) -> Any:
        """Prove from the topics that every committed source record was forwarded or
        quarantined; exits 1 when any is missing or a partition was never committed
        (zoneapp.ops.reconcile)."""
        try:
            window = Window.parse(since, until, offsets)
        except ValueError as exc:
            print(f"zoneapp: {exc}", file=sys.stderr, flush=True)
            raise SystemExit(2) from None
        policy = runtime.require_policy()
        try:
            ledger = await reconciliation.reconcile(
                policy, runtime.settings, window, boundaries=list(boundaries) or None
            )
        except Exception as exc:  # Faust would swallow it and exit 0: an operator must know
            print(f"zoneapp: reconcile failed: {_describe(exc)}", file=sys.stderr, flush=True)
            raise SystemExit(2) from None
        if as_json:
            self.say(orjson.dumps(ledger.summary(), option=orjson.OPT_INDENT_2).decode())
        else:
            self.say(render_ledger(ledger))
        if not ledger.ok:
            raise SystemExit(1)

    register_admin_commands(app, runtime)
    register_policy_commands(app, runtime)


# -- key and vault administration ------------------------------------------------------


T = TypeVar("T")


def _configured(build: Callable[..., T], url: str, secret: Any, development: bool) -> T:
    """A back end from configuration; a refused one (memory:// outside development, a bad
    URL) ends the command with its message, not a traceback."""
    try:
        return build(url, secret, development=development)
    except ValueError as exc:
        print(f"zoneapp: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None


def _key_provider(runtime: Runtime) -> Any:
    """The runtime key stack (only the zones opened are usable)."""
    s = runtime.settings
    return _configured(build_key_provider, s.keys_url, s.pkcs11_pin, s.development)


def _key_admin(runtime: Runtime) -> KeyAdmin:
    """The key store for admin commands (rotate-key)."""
    s = runtime.settings
    return _configured(build_key_admin, s.keys_url, s.pkcs11_pin, s.development)


def _vault(runtime: Runtime) -> Any:
    s = runtime.settings
    return _configured(build_vault, s.vault_url, s.vault_password, s.development)


async def _open_ring(runtime: Runtime, zones: list[str]) -> tuple[Any, KeyRing]:
    provider = _key_provider(runtime)
    await provider.open(zones)
    return provider, KeyRing(provider, zones)


async def _audit_producer(runtime: Runtime) -> AIOKafkaProducer:
    settings = runtime.settings
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.broker_urls(), acks="all", **settings.security.aiokafka_kwargs()
    )
    await producer.start()
    return producer


def _who() -> str:
    return f"cli:{getpass.getuser()}"


def _read_arg(value: str) -> str:
    """'-' reads the value from standard input, so it stays out of shell history."""
    return sys.stdin.readline().strip() if value == "-" else value


def register_admin_commands(app: faust.App, runtime: Runtime) -> None:
    @app.command(argument("zone"))
    async def rotate_key(self: AppCommand, zone: str) -> Any:
        """Create a new key-encryption key version for ZONE. Running workers switch to it
        within ZONEAPP_KEY_VERSION_CHECK_INTERVAL seconds; old data still decrypts."""
        admin = _key_admin(runtime)
        try:
            version = await admin.rotate_kek(zone)
        finally:
            await admin.close()
        log.warning("key rotation: zone %s now uses KEK version %d (by %s)", zone, version, _who())
        producer = await _audit_producer(runtime)
        try:
            await KafkaAuditSink.of_producer(producer).write(
                audit_event(
                    who=_who(),
                    action="rotate-key",
                    zone=zone,
                    tenant=None,
                    outcome=f"version:{version}",
                )
            )
        finally:
            await producer.stop()
        self.say(f"zone {zone}: KEK version {version} is now current")

    @app.command(
        option("--zone", required=True, help="zone whose key may be used"),
        option("--tenant", required=True),
        argument("token"),
    )
    async def detokenize(self: AppCommand, zone: str, tenant: str, token: str) -> Any:
        """Print the value behind TOKEN ('-' reads it from stdin). Audited to audit.access."""
        await _reveal(
            self, runtime, zone, lambda access: access.detokenize(_who(), tenant, _read_arg(token))
        )

    @app.command(
        option("--zone", required=True, help="zone whose key may be used"),
        option("--topic", required=True, help="topic the ciphertext was read from"),
        option("--field", required=True, help="policy field path, e.g. billing.iban"),
        argument("ciphertext"),
    )
    async def decrypt(self: AppCommand, zone: str, topic: str, field: str, ciphertext: str) -> Any:
        """Print the plaintext of a zenc2 (or zenc1) CIPHERTEXT ('-' reads it from stdin).
        Audited."""
        await _reveal(
            self,
            runtime,
            zone,
            lambda access: access.decrypt(_who(), _read_arg(ciphertext), topic, field),
        )

    @app.command(option("--new", is_flag=True, default=False, help="make a random key"))
    async def hash_api_key(self: AppCommand, new: bool = False) -> Any:
        """Read an API key from stdin and print the hash to put in ZONEAPP_API_KEYS_FILE;
        with ``--new``, make a random key and print it with its hash (the one key tool)."""
        if new:
            key = new_key()
            self.say(f"key:  {key}\nhash: {hash_key(key)}")
            return
        key = sys.stdin.readline().rstrip("\r\n")
        if not key:
            print("usage: printf %s KEY | faust -A zoneapp hash-api-key [--new]", file=sys.stderr)
            raise SystemExit(2)
        self.say(hash_key(key))

    @app.command(option("--tenant", required=True), option("--subject", required=True))
    async def erase(self: AppCommand, tenant: str, subject: str) -> Any:
        """Erase a data subject (GDPR Art. 17, CCPA): delete every token mapping indexed under
        the subject (each boundary's normalized spelling, and the id as given), so tokens
        already downstream can no longer be reversed."""
        policy = runtime.require_policy()
        zones = subject_zones(policy)
        provider, ring = await _open_ring(runtime, zones)
        vault = _vault(runtime)
        try:
            erased = await erase_subject(policy, ring, vault, tenant, subject)
            producer = await _audit_producer(runtime)
            try:
                await KafkaAuditSink.of_producer(producer).write(
                    audit_event(
                        who=_who(),
                        action="erase",
                        zone=None,
                        outcome=f"erased:{erased}",
                        tenant=tenant,
                    )
                )
            finally:
                await producer.stop()
        finally:
            await vault.close()
            await provider.close()
        log.warning(
            "erasure: tenant %s, %d token mapping(s) deleted (by %s)", tenant, erased, _who()
        )
        self.say(f"erased {erased} token mapping(s) for the subject in tenant {tenant}")


async def _reveal(self: AppCommand, runtime: Runtime, zone: str, call: Any) -> None:
    provider, ring = await _open_ring(runtime, [zone])
    vault = _vault(runtime)
    producer = await _audit_producer(runtime)
    try:
        access = FieldAccess(zone, ring, vault, KafkaAuditSink.of_producer(producer))
        try:
            value: bytes = await call(access)
        except AccessError as exc:
            print(f"refused ({exc.reason}): {exc}", file=sys.stderr, flush=True)
            raise SystemExit(1) from None
        sys.stdout.write(value.decode("utf-8", errors="replace") + "\n")
        sys.stdout.flush()
    finally:
        await producer.stop()
        await vault.close()
        await provider.close()


# -- policy: reload and promote on running workers ------------------------------------


def worker_url(runtime: Runtime) -> str:
    """This host's worker, from the web settings (a wildcard bind means loopback)."""
    s = runtime.settings
    host = s.web_host or ("127.0.0.1" if s.web_bind in ("", "0.0.0.0", "::") else s.web_bind)
    return f"{s.web_tls.scheme}://{host}:{s.web_port}"


def _admin_key(key_file: str | None) -> str:
    """An admin API key from a file or stdin: never a command-line argument."""
    try:
        text = Path(key_file).read_text() if key_file else sys.stdin.readline()
    except OSError as exc:
        print(f"zoneapp: cannot read {key_file}: {exc.strerror}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    key = text.strip()
    if not key:
        print("zoneapp: no API key (give --key-file or pipe it on stdin)", file=sys.stderr)
        raise SystemExit(2)
    return key


def render_policy_command(body: Any) -> str:
    """One line per worker: what it did, and the policy it now runs (or why it refused)."""
    lines = []
    for w in body.get("workers", []):
        active = w.get("active") or {}
        line = (
            f"{w.get('worker')}: {w.get('status')}; active version {active.get('version')} "
            f"(sha256 {active.get('sha256')})"
        )
        if w.get("error"):
            line += f"\n  {w['error']}"
        candidate = w.get("candidate")
        if candidate:
            line += (
                f"\n  candidate in shadow: version {candidate.get('version')} "
                f"(sha256 {candidate.get('sha256')})"
            )
        if w.get("candidate_error"):
            line += f"\n  candidate refused: {w['candidate_error']}"
        lines.append(line)
    for url in body.get("missing", []):
        lines.append(f"{url}: did not answer")
    return "\n".join(lines)


async def _policy_command(
    self: AppCommand, runtime: Runtime, path: str, payload: Any, url: str | None, key: str
) -> None:
    base = (url or worker_url(runtime)).rstrip("/")
    tls = runtime.settings.web_tls
    connector = aiohttp.TCPConnector(
        ssl=tls.client_context() if base.startswith("https:") else False
    )
    try:
        async with (
            aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(60)) as http,
            http.post(
                base + path, json=payload or {}, headers={"Authorization": f"Bearer {key}"}
            ) as resp,
        ):
            status, data = resp.status, await resp.read()
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        print(f"zoneapp: {base} did not answer: {_describe(exc)}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError:
        body = {}
    if status in (200, 409) and "workers" in body:
        (self.say if status == 200 else _stderr)(render_policy_command(body))
    else:
        _stderr(f"zoneapp: {base}{path}: HTTP {status}: {body.get('detail') or body.get('error')}")
    if status != 200:
        raise SystemExit(1)


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def register_policy_commands(app: faust.App, runtime: Runtime) -> None:
    url = option("--url", help="a worker's web URL (default: this host's ZONEAPP_WEB_* settings)")
    key_file = option("--key-file", help="file holding an admin API key (default: stdin)")

    @app.command(url, key_file)
    async def reload_policy(
        self: AppCommand, url: str | None = None, key_file: str | None = None
    ) -> Any:
        """Make the workers re-read their policy files (POST /policy/reload, admin key); the
        old policy stays where the new one is invalid. Exits 1 if any worker refused."""
        await _policy_command(self, runtime, "/policy/reload", None, url, _admin_key(key_file))

    @app.command(argument("sha256"), url, key_file)
    async def promote_policy(
        self: AppCommand, sha256: str, url: str | None = None, key_file: str | None = None
    ) -> Any:
        """Make the shadowed candidate with this SHA-256 the active policy on every worker,
        written over its policy file (POST /policy/promote, admin key)."""
        await _policy_command(
            self, runtime, "/policy/promote", {"sha256": sha256}, url, _admin_key(key_file)
        )
