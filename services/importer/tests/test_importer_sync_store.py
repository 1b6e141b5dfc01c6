"""The sync's per-page look-ups of stored vouchers, on PostgreSQL: right answers, and work
that follows the page, not the company.

A sync asks on every page which of the page's vendor ids are stored already, reads their
lines and deletes them. Planned as ``year = ANY(...) AND source_id = ANY(...)``, PostgreSQL
scanned every voucher of the company per page (the first import of a 300,000-line company
spent 55 s in it). The store now probes the index per (year, id); these tests pin the answers
(both engines) and, on PostgreSQL through ``EXPLAIN ANALYZE``, that the look-up reads only the
matching index entries, with and without statistics (a first import writes into tables
nobody has analysed yet).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Table, event, func, insert, select, text
from sqlmodel import col

from ledgerlink.importer.storage.models import Voucher, VoucherLine
from ledgerlink.importer.storage.sync_store import LedgerSyncStore
from ledgerlink.shared.db import Database

VOUCHERS_PER_YEAR = 5_000
YEARS = [uuid.UUID(int=1), uuid.UUID(int=2), uuid.UUID(int=3)]
FIRST_DAY = dt.date(2024, 1, 1)


def _day(number: int) -> dt.date:
    return FIRST_DAY + dt.timedelta(days=number % 365)


async def _fill(db: Database) -> None:
    """Three years of 5,000 vouchers (vendor ids ``v<year>-<n>``), two lines each."""
    vouchers = Voucher.__table__  # type: ignore[attr-defined]
    lines = VoucherLine.__table__  # type: ignore[attr-defined]
    assert isinstance(vouchers, Table)
    assert isinstance(lines, Table)
    async with db.transaction() as session:
        for index, year in enumerate(YEARS, start=1):
            numbers = range(1, VOUCHERS_PER_YEAR + 1)
            await session.execute(
                insert(vouchers),
                [
                    {"fiscal_year_id": year, "voucher_no": n, "series": "A", "number": str(n),
                     "date": _day(n), "period": FIRST_DAY, "text": "voucher",
                     "source_id": f"v{index}-{n}"}
                    for n in numbers
                ],
            )  # fmt: skip
            await session.execute(
                insert(lines),
                [
                    {"fiscal_year_id": year, "voucher_no": n, "line_no": line_no,
                     "account": account, "amount": amount, "text": "", "objects": objects}
                    for n in numbers
                    for line_no, account, amount, objects in (
                        (1, "1910", Decimal("10.25"), "1=100"),
                        (2, "3000", Decimal("-10.25"), ""),
                    )
                ],
            )  # fmt: skip


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [plan, *(node for child in plan.get("Plans", ()) for node in _nodes(child))]


async def _explain(db: Database, statement: str, parameters: Any) -> dict[str, Any]:
    async with db.engine.connect() as connection:
        raw = (
            await connection.exec_driver_sql(
                f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}", parameters
            )
        ).scalar()
    document: Any = json.loads(raw) if isinstance(raw, str) else raw
    plan: dict[str, Any] = document[0]["Plan"]
    return plan


@pytest.mark.parametrize("analysed", [False, True], ids=["no statistics", "analysed"])
async def test_page_lookups_find_the_stored_vouchers_and_read_nothing_else(
    db: Database, analysed: bool
) -> None:
    await _fill(db)
    if analysed:
        async with db.transaction() as session:
            await session.execute(text("ANALYZE vouchers"))
    # A page of 1,000 ids: 400 stored in year 2 (and listed twice), 600 the store never saw.
    page = [f"v2-{n}" for n in range(1, 401)] * 2 + [f"new-{n}" for n in range(600)]

    if db.dialect == "postgresql":
        # Whatever SQL the store sends to find a page's stored vouchers: one index probe
        # per (year, id), each reading only its matches; no other access to the table, no
        # row read and thrown away (EXPLAIN's row counts are per probe).
        sent: list[tuple[str, Any]] = []

        def record(*args: Any) -> None:
            sent.append((args[2], args[3]))

        event.listen(db.engine.sync_engine, "before_cursor_execute", record)
        try:
            async with db.transaction() as session:
                await LedgerSyncStore(session).existing_source_ids(YEARS, page)
        finally:
            event.remove(db.engine.sync_engine, "before_cursor_execute", record)
        lookups = [(sql, params) for sql, params in sent if "vouchers" in sql]
        assert len(lookups) == 1, sent
        plan = await _explain(db, *lookups[0])
        nodes = _nodes(plan)
        scans = [node for node in nodes if "Relation Name" in node]
        assert [node["Node Type"] for node in scans] in (["Index Scan"], ["Index Only Scan"])
        assert scans[0]["Actual Loops"] == len(YEARS) * len(set(page))
        assert sum(node.get("Rows Removed by Filter", 0) for node in nodes) == 0
        assert plan["Actual Rows"] == 400

    async with db.transaction() as session:
        store = LedgerSyncStore(session)
        present = await store.existing_source_ids(YEARS, page)
        assert present == [f"v2-{n}" for n in range(1, 401)]
        lines = await store.stored_lines(YEARS, present[:3])
        assert sorted((line.date, line.account, line.amount, line.objects) for line in lines) == [
            (_day(n), account, amount, objects)
            for n in (1, 2, 3)
            for account, amount, objects in (
                ("1910", Decimal("10.25"), (("1", "100"),)),
                ("3000", Decimal("-10.25"), ()),
            )
        ]
        await store.delete_vouchers(YEARS, present[:100])

    async with db.transaction() as session:
        counts = {
            model.__tablename__: await session.scalar(
                select(func.count()).select_from(model).where(col(model.fiscal_year_id) == YEARS[1])
            )
            for model in (Voucher, VoucherLine)
        }
        left = await LedgerSyncStore(session).existing_source_ids(YEARS, page)
    assert counts == {
        "vouchers": VOUCHERS_PER_YEAR - 100,
        "voucher_lines": 2 * (VOUCHERS_PER_YEAR - 100),
    }
    assert left == [f"v2-{n}" for n in range(101, 401)]
