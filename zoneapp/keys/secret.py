"""A wrapper that keeps PINs and passwords out of logs, reprs and tracebacks.

The value is only reachable through :meth:`Secret.reveal`, so an accidental
``f"{config}"``, ``logging.info(obj)`` or pickling of a settings object cannot
print or ship it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path
from typing import NoReturn

__all__ = ["Secret"]

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
    def from_env_or_file(cls, env_name: str, file_env_name: str) -> Secret | None:
        """Read a secret from ``env_name`` or from the file named by ``file_env_name``.

        The file form is for Kubernetes/Docker secrets mounted as files; one
        trailing newline (``\\n`` or ``\\r\\n``) is stripped because editors and
        ``echo`` add it. An empty variable counts as unset. Setting both is an
        error so that a stale value cannot silently win.
        """
        direct = os.environ.get(env_name) or None
        file_name = os.environ.get(file_env_name) or None
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
