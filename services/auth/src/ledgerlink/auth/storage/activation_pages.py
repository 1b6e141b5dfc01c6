"""SQL of the activation pages: links, per-browser flow state, financial models."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from ledgerlink.auth.storage.models import (
    ActivationFlow,
    ActivationLink,
    Connection,
    FinancialModel,
)


class ActivationPageRepository:
    """Activation links, flows and the connections the pages look up."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    # Connections -----------------------------------------------------------------------

    async def connection_for_store_reference(
        self, provider: str, store_reference: str
    ) -> Connection | None:
        """The newest connection an activation event with this store reference made."""
        result = await self._session.execute(
            select(Connection)
            .where(
                Connection.provider == provider,
                Connection.store_reference == store_reference,
            )
            .order_by(col(Connection.created_at).desc())
        )
        return result.scalars().first()

    # Links -----------------------------------------------------------------------------

    async def add_link(self, link: ActivationLink) -> ActivationLink:
        """Insert an issued link (its token's hash only)."""
        self._session.add(link)
        await self._session.flush()
        return link

    async def insert_links(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert issued links from their column values (one multi-row Core insert)."""
        await self._session.execute(ActivationLink.__table__.insert(), list(rows))  # type: ignore[attr-defined]

    async def link_by_hash(self, token_hash: str) -> ActivationLink | None:
        """The link whose token hashes to ``token_hash``."""
        result = await self._session.execute(
            select(ActivationLink).where(ActivationLink.token_hash == token_hash)
        )
        return result.scalars().first()

    async def save_link(self, link: ActivationLink) -> ActivationLink:
        """Update a link (its ``used_at``)."""
        self._session.add(link)
        await self._session.flush()
        return link

    async def links_of(self, connection_id: uuid.UUID) -> list[ActivationLink]:
        """Every link issued for a connection."""
        result = await self._session.execute(
            select(ActivationLink).where(ActivationLink.connection_id == connection_id)
        )
        return list(result.scalars().all())

    # Flows -----------------------------------------------------------------------------

    async def flow(self, connection_id: uuid.UUID, browser_hash: str) -> ActivationFlow | None:
        """This browser's progress through this activation."""
        result = await self._session.execute(
            select(ActivationFlow).where(
                ActivationFlow.connection_id == connection_id,
                ActivationFlow.browser_hash == browser_hash,
            )
        )
        return result.scalars().first()

    async def save_flow(self, flow: ActivationFlow) -> ActivationFlow:
        """Insert or update a flow."""
        self._session.add(flow)
        await self._session.flush()
        return flow

    async def delete_flows(self, connection_id: uuid.UUID) -> None:
        """Forget every browser's progress (and sealed secrets) of a finished activation."""
        await self._session.execute(
            delete(ActivationFlow).where(col(ActivationFlow.connection_id) == connection_id)
        )

    # Financial models ------------------------------------------------------------------

    async def financial_model(self, country: str, business_id: str) -> FinancialModel | None:
        """Whether the company's financial model is known to be active."""
        return await self._session.get(FinancialModel, (country, business_id))

    async def set_financial_model(
        self, country: str, business_id: str, active: bool, now: datetime
    ) -> FinancialModel:
        """Record the company's financial model as (in)active."""
        row = await self.financial_model(country, business_id)
        if row is None:
            row = FinancialModel(
                country=country, business_id=business_id, active=active, changed_at=now
            )
        row.active = active
        row.changed_at = now
        self._session.add(row)
        await self._session.flush()
        return row
