"""The session service on a migrated store (SQLite and PostgreSQL), on a fake clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlmodel import select

from ledgerlink.auth.domain.identity import VerifiedIdentity
from ledgerlink.auth.domain.sessions import SessionPolicy
from ledgerlink.auth.services.cookies import SessionTokens
from ledgerlink.auth.services.sessions import SessionService
from ledgerlink.auth.storage.models import BrowserSession, User
from ledgerlink.shared.db import Database

SECRET = "a-test-secret-that-is-long-enough-0123456789"
POLICY = SessionPolicy(
    idle=timedelta(minutes=30), absolute=timedelta(hours=2), touch_interval=timedelta(minutes=1)
)


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def identity(clock: FakeClock, **changes: object) -> VerifiedIdentity:
    values: dict[str, object] = {
        "provider": "google",
        "subject": "110000000000000000001",
        "email": "anna@virtanen-demo.fi",
        "name": "Anna Virtanen",
        "organisation": "virtanen-demo.fi",
        "authenticated_at": clock.now - timedelta(seconds=5),
    }
    values.update(changes)
    return VerifiedIdentity(**values)  # type: ignore[arg-type]


async def start(db: Database, clock: FakeClock, **changes: object) -> str:
    async with db.transaction() as session:
        cookie, _ = await SessionService(session, SessionTokens(SECRET), POLICY, clock).start(
            identity(clock, **changes)
        )
    return cookie


async def resolve(db: Database, clock: FakeClock, cookie: str | None) -> str | None:
    async with db.transaction() as session:
        active = await SessionService(session, SessionTokens(SECRET), POLICY, clock).resolve(cookie)
    return active.user.email if active else None


async def rows(db: Database) -> list[BrowserSession]:
    async with db.transaction() as session:
        return list((await session.execute(select(BrowserSession))).scalars().all())


async def test_a_session_is_found_by_its_cookie_and_stores_only_a_hash(db: Database) -> None:
    clock = FakeClock()
    cookie = await start(db, clock)
    assert await resolve(db, clock, cookie) == "anna@virtanen-demo.fi"
    [record] = await rows(db)
    assert cookie.split(".")[0] not in record.token_hash
    assert record.expires_at.replace(tzinfo=UTC) == clock.now + timedelta(hours=2)
    assert record.authenticated_at.replace(tzinfo=UTC) == clock.now - timedelta(seconds=5)
    assert await resolve(db, clock, None) is None
    assert await resolve(db, clock, cookie + "0") is None


async def test_use_keeps_a_session_alive_until_its_absolute_end(db: Database) -> None:
    clock = FakeClock()
    cookie = await start(db, clock)
    for _ in range(3):
        clock.advance(minutes=25)
        assert await resolve(db, clock, cookie) is not None
    clock.advance(minutes=25)  # 100 minutes in, last seen 25 minutes ago
    assert await resolve(db, clock, cookie) is not None
    clock.advance(minutes=21)  # past the two hours
    assert await resolve(db, clock, cookie) is None
    assert await rows(db) == []


async def test_an_idle_session_is_removed(db: Database) -> None:
    clock = FakeClock()
    cookie = await start(db, clock)
    clock.advance(minutes=30)
    assert await resolve(db, clock, cookie) is None
    assert await rows(db) == []


async def test_last_seen_is_written_at_most_once_a_minute(db: Database) -> None:
    clock = FakeClock()
    cookie = await start(db, clock)
    started = clock.now
    clock.advance(seconds=30)
    await resolve(db, clock, cookie)
    [record] = await rows(db)
    assert record.last_seen_at.replace(tzinfo=UTC) == started
    clock.advance(seconds=31)
    await resolve(db, clock, cookie)
    [record] = await rows(db)
    assert record.last_seen_at.replace(tzinfo=UTC) == clock.now


async def test_signing_in_again_updates_the_user_and_replaces_the_session(db: Database) -> None:
    clock = FakeClock()
    first = await start(db, clock)
    async with db.transaction() as session:
        service = SessionService(session, SessionTokens(SECRET), POLICY, clock)
        second, active = await service.start(
            identity(clock, email="anna.v@virtanen-demo.fi"), replacing=first
        )
    assert second != first
    assert await resolve(db, clock, first) is None
    assert await resolve(db, clock, second) == "anna.v@virtanen-demo.fi"
    async with db.transaction() as session:
        users = list((await session.execute(select(User))).scalars().all())
    assert [user.email for user in users] == ["anna.v@virtanen-demo.fi"]
    assert active.user.id == users[0].id


async def test_sign_out_deletes_the_record(db: Database) -> None:
    clock = FakeClock()
    cookie = await start(db, clock)
    async with db.transaction() as session:
        service = SessionService(session, SessionTokens(SECRET), POLICY, clock)
        assert await service.end(cookie) is True
        assert await service.end(cookie) is False
    assert await rows(db) == []


async def test_step_up_needs_a_recent_sign_in(db: Database) -> None:
    clock = FakeClock()
    cookie = await start(db, clock)
    async with db.transaction() as session:
        service = SessionService(session, SessionTokens(SECRET), POLICY, clock)
        active = await service.resolve(cookie)
        assert active is not None
        assert service.is_recent(active, 300)
        clock.advance(seconds=296)
        assert not service.is_recent(active, 300)
