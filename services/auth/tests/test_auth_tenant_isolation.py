"""Tenant isolation, a test per route: a person who is not a member of an environment (or
organisation) can neither see nor change it or its connections (404, never a hint that it
exists); a member trying an admin-only action gets 403 naming the admins; the admin
succeeds. After every refusal the environment is exactly as before."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from ledgerlink.auth.domain.terms import TermsKind
from ledgerlink.auth.services.activation import ActivationService
from ledgerlink.auth.services.terms import TermsService
from ledgerlink.auth.storage.models import messaging
from ledgerlink.auth.testing import NOW, Person, Town
from ledgerlink.shared.db import Database
from ledgerlink.shared.events import ActivationRequestedV1
from ledgerlink.shared.messaging.outbox import Outbox

SAAB = "556036-0793"


@dataclass
class World:
    anna: Person  # admin of Saab's environment and of the accounting office
    erik: Person  # member of both
    olle: Person  # a stranger to both
    environment: str
    organisation: str
    connection: str
    terms: str

    def ids(self) -> dict[str, str]:
        return {
            "env": self.environment,
            "org": self.organisation,
            "conn": self.connection,
            "anna": str(self.anna.user_id),
            "erik": str(self.erik.user_id),
            "terms": self.terms,
        }


async def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


@pytest.fixture
async def world(db: Database, town: Town) -> World:
    anna = await town.sign_in("anna@saab-demo.se", "Anna Lind")
    erik = await town.sign_in("erik@saab-demo.se", "Erik Berg")
    olle = await town.sign_in("olle@elsewhere.se", "Olle Ek")
    created = await _ok(
        await anna.client.post(
            "/v1/environments",
            json={
                "country": "SE",
                "business_id": SAAB,
                "official_name": "Saab AB",
                "company_email": "anna@saab-demo.se",
            },
        ),
        201,
    )
    environment = created["environment"]["id"]
    await _ok(
        await anna.client.post(
            f"/v1/environments/{environment}/members", json={"email": erik.email}
        ),
        201,
    )
    organisation = (
        await _ok(await anna.client.post("/v1/organisations", json={"name": "Byrå AB"}), 201)
    )["id"]
    await _ok(
        await anna.client.post(
            f"/v1/organisations/{organisation}/members", json={"email": erik.email}
        ),
        201,
    )
    async with db.transaction() as session:
        connection = await ActivationService(session, Outbox(messaging, source="test")).activate(
            ActivationRequestedV1.model_validate(
                {
                    "provider": "sie",
                    "business_id": SAAB,
                    "country": "SE",
                    "company_name": "Saab AB",
                    "requested_by": {"email": "anna@saab-demo.se", "name": "Anna"},
                    "product": "planning",
                }
            ),
            event_id=str(uuid.uuid4()),
        )
        terms = await TermsService(session, lambda: NOW).publish(
            TermsKind.TERMS, 1, "Terms of use", text="Be nice."
        )
    assert str(connection.environment_id) == environment
    # Anna accepts the current terms for the environment: adding members, promoting and
    # attaching it to an organisation need them (test_auth_terms_gate.py shows the refusal).
    await _ok(
        await anna.client.post(
            "/v1/terms/accept",
            json={"document_ids": [str(terms.id)], "environment_id": environment},
        )
    )
    return World(anna, erik, olle, environment, organisation, str(connection.id), str(terms.id))


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    body: dict[str, Any] | None = None
    #: What the admin gets.
    admin: int = 200
    #: What a member gets: 403 for admin-only actions.
    member: int = 200


ROUTES = {
    "get environment": Route("GET", "/v1/environments/{env}"),
    "edit environment": Route(
        "PATCH", "/v1/environments/{env}", {"official_name": "Hijacked AB"}, member=403
    ),
    "environment connections": Route("GET", "/v1/environments/{env}/connections"),
    "list members": Route("GET", "/v1/environments/{env}/members"),
    "add member": Route(
        "POST",
        "/v1/environments/{env}/members",
        {"email": "olle@elsewhere.se", "role": "admin"},
        admin=201,
        member=403,
    ),
    "get member": Route("GET", "/v1/environments/{env}/members/{anna}"),
    "change role": Route(
        "PATCH", "/v1/environments/{env}/members/{erik}", {"role": "admin"}, member=403
    ),
    "remove member": Route(
        "DELETE", "/v1/environments/{env}/members/{erik}", admin=204, member=403
    ),
    "get connection": Route("GET", "/v1/connections/{conn}"),
    "current terms of the environment": Route("GET", "/v1/terms/current?environment_id={env}"),
    "accept terms for the environment": Route(
        "POST", "/v1/terms/accept", {"document_ids": ["{terms}"], "environment_id": "{env}"}
    ),
    "list administrations": Route("GET", "/v1/organisations/{org}/administrations"),
    "add administration": Route(
        "POST",
        "/v1/organisations/{org}/administrations",
        {"environment_id": "{env}"},
        admin=201,
        member=403,
    ),
    "list divisions": Route("GET", "/v1/organisations/{org}/divisions"),
    "add division": Route(
        "POST", "/v1/organisations/{org}/divisions", {"name": "Stockholm"}, admin=201, member=403
    ),
    "list templates": Route("GET", "/v1/organisations/{org}/templates"),
    "list organisation members": Route("GET", "/v1/organisations/{org}/members"),
    "add organisation member": Route(
        "POST",
        "/v1/organisations/{org}/members",
        {"email": "olle@elsewhere.se", "role": "member"},
        admin=201,
        member=403,
    ),
    "change organisation role": Route(
        "PATCH", "/v1/organisations/{org}/members/{erik}", {"role": "admin"}, member=403
    ),
    "remove organisation member": Route(
        "DELETE", "/v1/organisations/{org}/members/{erik}", admin=204, member=403
    ),
    "revoke connection": Route("DELETE", "/v1/connections/{conn}", member=403),
    "add template": Route(
        "POST",
        "/v1/organisations/{org}/templates",
        {"name": "Controller", "role": "member"},
        admin=201,
        member=403,
    ),
}


def _fill(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**ids)
    if isinstance(value, list):
        return [_fill(item, ids) for item in value]
    if isinstance(value, dict):
        return {key: _fill(item, ids) for key, item in value.items()}
    return value


async def _call(person: Person, route: Route, ids: dict[str, str]) -> httpx.Response:
    return await person.client.request(
        route.method, _fill(route.path, ids), json=_fill(route.body, ids)
    )


async def _state(world: World) -> Any:
    """Everything the refused calls could have touched, as the admin sees it."""
    ids = world.ids()
    client = world.anna.client
    return [
        (await client.get(_fill(path, ids))).json()
        for path in (
            "/v1/environments/{env}",
            "/v1/environments/{env}/members",
            "/v1/environments/{env}/connections",
            "/v1/organisations/{org}/administrations",
            "/v1/organisations/{org}/divisions",
            "/v1/organisations/{org}/templates",
            "/v1/organisations/{org}/members",
        )
    ]


@pytest.mark.parametrize("name", sorted(ROUTES))
async def test_route_isolates_tenants(name: str, world: World) -> None:
    route = ROUTES[name]
    ids = world.ids()
    before = await _state(world)

    stranger = await _call(world.olle, route, ids)
    assert stranger.status_code == 404, stranger.text
    assert stranger.json()["detail"].startswith("no ")
    # The answer is the same as for an id that does not exist at all.
    missing = {**ids, "env": str(uuid.uuid4()), "org": str(uuid.uuid4()), "conn": str(uuid.uuid4())}
    assert (await _call(world.olle, route, missing)).status_code == 404
    assert await _state(world) == before

    member = await _call(world.erik, route, ids)
    assert member.status_code == route.member, member.text
    if route.member == 403:
        assert member.json()["code"] == "admin_only"
        assert "Anna Lind <anna@saab-demo.se>" in member.json()["detail"]
        assert await _state(world) == before

    admin = await _call(world.anna, route, ids)
    assert admin.status_code == route.admin, admin.text


async def test_lists_show_a_stranger_nothing_of_other_tenants(world: World) -> None:
    olle = world.olle.client
    assert await _ok(await olle.get("/v1/environments")) == []
    assert await _ok(await olle.get("/v1/organisations")) == []
    assert await _ok(await olle.get("/v1/connections", params={"business_id": SAAB})) == []
    erik = await _ok(await world.erik.client.get("/v1/connections", params={"business_id": SAAB}))
    assert [body["id"] for body in erik] == [world.connection]
    [mine] = await _ok(await world.erik.client.get("/v1/environments"))
    assert (mine["id"], mine["role"]) == (world.environment, "member")


@pytest.mark.parametrize("who", ["erik", "olle"])
async def test_an_activation_by_a_non_admin_is_refused_naming_the_admins(
    who: str, world: World
) -> None:
    person: Person = getattr(world, who)
    response = await person.client.post(
        "/v1/environments",
        json={
            "country": "SE",
            "business_id": "5560360793",
            "official_name": "Saab",
            "company_email": person.email,
        },
    )
    assert response.status_code == 409
    assert response.json()["code"] == "refuse"
    assert (
        "Ask an admin of this environment: Anna Lind <anna@saab-demo.se>."
        in (response.json()["detail"])
    )
    joined = await world.anna.client.post(
        "/v1/environments",
        json={
            "country": "SE",
            "business_id": "5560360793",
            "official_name": "Saab",
            "company_email": "anna@saab-demo.se",
        },
    )
    assert joined.status_code == 200
    assert joined.json()["outcome"] == "join"
    assert joined.json()["environment"]["id"] == world.environment
