"""Every status a route answers is in its service's OpenAPI document.

The statuses are the ones each handler returns (404 for an unknown id, 400 for a bad
range or upload, 413 for an oversized upload, 503 from /readyz); /metrics is documented
as Prometheus text, not JSON. A route that starts answering a new status must add it
here and to its ``responses``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import pytest
from fastapi import FastAPI

from ledgerlink.auth.main import create_app as create_auth
from ledgerlink.importer.main import create_app as create_importer
from ledgerlink.journal_exporter.main import create_app as create_journal_exporter

OPERATIONS: Final = {
    ("get", "/healthz"): {"200"},
    ("get", "/readyz"): {"200", "503"},
    ("get", "/metrics"): {"200"},
    ("get", "/asyncapi.json"): {"200"},
}
SERVICES: Final[dict[str, tuple[Callable[[], FastAPI], dict[tuple[str, str], set[str]]]]] = {
    "auth": (
        create_auth,
        {
            ("get", "/v1/connections/{connection_id}"): {"200", "401", "404", "422"},
            ("get", "/v1/connections"): {"200", "401", "422"},
            ("get", "/v1/environments"): {"200", "401"},
            ("post", "/v1/environments"): {"200", "201", "400", "401", "403", "409", "415", "422"},
            ("get", "/v1/environments/{environment_id}"): {"200", "401", "404", "422"},
            ("patch", "/v1/environments/{environment_id}"): {
                "200",
                "400",
                "401",
                "403",
                "404",
                "409",
                "415",
                "422",
            },
            ("get", "/v1/environments/{environment_id}/connections"): {"200", "401", "404", "422"},
            ("get", "/v1/environments/{environment_id}/members"): {"200", "401", "404", "422"},
            ("post", "/v1/environments/{environment_id}/members"): {
                "201",
                "400",
                "401",
                "403",
                "404",
                "409",
                "415",
                "422",
            },
            ("get", "/v1/environments/{environment_id}/members/{user_id}"): {
                "200",
                "401",
                "404",
                "422",
            },
            ("patch", "/v1/environments/{environment_id}/members/{user_id}"): {
                "200",
                "401",
                "403",
                "404",
                "409",
                "415",
                "422",
            },
            ("delete", "/v1/environments/{environment_id}/members/{user_id}"): {
                "204",
                "401",
                "403",
                "404",
                "409",
                "422",
            },
            ("get", "/v1/subdomains/suggest"): {"200", "401", "422"},
            ("get", "/v1/subdomains/availability"): {"200", "401", "422"},
            ("get", "/v1/terms/current"): {"200", "401", "404", "422"},
            ("post", "/v1/terms/accept"): {"200", "401", "403", "404", "409", "415", "422"},
            ("get", "/v1/organisations"): {"200", "401"},
            ("post", "/v1/organisations"): {"201", "401", "403", "415", "422"},
            ("get", "/v1/organisations/{organisation_id}/administrations"): {
                "200",
                "401",
                "404",
                "422",
            },
            ("post", "/v1/organisations/{organisation_id}/administrations"): {
                "201",
                "400",
                "401",
                "403",
                "404",
                "409",
                "415",
                "422",
            },
            ("get", "/v1/organisations/{organisation_id}/divisions"): {"200", "401", "404", "422"},
            ("post", "/v1/organisations/{organisation_id}/divisions"): {
                "201",
                "401",
                "403",
                "404",
                "409",
                "415",
                "422",
            },
            ("get", "/v1/organisations/{organisation_id}/templates"): {"200", "401", "404", "422"},
            ("post", "/v1/organisations/{organisation_id}/templates"): {
                "201",
                "401",
                "403",
                "404",
                "409",
                "415",
                "422",
            },
            # The token service and revocation (service token), issue 12.
            ("post", "/internal/v1/connections/{connection_id}/credentials"): {
                "200",
                "401",
                "404",
                "409",
                "422",
                "502",
                "503",
            },
            ("post", "/internal/v1/connections/{connection_id}/authorization/start"): {
                "200",
                "401",
                "404",
                "409",
                "422",
            },
            ("post", "/internal/v1/connections/{connection_id}/authorization"): {
                "200",
                "401",
                "404",
                "409",
                "422",
            },
            # Revocation: a service token or a signed-in environment admin (403: a member,
            # or no CSRF header).
            ("delete", "/v1/connections/{connection_id}"): {
                "200",
                "401",
                "403",
                "404",
                "409",
                "422",
            },
            # Publishing terms (operators' service token).
            ("post", "/internal/v1/terms"): {"201", "400", "401", "403", "409", "422"},
            # Another service's pages: who a session cookie belongs to (issue 15).
            ("post", "/internal/v1/sessions/resolve"): {"200", "401", "422"},
            # Organisation members.
            ("get", "/v1/organisations/{organisation_id}/members"): {"200", "401", "404", "422"},
            ("post", "/v1/organisations/{organisation_id}/members"): {
                "201",
                "400",
                "401",
                "403",
                "404",
                "409",
                "415",
                "422",
            },
            ("patch", "/v1/organisations/{organisation_id}/members/{user_id}"): {
                "200",
                "401",
                "403",
                "404",
                "409",
                "415",
                "422",
            },
            ("delete", "/v1/organisations/{organisation_id}/members/{user_id}"): {
                "204",
                "401",
                "403",
                "404",
                "409",
                "422",
            },
            # The connection pages of seeds 002-004 (Visma.net, Nmbrs, 24SevenOffice).
            ("post", "/connect/organisations"): {"200", "303", "400", "403", "404", "409"},
            ("get", "/connect/visma_net"): {"200", "303", "400", "403", "404", "409", "422"},
            ("post", "/connect/visma_net/start"): {"303", "400", "403", "404", "409"},
            ("post", "/connect/visma_net/import"): {"303", "400", "403", "404", "409"},
            ("get", "/connect/visma_net/callback"): {
                "200",
                "303",
                "400",
                "403",
                "404",
                "409",
                "422",
            },
            ("get", "/connect/visma_net/flows/{flow_id}/administrations"): {
                "200",
                "303",
                "400",
                "403",
                "404",
                "409",
                "422",
            },
            ("post", "/connect/visma_net/flows/{flow_id}/administrations"): {
                "200",
                "303",
                "400",
                "403",
                "404",
                "409",
                "422",
            },
            ("get", "/connect/visma_net/flows/{flow_id}/details"): {
                "200",
                "303",
                "400",
                "403",
                "404",
                "409",
                "422",
            },
            ("post", "/connect/visma_net/flows/{flow_id}/details"): {
                "200",
                "303",
                "400",
                "403",
                "404",
                "409",
                "422",
            },
            ("get", "/connect/visma_net/flows/{flow_id}/assign"): {
                "200",
                "303",
                "400",
                "403",
                "404",
                "409",
                "422",
            },
            ("post", "/connect/visma_net/flows/{flow_id}/assign"): {
                "200",
                "303",
                "400",
                "403",
                "404",
                "409",
                "422",
            },
            ("get", "/connect/visma_net/flows/{flow_id}/done"): {
                "200",
                "303",
                "400",
                "403",
                "404",
                "409",
                "422",
            },
            ("get", "/connect/nmbrs"): {"200", "303", "400", "403", "404", "409", "422"},
            ("post", "/connect/nmbrs/account"): {"200", "303", "400", "403", "404", "409"},
            ("post", "/connect/nmbrs/account/authorize"): {"303", "400", "403", "404", "409"},
            ("get", "/connect/nmbrs/flows/{flow_id}/company"): {
                "200",
                "303",
                "400",
                "403",
                "404",
                "409",
                "422",
            },
            ("post", "/connect/nmbrs/flows/{flow_id}/company"): {
                "200",
                "303",
                "400",
                "403",
                "404",
                "409",
                "422",
            },
            ("post", "/connect/nmbrs/credential"): {"200", "303", "400", "403", "404", "409"},
            ("get", "/connect/24sevenoffice"): {"200", "303", "400", "403", "404", "409", "422"},
            ("post", "/connect/24sevenoffice/login"): {"200", "303", "400", "403", "404", "409"},
            ("post", "/connect/24sevenoffice/transaction-type"): {
                "200",
                "303",
                "400",
                "403",
                "404",
                "409",
            },
            ("post", "/connect/24sevenoffice/import"): {"200", "303", "400", "403", "404", "409"},
            ("get", "/connect/24sevenoffice/companies/{connection_id}/setup"): {
                "200",
                "303",
                "400",
                "403",
                "404",
                "409",
                "422",
            },
            ("post", "/connect/24sevenoffice/companies/{connection_id}/setup"): {
                "200",
                "303",
                "400",
                "403",
                "404",
                "409",
                "422",
            },
            # The sign-in pages: their refusals are pages (text/html), success a redirect.
            ("get", "/signin"): {"200", "400", "422"},
            ("get", "/signin/{provider}"): {"200", "302", "400", "401", "422"},
            ("get", "/signin/{provider}/callback"): {"200", "303", "400", "401", "422"},
            ("post", "/signout"): {"200", "400", "422"},
            ("get", "/me"): {"200", "401"},
            # The activation pages (issue 13): pages (text/html), redirects between steps.
            ("get", "/activate/link/{token}"): {"200", "303", "404", "410", "422"},
            ("get", "/activate/{provider}/{ref}"): {"200", "303", "404", "410", "422"},
            ("get", "/activate/{provider}/{ref}/status"): {"200", "404", "422"},
            ("get", "/connect/{provider}"): {"200", "303", "404", "422"},
            ("get", "/environments/{subdomain}"): {"200", "303", "404", "422"},
            ("get", "/language/{code}"): {"200", "303", "400", "422"},
            # Netvisor -> planning (seed 000) and Procountor -> planning (seed 001).
            ("get", "/activate/netvisor/{ref}/start"): {"200", "303", "409", "410", "422"},
            ("get", "/activate/netvisor/{ref}/environment"): {
                "200",
                "303",
                "403",
                "404",
                "410",
                "422",
            },
            ("post", "/activate/netvisor/{ref}/environment"): {
                "200",
                "303",
                "400",
                "403",
                "404",
                "410",
                "422",
            },
            ("get", "/activate/netvisor/{ref}/identifiers"): {
                "200",
                "303",
                "403",
                "404",
                "410",
                "422",
            },
            ("post", "/activate/netvisor/{ref}/identifiers"): {
                "200",
                "303",
                "400",
                "403",
                "404",
                "410",
                "422",
            },
            ("get", "/activate/netvisor/{ref}/terms"): {"200", "303", "403", "404", "410", "422"},
            ("post", "/activate/netvisor/{ref}/terms"): {
                "200",
                "303",
                "400",
                "403",
                "404",
                "410",
                "422",
            },
            ("get", "/activate/netvisor/{ref}/done"): {"200", "303", "403", "404", "410", "422"},
            ("get", "/activate/procountor/{ref}/start"): {"200", "303", "403", "404", "410", "422"},
            ("post", "/activate/procountor/{ref}/start"): {
                "200",
                "303",
                "400",
                "403",
                "404",
                "410",
                "422",
            },
            ("get", "/activate/procountor/{ref}/terms"): {"200", "303", "403", "404", "410", "422"},
            ("post", "/activate/procountor/{ref}/terms"): {
                "200",
                "303",
                "400",
                "403",
                "404",
                "410",
                "422",
            },
            ("get", "/activate/procountor/{ref}/scopes"): {
                "200",
                "303",
                "403",
                "404",
                "410",
                "422",
            },
            ("post", "/activate/procountor/{ref}/scopes"): {
                "200",
                "303",
                "400",
                "403",
                "404",
                "410",
                "422",
            },
            ("get", "/activate/procountor/callback"): {"200", "303", "400", "409", "410", "422"},
            ("get", "/activate/procountor/{ref}/company"): {
                "200",
                "303",
                "403",
                "404",
                "410",
                "422",
            },
            ("post", "/activate/procountor/{ref}/company"): {
                "200",
                "303",
                "400",
                "403",
                "404",
                "410",
                "422",
            },
            ("get", "/activate/procountor/{ref}/confirm"): {
                "200",
                "303",
                "403",
                "404",
                "410",
                "422",
            },
            ("post", "/activate/procountor/{ref}/confirm"): {
                "200",
                "303",
                "400",
                "403",
                "404",
                "410",
                "422",
            },
            ("get", "/activate/procountor/{ref}/connected"): {
                "200",
                "303",
                "403",
                "404",
                "410",
                "422",
            },
            ("get", "/activate/procountor/{ref}/finish"): {
                "200",
                "303",
                "403",
                "404",
                "410",
                "422",
            },
            ("put", "/internal/v1/financial-models/{country}/{business_id}"): {
                "204",
                "400",
                "401",
                "422",
            },
        },
    ),
    "importer": (
        create_importer,
        {
            ("get", "/v1/imports/{import_id}"): {"200", "404", "422"},
            ("get", "/v1/imports"): {"200", "422"},
            ("post", "/v1/imports"): {"202", "400", "413", "422"},
            ("get", "/v1/companies/{business_id}/trial-balance"): {"200", "400", "404", "422"},
            ("get", "/v1/companies/{business_id}/profit-and-loss"): {"200", "400", "404", "422"},
            ("get", "/v1/companies/{business_id}/balance-sheet"): {"200", "400", "404", "422"},
            # Issue 14: ledger syncs (status, on request, reset) and balances.
            ("get", "/v1/syncs"): {"200", "422"},
            ("get", "/v1/connections/{connection_id}/sync"): {"200", "404", "422"},
            ("post", "/v1/connections/{connection_id}/sync"): {"202", "404", "409", "422"},
            ("post", "/v1/connections/{connection_id}/sync/reset"): {"202", "404", "409", "422"},
            ("get", "/v1/companies/{business_id}/balances"): {"200", "400", "404", "422"},
        },
    ),
    "journal-exporter": (
        create_journal_exporter,
        {
            ("get", "/v1/journals/{stored_id}"): {"200", "404", "422"},
            ("get", "/v1/journals"): {"200", "422"},
            ("post", "/v1/payroll/mappings"): {"201", "401", "422"},
            ("get", "/v1/payroll/mappings"): {"200", "401", "422"},
            ("get", "/v1/payroll/mappings/{mapping_id}"): {"200", "401", "404", "422"},
            ("put", "/v1/payroll/mappings/{mapping_id}"): {"200", "401", "404", "422"},
            ("post", "/v1/payroll/mappings/{mapping_id}/exports"): {
                "202",
                "400",
                "401",
                "404",
                "422",
                "502",
                "503",
            },
            ("get", "/v1/payroll/mappings/{mapping_id}/status"): {"200", "401", "404", "422"},
            ("get", "/v1/payroll/postings"): {"200", "401", "422"},
            ("get", "/v1/payroll/postings/{posting_id}"): {"200", "401", "404", "422"},
            ("get", "/v1/payroll/evidence.csv"): {"200", "401", "422"},
        },
    ),
}


@pytest.fixture(scope="module", params=sorted(SERVICES))
def service(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    name: str = request.param
    create, _ = SERVICES[name]
    return name, create().openapi()


def test_every_route_documents_the_statuses_it_returns(
    service: tuple[str, dict[str, Any]],
) -> None:
    name, spec = service
    expected = {**OPERATIONS, **SERVICES[name][1]}
    documented = {
        (method, path): set(operation["responses"])
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
    }
    assert documented == expected


def test_error_statuses_document_their_body(service: tuple[str, dict[str, Any]]) -> None:
    _, spec = service
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")):
                    assert response.get("description"), (method, path, status)
                    # JSON for the API, a page for the sign-in routes a browser follows.
                    content = response.get("content", {})
                    assert "application/json" in content or "text/html" in content, (
                        method,
                        path,
                        status,
                    )


def test_metrics_is_documented_as_text(service: tuple[str, dict[str, Any]]) -> None:
    _, spec = service
    content = spec["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(content) == ["text/plain"]
