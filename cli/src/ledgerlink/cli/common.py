"""What the CLI's ledger commands share: errors, the importer's address, its answers."""

from __future__ import annotations

import json
from typing import Annotated, Final

import httpx
import typer

DEFAULT_IMPORTER_URL: Final = "http://127.0.0.1:8082"


class CliError(Exception):
    """A failure to report on stderr: ``code`` (stable) and message, then exit."""

    def __init__(self, message: str, *, code: str | None = None, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.exit_code = exit_code


def fail(error: CliError) -> typer.Exit:
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


def base_url(importer_url: str) -> str:
    if not importer_url.startswith(("http://", "https://")):
        raise typer.BadParameter(
            f"{importer_url!r} is not an http:// or https:// URL", param_hint="--importer-url"
        )
    return importer_url.rstrip("/")


def response_detail(response: httpx.Response) -> str:
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
