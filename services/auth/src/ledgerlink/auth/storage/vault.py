"""The credential vault's cipher: AES-256-GCM under versioned keys, bound to its row.

Why not :class:`ledgerlink.shared.secrets.SecretBox`: Fernet has no associated data, so a
ciphertext copied from one connection's row to another's would open there. Here every
ciphertext is sealed with ``ledgerlink-auth/<connection id>/<field>`` as associated data and
opens only in that place. Each version's 256-bit key is derived with HKDF-SHA256 from the
configured key material; the version is stored beside the ciphertext (and inside it, as a
``k<version>:`` prefix, so a ciphertext alone says which key it needs).
"""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import SecretStr

__all__ = ["Sealed", "Vault", "VaultError"]

_NONCE_BYTES = 12


class VaultError(ValueError):
    """A ciphertext could not be opened: unknown key version, wrong place, or tampered."""


@dataclass(frozen=True)
class Sealed:
    """A ciphertext and the key version that sealed it."""

    key_version: int
    ciphertext: str


def _associated_data(connection_id: uuid.UUID, field: str) -> bytes:
    return f"ledgerlink-auth/{connection_id}/{field}".encode()


class Vault:
    """Seals and opens one connection field's secret; see the module docstring."""

    def __init__(self, keys: Mapping[int, SecretStr], active_key: int) -> None:
        if active_key not in keys:
            raise ValueError(f"active key {active_key} is not configured")
        self.active_key = active_key
        self.versions = frozenset(keys)
        self._ciphers = {
            version: AESGCM(
                HKDF(
                    algorithm=hashes.SHA256(),
                    length=32,
                    salt=None,
                    info=f"ledgerlink-auth-vault-v{version}".encode(),
                ).derive(material.get_secret_value().encode())
            )
            for version, material in keys.items()
        }

    def seal(self, connection_id: uuid.UUID, field: str, secret: SecretStr) -> Sealed:
        """Encrypt ``secret`` for this connection's ``field`` under the active key."""
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._ciphers[self.active_key].encrypt(
            nonce, secret.get_secret_value().encode(), _associated_data(connection_id, field)
        )
        text = base64.urlsafe_b64encode(nonce + sealed).decode()
        return Sealed(self.active_key, f"k{self.active_key}:{text}")

    def open(self, connection_id: uuid.UUID, field: str, sealed: Sealed) -> SecretStr:
        """The secret behind ``sealed``; :class:`VaultError` if it does not open here."""
        prefix, _, text = sealed.ciphertext.partition(":")
        if prefix != f"k{sealed.key_version}":
            raise VaultError("the ciphertext's key version does not match its row")
        cipher = self._ciphers.get(sealed.key_version)
        if cipher is None:
            raise VaultError(f"vault key {sealed.key_version} is not configured (retired?)")
        try:
            raw = base64.urlsafe_b64decode(text.encode())
            clear = cipher.decrypt(
                raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], _associated_data(connection_id, field)
            )
        except (InvalidTag, ValueError):
            raise VaultError(
                "the secret does not open: wrong key, another row's ciphertext, or tampered"
            ) from None
        return SecretStr(clear.decode())

    def reseal(self, connection_id: uuid.UUID, field: str, sealed: Sealed) -> Sealed:
        """``sealed`` under the active key (itself when already there)."""
        if sealed.key_version == self.active_key:
            return sealed
        return self.seal(connection_id, field, self.open(connection_id, field, sealed))
