"""A real, migrated auth store for the tests, on PostgreSQL and on SQLite."""

from ledgerlink.auth.main import MIGRATIONS
from ledgerlink.auth.storage.models import metadata
from ledgerlink.shared.pytest_plugin import define_store_fixtures

database_url, db = define_store_fixtures(MIGRATIONS, metadata, "auth-test")
