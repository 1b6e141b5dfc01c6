"""Terms before environments, publishing terms (route and CLI), organisation members, and
revocation by a signed-in environment admin."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlmodel import col

from ledgerlink.auth.__main__ import operator_command
from ledgerlink.auth.config import Config
from ledgerlink.auth.domain.terms import (
    NotCurrentError,
    Published,
    TermsKind,
    TermsRequiredError,
    check_terms_accepted,
)
from ledgerlink.auth.services.activation import ActivationService
from ledgerlink.auth.services.terms import TermsService
from ledgerlink.auth.storage.models import ConnectionSecret, TermsDocument, messaging
from ledgerlink.auth.testing import NOW, Person, Town
from ledgerlink.shared.db import Database
from ledgerlink.shared.events import ActivationRequestedV1
from ledgerlink.shared.messaging.outbox import Outbox

VIRTANEN = "0112038-9"
T = datetime(2027, 1, 1, tzinfo=UTC)
OPERATOR = "operator-service-token-0123456789abcdef"
IMPORTER = "importer-service-token-0123456789abcdef"


def company(**changes: Any) -> dict[str, Any]:
    body = {
        "country": "FI",
        "business_id": VIRTANEN,
        "official_name": "Virtanen Oy",
        "company_email": "anna@virtanen-demo.fi",
    }
    body.update(changes)
    return body


def doc(kind: TermsKind, version: int) -> Published:
    return Published(uuid.uuid4(), kind, version, T)


# -- the rule -----------------------------------------------------------------------------------


def test_the_current_versions_must_be_accepted_recorded_or_offered() -> None:
    terms, privacy = doc(TermsKind.TERMS, 2), doc(TermsKind.PRIVACY, 1)
    current = {TermsKind.TERMS: terms, TermsKind.PRIVACY: privacy}
    assert check_terms_accepted({}, set()) == []  # nothing published, nothing required
    assert check_terms_accepted(current, {terms.id, privacy.id}) == []
    assert check_terms_accepted(current, {terms.id}, [privacy.id, privacy.id]) == [privacy.id]
    with pytest.raises(TermsRequiredError) as missing:
        check_terms_accepted(current, {terms.id})
    assert missing.value.missing == [privacy]
    assert f"privacy notice version 1 (id {privacy.id})" in str(missing.value)
    with pytest.raises(NotCurrentError):
        check_terms_accepted(current, set(), [uuid.uuid4(), terms.id, privacy.id])


# -- environments -------------------------------------------------------------------------------


async def publish(db: Database, kind: TermsKind, version: int, **when: Any) -> TermsDocument:
    async with db.transaction() as session:
        return await TermsService(session, lambda: NOW).publish(
            kind, version, f"{kind.value} v{version}", text=f"v{version}", **when
        )


async def test_creating_an_environment_needs_the_current_terms(town: Town, db: Database) -> None:
    terms = await publish(db, TermsKind.TERMS, 1)
    privacy = await publish(db, TermsKind.PRIVACY, 1)
    anna = await town.sign_in("anna@virtanen-demo.fi", "Anna Virtanen")

    refused = await anna.client.post("/v1/environments", json=company())
    assert refused.status_code == 409
    assert refused.json()["code"] == "terms_required"
    assert f"terms of use version 1 (id {terms.id})" in refused.json()["detail"]
    assert f"privacy notice version 1 (id {privacy.id})" in refused.json()["detail"]
    assert (await anna.client.get("/v1/environments")).json() == []  # nothing was created

    half = await anna.client.post("/v1/environments", json=company(accepted_terms=[str(terms.id)]))
    assert half.status_code == 409
    assert str(privacy.id) in half.json()["detail"]
    assert str(terms.id) not in half.json()["detail"]

    created = await anna.client.post(
        "/v1/environments", json=company(accepted_terms=[str(terms.id), str(privacy.id)])
    )
    assert created.status_code == 201, created.text
    environment_id = created.json()["environment"]["id"]
    # Recorded for that environment, with the environment.
    current = await anna.client.get("/v1/terms/current", params={"environment_id": environment_id})
    assert [item["accepted"] for item in current.json()] == [True, True]

    # Joining (an admin's next activation) needs nothing more while they stay current...
    assert (await anna.client.post("/v1/environments", json=company())).status_code == 200
    # ...but a newer version does: the join names it, and offering it records it.
    terms_2 = await publish(db, TermsKind.TERMS, 2)
    stale = await anna.client.post("/v1/environments", json=company())
    assert stale.status_code == 409
    assert f"terms of use version 2 (id {terms_2.id})" in stale.json()["detail"]
    old = await anna.client.post("/v1/environments", json=company(accepted_terms=[str(terms.id)]))
    assert old.json()["code"] == "not_current"
    joined = await anna.client.post(
        "/v1/environments", json=company(accepted_terms=[str(terms_2.id)])
    )
    assert joined.status_code == 200
    assert joined.json()["outcome"] == "join"


async def test_admin_actions_that_grant_access_need_the_current_terms(
    town: Town, db: Database
) -> None:
    anna = await town.sign_in("anna@virtanen-demo.fi", "Anna Virtanen")
    erik = await town.sign_in("erik@virtanen-demo.fi", "Erik")
    await town.sign_in("olle@virtanen-demo.fi", "Olle")
    environment_id = (await anna.client.post("/v1/environments", json=company())).json()[
        "environment"
    ]["id"]
    members = f"/v1/environments/{environment_id}/members"
    assert (await anna.client.post(members, json={"email": erik.email})).status_code == 201
    terms = await publish(db, TermsKind.TERMS, 1)

    for refused in (
        await anna.client.post(members, json={"email": "olle@virtanen-demo.fi"}),
        await anna.client.patch(f"{members}/{erik.user_id}", json={"role": "admin"}),
    ):
        assert refused.status_code == 409
        assert refused.json()["code"] == "terms_required"
        assert str(terms.id) in refused.json()["detail"]
    # Taking access away never waits for the terms.
    assert (
        await anna.client.patch(f"{members}/{erik.user_id}", json={"role": "member"})
    ).status_code == 200
    accepted = await anna.client.post(
        "/v1/terms/accept",
        json={"document_ids": [str(terms.id)], "environment_id": environment_id},
    )
    assert accepted.status_code == 200
    assert (
        await anna.client.post(members, json={"email": "olle@virtanen-demo.fi"})
    ).status_code == 201
    assert (await anna.client.delete(f"{members}/{erik.user_id}")).status_code == 204


# -- publishing ---------------------------------------------------------------------------------


def config_with_tokens(database_url: str | None = None) -> Config:
    values: dict[str, Any] = {
        "service_tokens": {"operator": OPERATOR, "importer": IMPORTER},
    }
    if database_url is not None:
        values["database"] = {"url": database_url}
    return Config(**values)


async def test_operators_publish_terms_through_the_internal_route(db: Database) -> None:
    import httpx
    from fastapi import FastAPI

    from ledgerlink.auth.factory import build_components
    from ledgerlink.auth.handlers.internal_http import register_internal_routes
    from ledgerlink.auth.storage.vendor_oauth import VendorOAuthClient

    async with httpx.AsyncClient() as vendor_http:
        components = build_components(
            config_with_tokens(),
            db,
            Outbox(messaging, source="ledgerlink/auth"),
            VendorOAuthClient(vendor_http),
            clock=lambda: NOW,
        )
        app = FastAPI()
        register_internal_routes(components, app)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://auth"
        ) as client:
            body = {"kind": "terms", "version": 3, "title": "Terms of use", "text": "Be kind."}
            as_importer = await client.post(
                "/internal/v1/terms", json=body, headers={"Authorization": f"Bearer {IMPORTER}"}
            )
            assert as_importer.status_code == 403
            assert as_importer.json()["detail"]["reason_code"] == "not_a_publisher"
            anonymous = await client.post("/internal/v1/terms", json=body)
            assert anonymous.status_code == 401
            operator = {"Authorization": f"Bearer {OPERATOR}"}
            published = await client.post("/internal/v1/terms", json=body, headers=operator)
            assert published.status_code == 201, published.text
            assert published.json()["version"] == 3
            assert published.json()["published_at"].startswith("2027-03-01T12:00:00")
            # Immutable: the same version again (or a lower one) is refused, and there is
            # no route that changes or deletes a version.
            again = await client.post(
                "/internal/v1/terms", json={**body, "text": "Changed."}, headers=operator
            )
            assert again.status_code == 409
            assert again.json()["detail"]["reason_code"] == "version_exists"
            both = await client.post(
                "/internal/v1/terms",
                json={**body, "version": 4, "url": "https://ledgerlink.example/terms"},
                headers=operator,
            )
            assert both.status_code == 400
            assert both.json()["detail"]["reason_code"] == "text_or_url"
            bad = await client.post(
                "/internal/v1/terms", json={**body, "version": 0}, headers=operator
            )
            assert bad.status_code == 422
    async with db.transaction() as session:
        [stored] = (await session.execute(select(TermsDocument))).scalars().all()
        assert stored.text == "Be kind."


async def test_the_cli_publishes_a_version(
    db: Database,
    database_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("ledgerlink.auth.__main__.configure_logging", lambda *_: None)
    text = tmp_path / "privacy.txt"
    text.write_text("Wir speichern nichts Überflüssiges.", encoding="utf-8")
    cfg = config_with_tokens(database_url)
    later = (NOW + timedelta(days=30)).isoformat()
    arguments = ["terms", "publish", "--kind", "privacy", "--version", "2", "--title", "Privacy"]
    code = await asyncio.to_thread(
        operator_command, [*arguments, "--text-file", str(text), "--published-at", later], cfg
    )
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert (printed["kind"], printed["version"]) == ("privacy", 2)
    assert printed["published_at"].startswith(later[:19])
    again = await asyncio.to_thread(
        operator_command, [*arguments, "--url", "https://ledgerlink.example/p"], cfg
    )
    assert again == 1
    assert json.loads(capsys.readouterr().out)["error"] == "version_exists"
    async with db.transaction() as session:
        [stored] = (await session.execute(select(TermsDocument))).scalars().all()
        assert stored.text == "Wir speichern nichts Überflüssiges."


# -- organisation members -----------------------------------------------------------------------


async def test_organisation_members_keep_one_admin(town: Town) -> None:
    anna = await town.sign_in("anna@byra-demo.se", "Anna")
    erik = await town.sign_in("erik@byra-demo.se", "Erik")
    organisation = (await anna.client.post("/v1/organisations", json={"name": "Byrå"})).json()
    members = f"/v1/organisations/{organisation['id']}/members"
    unknown = await anna.client.post(members, json={"email": "nobody@byra-demo.se"})
    assert unknown.status_code == 400
    assert unknown.json()["code"] == "unknown_person"
    added = await anna.client.post(members, json={"email": "ERIK@byra-demo.se"})
    assert added.status_code == 201
    assert (added.json()["email"], added.json()["role"]) == (erik.email, "member")
    assert (await anna.client.post(members, json={"email": erik.email})).json()[
        "code"
    ] == "already_member"
    assert (await erik.client.get("/v1/organisations")).json()[0]["id"] == organisation["id"]

    last = await anna.client.patch(f"{members}/{anna.user_id}", json={"role": "member"})
    assert last.status_code == 409
    assert last.json()["code"] == "last_admin"
    assert "organisation must keep at least one admin" in last.json()["detail"]
    assert (await anna.client.delete(f"{members}/{anna.user_id}")).status_code == 409
    promoted = await anna.client.patch(f"{members}/{erik.user_id}", json={"role": "admin"})
    assert promoted.json()["role"] == "admin"
    assert (await erik.client.delete(f"{members}/{anna.user_id}")).status_code == 204
    listed = (await erik.client.get(members)).json()
    assert [(m["email"], m["role"]) for m in listed] == [(erik.email, "admin")]
    assert (await anna.client.get(members)).status_code == 404  # no longer a member


# -- revocation by a signed-in admin ------------------------------------------------------------


async def test_a_signed_in_admin_revokes_a_connection(town: Town, db: Database) -> None:
    anna = await town.sign_in("anna@virtanen-demo.fi", "Anna Virtanen")
    erik = await town.sign_in("erik@virtanen-demo.fi", "Erik")
    environment_id = (await anna.client.post("/v1/environments", json=company())).json()[
        "environment"
    ]["id"]
    await anna.client.post(f"/v1/environments/{environment_id}/members", json={"email": erik.email})
    async with db.transaction() as session:
        connection = await ActivationService(session, Outbox(messaging, source="test")).activate(
            ActivationRequestedV1.model_validate(
                {
                    "provider": "netvisor",
                    "business_id": VIRTANEN,
                    "country": "FI",
                    "company_name": "Virtanen Oy",
                    "requested_by": {"email": "anna@virtanen-demo.fi", "name": "Anna"},
                    "product": "planning",
                }
            ),
            event_id=str(uuid.uuid4()),
        )
    assert str(connection.environment_id) == environment_id
    path = f"/v1/connections/{connection.id}"

    no_csrf = await anna.client.delete(path, headers={"X-CSRF-Token": "wrong"})
    assert no_csrf.status_code == 403
    anonymous = await town.client().delete(path)
    assert anonymous.status_code == 401
    member = await erik.client.delete(path)
    assert member.status_code == 403
    assert member.json()["code"] == "admin_only"
    stranger: Person = await town.sign_in("olle@elsewhere.fi")
    assert (await stranger.client.delete(path)).status_code == 404
    assert (await anna.client.get(path)).json()["status"] == connection.status.value

    revoked = await anna.client.delete(path)
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["connection"]["status"] == "revoked"
    assert revoked.json()["vendor_revocation"] == "not_supported"
    async with db.transaction() as session:
        count = await session.execute(
            select(func.count())
            .select_from(ConnectionSecret)
            .where(col(ConnectionSecret.connection_id) == connection.id)
        )
        assert count.scalar_one() == 0
        events = (
            await session.execute(
                select(messaging.outbox.c.event_type).order_by(messaging.outbox.c.id)
            )
        ).scalars()
        assert list(events)[-1] == "ledgerlink.connection.revoked.v1"
