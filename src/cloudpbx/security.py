"""Passwords, tokens and secrets at rest (ADM-7, issue 2 §7)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet, InvalidToken

# argon2id with the library's RFC 9106 "low memory" profile: ~90 ms of CPU here, so callers
# run it in a worker thread, never on the event loop.
_hasher = PasswordHasher()
# Verifying against this keeps an unknown login as slow as a wrong password.
_DUMMY_HASH = _hasher.hash("cloudpbx-no-such-user")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """Only hashes of session and API tokens are stored: a leaked table grants nothing."""
    return hashlib.sha256(token.encode()).hexdigest()


class SecretBox:
    """Symmetric encryption of SIP and trunk secrets with a key derived from the secret key.

    Digest authentication needs the clear secret (or an HA1 per realm and algorithm), so SIP
    secrets cannot be one-way hashed; they are encrypted at rest instead (issue 2 §3).
    """

    def __init__(self, secret_key: str) -> None:
        derived = hmac.new(secret_key.encode(), b"cloudpbx-secret-box-v1", "sha256").digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def seal(self, plaintext: str) -> bytes:
        return self._fernet.encrypt(plaintext.encode())

    def open(self, token: bytes) -> str:
        try:
            return self._fernet.decrypt(token).decode()
        except InvalidToken as exc:
            raise ValueError("secret cannot be decrypted with this installation's key") from exc


def generate_sip_secret() -> str:
    """A secret strong enough for SIP digest (phones type it rarely, scanners try often)."""
    return secrets.token_urlsafe(12)
