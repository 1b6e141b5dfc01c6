"""24SevenOffice's integration user, from the "API keys" page (seed 004).

The integration user's e-mail and password, "Done" logs in (live); on success a
"Transaction type" choice appears (the vendor's list); "Import companies" lists every client
the user was given access to, each becoming a company whose reconciliation setup (start
period, accounts) must be completed before it is active. A refused login is never retried
by us: the next attempt waits (doubling), since 24SevenOffice throttles repeated logins
(UNCONFIRMED: it publishes no limit or window; the sandbox throttles per user).

No commits: the request commits (which is why refusals are returned, not raised: the
refusal count must be kept).
"""

from __future__ import annotations

import hashlib
import logging
import math
import uuid
from dataclasses import dataclass
from datetime import timedelta

from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession

from ledgerlink.auth.domain.clock import Clock
from ledgerlink.auth.domain.connect_flows import (
    FieldErrors,
    check_reconciliation_setup,
    environment_business_id,
    next_login_allowed,
)
from ledgerlink.auth.domain.environments import Role
from ledgerlink.auth.services.access import BadInput, Conflict, NotFound
from ledgerlink.auth.services.company_import import CompanyImport, ImportedCompany
from ledgerlink.auth.services.lifecycle import LifecycleService, TwentyFourAuthorization
from ledgerlink.auth.services.organisations import OrganisationService
from ledgerlink.auth.storage.connect_flows import (
    ConnectionSettingsRepository,
    LoginThrottleRepository,
    OrganisationCredentialRepository,
    OrganisationPeople,
)
from ledgerlink.auth.storage.models import (
    Connection,
    ConnectionSettings,
    LoginThrottle,
    OrganisationCredential,
    User,
)
from ledgerlink.auth.storage.repository import ConnectionRepository
from ledgerlink.auth.storage.vault import Sealed, Vault
from ledgerlink.auth.storage.vendor_flows import (
    TwentyFourClient,
    TwentyFourLoginResult,
    VendorDownError,
    VendorRefusedError,
)
from ledgerlink.shared.db import as_utc
from ledgerlink.shared.events import Product, Provider
from ledgerlink.shared.messaging.outbox import Outbox

logger = logging.getLogger(__name__)

PROVIDER = Provider.TWENTYFOUR_SEVEN_OFFICE.value
PRODUCT = Product.RECONCILIATION.value
_PASSWORD_FIELD = "24sevenoffice_password"  # noqa: S105 - the vault field's name
#: Stand-in business ID prefix: the published Client (GetIdentities) has no org number.
PREFIX = "24SO"


@dataclass(frozen=True)
class LoginOutcome:
    """A login attempt: saved, or the field and message to show."""

    ok: bool
    field: str | None = None
    message: str | None = None
    code: str | None = None


@dataclass(frozen=True)
class KeysView:
    """What the 24SevenOffice tab shows."""

    username: str | None
    transaction_types: list[tuple[int, str]]
    transaction_type: int | None
    companies: list[tuple[Connection, ConnectionSettings]]


def throttle_key(username: str) -> str:
    """The throttle row of a login (the vendor throttles per user)."""
    return hashlib.sha256(f"{PROVIDER}:{username.strip().lower()}".encode()).hexdigest()


class TwentyFourKeys:
    """The "API keys" page's use cases; see the module docstring."""

    def __init__(
        self,
        session: AsyncSession,
        *,
        vault: Vault,
        outbox: Outbox,
        client: TwentyFourClient,
        clock: Clock,
        backoff: timedelta,
    ) -> None:
        self._session = session
        self._vault = vault
        self._outbox = outbox
        self._client = client
        self._clock = clock
        self._backoff = backoff
        self._organisations = OrganisationService(session, clock)
        self._credentials = OrganisationCredentialRepository(session)
        self._throttle = LoginThrottleRepository(session)
        self._settings = ConnectionSettingsRepository(session)

    async def view(self, person: User, organisation_id: uuid.UUID) -> KeysView:
        """The tab's state (members may look; admins change it)."""
        await self._organisations.require(person, organisation_id)
        credential = await self._credentials.get(organisation_id, PROVIDER)
        companies = await self._settings.of_organisation(organisation_id, PROVIDER)
        if credential is None:
            return KeysView(None, [], None, companies)
        chosen = credential.attributes.get("transaction_type")
        return KeysView(
            credential.username,
            [(int(no), str(title)) for no, title in credential.attributes.get("types", [])],
            int(chosen) if chosen is not None else None,
            companies,
        )

    async def login(
        self, person: User, organisation_id: uuid.UUID, username: str, password: SecretStr
    ) -> LoginOutcome:
        """ "Done": log in live; keep the login only when 24SevenOffice accepts it."""
        await self._organisations.require(person, organisation_id, admin=True)
        username = username.strip()
        if not username or "@" not in username:
            return LoginOutcome(
                False, "username", "Enter the integration user's e-mail address.", "username"
            )
        if not password.get_secret_value():
            return LoginOutcome(False, "password", "Enter the integration user's password.")
        outcome, result = await self._attempt(username, password)
        if result is None:
            return outcome
        now = self._clock()
        sealed = self._vault.seal(organisation_id, _PASSWORD_FIELD, password)
        await self._credentials.save(
            OrganisationCredential(
                organisation_id=organisation_id,
                provider=PROVIDER,
                username=username,
                attributes={
                    "types": [[no, title] for no, title in result.transaction_types],
                    "transaction_type": None,
                },
                key_version=sealed.key_version,
                ciphertext=sealed.ciphertext,
                verified_at=now,
            )
        )
        logger.info(
            "24sevenoffice integration user saved", extra={"organisation_id": str(organisation_id)}
        )
        return outcome

    async def _attempt(
        self, username: str, password: SecretStr
    ) -> tuple[LoginOutcome, TwentyFourLoginResult | None]:
        key = throttle_key(username)
        now = self._clock()
        row = await self._throttle.get(key)
        if row is not None:
            allowed_at = next_login_allowed(row.failures, as_utc(row.last_failed_at), self._backoff)
            if allowed_at > now:
                wait = math.ceil((allowed_at - now).total_seconds())
                return LoginOutcome(
                    False,
                    "password",
                    f"The last login was refused. To avoid being blocked by 24SevenOffice, "
                    f"wait {wait} seconds before trying again.",
                    "throttled",
                ), None
        try:
            result = await self._client.login(username, password)
        except VendorRefusedError as refusal:
            failures = (row.failures if row is not None else 0) + 1
            await self._throttle.save(LoginThrottle(key=key, failures=failures, last_failed_at=now))
            if refusal.code == "throttled":
                wait = math.ceil(refusal.retry_after or self._backoff.total_seconds())
                return LoginOutcome(
                    False,
                    "password",
                    f"24SevenOffice is refusing logins for this user for now: wait {wait} "
                    "seconds before trying again.",
                    "throttled",
                ), None
            return LoginOutcome(
                False,
                "password",
                "24SevenOffice refused the e-mail address or password. Check them and that "
                "the integration user's invitation was accepted.",
                "refused",
            ), None
        except VendorDownError:
            return LoginOutcome(
                False,
                "password",
                "24SevenOffice could not be reached. Try again later.",
                "unavailable",
            ), None
        await self._throttle.clear(key)
        return LoginOutcome(True), result

    async def choose_transaction_type(
        self, person: User, organisation_id: uuid.UUID, number: str
    ) -> FieldErrors:
        """The transaction type postings get (one of the vendor's list)."""
        await self._organisations.require(person, organisation_id, admin=True)
        credential = await self._credentials.get(organisation_id, PROVIDER)
        if credential is None:
            raise Conflict("Log the integration user in first.", code="no_login")
        known = {int(no) for no, _title in credential.attributes.get("types", [])}
        if not number.isdigit() or int(number) not in known:
            return {"transaction_type": "Choose one of 24SevenOffice's transaction types."}
        credential.attributes = {**credential.attributes, "transaction_type": int(number)}
        await self._credentials.save(credential)
        return {}

    async def import_companies(
        self, person: User, organisation_id: uuid.UUID, reference: str
    ) -> tuple[list[Connection], LoginOutcome]:
        """ "Import companies": every client the integration user reaches now; the new ones
        become connections (``configuring``, ``connection.activated``)."""
        await self._organisations.require(person, organisation_id, admin=True)
        credential = await self._credentials.get(organisation_id, PROVIDER)
        if credential is None:
            raise Conflict("Log the integration user in first.", code="no_login")
        chosen = credential.attributes.get("transaction_type")
        if chosen is None:
            raise BadInput("Choose the transaction type first.", code="no_transaction_type")
        password = self._vault.open(
            organisation_id,
            _PASSWORD_FIELD,
            Sealed(credential.key_version, credential.ciphertext),
        )
        outcome, result = await self._attempt(credential.username, password)
        if result is None:
            return [], outcome
        known = {
            str(settings.settings.get("client_id"))
            for _connection, settings in await self._settings.of_organisation(
                organisation_id, PROVIDER
            )
        }
        admins = tuple(
            (user.id, Role.ADMIN)
            for member, user in await OrganisationPeople(self._session).members(organisation_id)
            if member.role is Role.ADMIN
        )
        importer = CompanyImport(self._session, self._clock)
        lifecycle = LifecycleService(
            self._session, self._outbox, vault=self._vault, clock=self._clock
        )
        added: list[Connection] = []
        for client_id, name in result.clients:
            if client_id in known:
                continue
            connection = await importer.add(
                person,
                organisation_id,
                ImportedCompany(
                    country="NO",
                    business_id=environment_business_id(PREFIX, client_id, None),
                    name=name,
                    provider=PROVIDER,
                    product=PRODUCT,
                    division_id=None,
                    members=admins,
                    settings={"client_id": client_id, "transaction_type": int(chosen)},
                ),
                reference=reference,
            )
            await lifecycle.complete_authorization(
                connection.id,
                TwentyFourAuthorization(
                    vendor_account=client_id, username=credential.username, password=password
                ),
                attributes={"client": client_id, "transaction_type": str(chosen)},
            )
            added.append(connection)
        return added, outcome

    async def company(
        self, person: User, organisation_id: uuid.UUID, connection_id: uuid.UUID
    ) -> tuple[Connection, ConnectionSettings]:
        """One imported company of the organisation."""
        await self._organisations.require(person, organisation_id)
        settings = await self._settings.get(connection_id)
        connection = await ConnectionRepository(self._session).get(connection_id)
        if (
            settings is None
            or connection is None
            or settings.organisation_id != organisation_id
            or connection.provider != PROVIDER
        ):
            raise NotFound("There is no such company.")
        return connection, settings

    async def complete_setup(
        self,
        person: User,
        organisation_id: uuid.UUID,
        connection_id: uuid.UUID,
        start_period: str,
        accounts: str,
    ) -> FieldErrors:
        """The setup wizard: reconciliation start period and accounts."""
        await self._organisations.require(person, organisation_id, admin=True)
        _connection, settings = await self.company(person, organisation_id, connection_id)
        setup, errors = check_reconciliation_setup(start_period, accounts, None)
        if setup is None:
            return errors
        settings.settings = {
            **settings.settings,
            "start_period": setup.start_period,
            "accounts": list(setup.accounts),
        }
        settings.setup_completed_at = self._clock()
        settings.updated_at = self._clock()
        await self._settings.save(settings)
        return {}
