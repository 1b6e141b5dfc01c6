"""Autogenerate a migration: ``uv run python scripts/make_migration.py auth "message"``.

It migrates a throw-away SQLite store to head, then lets Alembic compare it with the models.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from alembic import command

from ledgerlink.shared.migrations import alembic_config, upgrade_to_head

SERVICES = {
    "auth": "ledgerlink.auth:migrations",
    "importer": "ledgerlink.importer:migrations",
    "journal-exporter": "ledgerlink.journal_exporter:migrations",
}


def main() -> None:
    service, message = sys.argv[1], sys.argv[2]
    location = SERVICES[service]
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite+aiosqlite:///{Path(folder) / 'scratch.db'}"
        upgrade_to_head(location, url)
        command.revision(alembic_config(location, url), message=message, autogenerate=True)


if __name__ == "__main__":
    main()
