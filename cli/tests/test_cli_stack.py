"""The status table ``ledgerlink dev up`` prints, and the settings it gives auth."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, cast

import pytest

from ledgerlink.cli.main import _status_table, dev_auth_env
from ledgerlink.cli.stack import (
    SERVICES_BY_NAME,
    RunningService,
    Stack,
    StackConfig,
    StatusRow,
    render_status,
)


def test_status_table_aligns_columns_and_lists_every_part() -> None:
    text = render_status(
        [
            StatusRow("kafka", "127.0.0.1:39093", "ready", "embedded"),
            StatusRow("journal-exporter", "http://127.0.0.1:8083", "ready", "var/logs/je.log"),
        ],
        footer=["Ctrl-C stops everything."],
    )
    lines = text.splitlines()
    assert lines[0].split() == ["part", "address", "state", "logs", "/", "notes"]
    assert set(lines[1].replace(" ", "")) == {"-"}
    # Every column starts at the same offset on every row.
    offsets = [line.index("ready") for line in lines[2:4]]
    assert offsets[0] == offsets[1] == lines[0].index("state")
    assert lines[2].index("127.0.0.1") == lines[3].index("http://")
    assert lines[3].endswith("var/logs/je.log")
    assert lines[-1] == "  Ctrl-C stops everything."
    assert "\x1b" not in text


def _stack(**ports: int) -> Stack:
    return Stack(
        StackConfig(
            bootstrap_servers="127.0.0.1:9092",
            database_urls={"auth": "sqlite+aiosqlite:///./auth.db"},
            ports=ports,
        )
    )


def test_the_stack_wires_auth_to_the_sandbox_identity_providers() -> None:
    stack = _stack(auth=18081, sandbox=18084)
    auth = stack.service_env(SERVICES_BY_NAME["auth"])
    assert auth["LEDGERLINK_AUTH_SIGNIN__GOOGLE__DISCOVERY_URL"] == (
        "http://127.0.0.1:18084/google/.well-known/openid-configuration"
    )
    assert auth["LEDGERLINK_AUTH_SIGNIN__MICROSOFT__DISCOVERY_URL"] == (
        "http://127.0.0.1:18084/microsoft/organizations/v2.0/.well-known/openid-configuration"
    )
    sandbox = stack.service_env(SERVICES_BY_NAME["sandbox"])
    callbacks = json.loads(sandbox["LEDGERLINK_SANDBOX_OIDC_REDIRECT_URIS"])
    assert "http://127.0.0.1:18081/signin/google/callback" in callbacks
    assert "http://127.0.0.1:18081/signin/microsoft/callback" in callbacks
    # A test's own setting wins over the wiring.
    extra = {"LEDGERLINK_AUTH_SIGNIN__GOOGLE__ENABLED": "false"}
    assert (
        stack.service_env(SERVICES_BY_NAME["auth"], extra)[
            "LEDGERLINK_AUTH_SIGNIN__GOOGLE__ENABLED"
        ]
        == "false"
    )


def test_without_a_sandbox_auth_keeps_its_own_settings() -> None:
    env = _stack(auth=18081).service_env(SERVICES_BY_NAME["auth"])
    assert not any(
        key.startswith("LEDGERLINK_AUTH_SIGNIN__") for key in env if key not in os.environ
    )


def test_dev_up_footer_names_the_signin_page(tmp_path: Path) -> None:
    stack = _stack(auth=8081, sandbox=8084)
    stack.services["auth"] = RunningService(
        spec=SERVICES_BY_NAME["auth"],
        process=cast(Any, None),
        url="http://127.0.0.1:8081",
        log=None,
    )
    text = _status_table(stack, "127.0.0.1:9092", True, tmp_path)
    assert "  Sign in: http://127.0.0.1:8081/signin (Google and Microsoft" in text


def test_dev_up_footer_prints_each_activation_flows_start(tmp_path: Path) -> None:
    stack = _stack(auth=8081, sandbox=8084)
    for name, port in (("auth", 8081), ("sandbox", 8084)):
        stack.services[name] = RunningService(
            spec=SERVICES_BY_NAME[name],
            process=cast(Any, None),
            url=f"http://127.0.0.1:{port}",
            log=None,
        )
    text = _status_table(stack, "127.0.0.1:9092", True, tmp_path)
    assert "Netvisor -> planning: http://127.0.0.1:8081/activate/netvisor/dev-netvisor-1" in text
    assert (
        "Procountor -> planning: http://127.0.0.1:8081/activate/procountor/dev-procountor-1" in text
    )
    assert "ledgerlink publish activation --provider netvisor" in text
    assert "--store-reference dev-procountor-1 --kafka 127.0.0.1:9092" in text


def test_dev_auth_env_points_the_token_service_at_the_sandbox() -> None:
    from ledgerlink.auth.config import Config

    env = dev_auth_env(8084)
    config = Config.model_validate(
        {"oauth_providers": json.loads(env["LEDGERLINK_AUTH_OAUTH_PROVIDERS"])}
    )
    visma = config.oauth_providers["visma_net"]
    assert visma.token_url == "http://127.0.0.1:8084/visma-connect/connect/token"
    assert visma.revocation_url == "http://127.0.0.1:8084/visma-connect/connect/revocation"
    assert config.oauth_providers["nmbrs"].token_endpoint_auth_method == "none"
    assert env["LEDGERLINK_AUTH_NETVISOR__PARTNER_ID"] == "LEDGERLINK_DEMO"
    assert env["LEDGERLINK_AUTH_TWENTYFOUR__SOAP_BASE_URL"] == "http://127.0.0.1:8084/24so/soap"


def test_dev_env_runs_the_payroll_pages_against_auth_and_the_sandbox(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ledgerlink.journal_exporter.config import Config

    for name, value in dev_auth_env(8084, 8081).items():
        monkeypatch.setenv(name, value)
    config = Config()  # the pages refuse to start without sign-in: this would raise

    assert config.payroll.pages_enabled is True
    assert config.payroll.signin.auth_url == "http://127.0.0.1:8081"
    assert config.payroll.signin.signin_url == "http://127.0.0.1:8081/signin"
    assert config.payroll.nmbrs_base_url == "http://127.0.0.1:8084/nmbrs"
    assert config.payroll.vismanet_api_base_url == "http://127.0.0.1:8084/vismanet"
    assert config.token_service.token is not None
