"""Activations: validate the company, match its environment, record the connection."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from ledgerlink.auth.services.activation_links import ActivationLinkService
from ledgerlink.auth.storage.models import Connection, ConnectionStatus, Environment
from ledgerlink.auth.storage.repository import ConnectionRepository, EnvironmentRepository
from ledgerlink.shared.business_id import BusinessIdError, parse_business_id
from ledgerlink.shared.events import (
    ActivationRequestedV1,
    ConnectionActivatedV1,
    ConnectionRejectedV1,
)
from ledgerlink.shared.messaging.outbox import Outbox

logger = logging.getLogger(__name__)


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
