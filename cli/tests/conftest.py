"""A real, migrated importer store for the CLI tests, on PostgreSQL and on SQLite."""

from ledgerlink.importer.main import MIGRATIONS
from ledgerlink.importer.storage.models import metadata
from ledgerlink.shared.pytest_plugin import define_store_fixtures

database_url, db = define_store_fixtures(MIGRATIONS, metadata, "cli-test")
