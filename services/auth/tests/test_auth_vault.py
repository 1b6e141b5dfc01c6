"""The credential vault: AES-GCM under versioned keys, bound to its row; rotation without
downtime (old ciphertexts open during it, none remain after it)."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid

import pytest
from auth_token_kit import KEY_1, KEY_2, config, harness
from pydantic import SecretStr, ValidationError
from sqlalchemy import select

from ledgerlink.auth.__main__ import operator_command
from ledgerlink.auth.config import Config, OidcProviderSettings, SigninSettings, VaultSettings
from ledgerlink.auth.services.vault_rotation import VaultRotation
from ledgerlink.auth.storage.models import ConnectionSecret
from ledgerlink.auth.storage.vault import Sealed, Vault, VaultError
from ledgerlink.shared.config import DatabaseSettings
from ledgerlink.shared.db import Database

CONNECTION = uuid.UUID("0b6f3f7e-7f57-4a55-9d0c-6a3f2a0c1e11")
OTHER = uuid.UUID("5d0e8c3a-0a2f-4f0e-8c49-2f8f1c6b7a22")
SECRET = SecretStr("refresh-token-value")


def test_seal_and_open_round_trip_under_the_active_key() -> None:
    vault = Vault({1: KEY_1, 2: KEY_2}, active_key=2)
    sealed = vault.seal(CONNECTION, "refresh_token", SECRET)
    assert sealed.key_version == 2
    assert sealed.ciphertext.startswith("k2:")
    assert SECRET.get_secret_value() not in sealed.ciphertext
    assert (
        vault.open(CONNECTION, "refresh_token", sealed).get_secret_value() == "refresh-token-value"
    )
    # A fresh nonce each time: the same secret never seals to the same text.
    assert vault.seal(CONNECTION, "refresh_token", SECRET) != sealed


@pytest.mark.parametrize(
    ("connection_id", "field"),
    [(OTHER, "refresh_token"), (CONNECTION, "access_token")],
    ids=["another-connection", "another-field"],
)
def test_a_ciphertext_copied_elsewhere_does_not_open(connection_id: uuid.UUID, field: str) -> None:
    vault = Vault({1: KEY_1}, active_key=1)
    sealed = vault.seal(CONNECTION, "refresh_token", SECRET)
    with pytest.raises(VaultError, match="does not open"):
        vault.open(connection_id, field, sealed)


def test_tampering_a_retired_key_and_a_mislabelled_version_are_refused() -> None:
    vault = Vault({1: KEY_1}, active_key=1)
    sealed = vault.seal(CONNECTION, "token", SECRET)
    prefix, _, text = sealed.ciphertext.partition(":")
    raw = bytearray(base64.urlsafe_b64decode(text))
    raw[20] ^= 0x01  # one bit of the encrypted secret
    flipped = f"{prefix}:{base64.urlsafe_b64encode(bytes(raw)).decode()}"
    with pytest.raises(VaultError, match="tampered"):
        vault.open(CONNECTION, "token", Sealed(1, flipped))
    with pytest.raises(VaultError, match="does not match its row"):
        vault.open(CONNECTION, "token", Sealed(2, sealed.ciphertext))
    newer = Vault({2: KEY_2}, active_key=2)
    with pytest.raises(VaultError, match="not configured"):
        newer.open(CONNECTION, "token", sealed)
    with pytest.raises(VaultError, match="does not open"):
        Vault({1: KEY_2}, active_key=1).open(CONNECTION, "token", sealed)


# Production settings of people's sign-in, so that only the vault's defaults are refused.
PRODUCTION_SESSION_SECRET = SecretStr("production-session-secret-0123456789abcdef")
PRODUCTION_SIGNIN = SigninSettings(
    google=OidcProviderSettings(
        client_secret=SecretStr("google-real-secret"),
        discovery_url="https://accounts.google.com/.well-known/openid-configuration",
    ),
    microsoft=OidcProviderSettings(
        client_secret=SecretStr("microsoft-real-secret"),
        discovery_url=(
            "https://login.microsoftonline.com/organizations/v2.0/.well-known/openid-configuration"
        ),
    ),
)


def test_vault_settings_refuse_short_keys_an_unknown_active_key_and_production_defaults() -> None:
    with pytest.raises(ValidationError, match="shorter than 32"):
        VaultSettings(keys={1: SecretStr("short")}, active_key=1)
    with pytest.raises(ValidationError, match=r"is not one of vault\.keys"):
        VaultSettings(keys={1: KEY_1}, active_key=2)
    with pytest.raises(ValidationError, match="own vault keys"):
        Config(
            environment="production",
            database=DatabaseSettings(url=SecretStr("postgresql+asyncpg://db/auth")),
            session_secret=PRODUCTION_SESSION_SECRET,
            signin=PRODUCTION_SIGNIN,
        )
    with pytest.raises(ValidationError, match="service tokens"):
        Config(
            environment="production",
            database=DatabaseSettings(url=SecretStr("postgresql+asyncpg://db/auth")),
            session_secret=PRODUCTION_SESSION_SECRET,
            signin=PRODUCTION_SIGNIN,
            vault=VaultSettings(keys={1: KEY_1}, active_key=1),
        )


def test_keys_and_service_tokens_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "LEDGERLINK_AUTH_VAULT__KEYS",
        f'{{"1": "{KEY_1.get_secret_value()}", "2": "{KEY_2.get_secret_value()}"}}',
    )
    monkeypatch.setenv("LEDGERLINK_AUTH_VAULT__ACTIVE_KEY", "2")
    monkeypatch.setenv("LEDGERLINK_AUTH_SERVICE_TOKENS", '{"importer": "abc"}')
    loaded = Config()
    assert loaded.vault.active_key == 2
    assert set(loaded.vault.keys) == {1, 2}
    assert loaded.service_tokens["importer"].get_secret_value() == "abc"
    assert "abc" not in repr(loaded)


async def ciphertext_versions(db: Database) -> list[int]:
    async with db.transaction() as session:
        rows = (await session.execute(select(ConnectionSecret))).scalars().all()
        return sorted(row.key_version for row in rows)


async def test_rotation_keeps_old_ciphertexts_open_and_leaves_none_behind(db: Database) -> None:
    old = config()
    async with harness(db, old) as h:
        connections = [await h.activate(business_id=f"3301143{n}") for n in range(3)]
        for connection in connections:
            assert (await h.authorize(connection.id)).status_code == 200
    assert await ciphertext_versions(db) == [1] * 6

    # Step 1: key 2 added and made active; replicas roll. Old secrets still open.
    rolling = config(vault=VaultSettings(keys={1: KEY_1, 2: KEY_2}, active_key=2))
    async with harness(db, rolling) as h:
        h.idp.refresh_tokens.update([])  # the IdP is new; only reads here
        for connection in connections:
            answer = await h.credentials(connection.id)
            assert answer.status_code == 200
        # A new authorization seals under key 2 at once.
        fresh = await h.activate(business_id="33011440")
        await h.authorize(fresh.id)
    assert await ciphertext_versions(db) == [1] * 6 + [2] * 2

    # Step 2: re-encrypt the rest, in small batches; twice is harmless (idempotent).
    vault = Vault({1: KEY_1, 2: KEY_2}, active_key=2)
    rotation = VaultRotation(db, vault, batch_size=4)
    assert await rotation.status() == {1: 6, 2: 2}
    assert await rotation.rotate() == 6
    assert await rotation.rotate() == 0
    assert await rotation.status() == {2: 8}

    # Step 3: key 1 retired; everything still opens.
    retired = config(vault=VaultSettings(keys={2: KEY_2}, active_key=2))
    async with harness(db, retired) as h:
        for connection in [*connections, fresh]:
            assert (await h.credentials(connection.id)).status_code == 200


async def test_vault_commands_rotate_and_report_per_key_version(
    db: Database,
    database_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The command configures the process's logging onto this test's captured stderr,
    # which closes after the test; later tests' log lines would then fail to print.
    monkeypatch.setattr("ledgerlink.auth.__main__.configure_logging", lambda *_: None)
    async with harness(db) as h:
        connection = await h.activate()
        await h.authorize(connection.id)
    cfg = config(
        database={"url": database_url},
        vault=VaultSettings(keys={1: KEY_1, 2: KEY_2}, active_key=2),
    )
    assert await asyncio.to_thread(operator_command, ["vault", "status"], cfg) == 0
    assert json.loads(capsys.readouterr().out) == {"active_key": 2, "by_key_version": {"1": 2}}
    assert await asyncio.to_thread(operator_command, ["vault", "rotate"], cfg) == 0
    assert json.loads(capsys.readouterr().out) == {
        "rotated": 2,
        "active_key": 2,
        "by_key_version": {"2": 2},
    }
