"""Client order ids never change: an order journaled by an older version must be found again by the
id this version computes (reconciliation, duplicate creates). Pinned against the definition the
first stores were written with: the prefix, the SHA-256 digest of the signal id in lower-case
base32 (RFC 4648) cut to the tag's length, and the replacement number in four digits."""

from __future__ import annotations

import base64
import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from executor.clientid import _TAG_LEN, client_order_id


def defined(prefix: str, signal_id: str, replacement: int) -> str:
    digest = hashlib.sha256(signal_id.encode()).digest()[:15]
    return f"{prefix}{base64.b32encode(digest).decode().lower()[:_TAG_LEN]}{replacement:04d}"


@settings(max_examples=2000, derandomize=True)
@given(
    prefix=st.from_regex(r"\A[A-Za-z0-9]{1,8}\Z"),
    signal_id=st.text(min_size=1, max_size=200),
    replacement=st.integers(min_value=0, max_value=99),
)
def test_an_id_is_what_it_was_defined_as(prefix, signal_id, replacement):
    try:
        signal_id.encode()
    except UnicodeEncodeError:
        return  # a lone surrogate is no signal id intake accepts
    assert client_order_id(prefix, signal_id, replacement) == defined(prefix, signal_id, replacement)


def test_known_ids_stay_as_they_were():
    assert client_order_id("tc", "sig-1") == "tcmjcfqcrunlhv3akkjdop0000"
    assert client_order_id("tc", "b2-0", 3) == "tc5nnvszf3gp6cbu5otrxj0003"
