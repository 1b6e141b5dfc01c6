"""A real, migrated journal-exporter store for the tests, on PostgreSQL and on SQLite."""

from ledgerlink.journal_exporter.main import MIGRATIONS
from ledgerlink.journal_exporter.storage.models import metadata
from ledgerlink.shared.pytest_plugin import define_store_fixtures

database_url, db = define_store_fixtures(MIGRATIONS, metadata, "journal-exporter-test")
