"""Environments, members, subdomains, terms and organisations through their JSON routes,
on SQLite and PostgreSQL, with people signed in through the session service."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import select

from ledgerlink.auth.config import DEVELOPMENT_SERVICE_TOKEN
from ledgerlink.auth.domain.terms import TermsKind
from ledgerlink.auth.handlers.dependencies import CSRF_HEADER
from ledgerlink.auth.services.access import Conflict
from ledgerlink.auth.services.activation import ActivationService
from ledgerlink.auth.services.terms import TermsService
from ledgerlink.auth.storage.models import Connection, Environment, EnvironmentMember, messaging
from ledgerlink.auth.testing import NOW, Person, Town
from ledgerlink.shared.db import Database, as_utc
from ledgerlink.shared.events import ActivationRequestedV1
from ledgerlink.shared.messaging.outbox import Outbox

VIRTANEN = "0112038-9"


def company(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "country": "FI",
        "business_id": VIRTANEN,
        "official_name": "Virtanen Ääninen Oy",
        "company_email": "Anna@Virtanen-demo.fi",
    }
    body.update(changes)
    return body


async def file_activation(db: Database, requested_by: str) -> uuid.UUID:
    """A SIE-file activation before anyone signed in: an environment with no members."""
    async with db.transaction() as session:
        connection = await ActivationService(session, Outbox(messaging, source="test")).activate(
            ActivationRequestedV1.model_validate(
                {
                    "provider": "sie",
                    "business_id": "01120389",
                    "country": "FI",
                    "company_name": "Virtanen Oy",
                    "requested_by": {"email": requested_by, "name": "Anna"},
                    "product": "planning",
                }
            ),
            event_id=str(uuid.uuid4()),
        )
    assert connection.environment_id is not None
    return connection.environment_id


async def test_a_new_business_id_creates_the_environment_with_the_signer_as_admin(
    town: Town, db: Database
) -> None:
    anna = await town.sign_in("anna@virtanen-demo.fi", "Anna Virtanen")

    response = await anna.client.post("/v1/environments", json=company(business_id="01120389"))

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["outcome"] == "create"
    environment = body["environment"]
    assert environment["business_id"] == VIRTANEN  # the normal form
    assert environment["official_name"] == "Virtanen Ääninen Oy"
    assert environment["company_email"] == "anna@virtanen-demo.fi"
    assert environment["subdomain"] == "virtanen-aaninen-oy"
    assert environment["role"] == "admin"
    async with db.transaction() as session:
        stored = await session.get(Environment, uuid.UUID(environment["id"]))
        [member] = (await session.execute(select(EnvironmentMember))).scalars().all()
    assert stored is not None
    assert stored.created_by == anna.user_id
    assert (member.user_id, member.role.value, member.added_by) == (anna.user_id, "admin", None)
    assert as_utc(member.added_at) == NOW
    members = (await anna.client.get(f"/v1/environments/{environment['id']}/members")).json()
    assert [(m["email"], m["role"]) for m in members] == [("anna@virtanen-demo.fi", "admin")]


async def test_bad_company_input_gets_a_specific_400_or_409(town: Town) -> None:
    anna = await town.sign_in("anna@virtanen-demo.fi")
    wrong_digit = await anna.client.post("/v1/environments", json=company(business_id="0112038-8"))
    assert wrong_digit.status_code == 400
    assert wrong_digit.json()["code"] == "invalid_check_digit"
    assert "0112038-8" in wrong_digit.json()["detail"]

    reserved = await anna.client.post("/v1/environments", json=company(subdomain="api"))
    assert reserved.status_code == 400
    assert reserved.json() == {
        "detail": "This subdomain is reserved by Ledgerlink; choose another.",
        "code": "subdomain_reserved",
    }
    no_email = await anna.client.post("/v1/environments", json=company(company_email="anna"))
    assert no_email.status_code == 422

    await anna.client.post("/v1/environments", json=company(subdomain="virtanen"))
    taken = await anna.client.post(
        "/v1/environments",
        json=company(country="SE", business_id="556036-0793", subdomain="Virtanen"),
    )
    assert taken.status_code == 409
    assert taken.json()["code"] == "subdomain_taken"


async def test_subdomain_suggestion_and_availability(town: Town) -> None:
    anna = await town.sign_in("anna@virtanen-demo.fi")
    suggest = await anna.client.get("/v1/subdomains/suggest", params={"name": "Åkerlund Oy"})
    assert suggest.json() == {"name": "Åkerlund Oy", "subdomain": "akerlund-oy"}
    await anna.client.post("/v1/environments", json=company(official_name="Åkerlund Oy"))
    again = await anna.client.get("/v1/subdomains/suggest", params={"name": "Åkerlund Oy"})
    assert again.json()["subdomain"] == "akerlund-oy-2"

    taken = await anna.client.get(
        "/v1/subdomains/availability", params={"subdomain": "akerlund-oy"}
    )
    assert taken.json() == {
        "subdomain": "akerlund-oy",
        "available": False,
        "message": "This subdomain is already used by another company; choose another.",
    }
    free = await anna.client.get("/v1/subdomains/availability", params={"subdomain": "Fresh-1"})
    assert free.json() == {"subdomain": "fresh-1", "available": True, "message": None}
    bad = await anna.client.get("/v1/subdomains/availability", params={"subdomain": "-x"})
    assert bad.json()["available"] is False


async def test_an_admin_edits_the_environment(town: Town) -> None:
    anna = await town.sign_in("anna@virtanen-demo.fi")
    created = (await anna.client.post("/v1/environments", json=company())).json()
    environment_id = created["environment"]["id"]

    edited = await anna.client.patch(
        f"/v1/environments/{environment_id}",
        json={"official_name": "Virtanen Group Oy", "subdomain": "virtanen"},
    )
    assert edited.status_code == 200
    assert edited.json()["official_name"] == "Virtanen Group Oy"
    assert edited.json()["subdomain"] == "virtanen"
    # Keeping one's own subdomain is not "taken".
    same = await anna.client.patch(
        f"/v1/environments/{environment_id}", json={"subdomain": "virtanen"}
    )
    assert same.status_code == 200


async def test_an_unclaimed_environment_is_claimed_only_explicitly_by_its_requester(
    town: Town, db: Database
) -> None:
    environment_id = await file_activation(db, requested_by="Anna@Virtanen-demo.fi")
    anna = await town.sign_in("anna@virtanen-demo.fi", "Anna Virtanen")
    mallory = await town.sign_in("mallory@example.fi")

    # No silent take-over: an ordinary activation is told to claim.
    plain = await anna.client.post("/v1/environments", json=company())
    assert plain.status_code == 409
    assert plain.json()["code"] == "claim_required"
    # Someone the activation does not name cannot claim it.
    refused = await mallory.client.post("/v1/environments", json=company(claim=True))
    assert refused.status_code == 403
    assert refused.json()["code"] == "claim_refused"
    assert (await mallory.client.get(f"/v1/environments/{environment_id}")).status_code == 404

    claimed = await anna.client.post("/v1/environments", json=company(claim=True))
    assert claimed.status_code == 200, claimed.text
    assert claimed.json()["outcome"] == "claim"
    assert claimed.json()["environment"]["id"] == str(environment_id)
    async with db.transaction() as session:
        stored = await session.get(Environment, environment_id)
    assert stored is not None
    assert (stored.claimed_by, stored.created_by) == (anna.user_id, None)
    assert stored.claimed_at is not None
    assert as_utc(stored.claimed_at) == NOW
    connections = await anna.client.get(f"/v1/environments/{environment_id}/connections")
    assert [c["provider"] for c in connections.json()] == ["sie"]
    # Claimed once: a second claim (by the same e-mail on another account) is an ordinary refusal.
    again = await (await town.sign_in("anna@virtanen-demo.fi")).client.post(
        "/v1/environments", json=company(claim=True)
    )
    assert again.status_code == 409
    assert again.json()["code"] == "refuse"


async def _environment_with(town: Town, *others: str) -> tuple[Person, str, list[Person]]:
    anna = await town.sign_in("anna@virtanen-demo.fi", "Anna Virtanen")
    environment_id = (await anna.client.post("/v1/environments", json=company())).json()[
        "environment"
    ]["id"]
    people = []
    for email in others:
        person = await town.sign_in(email)
        added = await anna.client.post(
            f"/v1/environments/{environment_id}/members", json={"email": email.upper()}
        )
        assert added.status_code == 201, added.text
        assert added.json()["role"] == "member"
        assert added.json()["added_by"] == str(anna.user_id)
        people.append(person)
    return anna, environment_id, people


async def test_members_and_roles_keep_one_admin(town: Town) -> None:
    anna, environment_id, [erik] = await _environment_with(town, "erik@virtanen-demo.fi")
    members = f"/v1/environments/{environment_id}/members"

    unknown = await anna.client.post(members, json={"email": "nobody@virtanen-demo.fi"})
    assert unknown.status_code == 400
    assert unknown.json()["code"] == "unknown_person"
    twice = await anna.client.post(members, json={"email": "erik@virtanen-demo.fi"})
    assert twice.status_code == 409

    demote_self = await anna.client.patch(f"{members}/{anna.user_id}", json={"role": "member"})
    assert demote_self.status_code == 409
    assert demote_self.json()["code"] == "last_admin"
    remove_self = await anna.client.delete(f"{members}/{anna.user_id}")
    assert remove_self.status_code == 409

    promoted = await anna.client.patch(f"{members}/{erik.user_id}", json={"role": "admin"})
    assert promoted.json()["role"] == "admin"
    # With two admins, one may go; then Erik is the last one.
    assert (await erik.client.delete(f"{members}/{anna.user_id}")).status_code == 204
    assert (await anna.client.get(f"/v1/environments/{environment_id}")).status_code == 404
    assert (await erik.client.delete(f"{members}/{erik.user_id}")).status_code == 409
    missing = await erik.client.get(f"{members}/{uuid.uuid4()}")
    assert missing.status_code == 404


async def test_state_changing_requests_need_json_and_the_csrf_header(town: Town) -> None:
    anna, environment_id, _ = await _environment_with(town)
    path = f"/v1/environments/{environment_id}"

    no_header = await anna.client.patch(
        path, json={"official_name": "X"}, headers={CSRF_HEADER: ""}
    )
    assert no_header.status_code == 403
    other_session = await town.sign_in("anna@virtanen-demo.fi")
    wrong = await anna.client.patch(
        path, json={"official_name": "X"}, headers={CSRF_HEADER: other_session.csrf}
    )
    assert wrong.status_code == 403
    form = await anna.client.patch(path, data={"official_name": "X"})
    assert form.status_code == 415
    assert (await anna.client.get(path)).json()["official_name"] == "Virtanen Ääninen Oy"

    # /me hands the page its token.
    me = (await anna.client.get("/me")).json()
    assert me["csrf_token"] == anna.csrf
    anonymous = await town.client().patch(path, json={"official_name": "X"})
    assert anonymous.status_code == 401


async def test_terms_versions_and_acceptances(town: Town, db: Database) -> None:
    anna, environment_id, _ = await _environment_with(town)
    async with db.transaction() as session:
        terms = TermsService(session, lambda: NOW)
        v1 = await terms.publish(TermsKind.TERMS, 1, "Terms of use", text="v1")
        privacy = await terms.publish(
            TermsKind.PRIVACY, 1, "Privacy notice", url="https://ledgerlink.example/privacy"
        )
        with pytest.raises(Conflict):
            await terms.publish(TermsKind.TERMS, 1, "Terms of use", text="again")
    current = (await anna.client.get("/v1/terms/current")).json()
    assert [(d["kind"], d["version"], d["accepted"]) for d in current] == [
        ("privacy", 1, False),
        ("terms", 1, False),
    ]
    accept = {"document_ids": [str(v1.id), str(privacy.id)], "environment_id": environment_id}
    accepted = await anna.client.post("/v1/terms/accept", json=accept)
    assert accepted.status_code == 200
    assert all(d["accepted"] for d in accepted.json())
    # Accepted for the environment, not for herself alone.
    mine = (await anna.client.get("/v1/terms/current")).json()
    assert not any(d["accepted"] for d in mine)

    async with db.transaction() as session:
        v2 = await TermsService(session, lambda: NOW + timedelta(days=1)).publish(
            TermsKind.TERMS, 2, "Terms of use", text="v2", published_at=NOW - timedelta(hours=1)
        )
    now = await anna.client.get("/v1/terms/current", params={"environment_id": environment_id})
    assert [(d["version"], d["accepted"]) for d in now.json()] == [(1, True), (2, False)]
    stale = await anna.client.post("/v1/terms/accept", json=accept)
    assert stale.status_code == 409
    assert stale.json()["code"] == "not_current"
    renewed = await anna.client.post(
        "/v1/terms/accept", json={"document_ids": [str(v2.id)], "environment_id": environment_id}
    )
    assert [d["accepted"] for d in renewed.json()] == [True, True]


async def test_an_organisation_administers_environments_in_divisions(town: Town) -> None:
    anna, environment_id, _ = await _environment_with(town)
    organisation = (
        await anna.client.post("/v1/organisations", json={"name": "Tilitoimisto"})
    ).json()
    assert organisation["role"] == "admin"
    base = f"/v1/organisations/{organisation['id']}"

    division = (await anna.client.post(f"{base}/divisions", json={"name": "Helsinki"})).json()
    duplicate = await anna.client.post(f"{base}/divisions", json={"name": "Helsinki"})
    assert duplicate.status_code == 409
    template = await anna.client.post(
        f"{base}/templates", json={"name": "Bookkeeper", "role": "member", "description": "Books"}
    )
    assert template.status_code == 201
    assert (await anna.client.get(f"{base}/templates")).json()[0]["name"] == "Bookkeeper"

    unknown_division = await anna.client.post(
        f"{base}/administrations",
        json={"environment_id": environment_id, "division_id": str(uuid.uuid4())},
    )
    assert unknown_division.status_code == 400
    added = await anna.client.post(
        f"{base}/administrations",
        json={"environment_id": environment_id, "division_id": division["id"]},
    )
    assert added.status_code == 201
    assert added.json()["business_id"] == VIRTANEN
    assert added.json()["division_id"] == division["id"]
    assert (
        await anna.client.post(f"{base}/administrations", json={"environment_id": environment_id})
    ).status_code == 409
    listed = (await anna.client.get(f"{base}/administrations")).json()
    assert [a["environment_id"] for a in listed] == [environment_id]
    assert [o["name"] for o in (await anna.client.get("/v1/organisations")).json()] == [
        "Tilitoimisto"
    ]


async def test_an_organisation_cannot_take_in_an_environment_its_admin_does_not_administer(
    town: Town,
) -> None:
    _, environment_id, [erik] = await _environment_with(town, "erik@virtanen-demo.fi")
    organisation = (await erik.client.post("/v1/organisations", json={"name": "Erik's"})).json()
    response = await erik.client.post(
        f"/v1/organisations/{organisation['id']}/administrations",
        json={"environment_id": environment_id},
    )
    assert response.status_code == 403
    assert response.json()["code"] == "admin_only"
    stranger = await town.sign_in("olle@elsewhere.se")
    theirs = (await stranger.client.post("/v1/organisations", json={"name": "Olle's"})).json()
    hidden = await stranger.client.post(
        f"/v1/organisations/{theirs['id']}/administrations",
        json={"environment_id": environment_id},
    )
    assert hidden.status_code == 404


def test_a_subdomain_taken_at_the_same_moment_is_a_409_not_a_500() -> None:
    # The service checks the subdomain first; a second person taking it between that check
    # and the commit meets the unique index, which is answered as the same conflict.
    from fastapi import HTTPException
    from sqlalchemy.exc import IntegrityError

    from ledgerlink.auth.handlers.tenancy import _subdomain_race

    taken = IntegrityError(
        "INSERT ...", {}, Exception('duplicate key value violates "ix_environments_subdomain"')
    )
    with pytest.raises(HTTPException) as refused, _subdomain_race():
        raise taken
    assert refused.value.status_code == 409
    assert "subdomain" in str(refused.value.detail)
    other = IntegrityError("INSERT ...", {}, Exception("duplicate key on environment_members"))
    with pytest.raises(IntegrityError), _subdomain_race():
        raise other


async def test_another_services_pages_learn_the_person_and_their_role_per_connection(
    town: Town, db: Database
) -> None:
    anna, environment_id, [erik] = await _environment_with(town, "erik@virtanen-demo.fi")
    maja = await town.sign_in("maja@fabrikam-demo.se")
    # A file activation of Anna's business ID: its connection joins her environment.
    assert await file_activation(db, "anna@virtanen-demo.fi") == uuid.UUID(environment_id)
    async with db.transaction() as session:
        [joined] = (
            await session.execute(
                select(Connection.id).where(Connection.environment_id == uuid.UUID(environment_id))
            )
        ).all()
    unknown = uuid.uuid4()
    service = town.client()
    service.headers["Authorization"] = f"Bearer {DEVELOPMENT_SERVICE_TOKEN.get_secret_value()}"
    cookie_name = town.app.state.web_context.config.sessions.cookie_name

    async def ask(person: Person | None, token: bool = True) -> Any:
        cookie = person.client.cookies[cookie_name] if person else "not-a-session"
        client = service if token else town.client()
        return await client.post(
            "/internal/v1/sessions/resolve",
            json={"cookie": cookie, "connection_ids": [str(joined[0]), str(unknown)]},
        )

    assert (await ask(anna, token=False)).status_code == 401
    assert (await ask(None)).json() == {
        "signed_in": False,
        "person": None,
        "csrf_token": None,
        "connections": [],
    }
    roles = {}
    for person in (anna, erik, maja):
        answer = (await ask(person)).json()
        assert answer["signed_in"] is True
        assert answer["person"]["email"] == person.email
        assert answer["csrf_token"] == person.csrf
        roles[person.email] = {row["connection_id"]: row["role"] for row in answer["connections"]}
    assert roles == {
        "anna@virtanen-demo.fi": {str(joined[0]): "admin", str(unknown): None},
        "erik@virtanen-demo.fi": {str(joined[0]): "member", str(unknown): None},
        "maja@fabrikam-demo.se": {str(joined[0]): None, str(unknown): None},
    }
