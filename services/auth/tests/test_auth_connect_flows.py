"""The Visma.net, Nmbrs and 24SevenOffice pages' rules (pure) and use cases (on the real
store, with small hand-written vendor fakes and a clock the test moves)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pydantic import SecretStr

from ledgerlink.auth.config import OAuthProviderSettings
from ledgerlink.auth.domain.connect_flows import (
    MAX_BACKOFF,
    NoCocReason,
    Sector,
    check_administration,
    check_reconciliation_setup,
    environment_business_id,
    grants_write,
    next_login_allowed,
)
from ledgerlink.auth.domain.environments import Role
from ledgerlink.auth.services.company_import import CompanyImport, ImportedCompany
from ledgerlink.auth.services.expiry import ActivationExpiry
from ledgerlink.auth.services.lifecycle import LifecycleService, OAuthAuthorization
from ledgerlink.auth.services.organisations import OrganisationService
from ledgerlink.auth.services.revocation import RevocationService
from ledgerlink.auth.services.token_service import CredentialService
from ledgerlink.auth.services.twentyfour_keys import TwentyFourKeys
from ledgerlink.auth.storage.connect_flows import ConnectFlowRepository
from ledgerlink.auth.storage.models import ConnectFlow, Connection, User, messaging
from ledgerlink.auth.storage.people import UserRepository
from ledgerlink.auth.storage.repository import CredentialRepository
from ledgerlink.auth.storage.vault import Vault
from ledgerlink.auth.storage.vendor_flows import TwentyFourLoginResult, VendorRefusedError
from ledgerlink.auth.storage.vendor_oauth import VendorOAuthClient
from ledgerlink.shared.db import Database
from ledgerlink.shared.messaging.outbox import Outbox

T0 = datetime(2027, 3, 1, 9, tzinfo=UTC)

# -- CoC (KvK) numbers, reasons and sectors (seed 002 step 6) -------------------------------


def test_a_kvk_number_is_eight_digits_and_typed_spaces_and_dots_are_dropped() -> None:
    details, errors = check_administration("1234 56.78", "", "trade")
    assert errors == {}
    assert details is not None
    assert details.coc == "12345678"
    assert details.no_coc_reason is None
    assert details.sector is Sector.TRADE


@pytest.mark.parametrize(
    ("coc", "expected"),
    [("1234567", "7 digits"), ("123456789", "9 digits"), ("1234567A", "expected exactly 8")],
)
def test_a_wrong_kvk_number_is_refused_on_its_field(coc: str, expected: str) -> None:
    details, errors = check_administration(coc, "", "trade")
    assert details is None
    assert list(errors) == ["coc"]
    assert expected in errors["coc"]


def test_no_kvk_number_needs_a_reason_and_a_reason_replaces_it() -> None:
    _, missing = check_administration("", "", "other")
    assert missing == {"coc": "Enter the CoC (KvK) number, or choose why there is none."}
    details, errors = check_administration("", "test_demo", "other")
    assert errors == {}
    assert details is not None
    assert details.no_coc_reason is NoCocReason.TEST_DEMO
    assert details.coc is None
    _, both = check_administration("12345678", "not_a_company", "other")
    assert "not both" in both["coc"]


def test_an_unknown_reason_or_a_missing_sector_is_refused_on_its_field() -> None:
    _, errors = check_administration("", "bankrupt", "")
    assert set(errors) == {"reason", "sector"}


def test_the_business_id_of_an_imported_company() -> None:
    assert environment_business_id("VISMA", "1234567", "12345678") == "12345678"
    assert environment_business_id("VISMA", "1234567", None) == "VISMA-1234567"
    assert len(environment_business_id("24SO", "9" * 40, None)) == 32


# -- Write rights of a Visma Connect grant (seed 003) ---------------------------------------


def test_write_rights_come_from_the_granted_scope() -> None:
    asked = "openid vismanet_erp_interactive_api:read vismanet_erp_interactive_api:create"
    assert grants_write(None, asked)  # RFC 6749 5.1: no scope in the answer = as asked
    assert grants_write(asked, asked)
    assert not grants_write("openid vismanet_erp_interactive_api:read", asked)


# -- Refused logins (seed 004) ---------------------------------------------------------------


def test_refused_logins_wait_longer_each_time_up_to_fifteen_minutes() -> None:
    base = timedelta(seconds=60)
    assert next_login_allowed(0, T0, base) == T0
    assert next_login_allowed(1, T0, base) == T0 + timedelta(seconds=60)
    assert next_login_allowed(2, T0, base) == T0 + timedelta(seconds=120)
    assert next_login_allowed(30, T0, base) == T0 + MAX_BACKOFF


def test_the_reconciliation_setup_needs_a_period_and_known_accounts() -> None:
    setup, errors = check_reconciliation_setup("2025-01", "1920, 1500 1920", {"1920", "1500"})
    assert errors == {}
    assert setup is not None
    assert setup.accounts == ("1920", "1500")
    _, errors = check_reconciliation_setup("2025-13", "", None)
    assert set(errors) == {"start_period", "accounts"}
    _, errors = check_reconciliation_setup("2025-02", "1920, 7777", {"1920"})
    assert errors == {"accounts": "Not in this company's chart of accounts: 7777."}
    _, errors = check_reconciliation_setup("2025-02", "19x0", None)
    assert "19x0" in errors["accounts"]


# -- The "API keys" use cases on the store ---------------------------------------------------


class FakeTwentyFour:
    """24SevenOffice's login as the page sees it: accepts one password, counts logins."""

    def __init__(self, password: str) -> None:
        self.password = password
        self.logins = 0

    async def login(self, username: str, password: SecretStr) -> TwentyFourLoginResult:
        self.logins += 1
        if password.get_secret_value() != self.password:
            raise VendorRefusedError("credentials", "refused")
        return TwentyFourLoginResult(
            transaction_types=[(1, "Utgående faktura"), (6, "Integrasjon")],
            clients=[("101", "Fjord AS"), ("102", "Vidde AS")],
        )


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


async def _admin_of_an_organisation(db: Database, clock: Clock) -> tuple[User, uuid.UUID]:
    async with db.transaction() as session:
        user = await UserRepository(session).add(
            User(provider="google", subject=str(uuid.uuid4()), email="anna@demo.test", name="Anna")
        )
        view = await OrganisationService(session, clock).create(user, "Regnskap Demo AS")
        assert view.role is Role.ADMIN
        return user, view.organisation.id


def _keys(session: object, fake: FakeTwentyFour, clock: Clock) -> TwentyFourKeys:
    return TwentyFourKeys(
        session,  # type: ignore[arg-type]
        vault=Vault({1: SecretStr("k" * 40)}, 1),
        outbox=Outbox(messaging, source="test"),
        client=fake,  # type: ignore[arg-type]
        clock=clock,
        backoff=timedelta(seconds=60),
    )


async def test_a_refused_login_holds_back_the_next_until_the_wait_is_over(db: Database) -> None:
    clock = Clock()
    fake = FakeTwentyFour("right")
    user, organisation = await _admin_of_an_organisation(db, clock)

    async with db.transaction() as session:
        refused = await _keys(session, fake, clock).login(
            user, organisation, "int@demo.no", SecretStr("wrong")
        )
    assert (refused.ok, refused.field, refused.code) == (False, "password", "refused")

    clock.now = T0 + timedelta(seconds=59)
    async with db.transaction() as session:
        held = await _keys(session, fake, clock).login(
            user, organisation, "INT@demo.no", SecretStr("right")
        )
    assert (held.ok, held.code) == (False, "throttled")
    assert "wait 1 seconds" in str(held.message)
    assert fake.logins == 1  # the vendor was not asked again

    clock.now = T0 + timedelta(seconds=60)
    async with db.transaction() as session:
        accepted = await _keys(session, fake, clock).login(
            user, organisation, "int@demo.no", SecretStr("right")
        )
        view = await _keys(session, fake, clock).view(user, organisation)
    assert accepted.ok
    assert fake.logins == 2
    assert view.username == "int@demo.no"
    assert view.transaction_types == [(1, "Utgående faktura"), (6, "Integrasjon")]


async def test_import_needs_a_transaction_type_and_each_client_gets_its_credential(
    db: Database,
) -> None:
    clock = Clock()
    fake = FakeTwentyFour("right")
    user, organisation = await _admin_of_an_organisation(db, clock)
    async with db.transaction() as session:
        keys = _keys(session, fake, clock)
        assert (await keys.login(user, organisation, "int@demo.no", SecretStr("right"))).ok
        assert await keys.choose_transaction_type(user, organisation, "9") == {
            "transaction_type": "Choose one of 24SevenOffice's transaction types."
        }
        assert await keys.choose_transaction_type(user, organisation, "6") == {}
        added, outcome = await keys.import_companies(user, organisation, reference="test")
        again, _ = await keys.import_companies(user, organisation, reference="test")
    assert outcome.ok
    assert [c.company_name for c in added] == ["Fjord AS", "Vidde AS"]
    assert again == []  # already imported clients are not imported twice
    assert {c.business_id for c in added} == {"24SO-101", "24SO-102"}
    async with db.transaction() as session:
        credential = await CredentialRepository(session).get(added[0].id)
        secrets = await CredentialRepository(session).secrets(added[0].id)
    assert credential is not None
    assert credential.kind == "twentyfour"
    assert credential.attributes == {
        "username": "int@demo.no",
        "client": "101",
        "transaction_type": "6",
    }
    assert set(secrets) == {"password"}
    assert "right" not in secrets["password"].ciphertext


async def _administrations_of_one_login(
    db: Database, clock: Clock, vault: Vault, outbox: Outbox, companies: tuple[str, ...]
) -> list[Connection]:
    """One Visma login, an administration per company: the grant is stored on the first."""
    user, organisation = await _admin_of_an_organisation(db, clock)
    made: list[Connection] = []
    async with db.transaction() as session:
        importer = CompanyImport(session, clock)
        lifecycle = LifecycleService(session, outbox, vault=vault, clock=clock)
        for company in companies:
            connection = await importer.add(
                user,
                organisation,
                ImportedCompany(
                    country="NL",
                    business_id=f"VISMA-{company}",
                    name=f"Administration {company}",
                    provider="visma_net",
                    product="planning",
                    division_id=None,
                    members=((user.id, Role.ADMIN),),
                    settings={"company_id": company},
                ),
                reference="test",
            )
            await lifecycle.complete_authorization(
                connection.id,
                OAuthAuthorization(
                    vendor_account=company,
                    access_token=SecretStr("the-one-access-token"),
                    refresh_token=SecretStr("the-one-refresh-token"),
                    expires_in=3600,
                ),
                attributes={"company_id": company},
                shares_credential_of=made[0].id if made else None,
            )
            made.append(connection)
    return made


async def test_administrations_of_one_visma_login_share_its_grant_in_the_token_service(
    db: Database,
) -> None:
    """One login, two administrations: the grant is stored once; the token service answers
    both with its access token and each connection's own company."""

    clock = Clock()
    vault = Vault({1: SecretStr("k" * 40)}, 1)
    outbox = Outbox(messaging, source="test")
    made = await _administrations_of_one_login(db, clock, vault, outbox, ("1000001", "1000002"))
    async with db.transaction() as session:
        sharer_secrets = await CredentialRepository(session).secrets(made[1].id)
    assert sharer_secrets == {}  # the rotating refresh token exists once
    async with httpx.AsyncClient() as http:
        service = CredentialService(
            db,
            vault,
            VendorOAuthClient(http),
            {"visma_net": OAuthProviderSettings(client_id="c", token_url="http://unused")},
            outbox,
            refresh_leeway=timedelta(seconds=120),
            cache_for=timedelta(seconds=5),
            clock=clock,
        )
        holder = await service.credentials(made[0].id)
        sharer = await service.credentials(made[1].id)
    assert sharer.connection_id == made[1].id
    assert sharer.secrets["access_token"].get_secret_value() == "the-one-access-token"
    assert "refresh_token" not in sharer.secrets
    assert holder.attributes["company_id"] == "1000001"
    assert sharer.attributes["company_id"] == "1000002"
    assert "credential_of" not in sharer.attributes


async def test_revoking_the_administration_that_holds_a_shared_login_keeps_the_others(
    db: Database,
) -> None:
    """Revoking the first administration hands the grant to the next (re-sealed for it,
    not revoked at Visma); only the last one's revocation reaches Visma's endpoint."""

    clock = Clock()
    vault = Vault({1: SecretStr("k" * 40)}, 1)
    outbox = Outbox(messaging, source="test")
    made = await _administrations_of_one_login(
        db, clock, vault, outbox, ("1000001", "1000002", "1000003")
    )
    revoked_at_visma: list[str] = []

    def visma(request: httpx.Request) -> httpx.Response:
        revoked_at_visma.append(request.content.decode())
        return httpx.Response(200)

    providers = {
        "visma_net": OAuthProviderSettings(
            client_id="c", token_url="http://visma.test/token", revocation_url="http://visma.test/r"
        )
    }
    async with httpx.AsyncClient(transport=httpx.MockTransport(visma)) as http:
        revocation = RevocationService(
            db, vault, VendorOAuthClient(http), providers, outbox, clock=clock
        )
        service = CredentialService(
            db,
            vault,
            VendorOAuthClient(http),
            providers,
            outbox,
            refresh_leeway=timedelta(seconds=120),
            cache_for=timedelta(seconds=0),
            clock=clock,
        )
        _connection, outcome = await revocation.revoke(made[0].id)
        assert outcome == "not_supported"
        assert revoked_at_visma == []
        async with db.transaction() as session:
            credentials = CredentialRepository(session)
            assert await credentials.secrets(made[0].id) == {}
            rows = {c.id: await credentials.get(c.id) for c in made[1:]}
            holders = [
                i for i, row in rows.items() if row and "credential_of" not in row.attributes
            ]
            assert len(holders) == 1  # one heir holds the grant now...
            [heir] = holders
            assert set(await credentials.secrets(heir)) == {"access_token", "refresh_token"}
            [other] = [i for i in rows if i != heir]
            other_row = rows[other]
            assert other_row is not None
            assert other_row.attributes["credential_of"] == str(heir)  # ...the other names it
        for connection in made[1:]:
            answer = await service.credentials(connection.id)
            assert answer.secrets["access_token"].get_secret_value() == "the-one-access-token"
        assert (await service.credentials(made[2].id)).attributes["company_id"] == "1000003"

        await revocation.revoke(heir)
        assert revoked_at_visma == []
        _connection, outcome = await revocation.revoke(other)
    assert outcome == "revoked"
    assert len(revoked_at_visma) == 1
    assert "the-one-refresh-token" in revoked_at_visma[0]


async def test_the_expiry_pass_forgets_old_connection_flows_and_their_sealed_tokens(
    db: Database,
) -> None:
    clock = Clock()
    user, _organisation = await _admin_of_an_organisation(db, clock)
    async with db.transaction() as session:
        flows = ConnectFlowRepository(session)
        old = await flows.add(
            ConnectFlow(user_id=user.id, provider="visma_net", kind="x", created_at=T0)
        )
        young = await flows.add(
            ConnectFlow(
                user_id=user.id, provider="visma_net", kind="x", created_at=T0 + timedelta(hours=2)
            )
        )
    clock.now = T0 + timedelta(hours=2, minutes=30)
    expiry = ActivationExpiry(
        db,
        Outbox(messaging, source="test"),
        ttl=timedelta(hours=72),
        interval=60,
        clock=clock,
        flow_ttl=timedelta(hours=1),
    )
    await expiry.run_once()
    async with db.transaction() as session:
        flows = ConnectFlowRepository(session)
        assert await flows.get(old.id) is None
        assert await flows.get(young.id) is not None
