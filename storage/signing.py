"""HMAC-SHA256 signatures for artifacts and checkpoints: verified before unpickling.

>>> sig = sign(b"k" * 32, b"state")
>>> verify(b"k" * 32, b"state", sig)
>>> try:
...     verify(b"k" * 32, b"tampered", sig)
... except SignatureMismatch as e:
...     print(e)
signature does not verify: refusing the bytes
"""

from __future__ import annotations

import hashlib
import hmac


class SignatureMismatch(ValueError):
    """Bytes whose signature does not verify; they are never deserialised."""


def sign(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def verify(key: bytes, data: bytes, signature: bytes) -> None:
    if not hmac.compare_digest(sign(key, data), bytes(signature)):
        raise SignatureMismatch("signature does not verify: refusing the bytes")
