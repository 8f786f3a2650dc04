"""kit/crypto.Hasher is HMAC-SHA256 (RFC 2104) computed from precomputed pad states: it must agree
with the standard library's hmac module for every input, and keep purposes apart."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from leerid_gateway.kit.crypto import Hasher

SECRET = "a-server-secret-of-reasonable-length-0123456789"


@pytest.mark.parametrize(
    "value", ["", "a", "x" * 63, "x" * 64, "x" * 65, "x" * 1000, "é-ü-ß-€", "client:secret"]
)
def test_hasher_is_hmac_sha256_under_the_purpose_key(value: str) -> None:
    key = hmac.new(SECRET.encode(), b"leerid-gateway/session", hashlib.sha256).digest()
    expected = hmac.new(key, value.encode(), hashlib.sha256).digest()
    hasher = Hasher(SECRET, "session")
    assert hasher.digest(value) == expected
    assert hasher.digest(value) == expected  # the precomputed states are copied, never consumed
    assert hasher.matches(value, expected)
    assert not hasher.matches(value + "!", expected)


def test_purposes_and_secrets_give_different_keys() -> None:
    assert Hasher(SECRET, "session").digest("v") != Hasher(SECRET, "login-state").digest("v")
    assert Hasher(SECRET, "session").digest("v") != Hasher(SECRET + "x", "session").digest("v")
