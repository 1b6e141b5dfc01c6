"""The environment the tests run in holds exactly the pinned set.

``scripts/bootstrap`` installs ``requirements-dev.lock`` (or ``requirements-bench.lock`` with
``--bench``) with ``uv pip sync``; a re-resolution would show up here as a version that differs
from its pin, or a package nobody pinned.
"""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

from packaging.markers import Marker

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)(?:\s*;\s*([^\\]+?))?\s*\\?$")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(lock: str) -> dict[str, str]:
    return {name: version for name, (version, _) in pinned(lock).items()}


def pinned(lock: str) -> dict[str, tuple[str, bool]]:
    """Each pin's version, and whether this platform installs it (its environment marker)."""
    found = {}
    for line in (ROOT / lock).read_text().splitlines():
        match = PIN.match(line)
        if match:
            marker = match.group(3)
            wanted = Marker(marker).evaluate() if marker else True
            found[canonical(match.group(1))] = (match.group(2), wanted)
    return found


def installed() -> dict[str, str]:
    return {
        canonical(dist.metadata["Name"]): dist.version
        for dist in importlib.metadata.distributions()
    }


def test_every_installed_third_party_package_is_pinned_at_its_version() -> None:
    present = {
        name: version for name, version in installed().items() if not name.startswith("ledgerlink")
    }
    lock = "requirements-bench.lock" if "dlt" in present else "requirements-dev.lock"
    expected = pinned(lock)
    assert {n: v for n, v in present.items() if expected.get(n, (None,))[0] != v} == {}
    # Nothing this platform installs is missing (pins whose marker names another platform,
    # such as pywin32 or win-precise-time, may be absent).
    missing = sorted(
        name for name, (_, wanted) in expected.items() if wanted and name not in present
    )
    assert missing == []


def test_the_lock_files_agree_with_each_other() -> None:
    runtime, dev, bench = (
        pins("requirements.lock"),
        pins("requirements-dev.lock"),
        pins("requirements-bench.lock"),
    )
    assert {n: v for n, v in runtime.items() if dev.get(n) != v} == {}
    assert {n: v for n, v in dev.items() if bench.get(n) != v} == {}


def test_every_workspace_member_is_unmanaged_so_uv_run_never_re_resolves() -> None:
    # `uv run` from a member's folder used the member's own settings: one that is not
    # marked unmanaged made uv lock and sync afresh, replacing pinned versions in .venv.
    import tomllib

    root = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert root["tool"]["uv"]["managed"] is False
    for member in root["tool"]["uv"]["workspace"]["members"]:
        project = tomllib.loads((ROOT / member / "pyproject.toml").read_text())
        assert project.get("tool", {}).get("uv", {}).get("managed") is False, member
