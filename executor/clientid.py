"""Deterministic client order ids.

The id of an exchange order is a pure function of (signal id, replacement number), so a restarted
executor computes the same id it used before the crash and can look the order up instead of
placing it again. Shape: `<prefix>-<16 chars of base32(sha256(signal id))>-<replacement>`: only
`[A-Za-z0-9_-]`, at most 32 characters (Binance allows 36, most venues 32).
"""

from __future__ import annotations

import base64
import hashlib
import re

MAX_LEN = 32
_PREFIX = re.compile(r"^[A-Za-z0-9_-]{1,8}$")
_HASH_LEN = 16


def client_order_id(prefix: str, signal_id: str, replacement: int = 0) -> str:
    if not _PREFIX.match(prefix):
        raise ValueError(f"client_id_prefix {prefix!r} must be 1-8 characters of [A-Za-z0-9_-]")
    if replacement < 0:
        raise ValueError("replacement must be >= 0")
    digest = hashlib.sha256(signal_id.encode()).digest()
    tag = base64.b32encode(digest).decode().lower()[:_HASH_LEN]
    coid = f"{prefix}-{tag}-{replacement}"
    if len(coid) > MAX_LEN:
        raise ValueError(f"client order id {coid!r} exceeds {MAX_LEN} characters")
    return coid


def has_prefix(coid: str, prefix: str) -> bool:
    return coid.startswith(f"{prefix}-")
