"""Identifiers (`msgbatch_01…`, `msg_01…`, `req_01…`) and stable hashes for deterministic choices."""

from __future__ import annotations

import hashlib
import secrets

_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_ID_BODY_LEN = 22


# Each byte maps to one base58 character (byte % 58): ids only need the API's shape, not a
# reversible encoding, and bytes.translate keeps this off the hot path of 100k-result batches.
_TABLE = bytes(_BASE58[b % 58].encode()[0] for b in range(256))


def _base58(raw: bytes, length: int) -> str:
    """`length` base58 characters derived from `raw` (at least `length` bytes)."""
    return raw[:length].translate(_TABLE).decode()


def new_id(prefix: str) -> str:
    """A random id in the API's shape, e.g. `msgbatch_01` + 22 base58 characters."""
    return f"{prefix}_01{_base58(secrets.token_bytes(_ID_BODY_LEN), _ID_BODY_LEN)}"


def derived_id(prefix: str, *parts: str) -> str:
    """A deterministic id derived from `parts` (same inputs, same id)."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return f"{prefix}_01{_base58(digest, _ID_BODY_LEN)}"


def stable_hash(*parts: str | int) -> int:
    """A 64-bit hash of `parts` that does not change between processes (unlike `hash`)."""
    text = "\x1f".join(str(p) for p in parts)
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def stable_unit(*parts: str | int) -> float:
    """A deterministic number in [0, 1) derived from `parts`."""
    return stable_hash(*parts) / 2**64
