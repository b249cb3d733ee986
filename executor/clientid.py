"""Deterministic client order ids that every major venue accepts.

The id of an exchange order is a pure function of (signal id, replacement number), so a restarted
executor computes the same id it used before the crash and can look the order up instead of
placing it again. Shape: `<prefix><20 chars of base32(sha256(signal id))><replacement, 4 digits>`,
letters and digits only and at most 32 characters: OKX's `clOrdId` takes nothing else (no `-` or
`_`), Bybit's `orderLinkId` and Binance's `newClientOrderId` take it too. The fixed widths make the
id parseable back into (signal key, replacement) without a separator.

Ids of the first version (`<prefix>-<16 chars>-<n>`) stay recognised: a store written by it keeps
working, and its orders are still ours when reconciliation meets them on the venue.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache

MAX_LEN = 32
PREFIX_MAX = 8
_TAG_LEN = 20
_REPLACEMENT_DIGITS = 4
MAX_REPLACEMENT = 10**_REPLACEMENT_DIGITS - 1
PREFIX_RULE = f"1-{PREFIX_MAX} letters and digits (A-Z a-z 0-9; no '-' or '_', which OKX refuses)"
_PREFIX = re.compile(rf"^[A-Za-z0-9]{{1,{PREFIX_MAX}}}$")
_CURRENT = re.compile(rf"^(?P<key>(?P<prefix>[A-Za-z0-9]{{1,{PREFIX_MAX}}})[a-z2-7]{{{_TAG_LEN}}})(?P<n>\d{{4}})$")
_LEGACY = re.compile(r"^(?P<key>(?P<prefix>[A-Za-z0-9_-]{1,8})-[a-z2-7]{16})-(?P<n>\d+)$")
# The tag is the digest's first 100 bits in lower-case base32 (RFC 4648's alphabet), read two
# letters (10 bits) at a time: what `base64.b32encode(digest[:15]).decode().lower()[:20]` gives.
_BASE32 = "abcdefghijklmnopqrstuvwxyz234567"
_PAIRS = [a + b for a in _BASE32 for b in _BASE32]
_SHIFTS = tuple(range(_TAG_LEN * 5 - 10, -1, -10))


@lru_cache(maxsize=64)  # a core has one prefix; a refused one raises and is not kept
def check_prefix(prefix: str) -> str:
    """`prefix` if it makes ids every venue accepts; else ValueError naming the rule."""
    if not _PREFIX.match(prefix):
        raise ValueError(f"client_id_prefix {prefix!r} must be {PREFIX_RULE}")
    return prefix


def client_order_id(prefix: str, signal_id: str, replacement: int = 0) -> str:
    check_prefix(prefix)
    if not 0 <= replacement <= MAX_REPLACEMENT:
        raise ValueError(f"replacement must be 0..{MAX_REPLACEMENT}")
    bits = int.from_bytes(hashlib.sha256(signal_id.encode()).digest()[:13], "big") >> 4  # the first 100
    tag = "".join([_PAIRS[(bits >> shift) & 1023] for shift in _SHIFTS])
    return f"{prefix}{tag}{replacement:0{_REPLACEMENT_DIGITS}d}"


def _parse(coid: str) -> re.Match[str] | None:
    return _CURRENT.match(coid) or _LEGACY.match(coid)


def has_prefix(coid: str, prefix: str) -> bool:
    """Whether `coid` is one of ours: made by `client_order_id` with `prefix` (either version)."""
    match = _parse(coid)
    return match is not None and match.group("prefix") == prefix


def signal_key(coid: str) -> str:
    """The part of a client order id shared by every order of one signal."""
    match = _parse(coid)
    return match.group("key") if match else coid


def replacement_number(coid: str) -> int | None:
    match = _parse(coid)
    return int(match.group("n")) if match else None
