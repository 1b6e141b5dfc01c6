"""``ledgerlink import``: a SIE 4 or SAF-T Financial file into the importer.

Sent to the running importer (upload, then poll the job) or, with ``--direct``, queued
and run in this process against the importer's store, through the importer's own
factory (the same import service the importer runs).
"""

from __future__ import annotations

import asyncio
import io
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Final
from urllib.parse import quote, urljoin

import httpx
import typer
from sqlalchemy.ext.asyncio import AsyncEngine

from ledgerlink.cli.common import (
    DEFAULT_IMPORTER_URL,
    AsJson,
    CliError,
    ImporterUrl,
    base_url,
    fail,
    response_detail,
)
from ledgerlink.cli.rendering import ImportProgress, import_summary, show_progress, summary_lines

#: How often a running import's status is asked for (bounded by ``--timeout``).
POLL_SECONDS: Final = 0.2
_FINISHED: Final = ("completed", "failed")
_HEAD_BYTES: Final = 4096


# -------------------------------------------------------------------------- import


def import_ledger(
    file: Annotated[
        Path,
        typer.Argument(
            exists=True,
            dir_okay=False,
            readable=True,
            resolve_path=True,
            help="A SIE 4 or SAF-T Financial file.",
        ),
    ],
    business_id: Annotated[
        str | None,
        typer.Option(
            "--business-id",
            help="Whose books these must be; the import fails for another company's file.",
        ),
    ] = None,
    as_json: AsJson = False,
    importer_url: ImporterUrl = DEFAULT_IMPORTER_URL,
    direct: Annotated[
        bool,
        typer.Option(
            "--direct",
            help="Import in this process straight into the importer's store (no HTTP, "
            "no Kafka: the events wait in the store's outbox for the importer's relay).",
        ),
    ] = False,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="With --direct: the importer store's URL (default: the importer's own "
            "setting, LEDGERLINK_IMPORTER_DATABASE__URL).",
        ),
    ] = None,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            min=1,
            help="Seconds to wait for the importer to finish the import (not with --direct).",
        ),
    ] = 3600.0,
    replace: Annotated[
        bool,
        typer.Option(
            "--replace",
            help="Replace the stored fiscal year even though the file holds fewer kinds of "
            "data (no vouchers, no balances) or is older than it; needs --reason.",
        ),
    ] = False,
    reason: Annotated[
        str | None,
        typer.Option("--reason", help="With --replace: why (recorded on the import job)."),
    ] = None,
) -> None:
    """Import a ledger file, with a progress bar, then print what was imported."""
    if database_url is not None and not direct:
        raise typer.BadParameter("--database-url needs --direct", param_hint="--database-url")
    reason = (reason.strip() or None) if reason else None
    if replace and reason is None:
        raise typer.BadParameter("--replace needs --reason (why)", param_hint="--reason")
    if reason is not None and not replace:
        raise typer.BadParameter("--reason goes with --replace", param_hint="--reason")
    business_id = (business_id.strip() or None) if business_id else None
    try:
        provider_value = _detect_provider(file)
        with ImportProgress(show_progress(as_json)) as progress:
            if direct:
                job, company_name = asyncio.run(
                    _import_direct(
                        file, provider_value, business_id, database_url, progress, reason
                    )
                )
            else:
                job, company_name = _import_via_http(
                    file, business_id, importer_url, timeout, progress, reason
                )
    except CliError as error:
        raise fail(error) from None
    summary = import_summary(job, company_name)
    if as_json:
        typer.echo(json.dumps(summary, indent=2, ensure_ascii=False))
    else:
        for line in summary_lines(summary, file.name):
            typer.echo(line)
    if job.get("status") != "completed":
        raise fail(
            CliError(
                job.get("error_message") or f"the import ended {job.get('status')}",
                code=job.get("error_code") or "import_failed",
            )
        )


def _detect_provider(path: Path) -> str:
    """``sie`` or ``saf-t`` from the file's first bytes (as the importer decides)."""
    from ledgerlink.importer.domain.ledger import LedgerImportError, detect_format

    with path.open("rb") as stream:
        head = stream.read(_HEAD_BYTES)
    if not head.strip():
        raise CliError(f"{path.name} is empty", code="unknown_format")
    try:
        fmt = detect_format(head)
    except LedgerImportError as error:
        raise CliError(f"{path.name}: {error}", code=error.reason_code) from None
    return fmt.provider.value


class _CountingFile(io.FileIO):
    """A file whose reads are reported (the upload's progress)."""

    def __init__(self, path: Path, on_read: Callable[[int], None]) -> None:
        super().__init__(path, "rb")
        self._on_read = on_read

    def read(self, size: int | None = -1, /) -> bytes:
        chunk = super().read(size)
        if chunk:
            self._on_read(len(chunk))
        return chunk or b""


def _import_via_http(
    path: Path,
    business_id: str | None,
    importer_url: str,
    timeout: float,
    progress: ImportProgress,
    replace_reason: str | None = None,
) -> tuple[dict[str, Any], str | None]:
    base = base_url(importer_url)
    form = {"business_id": business_id} if business_id else {}
    if replace_reason is not None:
        form.update(replace="true", reason=replace_reason)
    with httpx.Client(base_url=base, timeout=httpx.Timeout(60.0, connect=10.0)) as client:
        progress.uploading(path.stat().st_size)
        try:
            with _CountingFile(path, progress.uploaded) as stream:
                response = client.post(
                    "/v1/imports",
                    files={"file": (path.name, stream, "application/octet-stream")},
                    data=form or None,
                    # The importer stores the whole upload before it answers.
                    timeout=httpx.Timeout(60.0, connect=10.0, read=max(timeout, 60.0)),
                )
        except httpx.ConnectError as error:
            raise CliError(
                f"cannot reach the importer at {base} ({error}); start the stack with "
                "`ledgerlink dev up`, give its address with --importer-url, or import with "
                "--direct",
                code="importer_unreachable",
                exit_code=2,
            ) from None
        except httpx.TransportError as error:
            raise CliError(
                f"the upload to {base} failed: {error!r}", code="upload_failed"
            ) from None
        if response.status_code != 202:
            code = "upload_too_large" if response.status_code == 413 else "upload_refused"
            raise CliError(
                f"the importer refused the upload ({response.status_code}): "
                f"{response_detail(response)}",
                code=code,
            )
        accepted = response.json()
        status_url = urljoin(base + "/", str(accepted["status_url"]))
        deadline = time.monotonic() + timeout
        job = _poll(client, status_url, deadline, timeout, progress)
        return job, _company_name_over_http(client, job) if job["status"] == "completed" else None


def _poll(
    client: httpx.Client,
    status_url: str,
    deadline: float,
    timeout: float,
    progress: ImportProgress,
) -> dict[str, Any]:
    try:
        return _poll_until_finished(client, status_url, deadline, timeout, progress)
    except KeyboardInterrupt:
        raise CliError(
            f"stopped waiting; the import goes on in the importer: {status_url}",
            code="interrupted",
            exit_code=130,
        ) from None


def _poll_until_finished(
    client: httpx.Client,
    status_url: str,
    deadline: float,
    timeout: float,
    progress: ImportProgress,
) -> dict[str, Any]:
    while True:
        try:
            response = client.get(status_url)
        except httpx.TransportError as error:
            raise CliError(
                f"lost the importer while waiting for the import ({error!r}); it may go on "
                f"there: {status_url}",
                code="importer_unreachable",
            ) from None
        if response.status_code != 200:
            raise CliError(
                f"asking for the import's status failed ({response.status_code}): "
                f"{response_detail(response)}",
                code="status_failed",
            )
        job: dict[str, Any] = response.json()
        progress.lines(int(job.get("progress_lines") or 0), str(job["status"]))
        if job["status"] in _FINISHED:
            return job
        if time.monotonic() > deadline:
            raise CliError(
                f"the import did not finish within {timeout:g} s; it goes on in the "
                f"importer: {status_url}",
                code="timeout",
            )
        time.sleep(POLL_SECONDS)  # polling the job, bounded by the deadline


def _company_name_over_http(client: httpx.Client, job: Mapping[str, Any]) -> str | None:
    """The company's name from a report header (import jobs do not carry it)."""
    end = job.get("fiscal_year_end")
    if not job.get("business_id") or not end:
        return None
    period = str(end)[:7]
    try:
        response = client.get(
            f"/v1/companies/{quote(str(job['business_id']), safe='')}/trial-balance",
            params={"from": period, "to": period},
        )
    except httpx.TransportError:
        return None
    if response.status_code != 200:
        return None
    name = response.json().get("header", {}).get("company_name")
    return str(name) if name else None


async def _import_direct(
    path: Path,
    provider_value: str,
    business_id: str | None,
    database_url: str | None,
    progress: ImportProgress,
    replace_reason: str | None = None,
) -> tuple[dict[str, Any], str | None]:
    from pydantic import ValidationError
    from sqlalchemy.exc import SQLAlchemyError

    from ledgerlink.importer.config import Config
    from ledgerlink.importer.factory import build_importer
    from ledgerlink.importer.handlers.schemas import ImportJobPublic
    from ledgerlink.importer.services.imports import ImportService
    from ledgerlink.importer.storage.ledger_store import LedgerStore
    from ledgerlink.importer.storage.repository import ImportJobRepository
    from ledgerlink.shared.db import Database
    from ledgerlink.shared.events import Provider

    try:
        config = Config()
    except ValidationError as error:
        raise CliError(f"the importer's settings are invalid: {error}", exit_code=2) from None
    url = database_url or config.database.url.get_secret_value()
    engine = await _open_migrated_store(url)
    db = Database(engine)
    try:
        parts = build_importer(config, db, extra_roots=(path.parent,))
        service, files, outbox = parts.imports, parts.files, parts.outbox
        import_id = uuid.uuid4()
        provider = Provider(provider_value)
        location = path.as_uri()
        if len(location) > 300:  # longer than a job keeps: copy it into the file area
            location, _ = await files.save_upload(
                import_id, path.name, _file_chunks(path), max_bytes=config.max_upload_bytes
            )
        # Queue and claim in one transaction, so that no runner of the importer service
        # (sharing the store) takes the job before this process runs it.
        async with db.transaction() as session:
            job = await ImportService(session, outbox).file_uploaded(
                import_id=import_id,
                provider=provider,
                file_location=location,
                filename=path.name,
                business_id=business_id,
                replace_reason=replace_reason,
            )
            claimed = await service.start(session, job)
        running = asyncio.create_task(service.run(claimed))
        while not running.done():
            progress.lines(service.progress.get(import_id, 0), "running")
            await asyncio.wait({running}, timeout=POLL_SECONDS)
        try:
            running.result()
        except (SQLAlchemyError, OSError) as error:
            raise CliError(
                f"the import {import_id} broke off: {error}; the importer service takes it "
                "over once its lease has run out",
                code="import_interrupted",
            ) from None
        async with db.transaction() as session:
            finished = await ImportJobRepository(session).get(import_id)
            assert finished is not None
            company = (
                await LedgerStore(session).company(finished.company_id)
                if finished.company_id
                else None
            )
            public = ImportJobPublic.of(finished).model_dump(mode="json")
        progress.lines(int(public["progress_lines"]), str(public["status"]))
        return public, company.name if company is not None else None
    finally:
        await db.dispose()


async def _file_chunks(path: Path) -> AsyncIterator[bytes]:
    stream = await asyncio.to_thread(path.open, "rb")
    try:
        while chunk := await asyncio.to_thread(stream.read, 1024 * 1024):
            yield chunk
    finally:
        stream.close()


async def _open_migrated_store(url: str) -> AsyncEngine:
    """An engine on the importer's store, refusing one that is not migrated to head."""
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy.engine import make_url

    from ledgerlink.importer.main import MIGRATIONS
    from ledgerlink.shared.db import create_engine
    from ledgerlink.shared.migrations import alembic_config

    parsed = make_url(url)
    shown = parsed.render_as_string(hide_password=True)
    migrate = (
        f"run `ledgerlink-importer migrate` with LEDGERLINK_IMPORTER_DATABASE__URL={shown} first"
    )
    if parsed.get_backend_name() == "sqlite" and not _sqlite_file_exists(parsed.database):
        raise CliError(
            f"the importer store {shown} does not exist; {migrate}",
            code="store_not_migrated",
            exit_code=2,
        )
    heads = set(ScriptDirectory.from_config(alembic_config(MIGRATIONS, url)).get_heads())
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            current = await connection.run_sync(
                lambda sync: set(MigrationContext.configure(sync).get_current_heads())
            )
    except Exception as error:
        await engine.dispose()
        raise CliError(
            f"cannot open the importer store {shown}: {error}",
            code="store_unreachable",
            exit_code=2,
        ) from None
    if current != heads:
        await engine.dispose()
        state = "is not migrated" if not current else "is not migrated to the latest version"
        raise CliError(
            f"the importer store {shown} {state}; {migrate}",
            code="store_not_migrated",
            exit_code=2,
        )
    return engine


def _sqlite_file_exists(database: str | None) -> bool:
    # Checked before connecting: SQLite would create an empty store.
    return not database or database == ":memory:" or Path(database).is_file()
