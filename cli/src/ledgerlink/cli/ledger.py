"""``ledgerlink import`` and ``ledgerlink report``: ledger files in, reports of the books out.

``import`` sends a SIE 4 or SAF-T Financial file to the running importer (upload, then
poll the job) or, with ``--direct``, queues and runs the import in this process against
the importer's store. ``report`` asks the importer's HTTP API for the trial balance, the
profit and loss or the balance sheet of the imported books.
"""

from __future__ import annotations

import asyncio
import io
import json
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Annotated, Any, Final
from urllib.parse import quote, urljoin

import httpx
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text
from sqlalchemy.ext.asyncio import AsyncEngine

DEFAULT_IMPORTER_URL: Final = "http://127.0.0.1:8082"
#: How often a running import's status is asked for (bounded by ``--timeout``).
POLL_SECONDS: Final = 0.2
_FINISHED: Final = ("completed", "failed")
_HEAD_BYTES: Final = 4096


class CliError(Exception):
    """A failure to report on stderr: ``code`` (stable) and message, then exit."""

    def __init__(self, message: str, *, code: str | None = None, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.exit_code = exit_code


def _fail(error: CliError) -> typer.Exit:
    prefix = f"error [{error.code}]" if error.code else "error"
    typer.echo(f"{prefix}: {error.message}", err=True)
    return typer.Exit(error.exit_code)


ImporterUrl = Annotated[
    str,
    typer.Option(
        "--importer-url",
        envvar="LEDGERLINK_IMPORTER_URL",
        help="Base URL of the running importer.",
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]


# ------------------------------------------------------------------------ progress


class _AmountColumn(ProgressColumn):
    """Bytes sent (of the total) for the upload, lines read for the import."""

    def render(self, task: Task) -> Text:
        if task.fields.get("unit") == "bytes":
            total = f" / {_bytes(task.total)}" if task.total is not None else ""
            return Text(f"{_bytes(task.completed)}{total}")
        return Text(f"{int(task.completed):,} lines")


class _RateColumn(ProgressColumn):
    """Bytes or lines per second."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if speed is None:
            return Text("")
        if task.fields.get("unit") == "bytes":
            return Text(f"{_bytes(speed)}/s")
        return Text(f"{speed:,.0f} lines/s")


def _bytes(amount: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if amount < 1000 or unit == "GB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1000
    raise AssertionError("unreachable")


class ImportProgress:
    """A progress display on the terminal; does nothing when ``enabled`` is false."""

    def __init__(self, enabled: bool) -> None:
        self._progress: Progress | None = None
        self._upload: TaskID | None = None
        self._lines: TaskID | None = None
        if enabled:
            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                _AmountColumn(),
                _RateColumn(),
                TimeElapsedColumn(),
                console=Console(),
                transient=True,
            )

    def __enter__(self) -> ImportProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def uploading(self, total: int) -> None:
        if self._progress is not None:
            self._upload = self._progress.add_task("uploading", total=total, unit="bytes")

    def uploaded(self, amount: int) -> None:
        if self._progress is not None and self._upload is not None:
            self._progress.advance(self._upload, amount)

    def lines(self, count: int, status: str) -> None:
        """Lines read so far by the import (its total is not known in advance)."""
        if self._progress is None:
            return
        if self._lines is None:
            if self._upload is not None:
                self._progress.update(self._upload, visible=False)
            self._lines = self._progress.add_task(status, total=None, unit="lines")
        self._progress.update(self._lines, completed=count, description=status)


def _show_progress(as_json: bool) -> bool:
    return not as_json and sys.stdout.isatty()


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
) -> None:
    """Import a ledger file, with a progress bar, then print what was imported."""
    if database_url is not None and not direct:
        raise typer.BadParameter("--database-url needs --direct", param_hint="--database-url")
    business_id = (business_id.strip() or None) if business_id else None
    try:
        provider_value = _detect_provider(file)
        with ImportProgress(_show_progress(as_json)) as progress:
            if direct:
                job, company_name = asyncio.run(
                    _import_direct(file, provider_value, business_id, database_url, progress)
                )
            else:
                job, company_name = _import_via_http(
                    file, business_id, importer_url, timeout, progress
                )
    except CliError as error:
        raise _fail(error) from None
    summary = import_summary(job, company_name)
    if as_json:
        typer.echo(json.dumps(summary, indent=2, ensure_ascii=False))
    else:
        for line in summary_lines(summary, file.name):
            typer.echo(line)
    if job.get("status") != "completed":
        raise _fail(
            CliError(
                job.get("error_message") or f"the import ended {job.get('status')}",
                code=job.get("error_code") or "import_failed",
            )
        )


def _detect_provider(path: Path) -> str:
    """``sie`` or ``saf-t`` from the file's first bytes (as the importer decides)."""
    from ledgerlink.importer.domain.ledger import LedgerFormat, LedgerImportError, detect_format
    from ledgerlink.shared.events import Provider

    with path.open("rb") as stream:
        head = stream.read(_HEAD_BYTES)
    if not head.strip():
        raise CliError(f"{path.name} is empty", code="unknown_format")
    try:
        fmt = detect_format(head)
    except LedgerImportError as error:
        raise CliError(f"{path.name}: {error}", code=error.reason_code) from None
    return (Provider.SIE if fmt is LedgerFormat.SIE else Provider.SAF_T).value


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
) -> tuple[dict[str, Any], str | None]:
    base = _base_url(importer_url)
    with httpx.Client(base_url=base, timeout=httpx.Timeout(60.0, connect=10.0)) as client:
        progress.uploading(path.stat().st_size)
        try:
            with _CountingFile(path, progress.uploaded) as stream:
                response = client.post(
                    "/v1/imports",
                    files={"file": (path.name, stream, "application/octet-stream")},
                    data={"business_id": business_id} if business_id else None,
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
                f"the importer refused the upload ({response.status_code}): {_detail(response)}",
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
                f"{_detail(response)}",
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
) -> tuple[dict[str, Any], str | None]:
    from datetime import timedelta

    from pydantic import ValidationError
    from sqlalchemy.exc import SQLAlchemyError

    from ledgerlink.importer.config import Config
    from ledgerlink.importer.handlers.http import ImportJobPublic
    from ledgerlink.importer.services.imports import ImportService
    from ledgerlink.importer.services.ledger_import import (
        ImportSettings,
        LedgerImportService,
    )
    from ledgerlink.importer.storage.files import FileArea
    from ledgerlink.importer.storage.models import Company, ImportJob, messaging
    from ledgerlink.shared.db import Database
    from ledgerlink.shared.events import Provider
    from ledgerlink.shared.messaging.outbox import Outbox

    try:
        config = Config()
    except ValidationError as error:
        raise CliError(f"the importer's settings are invalid: {error}", exit_code=2) from None
    url = database_url or config.database.url.get_secret_value()
    engine = await _open_migrated_store(url)
    db = Database(engine)
    try:
        settings = ImportSettings(
            lease=timedelta(seconds=config.import_lease_seconds),
            max_attempts=config.import_max_attempts,
            batch_lines=config.import_batch_lines,
        )
        outbox = Outbox(
            messaging, source="ledgerlink/importer", topic_prefix=config.kafka.topic_prefix
        )
        files = FileArea(config.files_dir, extra_roots=(*config.file_roots, path.parent))
        service = LedgerImportService(db, outbox, files, settings)
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
            finished = await session.get(ImportJob, import_id)
            assert finished is not None
            company = (
                await session.get(Company, finished.company_id) if finished.company_id else None
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


# ------------------------------------------------------------------------- summary


def import_summary(job: Mapping[str, Any], company_name: str | None) -> dict[str, Any]:
    """What an import did, as ``--json`` prints it."""
    return {
        "import_id": job.get("id"),
        "status": job.get("status"),
        "outcome": job.get("outcome"),
        "company": {"business_id": job.get("business_id") or None, "name": company_name},
        "fiscal_year": {
            "start": job.get("fiscal_year_start"),
            "end": job.get("fiscal_year_end"),
        },
        "counts": job.get("counts"),
        "periods": job.get("periods"),
        "reconciliation_status": job.get("reconciliation_status"),
        "differences": job.get("differences") or [],
        "notices": job.get("notices") or [],
        "error_code": job.get("error_code"),
        "error_message": job.get("error_message"),
    }


def summary_lines(summary: Mapping[str, Any], filename: str) -> list[str]:
    """The summary for people."""
    if summary["status"] != "completed":
        return [f"Import of {filename} {summary['status']} (import {summary['import_id']})"]
    company = summary["company"]
    who = (
        f"{company['name']} ({company['business_id']})"
        if company["name"]
        else company["business_id"]
    )
    year = summary["fiscal_year"]
    counts: Mapping[str, int] = summary["counts"] or {}
    periods: list[str] = summary["periods"] or []
    lines = [
        f"Imported {filename}: {who}",
        f"  {'import':<16}{summary['import_id']}",
        f"  {'fiscal year':<16}{year['start']} to {year['end']}",
        f"  {'outcome':<16}{summary['outcome']}",
        "  "
        + f"{'counts':<16}"
        + ", ".join(f"{counts.get(key, 0):,} {key}" for key in _COUNT_KEYS if key in counts),
        f"  {'periods':<16}"
        + (f"{periods[0]} to {periods[-1]} ({len(periods)})" if periods else "none"),
    ]
    differences: list[Mapping[str, str]] = summary["differences"]
    status = summary["reconciliation_status"]
    if differences:
        lines.append(
            f"  {'reconciliation':<16}{status}: {len(differences)} account(s) do not reconcile"
        )
        rows = [["account", "difference", "opening", "movements", "computed", "in file"]]
        rows.extend(
            [
                d["account"],
                d["difference"],
                d["opening"],
                d["movements"],
                d["computed_closing"],
                d["source_closing"],
            ]
            for d in differences
        )
        lines.extend("    " + row for row in _table(rows, right={1, 2, 3, 4, 5}))
    else:
        lines.append(f"  {'reconciliation':<16}{status}")
    lines.append(f"  {'notices':<16}{len(summary['notices'])}")
    return lines


_COUNT_KEYS: Final = ("accounts", "dimensions", "objects", "vouchers", "lines")


def _table(rows: Sequence[Sequence[str]], *, right: Iterable[int] = ()) -> list[str]:
    """Rows as aligned text columns (``right``: the indexes of right-aligned columns)."""
    right = set(right)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ).rstrip()
        for row in rows
    ]


# ------------------------------------------------------------------------- reports

report_app = typer.Typer(
    help="Reports of imported books, from the running importer.", no_args_is_help=True
)

BusinessId = Annotated[str, typer.Option("--business-id", help="Whose books.")]
AsOf = Annotated[
    datetime | None,
    typer.Option(
        "--as-of",
        formats=["%Y-%m-%d"],
        metavar="DATE",
        help="From the start of its fiscal year to the end of the month holding DATE.",
    ),
]
PeriodFrom = Annotated[
    str | None,
    typer.Option("--from", metavar="PERIOD", help="First period: YYYY-MM (or its first day)."),
]
PeriodTo = Annotated[
    str | None,
    typer.Option("--to", metavar="PERIOD", help="Last period: YYYY-MM (or its last day)."),
]
AsCsv = Annotated[bool, typer.Option("--csv", help="Print the report as CSV.")]


def _period_params(as_of: datetime | None, start: str | None, end: str | None) -> dict[str, str]:
    if as_of is not None and (start is not None or end is not None):
        raise typer.BadParameter("give either --as-of or --from/--to", param_hint="--as-of")
    params = {}
    if as_of is not None:
        params["to"] = as_of.strftime("%Y-%m")
    if start is not None:
        params["from"] = start
    if end is not None:
        params["to"] = end
    return params


def _output_format(as_json: bool, as_csv: bool) -> str:
    if as_json and as_csv:
        raise typer.BadParameter("give either --json or --csv", param_hint="--csv")
    return "csv" if as_csv else "json"


def fetch_report(
    importer_url: str, business_id: str, report: str, params: Mapping[str, str]
) -> httpx.Response:
    """GET one report; API errors and an unreachable importer become :class:`CliError`."""
    base = _base_url(importer_url)
    try:
        with httpx.Client(base_url=base, timeout=httpx.Timeout(300.0, connect=10.0)) as client:
            response = client.get(
                f"/v1/companies/{quote(business_id, safe='')}/{report}", params=dict(params)
            )
    except httpx.ConnectError as error:
        raise CliError(
            f"cannot reach the importer at {base} ({error}); start the stack with "
            "`ledgerlink dev up` or give its address with --importer-url",
            code="importer_unreachable",
            exit_code=2,
        ) from None
    except httpx.TransportError as error:
        raise CliError(f"asking {base} for the report failed: {error!r}") from None
    if response.status_code != 200:
        raise CliError(_detail(response), code=f"http_{response.status_code}")
    return response


def _base_url(importer_url: str) -> str:
    if not importer_url.startswith(("http://", "https://")):
        raise typer.BadParameter(
            f"{importer_url!r} is not an http:// or https:// URL", param_hint="--importer-url"
        )
    return importer_url.rstrip("/")


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip() or response.reason_phrase
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, list):
        return "; ".join(
            str(item.get("msg", item)) if isinstance(item, dict) else str(item) for item in detail
        )
    return str(detail) if detail is not None else json.dumps(body)


def _print_report(
    response: httpx.Response, fmt: str, as_json: bool, human: Callable[[Any], list[str]]
) -> None:
    if fmt == "csv":
        typer.echo(response.text, nl=False)
    elif as_json:
        typer.echo(json.dumps(response.json(), indent=2, ensure_ascii=False))
    else:
        for line in human(response.json()):
            typer.echo(line)


def _header_lines(title: str, header: Mapping[str, Any], extra: str = "") -> list[str]:
    return [
        f"{title}: {header['company_name']} ({header['business_id']})",
        f"Periods {header['period_from']} to {header['period_to']} of the fiscal year "
        f"{header['fiscal_year_start']} to {header['fiscal_year_end']}; amounts in "
        f"{header['currency']}{extra}",
        "",
    ]


def trial_balance_lines(report: Mapping[str, Any]) -> list[str]:
    """A trial balance for people: opening, movement and closing per account."""
    extra = ""
    if report.get("dimension_id"):
        extra = f"; dimension {report['dimension_id']}, object {report['object_id']}"
    rows = [["Account", "Name", "Opening", "Movement", "Closing"]]
    rows.extend(
        [row["account"], row["name"], row["opening"], row["movement"], row["closing"]]
        for row in report["accounts"]
    )
    totals = report["totals"]
    rows.append(["", "Total", totals["opening"], totals["movement"], totals["closing"]])
    return [
        *_header_lines("Trial balance", report["header"], extra),
        *_table(rows, right={2, 3, 4}),
    ]


_COLUMN_TITLES: Final = {"period": "Period", "year_to_date": "Year to date", "balance": "Balance"}
_TOTAL_TITLES: Final = {
    "result": "Result",
    "assets": "Total assets",
    "equity_and_liabilities": "Total equity and liabilities",
    "difference": "Difference",
}


def statement_lines(title: str, report: Mapping[str, Any]) -> list[str]:
    """A P&L or balance sheet for people: sections with their lines and totals."""
    columns: list[str] = report["columns"]
    empty = [""] * len(columns)
    rows: list[list[str]] = [
        ["", *(_COLUMN_TITLES.get(c, c.replace("_", " ").capitalize()) for c in columns)]
    ]
    for section in report["sections"]:
        rows.append([section["title"], *empty])
        rows.extend(
            [f"  {line['account']:<6}{line['name']}", *line["amounts"]] for line in section["lines"]
        )
        rows.append(
            [f"  Total {section['title'][:1].lower()}{section['title'][1:]}", *section["totals"]]
        )
        rows.append(["", *empty])
    rows.extend(
        [_TOTAL_TITLES.get(key, key.replace("_", " ").capitalize()), *values]
        for key, values in report["totals"].items()
    )
    right = set(range(1, 1 + len(columns)))
    return [*_header_lines(title, report["header"]), *_table(rows, right=right)]


@report_app.command("trial-balance")
def report_trial_balance(
    business_id: BusinessId,
    as_of: AsOf = None,
    start: PeriodFrom = None,
    end: PeriodTo = None,
    dimension: Annotated[
        str | None, typer.Option("--dimension", help="Dimension id (with --object).")
    ] = None,
    object_id: Annotated[
        str | None, typer.Option("--object", help="Object id of the dimension.")
    ] = None,
    as_json: AsJson = False,
    as_csv: AsCsv = False,
    importer_url: ImporterUrl = DEFAULT_IMPORTER_URL,
) -> None:
    """Each account's opening balance, movement and closing balance over the periods."""
    fmt = _output_format(as_json, as_csv)
    if (dimension is None) != (object_id is None):
        raise typer.BadParameter("give --dimension and --object together", param_hint="--object")
    params = _period_params(as_of, start, end)
    if dimension is not None and object_id is not None:
        params.update(dimension=dimension, object=object_id)
    params["format"] = fmt
    try:
        response = fetch_report(importer_url, business_id, "trial-balance", params)
    except CliError as error:
        raise _fail(error) from None
    _print_report(response, fmt, as_json, trial_balance_lines)


@report_app.command("profit-and-loss")
def report_profit_and_loss(
    business_id: BusinessId,
    as_of: AsOf = None,
    start: PeriodFrom = None,
    end: PeriodTo = None,
    as_json: AsJson = False,
    as_csv: AsCsv = False,
    importer_url: ImporterUrl = DEFAULT_IMPORTER_URL,
) -> None:
    """Profit and loss for the periods and for the fiscal year to date."""
    fmt = _output_format(as_json, as_csv)
    params = {**_period_params(as_of, start, end), "format": fmt}
    try:
        response = fetch_report(importer_url, business_id, "profit-and-loss", params)
    except CliError as error:
        raise _fail(error) from None
    _print_report(response, fmt, as_json, lambda report: statement_lines("Profit and loss", report))


@report_app.command("balance-sheet")
def report_balance_sheet(
    business_id: BusinessId,
    as_of: AsOf = None,
    end: PeriodTo = None,
    as_json: AsJson = False,
    as_csv: AsCsv = False,
    importer_url: ImporterUrl = DEFAULT_IMPORTER_URL,
) -> None:
    """Balance sheet at the end of a period (default: the latest fiscal year's end)."""
    fmt = _output_format(as_json, as_csv)
    params = {**_period_params(as_of, None, end), "format": fmt}
    try:
        response = fetch_report(importer_url, business_id, "balance-sheet", params)
    except CliError as error:
        raise _fail(error) from None
    _print_report(response, fmt, as_json, lambda report: statement_lines("Balance sheet", report))
