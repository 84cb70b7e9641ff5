"""What a worker opens at start-up: the policy, the key ring and the token vault.

Created when the app module is imported (no I/O), opened when the worker starts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from zoneapp.core.stats import BoundaryStats
from zoneapp.keys import DEVELOPMENT_ONLY, KeyCalls, KeyProvider, build_key_provider
from zoneapp.keys.envelope import KeyRing
from zoneapp.pipeline.policies import PolicyGeneration, PolicySwitch
from zoneapp.policy import CompiledBoundary, CompiledPolicy, PolicyError
from zoneapp.policy.flow import prove_flow, refusal
from zoneapp.settings import Settings
from zoneapp.vault import TokenVault, build_token_vault

log = logging.getLogger(__name__)


def development_backends_refused(settings: Settings) -> str | None:
    """Why the worker must not start: a memory:// back end outside ZONEAPP_ENV=development.

    Checked when the app is created, so the worker refuses at start-up (not at its first
    batch); in development the back ends' factories log the loud warning when built.
    """
    if settings.development:
        return None
    for name, url in (("ZONEAPP_KEYS", settings.keys_url), ("ZONEAPP_VAULT", settings.vault_url)):
        if url.split("://", 1)[0].strip().lower() == "memory":
            real = "pkcs11:///path?token=" if name == "ZONEAPP_KEYS" else "redis://"
            return DEVELOPMENT_ONLY.format(what=f"{name}:", real=real)
    return None


@dataclass
class Runtime:
    settings: Settings
    policy: CompiledPolicy | None
    policy_error: str | None = None
    stats: dict[str, BoundaryStats] = field(default_factory=dict)
    _provider: KeyProvider | None = None
    _keyring: KeyRing | None = None
    _vault: TokenVault | None = None
    _keys_open: bool = False
    #: Key operations sent to the key store, counted by the provider's counting wrapper.
    hsm_calls: KeyCalls = field(default_factory=KeyCalls)
    #: HSM calls made by the end of the first batch: the start-up cost, for the benchmark.
    hsm_calls_at_first_batch: int | None = None
    #: The active policy generation and its candidate (hot reload, shadow mode).
    _policies: PolicySwitch | None = None
    #: Told about each new active generation, after ``policy`` is updated (web state).
    swap_listeners: list[Callable[[PolicyGeneration], None]] = field(default_factory=list)

    @classmethod
    def from_settings(cls, settings: Settings) -> Runtime:
        refused = development_backends_refused(settings)
        if refused is not None:
            return cls(settings, None, refused)
        try:
            switch = PolicySwitch.load(
                settings.policy_path,
                selected=settings.boundaries,
                candidate_path=settings.policy_candidate,
            )
        except PolicyError as exc:
            return cls(settings, None, str(exc))
        policy = switch.active.policy
        # Fail closed on a policy that leaks across hops: each boundary on its own passed
        # the loader, but the worker never starts on what `check-policy` refuses (a reload
        # refuses it too, zoneapp.pipeline.policies); there is no override.
        proof = prove_flow(policy)
        if not proof.ok:
            hint = "\n  (faust -A zoneapp check-policy --explain FILE shows every path)"
            return cls(settings, None, refusal(settings.policy_path, proof) + hint)
        runtime = cls(settings, policy, _policies=switch)
        switch.on_swap = runtime.on_policy_swap
        unknown = set(settings.boundaries) - {b.name for b in policy.boundaries}
        if unknown:
            runtime.policy = None
            runtime.policy_error = (
                f"ZONEAPP_BOUNDARIES names boundaries not in {settings.policy_path}: "
                + ", ".join(sorted(unknown))
            )
            return runtime
        for b in runtime.boundaries:
            runtime.stats[b.name] = BoundaryStats(
                b.name, b.source_zone.name, b.destination_zone.name
            )
        return runtime

    @property
    def boundaries(self) -> list[CompiledBoundary]:
        if self.policy is None:
            return []
        wanted = self.settings.boundaries
        return [b for b in self.policy.boundaries if not wanted or b.name in wanted]

    @property
    def zones_used(self) -> set[str]:
        """Only the zones this worker reads from: it never opens a higher zone's keys."""
        return {b.source_zone.name for b in self.boundaries}

    @property
    def policies(self) -> PolicySwitch:
        """The policy switch (built over ``policy`` for a runtime made without one)."""
        if self._policies is None:
            policy = self.require_policy()
            self._policies = PolicySwitch(
                policy,
                b"",
                self.settings.policy_path,
                selected=self.settings.boundaries,
                candidate_path=self.settings.policy_candidate,
                on_swap=self.on_policy_swap,
            )
        return self._policies

    def on_policy_swap(self, generation: PolicyGeneration) -> None:
        """Everything that asks ``require_policy()`` (views, commands) sees the new one."""
        self.policy = generation.policy
        for listener in self.swap_listeners:
            listener(generation)

    def require_policy(self) -> CompiledPolicy:
        if self.policy is None:
            raise PolicyError([self.policy_error or "no policy loaded"], self.settings.policy_path)
        return self.policy

    @property
    def keyring(self) -> KeyRing:
        if self._keyring is None:
            # The back end wrapped once, here: zone gate -> retry -> counting (keys/wrappers.py).
            provider = build_key_provider(
                self.settings.keys_url,
                self.settings.pkcs11_pin,
                development=self.settings.development,
                calls=self.hsm_calls,
            )
            self._provider = provider
            self._keyring = KeyRing(
                provider,
                sorted(self.zones_used),
                version_check_interval=float(self.settings.key_version_check_interval),
            )
        return self._keyring

    @property
    def provider(self) -> KeyProvider:
        _ = self.keyring
        assert self._provider is not None
        return self._provider

    @property
    def vault(self) -> TokenVault:
        if self._vault is None:
            # The back end behind the cache wrapper (vault/cache.py).
            self._vault = build_token_vault(
                self.settings.vault_url,
                self.settings.vault_password,
                development=self.settings.development,
            )
        return self._vault

    async def open_keys(self) -> None:
        """Open the HSM session for this worker's zones; raises KeyProviderError to retry."""
        if not self._keys_open:
            await self.provider.open(sorted(self.zones_used))
            self._keys_open = True

    def on_batch_done(self) -> None:
        if self.hsm_calls_at_first_batch is None and self._keyring is not None:
            self.hsm_calls_at_first_batch = self.hsm_calls.total

    def totals_line(self) -> str:
        consumed = sum(s.consumed for s in self.stats.values())
        forwarded = sum(s.forwarded for s in self.stats.values())
        quarantined = sum(s.quarantined for s in self.stats.values())
        hsm = self.hsm_calls.total
        warm = self.hsm_calls_at_first_batch if self.hsm_calls_at_first_batch is not None else hsm
        vault = self._vault
        return (
            f"zoneapp totals: consumed={consumed} forwarded={forwarded} quarantined={quarantined} "
            f"hsm_calls={hsm} hsm_calls_after_first_batch={hsm - warm} "
            f"vault_round_trips={vault.round_trips if vault else 0} "
            f"vault_writes={vault.writes if vault else 0}"
        )

    async def close(self) -> None:
        if self._vault is not None:
            await self._vault.close()
        if self._provider is not None:
            await self._provider.close()
