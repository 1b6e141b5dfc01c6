"""Secrets at rest: tokens and credentials are stored encrypted, never in clear.

:class:`SecretBox` derives a Fernet key (AES-128-CBC + HMAC-SHA256, authenticated) from
a secret key that the caller supplies, with HKDF, so the key can be any long string.
Ciphertexts carry a version prefix so the scheme can change without ambiguity.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import SecretStr

_VERSION = "v1:"


class SecretDecryptionError(ValueError):
    """A stored secret could not be decrypted (wrong key, or tampered with)."""


class SecretBox:
    """Encrypts and decrypts secrets with a key derived from ``secret_key``."""

    def __init__(self, secret_key: SecretStr, *, purpose: str = "ledgerlink-secrets") -> None:
        derived = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode()
        ).derive(secret_key.get_secret_value().encode())
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def encrypt(self, secret: SecretStr) -> str:
        """The ciphertext to store for ``secret``."""
        token = self._fernet.encrypt(secret.get_secret_value().encode())
        return _VERSION + token.decode()

    def decrypt(self, stored: str) -> SecretStr:
        """The secret behind a stored ciphertext."""
        if not stored.startswith(_VERSION):
            raise SecretDecryptionError("unknown secret format")
        try:
            clear = self._fernet.decrypt(stored[len(_VERSION) :].encode())
        except InvalidToken:
            raise SecretDecryptionError(
                "the secret could not be decrypted: wrong SECRET_KEY or tampered data"
            ) from None
        return SecretStr(clear.decode())
