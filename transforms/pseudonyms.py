"""Keyed pseudonyms that can't be reversed, one key per purpose (R1, R4).

A pseudonym is HMAC-SHA256(purpose key, kind + ":" + value), truncated to 128 bits (32 hex).
The purpose keys are derived from one master key (HMAC(master, "seaport/<purpose>")), so the
analytics and the security pseudonym of the same person can't be joined (R1, purpose
limitation). No unkeyed hash of an identifier is ever computed: a plain SHA-256 of a MAC or a
phone number is reversed by enumeration. The master key comes from the file named by
`SEAPORT_PSEUDONYM_KEY_FILE`; `key_id` names it beside every pseudonym, so a key rotation
(docs/privacy.md) is visible in the data.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import os
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from seaport.errors import SeaportError

KEY_FILE_ENV = "SEAPORT_PSEUDONYM_KEY_FILE"
MIN_KEY_BYTES = 32
DEV_KEY_NAME = "dev-pseudonym.key"
PSEUDONYM_HEX_CHARS = 32
# Entries per (purpose, kind): identifiers repeat within a batch and a session; memory stays
# bounded (about 4 MB per kind and purpose, a few dozen MB per worker).
CACHE_SIZE = 1 << 14
UNIQUE_KINDS = frozenset({"event_id"})  # identifiers of one event each: not worth caching


class Purpose(enum.Enum):
    """The purposes of processing named by the privacy policy (R1)."""

    ANALYTICS = "analytics"
    SECURITY = "security"


class Pseudonymizer:
    """Turns identifiers into keyed pseudonyms; picklable (only the master key is shipped)."""

    def __init__(self, master: bytes) -> None:
        if len(master) < MIN_KEY_BYTES:
            raise SeaportError(f"the pseudonym key must be at least {MIN_KEY_BYTES} bytes")
        self._master = bytes(master)
        # An id of the key, not of any data: a keyed MAC of a constant.
        self.key_id: str = hmac.new(self._master, b"key-id", hashlib.sha256).hexdigest()[:8]
        self._functions: dict[tuple[str, str], Callable[[str], str]] = {}

    @classmethod
    def from_key_bytes(cls, master: bytes) -> Pseudonymizer:
        return cls(master)

    @classmethod
    def from_environment(cls, dev: bool, dev_dir: Path) -> Pseudonymizer:
        """The key from `$SEAPORT_PSEUDONYM_KEY_FILE`; under `dev` a throw-away key in `dev_dir`."""
        path = os.environ.get(KEY_FILE_ENV)
        if path:
            return cls(_read_key_file(Path(path)))
        if not dev:
            raise SeaportError(
                f"{KEY_FILE_ENV} is not set; point it at a file of at least {MIN_KEY_BYTES} random "
                "bytes (e.g. `head -c 32 /dev/urandom > key`), or use --dev"
            )
        return cls(_dev_key(Path(dev_dir)))

    def pseudonymize(self, purpose: Purpose, kind: str, value: str) -> str:
        """The pseudonym of `value` (an identifier of `kind`) under `purpose`'s key (R1, R4)."""
        return self.hmac_for(purpose, kind)(value)

    def hmac_for(self, purpose: Purpose, kind: str) -> Callable[[str], str]:
        """A memoized `value -> pseudonym` for one purpose and kind: the hot path's form."""
        fn = self._functions.get((purpose.value, kind))
        return fn if fn is not None else self._build(purpose, kind)

    def _build(self, purpose: Purpose, kind: str) -> Callable[[str], str]:
        key = hmac.new(self._master, f"seaport/{purpose.value}".encode(), hashlib.sha256).digest()
        # HMAC-SHA256 (RFC 2104) with its keyed inner and outer states computed once: each value
        # then costs two copies and two short hashes (the same bytes as `hmac.digest`).
        inner = hashlib.sha256(bytes(b ^ 0x36 for b in key.ljust(64, b"\0")) + f"{kind}:".encode())
        outer = hashlib.sha256(bytes(b ^ 0x5C for b in key.ljust(64, b"\0")))

        def pseudonym(value: str) -> str:
            i = inner.copy()
            i.update(value.encode())
            o = outer.copy()
            o.update(i.digest())
            return o.hexdigest()[:PSEUDONYM_HEX_CHARS]

        # An identifier that never repeats (an event id) would only fill the cache.
        function = pseudonym if kind in UNIQUE_KINDS else lru_cache(maxsize=CACHE_SIZE)(pseudonym)
        return self._functions.setdefault((purpose.value, kind), function)

    # Beam pickles the pseudonymizer to ship it to workers: send the key, rebuild caches there.
    def __getstate__(self) -> dict[str, bytes]:
        return {"master": self._master}

    def __setstate__(self, state: dict[str, bytes]) -> None:
        self.__init__(state["master"])  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"Pseudonymizer(key_id={self.key_id!r})"


def _read_key_file(path: Path) -> bytes:
    try:
        key = path.read_bytes()
    except OSError as e:
        raise SeaportError(f"cannot read the pseudonym key file named by {KEY_FILE_ENV}: {e.strerror}") from None
    if len(key) < MIN_KEY_BYTES:
        raise SeaportError(
            f"the pseudonym key file named by {KEY_FILE_ENV} holds {len(key)} bytes; it needs at least "
            f"{MIN_KEY_BYTES} random bytes"
        )
    return key


def _dev_key(dev_dir: Path) -> bytes:
    """A random key made once into `dev_dir` (mode 0600) and reused after: for local runs only."""
    path = dev_dir / DEV_KEY_NAME
    if not path.exists():
        dev_dir.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it just now: use theirs
        else:
            with os.fdopen(fd, "wb") as f:
                f.write(os.urandom(MIN_KEY_BYTES))
    return _read_key_file(path)


__all__ = ["KEY_FILE_ENV", "MIN_KEY_BYTES", "Pseudonymizer", "Purpose"]
