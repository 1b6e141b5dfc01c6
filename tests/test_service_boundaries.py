"""A service imports the shared library only, never another service."""

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
    folder = ROOT / "services" / service
    files = sorted(folder.rglob("*.py"))
    assert files, f"no Python files under {folder}"
    violations = [
        f"{path.relative_to(ROOT)} imports {module}"
        for path in files
        for module in imported_modules(path)
        if any(module == bad or module.startswith(bad + ".") for bad in forbidden_for(service))
    ]
    assert violations == []


def test_shared_library_imports_no_service() -> None:
    """Nor do its tests: tests against the vendor sandboxes live in tests/connectors/."""
    forbidden = set(SERVICES.values()) | OTHER_PACKAGES
    violations = [
        f"{path.relative_to(ROOT)} imports {module}"
        for path in sorted((ROOT / "shared").rglob("*.py"))
        for module in imported_modules(path)
        if any(module == bad or module.startswith(bad + ".") for bad in forbidden)
    ]
    assert violations == []


def test_the_check_catches_a_cross_service_import(tmp_path: Path) -> None:
    offender = tmp_path / "offender.py"
    offender.write_text(
        "from ledgerlink.importer.storage import models\nimport ledgerlink.shared\n"
    )
    modules = imported_modules(offender)
    assert any(module.startswith("ledgerlink.importer") for module in modules)
    assert "ledgerlink.importer" in forbidden_for("auth")
