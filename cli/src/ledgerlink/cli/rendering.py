"""How the ledger commands show things: import progress, import summaries, reports."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Final

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


def show_progress(as_json: bool) -> bool:
    return not as_json and sys.stdout.isatty()


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
        lines.extend("    " + row for row in table(rows, right={1, 2, 3, 4, 5}))
    else:
        lines.append(f"  {'reconciliation':<16}{status}")
    lines.append(f"  {'notices':<16}{len(summary['notices'])}")
    return lines


_COUNT_KEYS: Final = ("accounts", "dimensions", "objects", "vouchers", "lines")


def table(rows: Sequence[Sequence[str]], *, right: Iterable[int] = ()) -> list[str]:
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


def header_lines(title: str, header: Mapping[str, Any], extra: str = "") -> list[str]:
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
        *header_lines("Trial balance", report["header"], extra),
        *table(rows, right={2, 3, 4}),
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
    return [*header_lines(title, report["header"]), *table(rows, right=right)]
