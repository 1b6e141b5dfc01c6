"""All SQL of people's sign-in: users and their browser sessions."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from ledgerlink.auth.storage.models import BrowserSession, User


class UserRepository:
    """People who signed in, keyed by provider and subject."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def find(self, provider: str, subject: str) -> User | None:
        """The user with this provider's subject identifier, if any."""
        result = await self._session.execute(
            select(User).where(User.provider == provider, User.subject == subject)
        )
        return result.scalars().first()

    async def add(self, user: User) -> User:
        """Insert a new user."""
        self._session.add(user)
        await self._session.flush()
        return user

    async def get(self, user_id: uuid.UUID) -> User | None:
        """One user by id."""
        return await self._session.get(User, user_id)


class SessionRepository:
    """Browser sessions, found by the SHA-256 of their cookie token."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, record: BrowserSession) -> BrowserSession:
        """Insert a new session."""
        self._session.add(record)
        await self._session.flush()
        return record

    async def find_by_token_hash(self, token_hash: str) -> BrowserSession | None:
        """The session whose token hashes to ``token_hash``, if any."""
        result = await self._session.execute(
            select(BrowserSession).where(BrowserSession.token_hash == token_hash)
        )
        return result.scalars().first()

    async def touch(self, session_id: uuid.UUID, seen_at: datetime) -> None:
        """Record that the session was used at ``seen_at``."""
        await self._session.execute(
            update(BrowserSession)
            .where(col(BrowserSession.id) == session_id)
            .values(last_seen_at=seen_at)
        )

    async def delete(self, session_id: uuid.UUID) -> None:
        """End one session."""
        await self._session.execute(
            delete(BrowserSession).where(col(BrowserSession.id) == session_id)
        )

    async def delete_expired(self, now: datetime) -> int:
        """Remove sessions past their absolute end; how many went."""
        result = await self._session.execute(
            delete(BrowserSession).where(col(BrowserSession.expires_at) <= now)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def count(self) -> int:
        """How many sessions exist (operators' metric and tests)."""
        result = await self._session.execute(select(BrowserSession.id))
        return len(result.scalars().all())
