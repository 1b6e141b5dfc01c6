"""Browser sessions: start one for a verified person, find it from its cookie, end it.

No commits here: the request boundary commits (``Database.transaction``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from ledgerlink.auth.domain.clock import Clock
from ledgerlink.auth.domain.identity import VerifiedIdentity
from ledgerlink.auth.domain.sessions import SessionPolicy, SessionState, is_recent
from ledgerlink.auth.services.cookies import SessionTokens
from ledgerlink.auth.storage.models import BrowserSession, User
from ledgerlink.auth.storage.people import SessionRepository, UserRepository
from ledgerlink.shared.db import as_utc


@dataclass(frozen=True)
class ActiveSession:
    """A usable session and the person it belongs to."""

    id: uuid.UUID
    token: str
    user: User
    provider: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    authenticated_at: datetime


class SessionService:
    """Sessions in auth's store behind signed, opaque cookies."""

    def __init__(
        self, session: AsyncSession, tokens: SessionTokens, policy: SessionPolicy, clock: Clock
    ) -> None:
        self._users = UserRepository(session)
        self._sessions = SessionRepository(session)
        self._tokens = tokens
        self._policy = policy
        self._clock = clock

    async def start(
        self, identity: VerifiedIdentity, *, replacing: str | None = None
    ) -> tuple[str, ActiveSession]:
        """A new session for ``identity``; the cookie value and the session.

        A session the browser already had (``replacing``, its cookie) ends: a sign-in always
        gets a fresh token, so a token planted before sign-in is worth nothing after it.
        """
        if replacing is not None:
            await self.end(replacing)
        now = self._clock()
        user = await self._users.find(identity.provider, identity.subject)
        if user is None:
            user = await self._users.add(
                User(
                    provider=identity.provider,
                    subject=identity.subject,
                    email=identity.email,
                    name=identity.name,
                    organisation=identity.organisation,
                    created_at=now,
                    last_signed_in_at=now,
                )
            )
        else:
            user.email = identity.email
            user.name = identity.name or user.name
            user.organisation = identity.organisation
            user.last_signed_in_at = now
        token = self._tokens.new_token()
        record = await self._sessions.add(
            BrowserSession(
                token_hash=self._tokens.hash(token),
                user_id=user.id,
                provider=identity.provider,
                created_at=now,
                last_seen_at=now,
                expires_at=self._policy.expires_at(now),
                # A sign-in older than "now" (auth_time) never makes the session fresher.
                authenticated_at=min(identity.authenticated_at, now),
            )
        )
        return self._tokens.cookie_value(token), self._active(token, record, user)

    async def resolve(self, cookie_value: str | None) -> ActiveSession | None:
        """The session of this cookie if it is still usable; an ended one is removed."""
        token = self._tokens.token_from_cookie(cookie_value)
        if token is None:
            return None
        record = await self._sessions.find_by_token_hash(self._tokens.hash(token))
        if record is None:
            return None
        now = self._clock()
        state = self._policy.state(
            last_seen_at=as_utc(record.last_seen_at), expires_at=as_utc(record.expires_at), now=now
        )
        if state is not SessionState.ACTIVE:
            await self._sessions.delete(record.id)
            return None
        user = await self._users.get(record.user_id)
        if user is None:
            return None
        if self._policy.needs_touch(last_seen_at=as_utc(record.last_seen_at), now=now):
            await self._sessions.touch(record.id, now)
            record.last_seen_at = now
        return self._active(token, record, user)

    async def end(self, cookie_value: str | None) -> bool:
        """Sign out: delete the cookie's session; whether there was one."""
        token = self._tokens.token_from_cookie(cookie_value)
        if token is None:
            return False
        record = await self._sessions.find_by_token_hash(self._tokens.hash(token))
        if record is None:
            return False
        await self._sessions.delete(record.id)
        return True

    def is_recent(self, active: ActiveSession, max_age_seconds: int) -> bool:
        """Whether the person signed in within ``max_age_seconds`` (step-up)."""
        return is_recent(
            active.authenticated_at, max_age=timedelta(seconds=max_age_seconds), now=self._clock()
        )

    def csrf_token(self, active: ActiveSession) -> str:
        """The CSRF token forms of this session carry."""
        return self._tokens.csrf_token(active.token)

    def csrf_is_valid(self, active: ActiveSession, submitted: str | None) -> bool:
        """Whether a form's CSRF token belongs to this session."""
        return self._tokens.csrf_is_valid(active.token, submitted)

    @staticmethod
    def _active(token: str, record: BrowserSession, user: User) -> ActiveSession:
        return ActiveSession(
            id=record.id,
            token=token,
            user=user,
            provider=record.provider,
            created_at=as_utc(record.created_at),
            last_seen_at=as_utc(record.last_seen_at),
            expires_at=as_utc(record.expires_at),
            authenticated_at=as_utc(record.authenticated_at),
        )
