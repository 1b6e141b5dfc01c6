"""Who is signed in, asked of auth: the payroll pages sign people in through auth's sessions.

The browser carries auth's session cookie (same site); the pages hand its value to auth's
``POST /internal/v1/sessions/resolve`` with this service's token and get the person, their
role in the environments owning the mapping's connections, and the session's CSRF token.
The cookie's value is never logged or stored here.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

import httpx
from pydantic import BaseModel, SecretStr

__all__ = ["AuthSessions", "AuthUnavailableError", "SignedIn"]

Role = Literal["admin", "member"]


class AuthUnavailableError(Exception):
    """auth could not be asked (the page answers 503, never lets anyone in)."""


class _Person(BaseModel):
    id: uuid.UUID
    email: str
    name: str | None = None


class _Role(BaseModel):
    connection_id: uuid.UUID
    environment_id: uuid.UUID | None = None
    role: Role | None = None


class _Answer(BaseModel):
    signed_in: bool
    person: _Person | None = None
    csrf_token: str | None = None
    connections: list[_Role] = []


@dataclass(frozen=True)
class SignedIn:
    """The signed-in person and their role per asked connection (None: not a member)."""

    person_id: uuid.UUID
    email: str
    name: str
    csrf_token: str
    roles: dict[uuid.UUID, Role | None]

    def role_over(self, *connection_ids: uuid.UUID) -> Role | None:
        """The person's role over all of ``connection_ids`` (the weakest; None when they
        are not a member of the environment owning one of them)."""
        roles = [self.roles.get(connection_id) for connection_id in connection_ids]
        if any(role is None for role in roles):
            return None
        return "member" if "member" in roles else "admin"


class AuthSessions:
    """auth's session look-up over HTTP with this service's token."""

    def __init__(
        self,
        auth_url: str,
        token: SecretStr,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._url = auth_url.rstrip("/") + "/internal/v1/sessions/resolve"
        self._token = token
        self._http = httpx.AsyncClient(timeout=10.0, transport=transport)

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._http.aclose()

    async def resolve(
        self, cookie: str, connection_ids: Collection[uuid.UUID] = ()
    ) -> SignedIn | None:
        """The person of a session cookie (None: nobody usable is signed in)."""
        try:
            response = await self._http.post(
                self._url,
                json={"cookie": cookie, "connection_ids": [str(c) for c in set(connection_ids)]},
                headers={"Authorization": f"Bearer {self._token.get_secret_value()}"},
            )
        except httpx.TransportError as exc:
            raise AuthUnavailableError(f"auth could not be reached: {type(exc).__name__}") from None
        if response.status_code != 200:
            raise AuthUnavailableError(f"auth answered {response.status_code}")
        answer = _Answer.model_validate_json(response.content)
        if not answer.signed_in or answer.person is None or answer.csrf_token is None:
            return None
        return SignedIn(
            person_id=answer.person.id,
            email=answer.person.email,
            name=answer.person.name or answer.person.email,
            csrf_token=answer.csrf_token,
            roles={row.connection_id: row.role for row in answer.connections},
        )
