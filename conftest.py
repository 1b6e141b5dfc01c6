"""Fixtures shared by every test suite of the workspace."""

pytest_plugins = ["ledgerlink.shared.pytest_plugin"]
