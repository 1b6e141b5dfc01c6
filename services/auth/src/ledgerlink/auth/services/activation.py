"""Activations: validate the company, match its environment, record the connection."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from ledgerlink.auth.services.activation_links import ActivationLinkService, PendingLink
from ledgerlink.auth.storage.models import Connection, ConnectionStatus, Environment
from ledgerlink.auth.storage.repository import ConnectionRepository, EnvironmentRepository
from ledgerlink.shared.business_id import BusinessIdError, parse_business_id
from ledgerlink.shared.events import (
    ActivationRequestedV1,
    ConnectionActivatedV1,
    ConnectionRejectedV1,
    EventData,
)
from ledgerlink.shared.messaging.outbox import Outbox

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ActivationRequest:
    """One activation request of a batch: the data, its event id, and the scope to run
    its outcome in (the consumer's :func:`~ledgerlink.shared.messaging.consumer.
    event_scope`: its span and log fields)."""

    data: ActivationRequestedV1
    event_id: str
    scope: Callable[[], AbstractContextManager[Any]] = nullcontext


def _new_ids(count: int) -> Iterator[uuid.UUID]:
    """Up to ``count`` random (version 4) UUIDs, as ``uuid.uuid4`` makes them, from one
    read of the system's random source instead of one read each."""
    randomness = os.urandom(16 * count)
    for start in range(0, 16 * count, 16):
        yield uuid.UUID(bytes=randomness[start : start + 16], version=4)


@dataclass(frozen=True)
class _Emit:
    """One outgoing event of a request (to the outbox) and/or one log line after it."""

    event: EventData | None
    key: str
    subject: str | None
    log: tuple[str, dict[str, Any]] | None


_NO_EMIT = _Emit(None, "", None, None)


@dataclass
class _LiveConnection:
    """What a batch needs to know of a connection that has not ended."""

    id: uuid.UUID
    status: ConnectionStatus
    company_name: str
    #: The values of a connection made by this batch (inserted at its end), else None.
    new_row: dict[str, Any] | None = None


class ActivationService:
    """Turns an activation request into a connection (active, pending or rejected).

    Runs inside the caller's transaction; the events it emits go to the outbox and leave
    only if that transaction commits.
    """

    def __init__(
        self, session: AsyncSession, outbox: Outbox, links: ActivationLinkService | None = None
    ) -> None:
        self._session = session
        self._outbox = outbox
        #: Issues the activation link of a connection that waits for a person (issue 13).
        self._links = links
        self._environments = EnvironmentRepository(session)
        self._connections = ConnectionRepository(session)

    async def activate(self, request: ActivationRequestedV1, *, event_id: str) -> Connection:
        """Handle one activation request and emit its outcome."""
        try:
            business_id = parse_business_id(request.country, request.business_id)
        except BusinessIdError as exc:
            return await self._reject(request, event_id, exc.reason_code, exc.message)

        environment = await self._environments.find_by_business_id(
            business_id.country, business_id.value
        )
        if environment is None:
            environment = await self._environments.add(
                Environment(
                    country=business_id.country,
                    business_id=business_id.value,
                    company_name=request.company_name,
                )
            )

        connection = await self._connections.find_live(
            environment.id, request.provider.value, request.product.value
        )
        if connection is None:
            connection = await self._connections.add(
                Connection(
                    environment_id=environment.id,
                    provider=request.provider.value,
                    product=request.product.value,
                    country=business_id.country,
                    business_id_raw=request.business_id,
                    business_id=business_id.value,
                    company_name=request.company_name,
                    requested_by_email=request.requested_by.email,
                    requested_by_name=request.requested_by.name,
                    store_reference=request.store_reference,
                    # File providers need no authorization: the company uploads its export.
                    status=ConnectionStatus.ACTIVE
                    if request.provider.is_file_based
                    else ConnectionStatus.PENDING_AUTHORIZATION,
                    activation_event_id=event_id,
                )
            )
            if (
                self._links is not None
                and connection.status == ConnectionStatus.PENDING_AUTHORIZATION
            ):
                await self._links.issue(connection)
        else:
            # A repeated activation (a new store click) reuses the connection.
            connection.updated_at = datetime.now(UTC)
            connection.activation_event_id = event_id

        if connection.status == ConnectionStatus.ACTIVE:
            await self._outbox.add(
                self._session,
                ConnectionActivatedV1(
                    connection_id=connection.id,
                    environment_id=environment.id,
                    provider=request.provider,
                    business_id=business_id.value,
                    company_name=connection.company_name,
                ),
                key=business_id.value,
                subject=str(connection.id),
            )
        logger.info(
            "activation handled",
            extra={
                "connection_id": str(connection.id),
                "environment_id": str(environment.id),
                "provider": request.provider.value,
                "status": connection.status.value,
            },
        )
        return connection

    async def activate_many(self, requests: Sequence[ActivationRequest]) -> None:
        """Handle several activation requests, in order, set-based.

        The same rows, outbox rows (in the same order) and log lines as :meth:`activate`
        called on each request in turn, with one query for the environments of all the
        requests, one for their live connections, and one multi-row insert per table.
        Two requests of one company behave as one after the other: the second finds the
        environment and connection the first made.
        """
        if not requests:
            return
        now = datetime.now(UTC)
        ids = _new_ids(2 * len(requests))  # at most an environment and a connection each
        parsed: list[tuple[ActivationRequest, Any]] = []
        for request in requests:
            data = request.data
            try:
                parsed.append((request, parse_business_id(data.country, data.business_id)))
            except BusinessIdError as exc:
                parsed.append((request, exc))
        keys = {
            (business_id.country, business_id.value)
            for _, business_id in parsed
            if not isinstance(business_id, BusinessIdError)
        }
        environments = await self._environments.ids_by_business_id(keys) if keys else {}
        live: dict[tuple[uuid.UUID, str, str], _LiveConnection] = {}
        if environments:
            for row in await self._connections.live_of(set(environments.values())):
                # the newest first, as find_live picks it
                live.setdefault(
                    (row.environment_id, row.provider, row.product),
                    _LiveConnection(row.id, ConnectionStatus(row.status), row.company_name),
                )

        new_environments: list[dict[str, Any]] = []
        new_connections: list[dict[str, Any]] = []
        repeats: dict[uuid.UUID, str] = {}  # existing connection -> latest event id
        links: list[PendingLink] = []
        #: What each request emits and logs, in order, once the rows are written.
        outcomes: list[tuple[ActivationRequest, list[_Emit]]] = []
        log = logger.isEnabledFor(logging.INFO)
        for request, business_id in parsed:
            data = request.data
            if isinstance(business_id, BusinessIdError):
                connection_id = next(ids)
                new_connections.append(
                    self._row(
                        data,
                        request.event_id,
                        now,
                        id=connection_id,
                        environment_id=None,
                        country=data.country.value,
                        business_id="",
                        status=ConnectionStatus.REJECTED,
                        reason_code=business_id.reason_code,
                        message=business_id.message,
                    )
                )
                rejected = ConnectionRejectedV1(
                    connection_id=connection_id,
                    environment_id=None,
                    provider=data.provider,
                    business_id=data.business_id,
                    company_name=data.company_name,
                    reason_code=business_id.reason_code,
                    message=business_id.message,
                )
                log_line = (
                    "activation rejected",
                    {"connection_id": str(connection_id), "reason_code": business_id.reason_code},
                )
                outcomes.append(
                    (request, [_Emit(rejected, data.business_id, str(connection_id), log_line)])
                )
                continue
            emits: list[_Emit] = []
            key = (business_id.country, business_id.value)
            environment_id = environments.get(key)
            if environment_id is None:
                environment_id = next(ids)
                environments[key] = environment_id
                new_environments.append(
                    {
                        "id": environment_id,
                        "country": business_id.country,
                        "business_id": business_id.value,
                        "company_name": data.company_name,
                        "created_at": now,
                    }
                )
            connection_key = (environment_id, data.provider.value, data.product.value)
            connection = live.get(connection_key)
            if connection is None:
                status = (
                    ConnectionStatus.ACTIVE
                    if data.provider.is_file_based
                    else ConnectionStatus.PENDING_AUTHORIZATION
                )
                values = self._row(
                    data,
                    request.event_id,
                    now,
                    id=next(ids),
                    environment_id=environment_id,
                    country=business_id.country,
                    business_id=business_id.value,
                    status=status,
                    reason_code=None,
                    message=None,
                )
                new_connections.append(values)
                connection = _LiveConnection(values["id"], status, data.company_name, values)
                live[connection_key] = connection
                if self._links is not None and status == ConnectionStatus.PENDING_AUTHORIZATION:
                    link = self._links.pending(values)
                    links.append(link)
                    emits.append(
                        _Emit(
                            link.event,
                            values["business_id"],
                            str(values["id"]),
                            (
                                "activation link issued",
                                {
                                    "connection_id": str(values["id"]),
                                    "link_id": str(link.row["id"]),
                                },
                            ),
                        )
                    )
            elif connection.new_row is not None:
                # A repeated activation (a new store click) reuses the connection.
                connection.new_row["activation_event_id"] = request.event_id
            else:
                repeats[connection.id] = request.event_id
            if connection.status == ConnectionStatus.ACTIVE:
                activated = ConnectionActivatedV1(
                    connection_id=connection.id,
                    environment_id=environment_id,
                    provider=data.provider,
                    business_id=business_id.value,
                    company_name=connection.company_name,
                )
                emits.append(_Emit(activated, business_id.value, str(connection.id), None))
            emits.append(
                _Emit(
                    None,
                    "",
                    None,
                    (
                        "activation handled",
                        {
                            "connection_id": str(connection.id),
                            "environment_id": str(environment_id),
                            "provider": data.provider.value,
                            "status": connection.status.value,
                        },
                    ),
                )
                if log
                else _NO_EMIT
            )
            outcomes.append((request, emits))

        if new_environments:
            await self._environments.insert_many(new_environments)
        if new_connections:
            await self._connections.insert_many(new_connections)
        if repeats:
            await self._connections.touch_many(repeats, now)
        if links:
            assert self._links is not None
            await self._links.insert_pending(links)
        for request, emits in outcomes:
            with request.scope():
                for emit in emits:
                    if emit.event is not None:
                        await self._outbox.add(
                            self._session, emit.event, key=emit.key, subject=emit.subject
                        )
                    if emit.log is not None and log:
                        logger.info(emit.log[0], extra=emit.log[1])

    @staticmethod
    def _row(
        data: ActivationRequestedV1, event_id: str, now: datetime, **values: Any
    ) -> dict[str, Any]:
        return {
            "provider": data.provider.value,
            "product": data.product.value,
            "business_id_raw": data.business_id,
            "company_name": data.company_name,
            "requested_by_email": data.requested_by.email,
            "requested_by_name": data.requested_by.name,
            "store_reference": data.store_reference,
            "activation_event_id": event_id,
            "created_at": now,
            "updated_at": now,
            **values,
        }

    async def _reject(
        self, request: ActivationRequestedV1, event_id: str, reason_code: str, message: str
    ) -> Connection:
        connection = await self._connections.add(
            Connection(
                environment_id=None,
                provider=request.provider.value,
                product=request.product.value,
                country=request.country.value,
                business_id_raw=request.business_id,
                company_name=request.company_name,
                requested_by_email=request.requested_by.email,
                requested_by_name=request.requested_by.name,
                store_reference=request.store_reference,
                status=ConnectionStatus.REJECTED,
                reason_code=reason_code,
                message=message,
                activation_event_id=event_id,
            )
        )
        await self._outbox.add(
            self._session,
            ConnectionRejectedV1(
                connection_id=connection.id,
                environment_id=None,
                provider=request.provider,
                business_id=request.business_id,
                company_name=request.company_name,
                reason_code=reason_code,
                message=message,
            ),
            key=request.business_id,
            subject=str(connection.id),
        )
        logger.info(
            "activation rejected",
            extra={"connection_id": str(connection.id), "reason_code": reason_code},
        )
        return connection
