"""All SQL of a service lives in its ``storage/`` package (and its Alembic migrations).

``domain/`` is pure, ``services/`` orchestrates through repositories and stores,
``handlers/`` are thin: none of them builds a statement or runs one. The check reads
the source (no import), so it also covers code no test happens to run.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Final

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Services with a store. The sandbox has none.
SERVICES: Final = {
    "auth": ROOT / "services" / "auth" / "src" / "ledgerlink" / "auth",
    "importer": ROOT / "services" / "importer" / "src" / "ledgerlink" / "importer",
    "journal-exporter": ROOT
    / "services"
    / "journal-exporter"
    / "src"
    / "ledgerlink"
    / "journal_exporter",
}
#: Where SQL belongs: the stores, and the schema's history.
SQL_PACKAGES: Final = ("storage", "migrations")
#: Files outside ``storage/`` allowed SQL, each with the reason (relative to the
#: service's package). Empty: every service keeps all its SQL in storage.
ALLOWED: Final[dict[str, dict[str, str]]] = {service: {} for service in SERVICES}

_BUILDERS: Final = frozenset({"select", "update", "insert", "delete", "text"})
_SQL_MODULES: Final = ("sqlalchemy", "sqlmodel")


def sql_uses(source: str, filename: str = "<source>") -> list[str]:
    """Each statement built or run in ``source``, as ``line: what``."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source, filename=filename)):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] in _SQL_MODULES:
                found.extend(
                    f"{node.lineno}: imports {alias.name} from {node.module}"
                    for alias in node.names
                    if alias.name in _BUILDERS
                )
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in _BUILDERS - {"text"}:
                found.append(f"{node.lineno}: {func.id}(")
            elif isinstance(func, ast.Attribute):
                owner = func.value
                owner_name = owner.id if isinstance(owner, ast.Name) else ""
                if func.attr in _BUILDERS and owner_name in {"sa", "sqlalchemy", "sqlmodel"}:
                    found.append(f"{node.lineno}: {owner_name}.{func.attr}(")
                elif func.attr == "execute" and _names_session(owner):
                    found.append(f"{node.lineno}: {ast.unparse(func)}(")
    return found


def _names_session(node: ast.expr) -> bool:
    """``session``, ``self._session``, ``connection`` ... (whatever runs statements)."""
    name = node.id if isinstance(node, ast.Name) else getattr(node, "attr", "")
    return any(word in name.lower() for word in ("session", "connection", "conn"))


def sql_outside_storage(package: Path) -> dict[str, list[str]]:
    """SQL per module of ``package`` outside its storage and migrations packages."""
    offences: dict[str, list[str]] = {}
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package)
        if relative.parts[0] in SQL_PACKAGES:
            continue
        uses = sql_uses(path.read_text(), filename=str(path))
        if uses:
            offences[relative.as_posix()] = uses
    return offences


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_sql_lives_in_storage(service: str) -> None:
    offences = sql_outside_storage(SERVICES[service])
    unexplained = {path: uses for path, uses in offences.items() if path not in ALLOWED[service]}
    assert unexplained == {}, (
        f"{service}: SQL outside storage/ (move it into a repository or store): {unexplained}"
    )


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_allow_list_has_no_stale_entries(service: str) -> None:
    offences = sql_outside_storage(SERVICES[service])
    stale = sorted(set(ALLOWED[service]) - set(offences))
    assert stale == [], f"{service}: allowed SQL that is no longer there: {stale}"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from sqlalchemy import select\n", ["1: imports select from sqlalchemy"]),
        ("from sqlmodel import col, select\n", ["1: imports select from sqlmodel"]),
        ("x = select(Job)\n", ["1: select("]),
        ("x = sa.update(Job)\n", ["1: sa.update("]),
        ("await session.execute(q)\n", ["1: session.execute("]),
        ("await self._session.execute(q)\n", ["1: self._session.execute("]),
        ("await connection.execute(q)\n", ["1: connection.execute("]),
        ("settings.update(other)\nitems.insert(0, x)\n", []),
        ("from sqlalchemy.ext.asyncio import AsyncSession\n", []),
    ],
)
def test_the_check_finds_statements(source: str, expected: list[str]) -> None:
    assert sql_uses(source) == expected


def test_the_check_covers_real_code() -> None:
    # Every store holds SQL, so a checker that found nothing there would be blind.
    for service, package in SERVICES.items():
        storage = package / "storage"
        found = [use for path in storage.rglob("*.py") for use in sql_uses(path.read_text())]
        assert found, f"{service}: no SQL found in storage/"
