"""The one place the importer's import path is wired: file area, outbox, services.

The service (``main.py``), the CLI's ``ledgerlink import --direct`` and
``bench/bench_ledger_import.py`` all build their import service here, so they run the
same code with the same settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Final

from ledgerlink.importer.config import Config
from ledgerlink.importer.services.ledger_import import ImportSettings, LedgerImportService
from ledgerlink.importer.services.ledger_sync import LedgerSyncService, SyncSettings
from ledgerlink.importer.services.uploads import UploadService
from ledgerlink.importer.storage.files import FileArea
from ledgerlink.importer.storage.models import messaging
from ledgerlink.importer.storage.vendor_ledgers import LedgerOpener, VendorLedgers
from ledgerlink.shared.db import Database
from ledgerlink.shared.messaging.outbox import Outbox

#: The ``source`` of the importer's events (the service's process context uses the same).
OUTBOX_SOURCE: Final = "ledgerlink/importer"


@dataclass(frozen=True)
class ImporterParts:
    """What an import needs, wired from one :class:`Config`."""

    files: FileArea
    outbox: Outbox
    imports: LedgerImportService
    uploads: UploadService
    syncs: LedgerSyncService


def import_settings(config: Config) -> ImportSettings:
    """How imports run, from the service config."""
    return ImportSettings(
        lease=timedelta(seconds=config.import_lease_seconds),
        max_attempts=config.import_max_attempts,
        batch_lines=config.import_batch_lines,
        parse_process=config.import_parse_process,
        parse_workers=config.import_parse_workers,
    )


def importer_outbox(config: Config) -> Outbox:
    """The importer's outbox, for a process without the service's process context."""
    return Outbox(messaging, source=OUTBOX_SOURCE, topic_prefix=config.kafka.topic_prefix)


def build_importer(
    config: Config,
    db: Database,
    *,
    outbox: Outbox | None = None,
    extra_roots: tuple[Path, ...] = (),
    ledgers: LedgerOpener | None = None,
) -> ImporterParts:
    """The file area, outbox, import service and upload service of ``config``.

    ``outbox``: the process's own (the service passes its process context's); a new
    one otherwise. ``extra_roots``: further directories this process may import from
    (the CLI adds the directory of the file it was given).
    """
    files = FileArea(config.files_dir, extra_roots=(*config.file_roots, *extra_roots))
    outbox = outbox or importer_outbox(config)
    return ImporterParts(
        files=files,
        outbox=outbox,
        imports=LedgerImportService(db, outbox, files, import_settings(config)),
        uploads=UploadService(files, max_bytes=config.max_upload_bytes),
        syncs=LedgerSyncService(
            db,
            outbox,
            ledgers or VendorLedgers(config.vendors, config.token_service),
            sync_settings(config),
        ),
    )


def sync_settings(config: Config) -> SyncSettings:
    """How API syncs run, from the service config."""
    return SyncSettings(
        lease=timedelta(seconds=config.import_lease_seconds),
        interval=timedelta(minutes=config.sync_interval_minutes),
        max_attempts=config.sync_max_attempts,
    )
