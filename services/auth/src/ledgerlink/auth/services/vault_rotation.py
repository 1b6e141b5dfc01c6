"""Key rotation of the credential vault, without downtime.

1. Add the new key version to ``VAULT__KEYS`` and make it ``VAULT__ACTIVE_KEY``; roll the
   replicas. From then on every seal uses it; old ciphertexts still open under their own
   version.
2. ``ledgerlink-auth vault rotate`` re-encrypts the rest in batches, each batch one
   transaction that locks its rows (``FOR UPDATE SKIP LOCKED``: a refresh holding a row is
   not waited for, and a second rotation running at once takes other rows). Idempotent and
   resumable: it only ever picks rows not yet under the active key.
3. ``ledgerlink-auth vault status`` shows no ciphertext under the old version: remove it.
"""

from __future__ import annotations

import logging

from ledgerlink.auth.storage.repository import CredentialRepository
from ledgerlink.auth.storage.vault import Sealed, Vault
from ledgerlink.shared.db import Database

logger = logging.getLogger(__name__)


class VaultRotation:
    """Re-encrypts stored secrets under the vault's active key."""

    def __init__(self, db: Database, vault: Vault, *, batch_size: int = 200) -> None:
        self._db = db
        self._vault = vault
        self._batch_size = batch_size

    async def rotate(self) -> int:
        """Re-encrypt every secret not under the active key; how many were."""
        total = 0
        while True:
            # One transaction per batch (an operator command, so it commits itself): a
            # crash loses at most one batch of work, and the next run picks up the rest.
            async with self._db.transaction() as session:
                rows = await CredentialRepository(session).sealed_under_other_keys(
                    self._vault.active_key, self._batch_size
                )
                for row in rows:
                    resealed = self._vault.reseal(
                        row.connection_id, row.field, Sealed(row.key_version, row.ciphertext)
                    )
                    row.key_version = resealed.key_version
                    row.ciphertext = resealed.ciphertext
                await session.flush()
            total += len(rows)
            if rows:
                logger.info("vault: batch re-encrypted", extra={"secrets": len(rows)})
            if len(rows) < self._batch_size:
                return total

    async def status(self) -> dict[int, int]:
        """Secrets per key version."""
        async with self._db.transaction() as session:
            return await CredentialRepository(session).count_by_key_version()
