"""Secrets at rest are encrypted and authenticated."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from ledgerlink.shared.secrets import SecretBox, SecretDecryptionError

KEY = SecretStr("k" * 40)


def test_round_trip_and_no_clear_text_in_the_ciphertext() -> None:
    box = SecretBox(KEY)
    stored = box.encrypt(SecretStr("refresh-token-123"))
    assert "refresh-token-123" not in stored
    assert stored.startswith("v1:")
    assert box.decrypt(stored).get_secret_value() == "refresh-token-123"


def test_each_encryption_is_different() -> None:
    box = SecretBox(KEY)
    assert box.encrypt(SecretStr("same")) != box.encrypt(SecretStr("same"))


def test_another_key_or_purpose_cannot_decrypt() -> None:
    stored = SecretBox(KEY).encrypt(SecretStr("token"))
    with pytest.raises(SecretDecryptionError, match="wrong SECRET_KEY"):
        SecretBox(SecretStr("x" * 40)).decrypt(stored)
    with pytest.raises(SecretDecryptionError):
        SecretBox(KEY, purpose="other").decrypt(stored)


def test_tampered_or_unknown_ciphertext_is_refused() -> None:
    box = SecretBox(KEY)
    stored = box.encrypt(SecretStr("token"))
    tampered = stored[:-6] + ("A" if stored[-6] != "A" else "B") + stored[-5:]
    with pytest.raises(SecretDecryptionError):
        box.decrypt(tampered)
    with pytest.raises(SecretDecryptionError, match="unknown secret format"):
        box.decrypt("plain-text")


def test_decrypted_secret_stays_hidden_in_repr() -> None:
    box = SecretBox(KEY)
    assert "token" not in repr(box.decrypt(box.encrypt(SecretStr("token"))))
