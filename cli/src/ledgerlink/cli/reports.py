"""``ledgerlink report``: the importer's reports of the imported books."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

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
from ledgerlink.cli.rendering import statement_lines, trial_balance_lines

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
    base = base_url(importer_url)
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
        raise CliError(response_detail(response), code=f"http_{response.status_code}")
    return response


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
        raise fail(error) from None
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
        raise fail(error) from None
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
        raise fail(error) from None
    _print_report(response, fmt, as_json, lambda report: statement_lines("Balance sheet", report))
