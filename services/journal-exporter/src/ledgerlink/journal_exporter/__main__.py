"""``ledgerlink-journal-exporter serve|migrate``.

Also ``python -m ledgerlink.journal_exporter``.
"""

from __future__ import annotations

from ledgerlink.journal_exporter.config import Config
from ledgerlink.journal_exporter.main import MIGRATIONS, SERVICE_NAME, create_app
from ledgerlink.shared.entrypoint import run_service_command


def main() -> None:
    """Entry point of the service's image."""
    run_service_command(
        service_name=SERVICE_NAME,
        load_config=Config,
        create_app=create_app,
        migrations=MIGRATIONS,
    )


if __name__ == "__main__":
    main()
