"""Value conversions at the edge of the importer's store."""

from __future__ import annotations

from datetime import UTC, datetime


def as_utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive time is taken to be UTC already.

    The store keeps UTC, and SQLite hands ``DateTime(timezone=True)`` values back
    without their offset.
    """
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
