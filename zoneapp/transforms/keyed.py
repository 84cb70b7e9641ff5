"""Transforms that use zone keys: hash, tokenize, encrypt.

All three use working keys the :class:`~zoneapp.keys.envelope.KeyRing` derived
from the source zone's HSM keys before the batch started, so none of them calls
the HSM or Redis per record.
"""

from __future__ import annotations

import binascii
import re
import secrets
from typing import Any

import orjson

from zoneapp.dlp.credit_card import groups_hold_card, luhn_ok
from zoneapp.dlp.phone import _CARD_LAYOUT, _NANP_GROUPS, PhoneDetector
from zoneapp.formats import b64url
from zoneapp.keys import subject as subject_keys
from zoneapp.keys.envelope import Aad
from zoneapp.transforms.base import (
    ParamError,
    RecordContext,
    TokenCollisionError,
    Transform,
    TransformSpec,
    choice_param,
    type_error,
)
from zoneapp.vault.base import VaultEntry

_SEP = b"\x1f"
MODES = ("deterministic", "random")
_AAD_CACHE_SIZE = 1024


def canonical_bytes(value: Any, transform: str) -> bytes:
    """The bytes a scalar is keyed on: a number and its decimal string are the same value."""
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bool):
        return b"true" if value else b"false"
    if isinstance(value, int | float):
        return str(value).encode("ascii")
    raise type_error(transform, value)


_LETTERS = bytes.maketrans(b"0123456789abcdef", b"ghjkmnpqrsabcdef")


def letters(data: bytes) -> str:
    """Hex with digits swapped for letters: 4 bits a character, and no digit ever,
    so an opaque token can never look like a card, a phone or an SSN to the DLP scan."""
    return binascii.hexlify(data).translate(_LETTERS).decode("ascii")  # bytes: a flat table


def _field_class(params: dict[str, Any], spec: TransformSpec) -> str:
    value = params.get("field_class", spec.field_class)
    if not isinstance(value, str) or not value or not value.replace("_", "").isalnum():
        raise ParamError("parameter 'field_class' must be a word of letters, digits and '_'")
    return value


class HashTransform(Transform):
    """Keyed HMAC-SHA256 under the zone's HSM-held HMAC key, per tenant and field class.

    Output: ``h1.`` + base64url of the 32-byte MAC. A plain SHA-256 of an SSN can be
    reversed by trying every SSN; without the key, this cannot.
    """

    name = "hash"

    @classmethod
    def allowed_params(cls) -> tuple[str, ...]:
        return ("field_class",)

    def configure(self, params: dict[str, Any]) -> None:
        self.field_class = _field_class(params, self.spec)
        self.purpose = f"hash/{self.field_class}"
        self.hmac_purposes = (self.purpose,)
        self._prefix = self.field_class.encode() + _SEP

    def apply(self, value: Any, ctx: RecordContext) -> Any:
        if value is None:
            return None
        data = canonical_bytes(value, self.name)
        mac = ctx.keyring.hmac(self.spec.zone, self.purpose)
        return "h1." + b64url(mac.digest(ctx.tenant.encode() + _SEP + self._prefix + data))


class TokenizeTransform(Transform):
    """Deterministic tokens: the same value, tenant and field class give the same token on
    every worker, with no Redis round trip to compute it. The vault stores
    token → encrypted value so an authorized officer can reverse it.

    ``format: opaque`` (default) gives ``tok_<32 letters>`` (128 bits, no digits).
    ``format: card`` keeps the length, separators and last four digits, and always
    fails the Luhn check, so a token can never be mistaken for a card.
    ``mode: random`` gives a fresh token for every occurrence (no joins, no
    frequency analysis); each one is stored in the vault.
    """

    name = "tokenize"

    @classmethod
    def allowed_params(cls) -> tuple[str, ...]:
        return ("field_class", "format", "mode")

    def configure(self, params: dict[str, Any]) -> None:
        self.field_class = _field_class(params, self.spec)
        self.format = choice_param(params, "format", "opaque", ("opaque", "card"))
        self.random = choice_param(params, "mode", "deterministic", MODES) == "random"
        self.deterministic = not self.random
        self.purpose = f"token/{self.field_class}"
        self.fp_purpose = f"fingerprint/{self.field_class}"
        self.hmac_purposes = (self.purpose, self.fp_purpose)
        self._prefix = self.field_class.encode() + _SEP

    def apply(self, value: Any, ctx: RecordContext) -> Any:
        if value is None:
            return None
        data = canonical_bytes(value, self.name)
        keyring = ctx.keyring
        message = ctx.tenant.encode() + _SEP + self._prefix + data
        if self.random:
            # One token per occurrence: nothing links two sightings of the same value.
            mac = secrets.token_bytes(32)
        else:
            mac = keyring.hmac(self.spec.zone, self.purpose).digest(message)
        token = card_token(data, mac) if self.format == "card" else "tok_" + letters(mac[:16])
        # The fingerprint is compared for every occurrence, cached or not: a token that
        # the vault holds for another value is a collision, never a silent merge.
        fingerprint = b64url(keyring.hmac(self.spec.zone, self.fp_purpose).digest(message))
        known = ctx.stored_tokens.fingerprint(ctx.tenant, token)
        if known == fingerprint:
            return token
        if known is not None:
            raise TokenCollisionError("token already maps to another value")
        aad = vault_aad(ctx.tenant, self.field_class, token)
        ctx.vault_entries.append(
            VaultEntry(
                tenant=ctx.tenant,
                field_class=self.field_class,
                token=token,
                fingerprint=fingerprint,
                ciphertext=ctx.keyring.encrypt(self.spec.zone, data, aad),
                subject=ctx.subject,
                zone=self.spec.zone,
            )
        )
        return token


def vault_aad(tenant: str, field_class: str, token: str) -> Aad:
    """Binds a vault ciphertext to its tenant, field class and token (its own domain)."""
    return Aad.vault(tenant, field_class, token)


# Card tokens must not look like phone numbers either (``0030 ...`` reads as +30 ...).
_PHONE = PhoneDetector()


_GROUPS = re.compile(r"[0-9]+|[^0-9]+")


class _Layout:
    """What the layout of a grouped card (digits, spaces and hyphens) decides about the
    detectors' verdicts on its tokens, worked out once per value: the digits change at
    every step of :func:`card_token`, the layout never does.

    Runs are digit groups joined by separators of at most eight characters, as both
    CREDIT_CARD and PHONE cut them.  ``card_runs``: the groups (digit offsets) of each
    run of 12+ digits, CREDIT_CARD's candidates.  PHONE, on a text of digits and
    separators with no context word, finds nothing in a run unless the run has four
    groups of four (skipped) or reads as international (``00`` first: ``zero_starts``),
    a date first, the North American layout, or 9-12 digits in groups
    (``phone_always``: the full check runs).  PHONE's layout patterns test no digit but
    an optional ``1``, so they see the run's shape with its digits all ``5``, or all ``1``.
    ``test_card_token_layouts_agree_with_the_detectors`` holds the detectors to that.
    """

    __slots__ = ("card_runs", "parts", "phone_always", "zero_starts")

    def __init__(self, parts: list[str]) -> None:
        self.parts = parts
        runs: list[tuple[list[tuple[int, int]], list[str]]] = []
        groups: list[tuple[int, int]] = []
        seps: list[str] = []
        sep = ""
        at = 0
        for part in parts:
            if not part[0].isdigit():
                sep = part
                continue
            if groups and len(sep) > 8:
                runs.append((groups, seps))
                groups, seps = [], []
            elif groups:
                seps.append(sep)
            groups.append((at, at + len(part)))
            at += len(part)
        runs.append((groups, seps))
        self.card_runs = [g for g, _ in runs if g[-1][1] - g[0][0] >= 12]
        self.phone_always = False
        self.zero_starts: list[int] = []
        for groups, seps in runs:
            sizes = [end - start for start, end in groups]
            shape = "".join("5" * size + sep for size, sep in zip(sizes, [*seps, ""], strict=True))
            if _CARD_LAYOUT.fullmatch(shape):
                continue
            if sizes[0] >= 2:
                self.zero_starts.append(groups[0][0])
            date = (
                len(sizes) >= 3
                and len(seps[0]) == len(seps[1]) == 1
                and (
                    (sizes[0] == 4 and sizes[1] <= 2 and sizes[2] <= 2)
                    or (sizes[0] <= 2 and sizes[1] <= 2 and sizes[2] == 4)
                )
            )
            nanp = any(_NANP_GROUPS.search(shape.replace("5", d)) for d in "15")
            national = len(sizes) >= 2 and sizes != [3, 2, 4] and 9 <= sum(sizes) <= 12
            self.phone_always = self.phone_always or date or nanp or national

    def token(self, candidate: str) -> str | None:
        """``candidate`` in this layout, or None if CREDIT_CARD or PHONE would find it."""
        for run in self.card_runs:
            if groups_hold_card([candidate[start:end] for start, end in run]):
                return None
        token = _laid_out(candidate, self.parts)
        phone = self.phone_always or any(candidate.startswith("00", at) for at in self.zero_starts)
        return None if phone and _PHONE.find(token, "", ()) else token


_SHAPE = bytes.maketrans(b"0123456789", b"5555555555")
_LAYOUTS: dict[bytes, _Layout] = {}
_LAYOUTS_SIZE = 256


def _layout_of(data: bytes) -> _Layout:
    """The :class:`_Layout` of a grouped card, by its shape: cards share a few layouts."""
    shape = data.translate(_SHAPE)
    layout = _LAYOUTS.get(shape)
    if layout is None:
        if len(_LAYOUTS) >= _LAYOUTS_SIZE:  # shapes come from producers
            _LAYOUTS.clear()
        layout = _LAYOUTS[shape] = _Layout(_GROUPS.findall(shape.decode("ascii")))
    return layout


def _laid_out(digits: str, layout: list[str]) -> str:
    """``digits`` written in the groups and separators of ``layout``."""
    out = []
    at = 0
    for part in layout:
        if part[0].isdigit():
            out.append(digits[at : at + len(part)])
            at += len(part)
        else:
            out.append(part)
    return "".join(out)


def card_token(data: bytes, mac: bytes) -> str:
    """Format-preserving card token: same length, separators and last four.

    The token never holds a card or phone number the DLP scan would find (phone
    numbers with the default regions); for cards: not as a whole
    (it always fails Luhn), nor in any slice of its groups (``1234-5678-9012-``
    could be a 12-digit Maestro number).  Digits of the body are stepped, in a
    fixed order, until that holds, so the token stays deterministic.

    A compact token (one run of digits) skips the detectors where their answer is known:
    its only card candidate is the whole, which fails Luhn, and a bare run of digits with
    no context word is a phone number only as an international one (``00`` first).
    ``test_compact_card_tokens_need_no_detector_call`` holds the detectors to that.
    """
    text = data.decode("utf-8")
    compact = text.replace(" ", "").replace("-", "")
    if not (12 <= len(compact) <= 19 and compact.isascii() and compact.isdigit()):
        raise ValueError("transform 'tokenize' (format card) expects 12-19 digits")
    body_len = len(compact) - 4
    # The input's layout: its digit groups' lengths and the separators between them.
    layout = _layout_of(data) if len(compact) != len(text) else None
    # 256 bits of MAC as decimal: 77 digits, of which the low ones are uniform enough.
    body = str(int.from_bytes(mac, "big"))[-body_len:].rjust(body_len, "0")
    last4 = compact[-4:]
    for step in range(10 * body_len):
        candidate = body + last4
        if not luhn_ok(candidate):
            if layout is None:
                if not candidate.startswith("00") or not _PHONE.find(candidate, "", ()):
                    return candidate
            else:
                token = layout.token(candidate)
                if token is not None:
                    return token
        # Changing one digit by one always changes the Luhn sum mod 10.
        at = body_len - 1 - step % body_len
        body = body[:at] + str((int(body[at]) + 1) % 10) + body[at + 1 :]
    raise ValueError("transform 'tokenize' (format card) found no safe token")  # unreachable


class EncryptTransform(Transform):
    """Field-level AES-256-GCM under a cached data key wrapped by the zone's HSM key.

    When the record has a data subject (policy ``subject_id``), the value is first
    sealed with that subject's own key (:mod:`zoneapp.keys.subject`), so erasing the
    subject makes the field unrecoverable.

    The ciphertext (``zenc2.``, see :mod:`zoneapp.keys.envelope`) is bound to the
    destination topic, the rule's field path and the record's tenant: copied elsewhere,
    or presented for another tenant, it fails to decrypt.
    """

    name = "encrypt"
    deterministic = False  # random nonce

    def configure(self, params: dict[str, Any]) -> None:
        #: The field's Aad by (tenant, topic): a batch has few, and each is encoded once.
        self._aads: dict[tuple[str, str], Aad] = {}

    def apply(self, value: Any, ctx: RecordContext) -> Any:
        if value is None:
            return None
        aad = self._aads.get((ctx.tenant, ctx.topic))
        if aad is None:
            aad = Aad.field(ctx.tenant, ctx.topic, self.spec.rule_path)
            if len(self._aads) >= _AAD_CACHE_SIZE:  # tenant ids come from producers
                self._aads.clear()
            self._aads[(ctx.tenant, ctx.topic)] = aad
        data = orjson.dumps(value)
        if ctx.subject_aead is not None and ctx.subject is not None:
            data = subject_keys.seal(ctx.subject_aead, ctx.tenant, ctx.subject, data, aad.encode())
        return ctx.keyring.encrypt(self.spec.zone, data, aad)
