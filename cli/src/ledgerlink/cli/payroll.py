"""``ledgerlink payroll``: payroll journals from Visma Nmbrs into Visma.net, through the
running journal-exporter (mappings, exports, status per run or period, evidence CSV)."""

from __future__ import annotations

import json
from typing import Annotated, Any, Final

import httpx
import typer

from ledgerlink.cli.common import AsJson, CliError, fail

DEFAULT_EXPORTER_URL: Final = "http://127.0.0.1:8083"

payroll_app = typer.Typer(
    help="Payroll journals from Visma Nmbrs into Visma.net (the journal-exporter).",
    no_args_is_help=True,
)

ExporterUrl = Annotated[
    str,
    typer.Option(
        "--exporter-url",
        envvar="LEDGERLINK_JOURNAL_EXPORTER_URL",
        help="Base URL of the running journal-exporter.",
    ),
]
ApiToken = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="LEDGERLINK_PAYROLL_API_TOKEN",
        help="The exporter's payroll API token (when it requires one).",
    ),
]
MappingId = Annotated[str, typer.Argument(help="The mapping's id.")]


def _call(
    method: str,
    url: str,
    path: str,
    token: str | None,
    *,
    body: dict[str, Any] | None = None,
    params: dict[str, str] | None = None,
) -> httpx.Response:
    if not url.startswith(("http://", "https://")):
        raise typer.BadParameter(f"{url!r} is not an http(s) URL", param_hint="--exporter-url")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with httpx.Client(
            base_url=url.rstrip("/"), timeout=httpx.Timeout(300.0, connect=10.0)
        ) as c:
            response = c.request(method, path, json=body, params=params, headers=headers)
    except httpx.TransportError as exc:
        raise fail(
            CliError(f"the journal-exporter at {url} is unreachable ({type(exc).__name__})")
        ) from None
    if response.status_code >= 400:
        raise fail(_refusal(response))
    return response


def _refusal(response: httpx.Response) -> CliError:
    try:
        detail = response.json().get("detail")
    except ValueError:
        return CliError(response.text.strip() or response.reason_phrase)
    if isinstance(detail, dict):
        lines = [str(detail.get("message", ""))]
        lines += [f"  {e['field']}: {e['message']}" for e in detail.get("errors") or []]
        return CliError("\n".join(lines), code=str(detail.get("reason_code") or "") or None)
    return CliError(str(detail))


def _print(data: Any, as_json: bool, lines: list[str]) -> None:
    if as_json:
        typer.echo(json.dumps(data, indent=2))
    else:
        for line in lines:
            typer.echo(line)


@payroll_app.command("map")
def create_mapping(
    name: Annotated[str, typer.Option(help="A name for the mapping.")],
    nmbrs_connection: Annotated[str, typer.Option(help="auth's Nmbrs connection id.")],
    nmbrs_company: Annotated[str, typer.Option(help="The Nmbrs company id.")],
    vismanet_connection: Annotated[str, typer.Option(help="auth's Visma.net connection id.")],
    vismanet_company: Annotated[str, typer.Option(help="The Visma.net company id.")],
    cost_centres: Annotated[
        str | None,
        typer.Option(help="Send cost centres to the Visma.net dimension with this description."),
    ] = None,
    cost_units: Annotated[
        str | None,
        typer.Option(help="Send cost units to the Visma.net dimension with this description."),
    ] = None,
    auto_export: Annotated[
        bool, typer.Option(help="Export runs when Nmbrs finalises them.")
    ] = False,
    release: Annotated[
        bool, typer.Option(help="Release each batch in Visma.net once posted.")
    ] = False,
    start_period: Annotated[
        str | None,
        typer.Option(help="First period (YYYY-MM) automatic export posts."),
    ] = None,
    mapping: Annotated[
        str | None, typer.Option("--change", help="Make a new version of this mapping.")
    ] = None,
    exporter_url: ExporterUrl = DEFAULT_EXPORTER_URL,
    token: ApiToken = None,
    as_json: AsJson = False,
) -> None:
    """Pair an Nmbrs company with a Visma.net company (or change a mapping: a new version)."""
    body = {
        "name": name,
        "nmbrs_connection_id": nmbrs_connection,
        "nmbrs_company_id": nmbrs_company,
        "vismanet_connection_id": vismanet_connection,
        "vismanet_company_id": vismanet_company,
        "cost_centre_description": cost_centres,
        "cost_unit_description": cost_units,
        "auto_export": auto_export,
        "release": release,
        "start_period": start_period,
    }
    if mapping is None:
        answer = _call("POST", exporter_url, "/v1/payroll/mappings", token, body=body)
    else:
        answer = _call("PUT", exporter_url, f"/v1/payroll/mappings/{mapping}", token, body=body)
    data = answer.json()
    _print(data, as_json, [f"mapping {data['mapping_id']} version {data['version']} saved"])


@payroll_app.command("mappings")
def list_mappings(
    exporter_url: ExporterUrl = DEFAULT_EXPORTER_URL,
    token: ApiToken = None,
    as_json: AsJson = False,
) -> None:
    """Every mapping's current version."""
    data = _call("GET", exporter_url, "/v1/payroll/mappings", token).json()
    _print(
        data,
        as_json,
        [
            f"{m['mapping_id']}  v{m['version']}  {m['name']}: Nmbrs {m['nmbrs_company_id']} -> "
            f"Visma.net {m['vismanet_company_id']}"
            for m in data
        ],
    )


@payroll_app.command("export")
def export(
    mapping: MappingId,
    run: Annotated[list[str] | None, typer.Option("--run", help="An Nmbrs run id.")] = None,
    period_from: Annotated[
        str | None, typer.Option("--from", help="First period, YYYY-MM.")
    ] = None,
    period_to: Annotated[str | None, typer.Option("--to", help="Last period, YYYY-MM.")] = None,
    exporter_url: ExporterUrl = DEFAULT_EXPORTER_URL,
    token: ApiToken = None,
    as_json: AsJson = False,
) -> None:
    """Export chosen runs, or the runs of a period range; the exporter posts them."""
    body: dict[str, Any] = {"runs": run or None, "period_from": period_from, "period_to": period_to}
    data = _call(
        "POST", exporter_url, f"/v1/payroll/mappings/{mapping}/exports", token, body=body
    ).json()
    _print(
        data,
        as_json,
        [
            f"{p['run_id']:>10}  {p['period']}  {p['kind']:<10}  {p['status']:<8}  "
            f"{p['batch_number'] or ''}"
            for p in data
        ],
    )


@payroll_app.command("status")
def status(
    mapping: MappingId,
    by: Annotated[str, typer.Option(help="run or period")] = "run",
    exporter_url: ExporterUrl = DEFAULT_EXPORTER_URL,
    token: ApiToken = None,
    as_json: AsJson = False,
) -> None:
    """Status per run or per period (``posted``: everything of it is in Visma.net)."""
    if by not in ("run", "period"):
        raise typer.BadParameter("run or period", param_hint="--by")
    data = _call(
        "GET", exporter_url, f"/v1/payroll/mappings/{mapping}/status", token, params={"by": by}
    ).json()
    _print(
        data,
        as_json,
        [
            f"{row['key']:>10}  {row['status']:<8}  {row['postings']} posting(s)  "
            f"{', '.join(row['batch_numbers'])}"
            for row in data
        ],
    )


@payroll_app.command("evidence")
def evidence(
    mapping: Annotated[str | None, typer.Option(help="Only this mapping's postings.")] = None,
    exporter_url: ExporterUrl = DEFAULT_EXPORTER_URL,
    token: ApiToken = None,
) -> None:
    """Every posting's evidence as CSV (source hash, mapping version, body sent, batch)."""
    params = {"mapping_id": mapping} if mapping else None
    answer = _call("GET", exporter_url, "/v1/payroll/evidence.csv", token, params=params)
    typer.echo(answer.text, nl=False)
