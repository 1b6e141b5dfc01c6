"""``ledgerlink sync``: connections' ledger syncs over the vendor APIs, from the importer.

``status`` shows per connection the last sync, its outcome and counts, how far the books
are behind the vendor and when the next sync runs; ``run`` asks for a sync now and
``reset`` for a full refresh (both wait with a progress bar unless ``--no-wait``).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Annotated, Any

import httpx
import typer

from ledgerlink.cli.common import (
    DEFAULT_IMPORTER_URL,
    AsJson,
    CliError,
    ImporterUrl,
    base_url,
    fail,
    response_detail,
)
from ledgerlink.cli.rendering import ImportProgress, show_progress

sync_app = typer.Typer(
    help="Ledger syncs of connections over the vendors' APIs.", no_args_is_help=True
)

ConnectionId = Annotated[uuid.UUID, typer.Argument(help="The connection's id.")]
Wait = Annotated[
    bool, typer.Option("--wait/--no-wait", help="Wait for the sync to finish (progress bar).")
]
PollSeconds = Annotated[
    float, typer.Option("--poll-seconds", min=0.05, help="How often to ask while waiting.")
]


def _request(
    importer_url: str, method: str, path: str, *, json_body: Mapping[str, Any] | None = None,
    params: Mapping[str, str] | None = None,
) -> httpx.Response:  # fmt: skip
    base = base_url(importer_url)
    try:
        with httpx.Client(base_url=base, timeout=httpx.Timeout(60.0, connect=10.0)) as client:
            response = client.request(method, path, json=json_body, params=dict(params or {}))
    except httpx.ConnectError as error:
        raise CliError(
            f"cannot reach the importer at {base} ({error}); start the stack with "
            "`ledgerlink dev up` or give its address with --importer-url",
            code="importer_unreachable",
            exit_code=2,
        ) from None
    except httpx.TransportError as error:
        raise CliError(f"asking {base} failed: {error!r}") from None
    if response.status_code >= 400:
        raise CliError(response_detail(response), code=f"http_{response.status_code}")
    return response


def status_lines(rows: list[dict[str, Any]]) -> list[str]:
    """One block per connection, for people."""
    if not rows:
        return ["No connection is synced over a vendor API."]
    lines: list[str] = []
    for row in rows:
        counts = row.get("last_counts") or {}
        lag = row.get("lag_seconds")
        lines += [
            f"{row['business_id']}  {row['provider']}  connection {row['connection_id']}",
            f"  last sync:  {row.get('last_mode') or '-'} {row.get('last_status') or 'never'}"
            f" (finished {row.get('last_finished_at') or '-'})",
            f"  counts:     {counts.get('vouchers', 0)} vouchers, {counts.get('lines', 0)} lines"
            f" ({counts.get('sync_vouchers_read', 0)} vouchers read by the last sync)",
            f"  books as of {row.get('data_as_of') or '-'}"
            + (f" ({lag / 60:.0f} min behind the vendor)" if lag is not None else ""),
            "  next run:   "
            + (
                f"paused: {row['paused_reason']}"
                if row.get("paused_reason")
                else str(row.get("next_run_at") or "when the running sync ends")
            ),
        ]
        if row.get("last_error"):
            lines.append(f"  last error: {row['last_error']}")
        active = row.get("active")
        if active:
            lines.append(
                f"  now:        {active['mode']} {active['status']}, "
                f"{active['lines_written']} lines written"
            )
    return lines


@sync_app.command("status")
def sync_status(
    connection: Annotated[
        uuid.UUID | None, typer.Option("--connection", help="One connection's status.")
    ] = None,
    business_id: Annotated[
        str | None, typer.Option("--business-id", help="The connections of one company.")
    ] = None,
    as_json: AsJson = False,
    importer_url: ImporterUrl = DEFAULT_IMPORTER_URL,
) -> None:
    """Per connection: last sync, outcome, counts, lag behind the vendor, next run."""
    try:
        if connection is not None:
            rows = [_request(importer_url, "GET", f"/v1/connections/{connection}/sync").json()]
        else:
            params = {"business_id": business_id} if business_id else {}
            rows = _request(importer_url, "GET", "/v1/syncs", params=params).json()
    except CliError as error:
        raise fail(error) from None
    if as_json:
        typer.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    for line in status_lines(rows):
        typer.echo(line)


def _follow(
    importer_url: str,
    import_id: str,
    *,
    as_json: bool,
    poll_seconds: float,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Ask for the sync until it has finished, showing its progress."""
    with ImportProgress(show_progress(as_json)) as progress:
        while True:
            job: dict[str, Any] = _request(importer_url, "GET", f"/v1/imports/{import_id}").json()
            progress.lines(int(job.get("progress_lines") or 0), f"sync {job['status']}")
            if job["status"] in ("completed", "failed"):
                return job
            sleep(poll_seconds)


def _queue_and_follow(
    importer_url: str, path: str, body: Mapping[str, Any] | None, *, wait: bool, as_json: bool,
    poll_seconds: float,
) -> None:  # fmt: skip
    try:
        queued = _request(importer_url, "POST", path, json_body=body).json()
        if not wait:
            typer.echo(json.dumps(queued) if as_json else f"sync {queued['import_id']} queued")
            return
        job = _follow(importer_url, queued["import_id"], as_json=as_json, poll_seconds=poll_seconds)
    except CliError as error:
        raise fail(error) from None
    if as_json:
        typer.echo(json.dumps(job, indent=2, ensure_ascii=False))
    else:
        counts = job.get("counts") or {}
        typer.echo(
            f"sync {job['id']} {job['status']}"
            + (f": {job.get('outcome')}, {counts.get('sync_vouchers_read', 0)} vouchers read, "
               f"{counts.get('lines', 0)} lines in the books" if job["status"] == "completed"
               else f": {job.get('error_code')}: {job.get('error_message')}")
        )  # fmt: skip
    if job["status"] != "completed":
        raise typer.Exit(1)


@sync_app.command("run")
def sync_run(
    connection: ConnectionId,
    full: Annotated[
        bool, typer.Option("--full", help="Read everything again (a full refresh).")
    ] = False,
    backfill: Annotated[
        tuple[str, str] | None,
        typer.Option(
            "--backfill",
            metavar="FROM TO",
            help="Read the vouchers dated FROM to TO (YYYY-MM-DD, both included) again and "
            "replace them exactly; other periods stay as they are.",
        ),
    ] = None,
    wait: Wait = True,
    poll_seconds: PollSeconds = 1.0,
    as_json: AsJson = False,
    importer_url: ImporterUrl = DEFAULT_IMPORTER_URL,
) -> None:
    """Sync a connection now: what changed since the last sync (or everything, --full; or a
    date range again, --backfill FROM TO)."""
    if full and backfill:
        raise fail(CliError("choose --full or --backfill, not both"))
    body: dict[str, str] = {"mode": "full_refresh" if full else "incremental"}
    if backfill is not None:
        body = {"mode": "backfill", "from": backfill[0], "to": backfill[1]}
    _queue_and_follow(
        importer_url, f"/v1/connections/{connection}/sync", body,
        wait=wait, as_json=as_json, poll_seconds=poll_seconds,
    )  # fmt: skip


@sync_app.command("reset")
def sync_reset(
    connection: ConnectionId,
    wait: Wait = True,
    poll_seconds: PollSeconds = 1.0,
    as_json: AsJson = False,
    importer_url: ImporterUrl = DEFAULT_IMPORTER_URL,
) -> None:
    """Forget where the sync stood and read everything again (and unpause its schedule)."""
    _queue_and_follow(
        importer_url, f"/v1/connections/{connection}/sync/reset", None,
        wait=wait, as_json=as_json, poll_seconds=poll_seconds,
    )  # fmt: skip
