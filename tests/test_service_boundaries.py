"""A service imports the shared library and the connectors package, never another service.

Layers, from the bottom: ``ledgerlink.shared`` (contracts, wiring) <- ``ledgerlink.connectors``
(vendor APIs) <- the services. The shared library imports neither; the connectors import no
service.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SERVICES = {
    "auth": "ledgerlink.auth",
    "importer": "ledgerlink.importer",
    "journal-exporter": "ledgerlink.journal_exporter",
    "sandbox": "ledgerlink.sandbox",
}
OTHER_PACKAGES = {"ledgerlink.cli"}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
    return modules


def forbidden_for(service: str) -> set[str]:
    return {package for name, package in SERVICES.items() if name != service} | OTHER_PACKAGES


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_service_imports_only_shared_and_itself(service: str) -> None:
    assert violations_in(ROOT / "services" / service, forbidden_for(service)) == []


def violations_in(folder: Path, forbidden: set[str]) -> list[str]:
    files = sorted(folder.rglob("*.py"))
    assert files, f"no Python files under {folder}"
    return [
        f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path} imports {module}"
        for path in files
        for module in imported_modules(path)
        if any(module == bad or module.startswith(bad + ".") for bad in forbidden)
    ]


def test_shared_library_imports_no_service_and_no_connector() -> None:
    """Nor do its tests: tests against the vendor sandboxes live in tests/connectors/."""
    forbidden = set(SERVICES.values()) | OTHER_PACKAGES | {"ledgerlink.connectors"}
    assert violations_in(ROOT / "shared", forbidden) == []


def test_connectors_import_no_service() -> None:
    """The connectors stand on the shared library only (their sandbox tests live in tests/)."""
    assert violations_in(ROOT / "connectors", set(SERVICES.values()) | OTHER_PACKAGES) == []


def test_the_check_catches_a_cross_service_import(tmp_path: Path) -> None:
    offender = tmp_path / "offender.py"
    offender.write_text(
        "from ledgerlink.importer.storage import models\nimport ledgerlink.shared\n"
    )
    modules = imported_modules(offender)
    assert any(module.startswith("ledgerlink.importer") for module in modules)
    assert "ledgerlink.importer" in forbidden_for("auth")
    assert violations_in(tmp_path, forbidden_for("auth")) == [
        f"{offender} imports ledgerlink.importer.storage"
    ]
