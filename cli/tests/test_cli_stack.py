"""The status table ``ledgerlink dev up`` prints, and the settings it gives auth."""

from __future__ import annotations

import json

from ledgerlink.cli.main import dev_auth_env
from ledgerlink.cli.stack import StatusRow, render_status


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
