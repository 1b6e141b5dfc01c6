"""The command line every service image runs: ``ledgerlink-<service> serve|migrate``."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Sequence
from typing import Any

import uvicorn

from ledgerlink.shared.config import ServiceConfig
from ledgerlink.shared.migrations import upgrade_to_head
from ledgerlink.shared.telemetry import configure_logging


def run_service_command(
    *,
    service_name: str,
    load_config: Callable[[], ServiceConfig],
    create_app: Callable[[Any], Any],
    migrations: str,
    argv: Sequence[str] | None = None,
) -> None:
    """Parse ``argv`` and serve the service or migrate its store."""
    parser = argparse.ArgumentParser(prog=f"ledgerlink-{service_name}")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the HTTP server, Kafka consumers and outbox relay")
    commands.add_parser("migrate", help="apply the store's migrations up to head, then exit")
    args = parser.parse_args(argv)

    config = load_config()
    if args.command == "migrate":
        configure_logging(service_name, config.log_level)
        upgrade_to_head(migrations, config.database.url.get_secret_value())
        logging.getLogger(__name__).info("migrations applied", extra={"service": service_name})
        return
    uvicorn.run(
        create_app(config),
        host=config.http.host,
        port=config.http.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )
