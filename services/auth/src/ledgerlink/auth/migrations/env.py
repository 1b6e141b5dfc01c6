"""Alembic environment of the auth store."""

from ledgerlink.auth.storage.models import metadata
from ledgerlink.shared.migrations import run_migrations

run_migrations(metadata)
