"""The v1 event contracts: registry, validation, JSON round trips."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from ledgerlink.shared.events import (
    ALL_IMPORT_SCOPES,
    EVENT_TYPES,
    AccountDifferenceV1,
    ActivationRequestedV1,
    ConnectionActivatedV1,
    ConnectionActivationLinkIssuedV1,
    ConnectionAuthorizationStartedV1,
    ConnectionConfiguredV1,
    ConnectionExpiredV1,
    ConnectionNeedsReauthV1,
    ConnectionReauthorizedV1,
    ConnectionRejectedV1,
    ConnectionRevokedV1,
    Country,
    EventData,
    ImportCompletedV1,
    ImportCountsV1,
    ImportFailedV1,
    ImportQueuedV1,
    ImportRequestedV1,
    ImportStartedV1,
    JournalAcceptedV1,
    JournalLineV1,
    JournalProblemV1,
    JournalReadyV1,
    JournalRejectedV1,
    PayrollJournalFailedV1,
    PayrollJournalPostedV1,
    PayrollJournalReleasedV1,
    PayrollPostingProblemV1,
    Product,
    Provider,
    ReportsReadyV1,
    Requester,
)
from ledgerlink.shared.topics import PARTITIONS, Topic

CONNECTION_ID = uuid.UUID("0b6f3f7e-7f57-4a55-9d0c-6a3f2a0c1e11")
ENVIRONMENT_ID = uuid.UUID("5d0e8c3a-0a2f-4f0e-8c49-2f8f1c6b7a22")
IMPORT_ID = uuid.UUID("9a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c55")


def _activation(**overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "provider": "netvisor",
        "business_id": "0112038-9",
        "country": "FI",
        "company_name": "Nokia Oyj",
        "requested_by": {"email": "cfo@example.fi", "name": "Maija Meikäläinen"},
        "product": "planning",
        "store_reference": "store-42",
    }
    payload.update(overrides)
    return payload


_CHANGE: dict[str, Any] = {
    "connection_id": CONNECTION_ID,
    "environment_id": ENVIRONMENT_ID,
    "provider": "visma_net",
    "business_id": "33011433",
    "previous_status": "pending_authorization",
}

SAMPLES: dict[type[EventData], EventData] = {
    ActivationRequestedV1: ActivationRequestedV1.model_validate(_activation()),
    ConnectionActivatedV1: ConnectionActivatedV1(
        connection_id=CONNECTION_ID,
        environment_id=ENVIRONMENT_ID,
        provider=Provider.PROCOUNTOR,
        business_id="0112038-9",
        company_name="Nokia Oyj",
    ),
    ConnectionRejectedV1: ConnectionRejectedV1(
        connection_id=CONNECTION_ID,
        environment_id=None,
        provider=Provider.VISMA_NET,
        business_id="923609016",
        company_name="Equinor ASA",
        reason_code="unknown_environment",
        message="No environment matches this business ID.",
    ),
    ImportRequestedV1: ImportRequestedV1(
        connection_id=CONNECTION_ID,
        business_id="556036-0793",
        provider=Provider.SIE,
        scope=("accounts", "ledger"),
        file_location="s3://uploads/556036-0793/2024.se",
    ),
    ImportQueuedV1: ImportQueuedV1(
        import_id=IMPORT_ID,
        connection_id=CONNECTION_ID,
        business_id="556036-0793",
        provider=Provider.SIE,
        scope=ALL_IMPORT_SCOPES,
        trigger="import_requested",
    ),
    ImportStartedV1: ImportStartedV1(
        import_id=IMPORT_ID,
        connection_id=None,
        business_id="",
        provider=Provider.SAF_T,
        attempt=1,
    ),
    ImportCompletedV1: ImportCompletedV1(
        import_id=IMPORT_ID,
        connection_id=CONNECTION_ID,
        business_id="999999999",
        company_name="Selskapet AS",
        provider=Provider.SAF_T,
        outcome="imported",
        fiscal_year_start=date(2015, 1, 1),
        fiscal_year_end=date(2015, 12, 31),
        counts=ImportCountsV1(accounts=4, dimensions=3, objects=4, vouchers=2, lines=5),
        periods=("2015-01", "2015-12"),
        reconciliation_status="differences",
        differences=(
            AccountDifferenceV1(
                account="4000",
                opening="0.00",
                movements="10000.00",
                computed_closing="10000.00",
                source_closing="0.00",
                difference="10000.00",
            ),
        ),
    ),
    ImportFailedV1: ImportFailedV1(
        import_id=IMPORT_ID,
        connection_id=None,
        business_id="556036-0793",
        provider=Provider.SIE,
        reason_code="unbalanced_voucher",
        message="voucher series 'A' number '7' dated 2024-03-01 does not balance",
        location="2024.se line 120",
    ),
    ReportsReadyV1: ReportsReadyV1(
        import_id=IMPORT_ID,
        business_id="556036-0793",
        fiscal_year_start=date(2024, 1, 1),
        fiscal_year_end=date(2024, 12, 31),
        periods=("2024-01",),
        reports=("/v1/companies/556036-0793/trial-balance",),
    ),
    JournalReadyV1: JournalReadyV1(
        journal_id="payroll-2024-03-001",
        source="nmbrs",
        business_id="33011433",
        period="2024-03",
        run_reference="run-77",
        lines=(
            JournalLineV1(account="4000", debit="1234.50", cost_center="CC1"),
            JournalLineV1(account="2930", credit="1234.50", description="net pay"),
        ),
        corrects_period="2024-02",
    ),
    ConnectionAuthorizationStartedV1: ConnectionAuthorizationStartedV1(**_CHANGE),
    ConnectionConfiguredV1: ConnectionConfiguredV1(
        **{**_CHANGE, "previous_status": "configuring"}, import_id=IMPORT_ID
    ),
    ConnectionNeedsReauthV1: ConnectionNeedsReauthV1(
        **{**_CHANGE, "previous_status": "active"}, reason_code="invalid_grant"
    ),
    ConnectionReauthorizedV1: ConnectionReauthorizedV1(
        **{**_CHANGE, "previous_status": "needs_reauth"}, status="active"
    ),
    ConnectionRevokedV1: ConnectionRevokedV1(
        **{**_CHANGE, "previous_status": "active"}, vendor_revocation="revoked"
    ),
    ConnectionExpiredV1: ConnectionExpiredV1(**_CHANGE),
    ConnectionActivationLinkIssuedV1: ConnectionActivationLinkIssuedV1(
        connection_id=CONNECTION_ID,
        environment_id=None,
        provider=Provider.NETVISOR,
        business_id="0112038-9",
        store_reference="netvisor-store-1",
        requested_by=Requester(email="anna@virtanen-demo.fi", name="Anna Virtanen"),
        url="https://auth.example/activate/link/abc",
        expires_at=datetime(2026, 11, 24, 10, tzinfo=UTC),
    ),
    JournalAcceptedV1: JournalAcceptedV1(
        journal_id="payroll-2024-03-001",
        business_id="33011433",
        period="2024-03",
        corrects_period=None,
        line_count=2,
        total_debit="1234.50",
        total_credit="1234.50",
    ),
    JournalRejectedV1: JournalRejectedV1(
        journal_id="payroll-2024-03-001",
        business_id="33011433",
        reason_code="unbalanced",
        message="Debits and credits differ.",
        problems=(
            JournalProblemV1(code="unbalanced", message="0.01 difference"),
            JournalProblemV1(code="unknown_account", message="9999 unknown", line=2),
        ),
    ),
    # journal-exporter: payroll journals posted into a ledger (issue 15)
    PayrollJournalPostedV1: PayrollJournalPostedV1(
        posting_id=CONNECTION_ID,
        mapping_id=ENVIRONMENT_ID,
        mapping_version=2,
        source="nmbrs",
        source_company="123456",
        run_id="2025-3",
        period="2025-01",
        kind="correction",
        reference="RUN-2025-03",
        ledger="vismanet",
        ledger_company="1234567",
        batch_number="000042",
    ),
    PayrollJournalReleasedV1: PayrollJournalReleasedV1(
        posting_id=CONNECTION_ID,
        mapping_id=ENVIRONMENT_ID,
        mapping_version=2,
        source="nmbrs",
        source_company="123456",
        run_id="2025-3",
        period="2025-01",
        kind="correction",
        reference="RUN-2025-03",
        ledger="vismanet",
        ledger_company="1234567",
        batch_number="000042",
        found_released=True,
    ),
    PayrollJournalFailedV1: PayrollJournalFailedV1(
        posting_id=CONNECTION_ID,
        mapping_id=ENVIRONMENT_ID,
        mapping_version=1,
        source="nmbrs",
        source_company="123456",
        run_id="2025-3",
        period="2025-03",
        kind="normal",
        reference="RUN-2025-03",
        reason_code="invalid_journal",
        message="Line 2: account 4010 is inactive in Visma.net.",
        problems=(
            PayrollPostingProblemV1(
                code="account_inactive", message="Line 2: account 4010 is inactive.", line=2
            ),
            PayrollPostingProblemV1(
                code="ledger_refused",
                message="Visma.net refused the journal: Account '4010' is inactive.",
                vendor_message="Account '4010' is inactive.",
            ),
        ),
    ),
}


def event_models(base: type[EventData] = EventData) -> set[type[EventData]]:
    """Every concrete event model: a subclass (at any depth) with its own EVENT_TYPE; a
    shared base such as ConnectionStateChange has none and is not an event."""
    found: set[type[EventData]] = set()
    for model in base.__subclasses__():
        if "EVENT_TYPE" in vars(model):
            found.add(model)
        found |= event_models(model)
    return found


def test_registry_holds_every_event_model() -> None:
    assert set(EVENT_TYPES.values()) == event_models()
    assert set(EVENT_TYPES.values()) == set(SAMPLES)


@pytest.mark.parametrize("model", list(EVENT_TYPES.values()), ids=lambda m: m.__name__)
def test_event_type_and_topic(model: type[EventData]) -> None:
    assert EVENT_TYPES[model.EVENT_TYPE] is model
    assert model.EVENT_TYPE.startswith("ledgerlink.")
    assert model.EVENT_TYPE.endswith(".v1")
    assert model.__name__.endswith("V1")
    assert isinstance(model.TOPIC, Topic)
    assert model.TOPIC in PARTITIONS


def test_event_types_are_unique() -> None:
    event_types = [model.EVENT_TYPE for model in EVENT_TYPES.values()]

    # 19 + the payroll posting events (issue 15: posted, failed; then released)
    assert len(event_types) == len(set(event_types)) == len(EVENT_TYPES) == 22


@pytest.mark.parametrize("model", list(EVENT_TYPES.values()), ids=lambda m: m.__name__)
def test_json_round_trip(model: type[EventData]) -> None:
    sample = SAMPLES[model]

    encoded = sample.model_dump_json()
    decoded = model.model_validate_json(encoded)

    assert decoded == sample
    assert decoded.model_dump_json() == encoded
    assert model.model_validate(json.loads(encoded)) == sample


@pytest.mark.parametrize("model", list(EVENT_TYPES.values()), ids=lambda m: m.__name__)
def test_extra_fields_forbidden_everywhere(model: type[EventData]) -> None:
    raw = json.loads(SAMPLES[model].model_dump_json())
    raw["surprise"] = 1

    with pytest.raises(ValidationError, match="surprise"):
        model.model_validate(raw)


@pytest.mark.parametrize("provider", list(Provider))
@pytest.mark.parametrize("country", list(Country))
def test_activation_accepts_every_provider_and_country(
    provider: Provider, country: Country
) -> None:
    event = ActivationRequestedV1.model_validate(
        _activation(provider=provider.value, country=country.value)
    )

    assert event.provider is provider
    assert event.country is country


@pytest.mark.parametrize("product", list(Product))
def test_activation_accepts_every_product(product: Product) -> None:
    assert ActivationRequestedV1.model_validate(_activation(product=product.value)).product is (
        product
    )


def test_unknown_provider_refused_naming_the_allowed_values() -> None:
    with pytest.raises(ValidationError) as caught:
        ActivationRequestedV1.model_validate(_activation(provider="xero"))

    errors = caught.value.errors()
    assert [error["loc"] for error in errors] == [("provider",)]
    message = errors[0]["msg"]
    for provider in Provider:
        assert f"'{provider.value}'" in message


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("country", "DK"),
        ("country", "fi"),
        ("product", "crm"),
        ("provider", "NETVISOR"),
    ],
)
def test_unknown_enum_values_refused(field: str, value: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ActivationRequestedV1.model_validate(_activation(**{field: value}))

    assert caught.value.errors()[0]["loc"] == (field,)


@pytest.mark.parametrize(
    "email", ["not-an-email", "a@b", "two@@example.fi", "sp ace@example.fi", "", "@example.fi"]
)
def test_bad_email_refused(email: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ActivationRequestedV1.model_validate(
            _activation(requested_by={"email": email, "name": "X"})
        )

    assert caught.value.errors()[0]["loc"] == ("requested_by", "email")


def test_email_and_names_are_stripped() -> None:
    event = ActivationRequestedV1.model_validate(
        _activation(
            requested_by={"email": "  cfo@example.fi ", "name": "  Maija "},
            company_name="  Nokia Oyj\t",
            business_id=" 0112038-9 ",
        )
    )

    assert event.requested_by.email == "cfo@example.fi"
    assert event.requested_by.name == "Maija"
    assert event.company_name == "Nokia Oyj"
    assert event.business_id == "0112038-9"


@pytest.mark.parametrize(
    ("field", "value"),
    [("company_name", "   "), ("business_id", ""), ("business_id", "x" * 33)],
)
def test_blank_or_long_text_refused(field: str, value: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ActivationRequestedV1.model_validate(_activation(**{field: value}))

    assert caught.value.errors()[0]["loc"] == (field,)


def test_extra_field_forbidden_in_nested_requester() -> None:
    with pytest.raises(ValidationError) as caught:
        ActivationRequestedV1.model_validate(
            _activation(requested_by={"email": "a@b.fi", "name": "A", "phone": "123"})
        )

    assert caught.value.errors()[0]["type"] == "extra_forbidden"
    assert caught.value.errors()[0]["loc"] == ("requested_by", "phone")


def test_store_reference_optional() -> None:
    raw = _activation()
    del raw["store_reference"]

    assert ActivationRequestedV1.model_validate(raw).store_reference is None


def test_events_are_frozen() -> None:
    event = ActivationRequestedV1.model_validate(_activation())

    with pytest.raises(ValidationError, match="frozen"):
        event.company_name = "Other"  # type: ignore[misc]


def test_provider_is_file_based() -> None:
    file_based = {provider for provider in Provider if provider.is_file_based}

    assert file_based == {Provider.SAF_T, Provider.SIE}
    assert not Provider.NETVISOR.is_file_based
    assert Provider("24sevenoffice") is Provider.TWENTYFOUR_SEVEN_OFFICE


def test_import_requested_defaults_to_every_scope() -> None:
    event = ImportRequestedV1(
        connection_id=CONNECTION_ID, business_id="0112038-9", provider=Provider.NETVISOR
    )

    assert event.scope == ("companies", "accounts", "dimensions", "ledger")
    assert event.file_location is None
    with pytest.raises(ValidationError, match="scope"):
        ImportRequestedV1.model_validate(
            {
                "connection_id": str(CONNECTION_ID),
                "business_id": "0112038-9",
                "provider": "netvisor",
                "scope": ["payroll"],
            }
        )


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ({"mode": "backfill"}, "needs backfill_from and backfill_to"),
        ({"mode": "backfill", "backfill_from": "2025-03-01"}, "needs backfill_from"),
        (
            {"mode": "backfill", "backfill_from": "2025-04-30", "backfill_to": "2025-03-01"},
            "backfill_from is after backfill_to",
        ),
        ({"mode": "incremental", "backfill_from": "2025-03-01"}, "mode backfill only"),
    ],
)
def test_import_requested_backfill_needs_its_range(extra: dict[str, str], fragment: str) -> None:
    base = {"connection_id": str(CONNECTION_ID), "business_id": "0112038-9", "provider": "netvisor"}
    event = ImportRequestedV1.model_validate(
        {**base, "mode": "backfill", "backfill_from": "2025-03-01", "backfill_to": "2025-04-30"}
    )
    assert (event.backfill_from, event.backfill_to) == (date(2025, 3, 1), date(2025, 4, 30))
    with pytest.raises(ValidationError, match=fragment):
        ImportRequestedV1.model_validate({**base, **extra})


def test_uuid_fields_serialise_as_text() -> None:
    raw = json.loads(SAMPLES[ConnectionActivatedV1].model_dump_json())

    assert raw["connection_id"] == str(CONNECTION_ID)
    assert ConnectionActivatedV1.model_validate(raw).connection_id == CONNECTION_ID
    with pytest.raises(ValidationError, match="connection_id"):
        ConnectionActivatedV1.model_validate({**raw, "connection_id": "not-a-uuid"})


def test_journal_ready_keeps_amounts_as_strings() -> None:
    raw = json.loads(SAMPLES[JournalReadyV1].model_dump_json())

    first, second = raw["lines"]
    assert first["debit"] == "1234.50"
    assert first["credit"] == "0"
    assert second["credit"] == "1234.50"
    assert isinstance(first["debit"], str)
    decoded = JournalReadyV1.model_validate(raw)
    assert decoded.lines[0].debit == "1234.50"  # the trailing zero survives


@pytest.mark.parametrize("amount", [1234.5, 1234, None])
def test_journal_line_refuses_numbers_for_amounts(amount: object) -> None:
    with pytest.raises(ValidationError) as caught:
        JournalLineV1.model_validate({"account": "4000", "debit": amount})

    assert caught.value.errors()[0]["loc"] == ("debit",)


def test_journal_line_limits() -> None:
    with pytest.raises(ValidationError, match="account"):
        JournalLineV1(account="a" * 65)
    with pytest.raises(ValidationError, match="debit"):
        JournalLineV1(account="4000", debit="1" * 33)


@pytest.mark.parametrize("period", ["2024-3", "March", "2024/03", "202403"])
def test_journal_accepted_period_pattern(period: str) -> None:
    raw = json.loads(SAMPLES[JournalAcceptedV1].model_dump_json())

    with pytest.raises(ValidationError) as caught:
        JournalAcceptedV1.model_validate({**raw, "period": period})

    assert caught.value.errors()[0]["loc"] == ("period",)


def test_journal_accepted_requires_corrects_period_key() -> None:
    raw = json.loads(SAMPLES[JournalAcceptedV1].model_dump_json())
    del raw["corrects_period"]

    with pytest.raises(ValidationError, match="corrects_period"):
        JournalAcceptedV1.model_validate(raw)


# -- fields added to a published v1 model (rolling upgrades) ------------------------------


def _published_v1_without(model: type[BaseModel], *added: str) -> type[BaseModel]:
    """The model as it was published, before ``added`` existed: strict about extras."""
    fields = {
        name: (info.annotation, info)
        for name, info in model.model_fields.items()
        if name not in added
    }
    return create_model(  # type: ignore[no-any-return,call-overload]
        f"Old{model.__name__}",
        __config__=ConfigDict(frozen=True, extra="forbid"),
        **fields,
    )


def test_unset_additive_fields_are_left_out_so_an_older_consumer_accepts_the_event() -> None:
    activated = ConnectionActivatedV1(
        connection_id=uuid.uuid4(),
        environment_id=uuid.uuid4(),
        provider=Provider.NETVISOR,
        business_id="1572860-0",
        company_name="Oy Esimerkki Ab",
    )
    wire = json.loads(activated.model_dump_json())
    assert "transaction_type" not in wire
    old = _published_v1_without(ConnectionActivatedV1, "transaction_type")
    assert old.model_validate(wire).model_dump()["company_name"] == "Oy Esimerkki Ab"
    # The new consumer reads it back unchanged.
    assert ConnectionActivatedV1.model_validate(wire) == activated

    requested = ImportRequestedV1(
        connection_id=uuid.uuid4(), business_id="1572860-0", provider=Provider.NETVISOR
    )
    wire = json.loads(requested.model_dump_json())
    added = ("mode", "replace", "replace_reason", "backfill_from", "backfill_to")
    assert not set(added) & wire.keys()
    old = _published_v1_without(ImportRequestedV1, *added)
    old.model_validate(wire)


def test_set_additive_fields_are_sent() -> None:
    activated = ConnectionActivatedV1(
        connection_id=uuid.uuid4(),
        environment_id=uuid.uuid4(),
        provider=Provider.TWENTYFOUR_SEVEN_OFFICE,
        business_id="1572860-0",
        company_name="Oy Esimerkki Ab",
        transaction_type="3",
    )
    assert json.loads(activated.model_dump_json())["transaction_type"] == "3"
    requested = ImportRequestedV1(
        connection_id=uuid.uuid4(),
        business_id="1572860-0",
        provider=Provider.NETVISOR,
        mode="full_refresh",
    )
    assert json.loads(requested.model_dump_json())["mode"] == "full_refresh"
    difference = AccountDifferenceV1(
        account="1910",
        opening="0",
        movements="1",
        computed_closing="1",
        source_closing="2",
        difference="-1",
    )
    assert "period" not in json.loads(difference.model_dump_json())
    with_period = difference.model_copy(update={"period": "2024-03"})
    assert json.loads(with_period.model_dump_json())["period"] == "2024-03"


def test_fields_that_were_always_there_are_sent_even_when_none() -> None:
    rejected = ConnectionRejectedV1(
        connection_id=uuid.uuid4(),
        environment_id=None,
        provider=Provider.NETVISOR,
        business_id="1572860-0",
        company_name="Oy Esimerkki Ab",
        reason_code="invalid_business_id",
        message="The business ID's check digit is wrong.",
    )
    assert json.loads(rejected.model_dump_json())["environment_id"] is None
