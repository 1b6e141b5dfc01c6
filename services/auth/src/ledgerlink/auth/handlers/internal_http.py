"""The internal HTTP API of auth (service tokens only): credentials, authorization results,
and revocation. Thin: each route is one service call and its error mapping."""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, FastAPI, Header, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from ledgerlink.auth.domain.environments import Action
from ledgerlink.auth.domain.lifecycle import InvalidTransitionError
from ledgerlink.auth.domain.terms import TermsKind
from ledgerlink.auth.factory import AuthComponents
from ledgerlink.auth.handlers.dependencies import People
from ledgerlink.auth.handlers.http import ConnectionPublic
from ledgerlink.auth.services.access import AccessRefused
from ledgerlink.auth.services.environments import EnvironmentService
from ledgerlink.auth.services.lifecycle import (
    AuthorizationResult,
    LifecycleError,
    LifecycleService,
)
from ledgerlink.auth.services.sessions import ActiveSession
from ledgerlink.auth.services.terms import TermsService
from ledgerlink.auth.services.token_service import CredentialError, IssuedCredential
from ledgerlink.auth.storage.models import TermsDocument
from ledgerlink.shared.db import UtcDatetime
from ledgerlink.shared.runtime import error_responses

__all__ = ["register_internal_routes", "service_token_guard"]


class CredentialRequest(BaseModel):
    """Optional body of a credential request."""

    model_config = ConfigDict(extra="forbid")

    refused_token_sha256: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="SHA-256 (hex) of an access token the vendor just refused (HTTP 401): "
        "if it is still the current one, it is renewed.",
    )


class CredentialAnswer(BaseModel):
    """What a connector needs right now. Only this answer ever carries secrets in clear."""

    connection_id: uuid.UUID
    provider: str
    kind: str = Field(description="bearer, netvisor, twentyfour_session or nmbrs_token")
    expires_at: datetime | None
    secrets: dict[str, str]
    attributes: dict[str, Any]

    @classmethod
    def of(cls, issued: IssuedCredential) -> CredentialAnswer:
        return cls(
            connection_id=issued.connection_id,
            provider=issued.provider,
            kind=issued.kind,
            expires_at=issued.expires_at,
            secrets={name: value.get_secret_value() for name, value in issued.secrets.items()},
            attributes=dict(issued.attributes),
        )


class PublishTerms(BaseModel):
    """A new version of the terms of use or the privacy notice (immutable once published)."""

    model_config = ConfigDict(extra="forbid")

    kind: TermsKind
    version: int = Field(ge=1, description="Higher than every earlier version of its kind.")
    title: str = Field(min_length=1, max_length=300)
    text: str | None = Field(default=None, min_length=1, max_length=200_000)
    url: str | None = Field(default=None, pattern=r"^https?://", max_length=2000)
    published_at: UtcDatetime | None = Field(
        default=None,
        description="When it becomes current (default: now; a future date schedules it).",
    )


class PublishedTerms(BaseModel):
    """A published version."""

    id: uuid.UUID
    kind: TermsKind
    version: int
    title: str
    text: str | None
    url: str | None
    published_at: UtcDatetime

    @classmethod
    def of(cls, document: TermsDocument) -> PublishedTerms:
        return cls(
            id=document.id,
            kind=document.kind,
            version=document.version,
            title=document.title,
            text=document.text,
            url=document.url,
            published_at=document.published_at,
        )


class SessionQuestion(BaseModel):
    """Another service's pages ask who a browser's session cookie belongs to, and what
    the person is in the environments owning some connections."""

    model_config = ConfigDict(extra="forbid")

    cookie: SecretStr = Field(description="The value of the browser's session cookie.")
    connection_ids: list[uuid.UUID] = Field(default_factory=list, max_length=1000)


class ConnectionRole(BaseModel):
    """The person's role in the environment owning a connection (None: not a member, or
    no such connection)."""

    connection_id: uuid.UUID
    environment_id: uuid.UUID | None
    role: Literal["admin", "member"] | None


class SessionPerson(BaseModel):
    """Who is signed in."""

    id: uuid.UUID
    email: str
    name: str | None


class SessionAnswer(BaseModel):
    """The session's person, their role per asked connection, and the session's CSRF
    token (for the asking service's forms); ``signed_in`` false: no usable session."""

    signed_in: bool
    person: SessionPerson | None = None
    csrf_token: str | None = None
    connections: list[ConnectionRole] = Field(default_factory=list)


class RevocationAnswer(BaseModel):
    """The revoked connection and what the vendor said."""

    connection: ConnectionPublic
    vendor_revocation: Literal["revoked", "not_supported", "failed"]


def service_token_guard(tokens: Mapping[str, SecretStr]) -> Any:
    """A dependency: the calling service's name, or 401.

    Every configured token is compared (in constant time each), so the time taken does not
    tell which one nearly matched.
    """
    known = [(name, token.get_secret_value().encode()) for name, token in tokens.items()]

    async def caller(authorization: Annotated[str | None, Header()] = None) -> str:
        presented = b""
        if authorization is not None and authorization[:7].lower() == "bearer ":
            presented = authorization[7:].strip().encode()
        found: str | None = None
        for name, token in known:
            if hmac.compare_digest(presented, token) and presented:
                found = name
        if found is None:
            raise HTTPException(
                401,
                "a service token is required (Authorization: Bearer ...)",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return found

    return caller


def revoker_guard(tokens: Mapping[str, SecretStr], people: People | None) -> Any:
    """A dependency for revocation: a service token (then None), or a signed-in person with
    the CSRF header (then their session); the environment-admin check follows in the route.
    """
    service = service_token_guard(tokens)

    async def revoker(
        request: Request, authorization: Annotated[str | None, Header()] = None
    ) -> ActiveSession | None:
        if authorization is not None and authorization[:7].lower() == "bearer ":
            await service(authorization)
            return None
        if people is None:
            raise HTTPException(
                401,
                "a service token or a signed-in environment admin is required",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return await people.writer(request)

    return revoker


def _problem(status: int, reason_code: str, message: str) -> JSONResponse:
    return JSONResponse(
        {"detail": {"reason_code": reason_code, "message": message}},
        status_code=status,
        headers={"Cache-Control": "no-store"},
    )


#: Every guarded route answers 401 without a valid service token.
_GUARDED: dict[int, str] = {401: "No or an unknown service token (Authorization: Bearer)."}


def build_internal_router(components: AuthComponents, people: People | None = None) -> APIRouter:
    """The service-token-protected routes, and revocation (service token or a signed-in
    environment admin: ``people`` resolves the latter; without it, service tokens only)."""
    guard = Depends(service_token_guard(components.config.service_tokens))
    internal = APIRouter(prefix="/internal/v1", tags=["internal"], dependencies=[guard])
    public = APIRouter(prefix="/v1", tags=["connections"])
    revoker = Depends(revoker_guard(components.config.service_tokens, people))

    # The answer rendered once per issued credential: a warm request is then a cache hit
    # and a copy of bytes (the hot path of the token service).
    rendered: dict[uuid.UUID, tuple[IssuedCredential, bytes]] = {}

    def forget(connection_id: uuid.UUID) -> None:
        rendered.pop(connection_id, None)

    components.credentials.forget_listeners.append(forget)

    @internal.post(
        "/connections/{connection_id}/credentials",
        response_model=CredentialAnswer,
        responses=error_responses(
            {
                **_GUARDED,
                404: "No connection with this id.",
                409: "The connection cannot be used now (needs_reauth, revoked, pending, ...).",
                502: "The vendor refused to renew the credential.",
                503: "The vendor could not be reached; ask again later.",
            }
        ),
    )
    async def credentials(
        connection_id: uuid.UUID, body: Annotated[CredentialRequest | None, Body()] = None
    ) -> Any:
        try:
            issued = await components.credentials.credentials(
                connection_id, refused_sha256=body.refused_token_sha256 if body else None
            )
        except CredentialError as error:
            rendered.pop(connection_id, None)
            return _problem(error.status, error.reason_code, error.message)
        known = rendered.get(connection_id)
        if known is None or known[0] is not issued:
            known = (issued, CredentialAnswer.of(issued).model_dump_json().encode())
            rendered[connection_id] = known
        return Response(
            known[1], media_type="application/json", headers={"Cache-Control": "no-store"}
        )

    @internal.post(
        "/sessions/resolve",
        response_model=SessionAnswer,
        responses=error_responses({**_GUARDED}),
    )
    async def resolve_session(body: SessionQuestion) -> Any:
        # The payroll pages of the journal exporter sign people in through auth's sessions.
        if people is None:
            return SessionAnswer(signed_in=False)
        found = await people.session_of_cookie(body.cookie.get_secret_value())
        if found is None:
            return SessionAnswer(signed_in=False)
        active, csrf = found
        async with components.db.transaction() as session:
            memberships = await EnvironmentService(
                session, components.clock
            ).memberships_for_connections(active.user, body.connection_ids)
        return SessionAnswer(
            signed_in=True,
            person=SessionPerson(id=active.user.id, email=active.user.email, name=active.user.name),
            csrf_token=csrf,
            connections=[
                ConnectionRole(
                    connection_id=connection_id,
                    environment_id=membership.environment.id if membership else None,
                    role=membership.role.value if membership else None,
                )
                for connection_id, membership in memberships.items()
            ],
        )

    @internal.post(
        "/connections/{connection_id}/authorization/start",
        response_model=ConnectionPublic,
        responses=error_responses(
            {**_GUARDED, 404: "No connection with this id.", 409: "Not authorisable now."}
        ),
    )
    async def start_authorization(connection_id: uuid.UUID) -> Any:
        try:
            async with components.db.transaction() as session:
                connection = await LifecycleService(
                    session, components.outbox, clock=components.clock
                ).begin_authorization(connection_id)
        except LifecycleError as error:
            return _problem(error.status, error.reason_code, error.message)
        components.credentials.on_commit()
        return ConnectionPublic.of(connection)

    @internal.post(
        "/connections/{connection_id}/authorization",
        response_model=ConnectionPublic,
        responses=error_responses(
            {
                **_GUARDED,
                404: "No connection with this id.",
                409: "Not authorisable now, or another vendor account than the first one.",
                422: "The authorization result does not fit the connection's vendor.",
            }
        ),
    )
    async def complete_authorization(
        connection_id: uuid.UUID, result: Annotated[AuthorizationResult, Body()]
    ) -> Any:
        try:
            async with components.db.transaction() as session:
                connection = await LifecycleService(
                    session, components.outbox, vault=components.vault, clock=components.clock
                ).complete_authorization(connection_id, result)
        except LifecycleError as error:
            return _problem(error.status, error.reason_code, error.message)
        except InvalidTransitionError as error:
            return _problem(409, "invalid_transition", str(error))
        components.credentials.forget(connection_id)
        components.credentials.on_commit()
        return ConnectionPublic.of(connection)

    @public.delete(
        "/connections/{connection_id}",
        response_model=RevocationAnswer,
        responses=error_responses(
            {
                401: "Neither a service token nor a signed-in person.",
                403: "A member, not an admin, of the connection's environment (the message names "
                "the admins), or a missing/wrong X-CSRF-Token header.",
                404: "No connection with this id (or not one of the person's environments).",
                409: "Not revocable in its state.",
            }
        ),
    )
    async def revoke(connection_id: uuid.UUID, active: ActiveSession | None = revoker) -> Any:
        if active is not None:
            # A person: only an admin of the connection's environment; a member 403, anyone
            # else 404 (existence not revealed), as on every person-facing route.
            try:
                async with components.db.transaction() as session:
                    await EnvironmentService(session, components.clock).require_connection(
                        active.user, connection_id, Action.REVOKE_CONNECTION
                    )
            except AccessRefused as refused:
                return JSONResponse(
                    {"detail": refused.message, "code": refused.code or None},
                    status_code=refused.status,
                    headers={"Cache-Control": "no-store"},
                )
        try:
            connection, outcome = await components.revocation().revoke(connection_id)
        except LifecycleError as error:
            return _problem(error.status, error.reason_code, error.message)
        components.credentials.on_commit()
        return RevocationAnswer(
            connection=ConnectionPublic.of(connection), vendor_revocation=outcome
        )

    @internal.post(
        "/terms",
        response_model=PublishedTerms,
        status_code=201,
        responses=error_responses(
            {
                **_GUARDED,
                400: "Neither or both of text and url.",
                403: "This service token may not publish terms (TERMS_PUBLISHERS).",
                409: "That version (or a higher one) of the kind is already published.",
            }
        ),
    )
    async def publish_terms(
        body: PublishTerms,
        caller: str = guard,  # the calling service's name (the router already checked it)
    ) -> Any:
        if caller not in components.config.terms_publishers:
            return _problem(
                403, "not_a_publisher", f"{caller!r} may not publish terms; operators may"
            )
        try:
            async with components.db.transaction() as session:
                document = await TermsService(session, components.clock).publish(
                    body.kind,
                    body.version,
                    body.title,
                    text=body.text,
                    url=body.url,
                    published_at=body.published_at,
                )
        except AccessRefused as refused:
            return _problem(refused.status, refused.code or "refused", refused.message)
        return PublishedTerms.of(document)

    router = APIRouter()
    router.include_router(internal)
    router.include_router(public)
    return router


def register_internal_routes(
    components: AuthComponents, app: FastAPI, people: People | None = None
) -> None:
    """Attach the internal routes (and revocation) to the service's app."""
    app.include_router(build_internal_router(components, people))
