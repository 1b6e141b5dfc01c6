"""Wiring of the auth process: the vault, the token service and the services built on them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from ledgerlink.auth.config import Config
from ledgerlink.auth.domain.clock import Clock, utc_now
from ledgerlink.auth.services.expiry import ActivationExpiry
from ledgerlink.auth.services.revocation import RevocationService
from ledgerlink.auth.services.token_service import CredentialService
from ledgerlink.auth.storage.twentyfour_login import TwentyFourLoginClient
from ledgerlink.auth.storage.vault import Vault
from ledgerlink.auth.storage.vendor_oauth import VendorOAuthClient
from ledgerlink.shared.db import Database
from ledgerlink.shared.messaging.outbox import Outbox


def build_vault(config: Config) -> Vault:
    """The vault with every configured key version."""
    return Vault(config.vault.keys, config.vault.active_key)


@dataclass
class AuthComponents:
    """What the auth process builds once and its handlers share."""

    config: Config
    db: Database
    outbox: Outbox
    vault: Vault
    vendor: VendorOAuthClient
    credentials: CredentialService
    clock: Clock

    def revocation(self) -> RevocationService:
        """The revocation use case, sharing this process's cache."""
        return RevocationService(
            self.db,
            self.vault,
            self.vendor,
            self.config.oauth_providers,
            self.outbox,
            clock=self.clock,
            forget=self.credentials.forget,
        )

    def expiry(self) -> ActivationExpiry:
        """The periodic expiry of pending activations."""
        return ActivationExpiry(
            self.db,
            self.outbox,
            ttl=timedelta(hours=self.config.activation_ttl_hours),
            interval=self.config.expiry_check_seconds,
            clock=self.clock,
            on_commit=self.credentials.on_commit,
            # A finished flow's page stays readable for a day; an abandoned one goes too.
            flow_ttl=timedelta(seconds=self.config.connect.flow_seconds) + timedelta(days=1),
        )


def build_components(
    config: Config,
    db: Database,
    outbox: Outbox,
    vendor: VendorOAuthClient,
    *,
    clock: Clock = utc_now,
    on_commit: Callable[[], None] | None = None,
) -> AuthComponents:
    """Build the vault and the process's token service."""
    vault = build_vault(config)
    credentials = CredentialService(
        db,
        vault,
        vendor,
        config.oauth_providers,
        outbox,
        refresh_leeway=timedelta(seconds=config.refresh_leeway_seconds),
        cache_for=timedelta(seconds=config.credential_cache_seconds),
        netvisor=config.netvisor,
        twentyfour=TwentyFourLoginClient(
            vendor.http, config.twentyfour, timeout=config.vendor_timeout_seconds
        ),
        session_lifetime=timedelta(seconds=config.twentyfour.session_seconds),
        clock=clock,
        on_commit=on_commit or (lambda: None),
    )
    return AuthComponents(config, db, outbox, vault, vendor, credentials, clock)
