"""PKCS#11 key provider (SoftHSM2 in dev/tests, a network HSM in production).

KEKs and HMAC keys are generated inside the token as sensitive, non-extractable
objects; only wrap/unwrap (AES-256-GCM) and HMAC-SHA256 run on them, in the HSM.

Threading: PKCS#11 calls block (microseconds on SoftHSM, milliseconds on a network
HSM), so every call runs in one dedicated executor thread per provider that owns
one read/write session. Calls are therefore serialised per provider and the
session is never used concurrently. Envelope encryption (``envelope.py``) keeps
the HSM off the per-record path, so one thread is plenty.

Login: PKCS#11 login state belongs to the whole process and token, not to a
session - a second ``C_Login`` fails with ``UserAlreadyLoggedIn`` (SoftHSM does not
even check the PIN then) and closing *any* logged-in session logs every session
out. So one process-wide holder session per (module, token) performs the login,
reference-counted across providers; each provider works in its own session that
inherits the login. A provider presenting a PIN different from the one the holder
logged in with is refused, so a wrong PIN never rides on another provider's login.

Sessions that die (HSM restart, ``C_Finalize``, network loss) are reopened and the
operation retried once; a second failure is :class:`KeyUnavailableError`.

Known limits: python-pkcs11 leaks one session handle per failed ``C_Login`` (it
opens the session before logging in and has no separate login call). GCM nonces
for wrapping come from the process RNG; FIPS-mode HSMs that insist on generating
GCM IVs themselves would need a ``CK_GCM_PARAMS`` IV generator, which
python-pkcs11 0.10 does not expose.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar, cast

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11 import exceptions as p11e

from zoneapp.keys.admin import KeyBackend
from zoneapp.keys.base import (
    DEK_BYTES,
    HMAC_KEY_BYTES,
    WRAP_NONCE_BYTES,
    WRAP_TAG_BYTES,
    WRAPPED_DEK_MIN_BYTES,
    DecryptionError,
    KeyLoginError,
    KeyProviderError,
    KeyUnavailableError,
    UnknownKeyVersionError,
    hmac_label,
    kek_label,
    validate_zone,
)
from zoneapp.settings import Secret

if TYPE_CHECKING:
    from pkcs11.types import DecryptMixin, EncryptMixin, SecretKey, Session, SignMixin, Token

    class _AesKey(SecretKey, EncryptMixin, DecryptMixin): ...

    class _HmacKey(SecretKey, SignMixin): ...


__all__ = ["Pkcs11KeyProvider"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")

# The session or login is gone, or the device hiccuped: reconnect and retry once.
_RECONNECT_ERRORS: tuple[type[Exception], ...] = (
    p11e.SessionHandleInvalid,
    p11e.SessionClosed,
    p11e.UserNotLoggedIn,
    p11e.DeviceRemoved,
    p11e.DeviceError,
    p11e.DeviceMemory,
    p11e.HostMemory,
    p11e.TokenNotPresent,
    p11e.TokenNotRecognised,
    p11e.ObjectHandleInvalid,
    p11e.KeyHandleInvalid,
    p11e.SessionCount,
    p11e.FunctionCancelled,
    p11e.OperationActive,
    p11e.NoSuchToken,
    p11e.SlotIDInvalid,
)
# What a decrypt returns for a bad tag (SoftHSM reports GCM tag failures as CKR_GENERAL_ERROR).
_DECRYPT_FAILURES: tuple[type[Exception], ...] = (
    p11e.EncryptedDataInvalid,
    p11e.EncryptedDataLenRange,
    p11e.GeneralError,
    p11e.FunctionFailed,
    p11e.DataInvalid,
    p11e.DataLenRange,
)
_PING_LABEL = "zoneapp:ping"
# The token refused this PIN: trying again would only count against it.
_PIN_REFUSED: tuple[type[Exception], ...] = (
    p11e.PinIncorrect,
    p11e.PinInvalid,
    p11e.PinLenRange,
    p11e.PinExpired,
    p11e.PinLocked,
)


def _is_reconnect_error(exc: Exception) -> bool:
    # A bare PKCS11Error is what python-pkcs11 raises for CKR_CRYPTOKI_NOT_INITIALIZED.
    return isinstance(exc, _RECONNECT_ERRORS) or type(exc) is p11e.PKCS11Error


class _TokenLogin:
    """The process-wide login to one token (see module docstring)."""

    def __init__(self, token_label: str) -> None:
        self.lock = threading.Lock()
        self.token_label = token_label
        self.holder: Session | None = None
        self.pin_digest: bytes | None = None
        self.generation = 0
        self.leases = 0

    def ensure(self, token: Token, pin: Secret) -> int:
        """Make sure the process is logged in with ``pin``; returns the login generation."""
        with self.lock:
            if self.holder is not None and self._holder_alive():
                if self.pin_digest is None or not pin.matches(self.pin_digest):
                    raise KeyLoginError(
                        f"login to token {self.token_label!r} failed: PinIncorrect "
                        "(differs from the PIN this process is logged in with)"
                    )
                return self.generation
            self._drop_holder()
            try:
                pin_text = pin.reveal().decode("utf-8")
            except UnicodeDecodeError:
                raise KeyLoginError(
                    f"login to token {self.token_label!r} failed: PIN is not valid UTF-8"
                ) from None
            try:
                self.holder = token.open(user_pin=pin_text)
            except p11e.UserAlreadyLoggedIn:
                raise KeyUnavailableError(
                    f"login to token {self.token_label!r} failed: UserAlreadyLoggedIn "
                    "(logged in outside zoneapp.keys; the PIN cannot be verified)"
                ) from None
            except p11e.PKCS11Error as exc:
                refused = KeyLoginError if isinstance(exc, _PIN_REFUSED) else KeyUnavailableError
                raise refused(
                    f"login to token {self.token_label!r} failed: {type(exc).__name__}"
                ) from None
            self.pin_digest = pin.digest()
            self.generation += 1
            return self.generation

    def _holder_alive(self) -> bool:
        assert self.holder is not None
        try:
            for _ in self.holder.get_objects({Attribute.LABEL: _PING_LABEL}):
                pass
        except p11e.PKCS11Error:
            return False
        return True

    def _drop_holder(self) -> None:
        holder, self.holder, self.pin_digest = self.holder, None, None
        if holder is not None:
            # C_Logout + C_CloseSession; if the session is already dead, so is its login.
            with contextlib.suppress(p11e.PKCS11Error):
                holder.close()

    def invalidate(self, generation: int) -> None:
        """Drop the login if it is still the one a failing provider used."""
        with self.lock:
            if generation == self.generation:
                self._drop_holder()

    def acquire(self) -> None:
        with self.lock:
            self.leases += 1

    def release(self) -> None:
        with self.lock:
            self.leases -= 1
            if self.leases <= 0:
                self.leases = 0
                self._drop_holder()


_LOGINS: dict[tuple[str, str], _TokenLogin] = {}
_LOGINS_LOCK = threading.Lock()


def _token_login(module_path: str, token_label: str) -> _TokenLogin:
    with _LOGINS_LOCK:
        key = (os.path.realpath(module_path), token_label)
        login = _LOGINS.get(key)
        if login is None:
            login = _LOGINS[key] = _TokenLogin(token_label)
        return login


class Pkcs11KeyProvider(KeyBackend):
    """Key operations and admin over a PKCS#11 token: ``Pkcs11KeyProvider(module_so, "zoneapp",
    pin)``. Counting, zone gating and retry are wrappers (``wrappers.py``), not in here."""

    def __init__(self, module_path: str, token_label: str, pin: Secret) -> None:
        if not isinstance(pin, Secret):
            raise TypeError("pin must be a zoneapp.keys.Secret")
        self._module_path = module_path
        self._token_label = token_label
        self._pin = pin
        self._login = _token_login(module_path, token_label)
        self._executor: ThreadPoolExecutor | None = None
        # Between open() and close() the session stays; an admin call outside that window
        # logs out again when it is done.
        self._open = False
        # Everything below is only touched from the executor thread.
        self._session: Session | None = None
        self._leased = False
        self._login_generation = 0
        self._handles: dict[str, list[Any]] = {}
        self._max_version: dict[str, int] = {}

    def __repr__(self) -> str:
        return (
            f"Pkcs11KeyProvider(module={self._module_path!r}, token={self._token_label!r}, "
            f"open={self._open})"
        )

    @property
    def token_label(self) -> str:
        return self._token_label

    # --- plumbing -----------------------------------------------------------------------------

    async def _call(
        self, what: str, zone: str | None, fn: Callable[[Session], _T], *, admin: bool = False
    ) -> _T:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="zoneapp-pkcs11")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._in_thread, what, zone, fn, admin)

    def _msg(self, what: str, zone: str | None, exc: BaseException) -> str:
        where = f" for zone {zone!r}" if zone else ""
        return f"{what} on token {self._token_label!r}{where} failed: {type(exc).__name__}"

    def _in_thread(
        self, what: str, zone: str | None, fn: Callable[[Session], _T], admin: bool
    ) -> _T:
        try:
            for attempt in (1, 2):
                session = self._connect()
                try:
                    return fn(session)
                except p11e.PKCS11Error as exc:
                    if not _is_reconnect_error(exc):
                        raise KeyProviderError(self._msg(what, zone, exc)) from None
                    self._drop_session(invalidate_login=True)
                    if attempt == 2:
                        raise KeyUnavailableError(self._msg(what, zone, exc)) from None
                    log.warning(
                        "%s; reopening the session and retrying", self._msg(what, zone, exc)
                    )
            raise AssertionError("unreachable")
        finally:
            if admin and not self._open:
                self._disconnect()

    def _connect(self) -> Session:
        if self._session is not None:
            return self._session
        try:
            lib = pkcs11.lib(self._module_path)
        except p11e.PKCS11Error as exc:
            raise KeyUnavailableError(
                f"cannot load PKCS#11 module {self._module_path!r}: {type(exc).__name__}"
            ) from None
        try:
            token = lib.get_token(token_label=self._token_label)
        except p11e.NoSuchToken:
            raise KeyUnavailableError(f"PKCS#11 token {self._token_label!r} not found") from None
        except p11e.MultipleTokensReturned:
            raise KeyProviderError(
                f"more than one PKCS#11 token is labelled {self._token_label!r}"
            ) from None
        except p11e.PKCS11Error as exc:
            raise KeyUnavailableError(
                f"cannot list PKCS#11 tokens for {self._token_label!r}: {type(exc).__name__}"
            ) from None
        if not self._leased:
            self._login.acquire()
            self._leased = True
        try:
            self._login_generation = self._login.ensure(token, self._pin)
            # No PIN: this session inherits the process-wide login; closing it never logs out.
            self._session = token.open(rw=True)
        except p11e.PKCS11Error as exc:
            self._disconnect()
            raise KeyUnavailableError(self._msg("open session", None, exc)) from None
        except KeyProviderError:
            self._disconnect()
            raise
        self._handles.clear()
        return self._session

    def _drop_session(self, *, invalidate_login: bool) -> None:
        session, self._session = self._session, None
        self._handles.clear()
        if session is not None:
            with contextlib.suppress(p11e.PKCS11Error):
                session.close()
        if invalidate_login:
            self._login.invalidate(self._login_generation)

    def _disconnect(self) -> None:
        self._drop_session(invalidate_login=False)
        if self._leased:
            self._leased = False
            self._login.release()

    # --- key lookup ---------------------------------------------------------------------------

    def _find(self, session: Session, label: str) -> list[Any]:
        """Objects with that label; several only after a race between two provisioners."""
        found = list(
            session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.LABEL: label})
        )
        if len(found) > 1:
            # Every process must pick the same one: order by CKA_ID (random, set at creation).
            log.warning(
                "%d key objects share the label %r; using the lowest CKA_ID", len(found), label
            )
            found.sort(key=lambda obj: bytes(obj[Attribute.ID] or b""))
        return found

    def _keks(self, session: Session, zone: str, version: int) -> list[_AesKey]:
        if version < 1:
            raise UnknownKeyVersionError(f"zone {zone!r} has no KEK version {version}")
        label = kek_label(zone, version)
        found = self._handles.get(label)
        if found is None:
            found = self._find(session, label)
            if not found:
                raise UnknownKeyVersionError(f"zone {zone!r} has no KEK version {version}")
            self._handles[label] = found
        return cast("list[_AesKey]", found)

    def _hmac_key(self, session: Session, zone: str) -> _HmacKey:
        label = hmac_label(zone)
        found = self._handles.get(label)
        if found is None:
            found = self._find(session, label)
            if not found:
                raise UnknownKeyVersionError(f"zone {zone!r} has no HMAC key; provision it first")
            self._handles[label] = found
        return cast("_HmacKey", found[0])

    def _probe_current(self, session: Session, zone: str) -> int:
        """Highest KEK version: probe labels upwards from the last known version."""
        version = self._max_version.get(zone, 0)
        while True:
            label = kek_label(zone, version + 1)
            found = self._find(session, label)
            if not found:
                break
            self._handles[label] = found
            version += 1
        if version == 0:
            raise UnknownKeyVersionError(f"zone {zone!r} has no KEK; provision it first")
        self._max_version[zone] = version
        return version

    def _generate(
        self, session: Session, label: str, key_type: KeyType, capabilities: MechanismFlag
    ) -> None:
        session.generate_key(
            key_type,
            256,
            label=label,
            id=os.urandom(16),
            store=True,
            capabilities=capabilities,
            template={
                Attribute.TOKEN: True,
                Attribute.PRIVATE: True,
                Attribute.SENSITIVE: True,
                Attribute.EXTRACTABLE: False,
                Attribute.MODIFIABLE: False,
            },
        )
        self._handles.pop(label, None)

    # --- KeyProvider and KeyAdmin ----------------------------------------------------------

    async def open(self, zones: Collection[str]) -> None:
        for zone in zones:
            validate_zone(zone)

        def connect(session: Session) -> None:
            self._handles.clear()

        await self._call("open", None, connect)
        self._open = True

    async def close(self) -> None:
        self._open = False
        executor, self._executor = self._executor, None
        if executor is None:
            return
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(executor, self._disconnect)
        finally:
            executor.shutdown(wait=False)

    async def ping(self) -> None:
        def probe(session: Session) -> None:
            for _ in session.get_objects({Attribute.LABEL: _PING_LABEL}):
                pass

        await self._call("ping", None, probe, admin=True)

    async def provision(self, zones: Collection[str]) -> None:
        checked = [validate_zone(z) for z in zones]

        def run(session: Session) -> None:
            for zone in checked:
                label = kek_label(zone, 1)
                if not self._find(session, label):
                    self._generate(
                        session, label, KeyType.AES, MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT
                    )
                    log.info("created %s on token %r", label, self._token_label)
                label = hmac_label(zone)
                if not self._find(session, label):
                    self._generate(session, label, KeyType.GENERIC_SECRET, MechanismFlag.SIGN)
                    log.info("created %s on token %r", label, self._token_label)

        await self._call("provision", ",".join(checked), run, admin=True)

    async def current_kek_version(self, zone: str) -> int:
        validate_zone(zone)
        return await self._call("KEK version lookup", zone, lambda s: self._probe_current(s, zone))

    async def rotate_kek(self, zone: str) -> int:
        validate_zone(zone)

        def run(session: Session) -> int:
            version = self._probe_current(session, zone) + 1
            label = kek_label(zone, version)
            self._generate(
                session, label, KeyType.AES, MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT
            )
            self._max_version[zone] = version
            log.info("created %s on token %r", label, self._token_label)
            return version

        return await self._call("KEK rotation", zone, run, admin=True)

    async def wrap_dek(self, zone: str, version: int, dek: bytes, aad: bytes) -> bytes:
        validate_zone(zone)
        if len(dek) != DEK_BYTES:
            raise KeyProviderError(f"a data key must be {DEK_BYTES} bytes")

        def run(session: Session) -> bytes:
            kek = self._keks(session, zone, version)[0]
            nonce = os.urandom(WRAP_NONCE_BYTES)
            params = pkcs11.GCMParams(nonce, aad, WRAP_TAG_BYTES * 8)
            ct = kek.encrypt(dek, mechanism=Mechanism.AES_GCM, mechanism_param=params)
            return nonce + cast(bytes, ct)

        return await self._call("wrap", zone, run)

    async def unwrap_dek(self, zone: str, version: int, wrapped: bytes, aad: bytes) -> bytes:
        validate_zone(zone)
        if len(wrapped) < WRAPPED_DEK_MIN_BYTES:
            raise DecryptionError(f"wrapped data key for zone {zone!r} is truncated")
        nonce, body = wrapped[:WRAP_NONCE_BYTES], wrapped[WRAP_NONCE_BYTES:]

        def run(session: Session) -> bytes:
            # Normally one candidate; several only if two provisioners raced on a label.
            for kek in self._keks(session, zone, version):
                params = pkcs11.GCMParams(nonce, aad, WRAP_TAG_BYTES * 8)
                try:
                    dek = cast(
                        bytes,
                        kek.decrypt(body, mechanism=Mechanism.AES_GCM, mechanism_param=params),
                    )
                except _DECRYPT_FAILURES:
                    continue
                if len(dek) == DEK_BYTES:
                    return bytes(dek)
            raise DecryptionError(
                f"cannot unwrap data key with KEK {zone!r} v{version}: "
                "tampered wrapped key or wrong binding"
            )

        return await self._call("unwrap", zone, run)

    async def derive_hmac_key(self, zone: str, purpose: bytes) -> bytes:
        validate_zone(zone)

        def run(session: Session) -> bytes:
            key = self._hmac_key(session, zone)
            out = key.sign(purpose, mechanism=Mechanism.SHA256_HMAC)
            if len(out) != HMAC_KEY_BYTES:
                raise KeyProviderError(f"HMAC key of zone {zone!r} returned a short MAC")
            return bytes(out)

        return await self._call("HMAC derivation", zone, run)
