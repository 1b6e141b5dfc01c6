"""Alembic environment of the journal exporter's store."""

from ledgerlink.journal_exporter.storage.models import metadata
from ledgerlink.shared.migrations import run_migrations

run_migrations(metadata)
