"""Alembic environment of the importer store."""

from ledgerlink.importer.storage.models import metadata
from ledgerlink.shared.migrations import run_migrations

run_migrations(metadata)
