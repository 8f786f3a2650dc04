"""Small cryptographic helpers: random tokens, keyed hashes, constant-time comparison, AEAD."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets

from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def random_token(nbytes: int = 32, prefix: str = "") -> str:
    """A URL-safe random token; the prefix lets humans and leak scanners tell kinds apart."""
    return prefix + secrets.token_urlsafe(nbytes)


class Hasher:
    """HMAC-SHA256 under a key derived from the server secret, one sub-key per purpose."""

    def __init__(self, secret: str, purpose: str) -> None:
        self._key = hmac.new(secret.encode(), b"leerid-gateway/" + purpose.encode(), hashlib.sha256).digest()

    def digest(self, value: str) -> bytes:
        return hmac.new(self._key, value.encode(), hashlib.sha256).digest()

    def matches(self, value: str, expected: bytes) -> bool:
        return hmac.compare_digest(self.digest(value), expected)


class Sealer:
    """AES-256-GCM with a key derived from the server secret: for secrets stored in the database."""

    def __init__(self, secret: str, purpose: str) -> None:
        key = hashlib.sha256(b"leerid-gateway/seal/" + purpose.encode() + b"/" + secret.encode()).digest()
        self._aead = AESGCM(key)
        self._aad = purpose.encode()

    def seal(self, plaintext: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, plaintext, self._aad)

    def open(self, sealed: bytes) -> bytes:
        return self._aead.decrypt(sealed[:12], sealed[12:], self._aad)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
