"""Unit tests for ledgerlink.importer.domain.import_rules."""

from __future__ import annotations

import uuid

import pytest

from ledgerlink.importer.domain.import_rules import (
    BusinessIdMismatchError,
    EmptyScopeError,
    FileLocationMissingError,
    ImportRequestError,
    KnownConnection,
    ProviderMismatchError,
    check_import_request,
    normalise_scope,
)
from ledgerlink.shared.events import ALL_IMPORT_SCOPES, ImportScope, Provider

CONNECTION = uuid.UUID("6f1c2a54-6c1e-4d8e-9a55-0d0b8e1f3a01")
KNOWN = KnownConnection(connection_id=CONNECTION, business_id="0112038-9", provider="netvisor")


def check(
    *,
    business_id: str = "0112038-9",
    provider: Provider = Provider.NETVISOR,
    scope: tuple[ImportScope, ...] = ALL_IMPORT_SCOPES,
    file_location: str | None = None,
    known: KnownConnection | None = KNOWN,
) -> tuple[ImportScope, ...]:
    return check_import_request(
        connection_id=CONNECTION,
        business_id=business_id,
        provider=provider,
        scope=scope,
        file_location=file_location,
        known=known,
    )


def test_request_matching_the_known_connection_is_accepted() -> None:
    assert check() == ALL_IMPORT_SCOPES


def test_unknown_connection_is_accepted() -> None:
    assert check(business_id="923609016", known=None) == ALL_IMPORT_SCOPES


@pytest.mark.parametrize("provider", [Provider.SAF_T, Provider.SIE])
def test_file_provider_without_file_location_is_refused(provider: Provider) -> None:
    with pytest.raises(FileLocationMissingError) as info:
        check(provider=provider, known=None)
    error = info.value
    assert error.reason_code == "file_location_missing"
    assert str(error) == (
        f"import request for connection {CONNECTION} has no file_location; {provider.value} "
        "is a file-based provider, so the import needs the location of the uploaded file"
    )
    assert isinstance(error, ImportRequestError)
    assert isinstance(error, ValueError)


def test_file_provider_with_file_location_is_accepted() -> None:
    known = KnownConnection(connection_id=CONNECTION, business_id="0112038-9", provider="sie")
    assert check(provider=Provider.SIE, file_location="s3://uploads/a.se", known=known) == (
        ALL_IMPORT_SCOPES
    )


def test_api_provider_needs_no_file_location() -> None:
    assert check(provider=Provider.NETVISOR, file_location=None) == ALL_IMPORT_SCOPES


def test_business_id_mismatch_is_refused() -> None:
    with pytest.raises(BusinessIdMismatchError) as info:
        check(business_id="1927400-1")
    assert info.value.reason_code == "business_id_mismatch"
    assert str(info.value) == (
        f"import request for connection {CONNECTION} names business ID 1927400-1 but the "
        "connection belongs to 0112038-9"
    )


def test_business_id_is_compared_exactly() -> None:
    # The importer knows the normalised ID auth published; other spellings do not match.
    with pytest.raises(BusinessIdMismatchError):
        check(business_id="FI01120389")


def test_provider_mismatch_is_refused() -> None:
    with pytest.raises(ProviderMismatchError) as info:
        check(provider=Provider.PROCOUNTOR)
    assert info.value.reason_code == "provider_mismatch"
    assert "names provider procountor but the connection's provider is netvisor" in str(info.value)


def test_file_location_is_checked_before_the_connection() -> None:
    with pytest.raises(FileLocationMissingError):
        check(provider=Provider.SAF_T, business_id="someone-else")


def test_scope_is_deduplicated_and_put_in_canonical_order() -> None:
    assert check(scope=("ledger", "accounts", "ledger")) == ("accounts", "ledger")


def test_empty_scope_is_refused() -> None:
    with pytest.raises(EmptyScopeError) as info:
        check(scope=())
    assert info.value.reason_code == "empty_scope"
    assert "companies, accounts, dimensions, ledger" in str(info.value)


def test_normalise_full_scope() -> None:
    reversed_scope = tuple(reversed(ALL_IMPORT_SCOPES))
    assert normalise_scope(reversed_scope, connection_id=CONNECTION) == ALL_IMPORT_SCOPES


def test_each_file_format_is_the_format_of_one_file_provider() -> None:
    from ledgerlink.importer.domain.ledger import LedgerFormat
    from ledgerlink.shared.events import Provider

    assert {fmt.provider for fmt in LedgerFormat} == {p for p in Provider if p.is_file_based}
    for fmt in LedgerFormat:
        assert LedgerFormat.of_provider(fmt.provider) is fmt
    with pytest.raises(ValueError, match="netvisor is not a file provider"):
        LedgerFormat.of_provider(Provider.NETVISOR)
