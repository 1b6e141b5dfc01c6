"""``ledgerlink-auth serve|migrate|vault|connections|terms`` (also ``python -m ledgerlink.auth``).

Operator commands besides the service's own:

* ``vault status``: secrets per key version;
* ``vault rotate``: re-encrypt every secret under the active key (batched, idempotent,
  resumable);
* ``connections revoke ID``: revoke at the vendor where it allows it, wipe the secrets,
  publish ``connection.revoked.v1`` (through the outbox; a running replica relays it);
* ``terms publish --kind terms|privacy --version N --title T (--text-file F | --url U)
  [--published-at ISO]``: publish a new version (immutable: there is no edit or delete;
  a version must be higher than every earlier one of its kind). The same rules as
  ``POST /internal/v1/terms``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import httpx

from ledgerlink.auth.config import Config
from ledgerlink.auth.domain.clock import utc_now
from ledgerlink.auth.domain.terms import TermsKind
from ledgerlink.auth.factory import build_components, build_vault
from ledgerlink.auth.main import MIGRATIONS, SERVICE_NAME, create_app
from ledgerlink.auth.services.access import AccessRefused
from ledgerlink.auth.services.lifecycle import LifecycleError
from ledgerlink.auth.services.terms import TermsService
from ledgerlink.auth.services.vault_rotation import VaultRotation
from ledgerlink.auth.storage.models import messaging
from ledgerlink.auth.storage.vendor_oauth import VendorOAuthClient
from ledgerlink.shared.db import Database
from ledgerlink.shared.entrypoint import run_service_command
from ledgerlink.shared.messaging.outbox import Outbox
from ledgerlink.shared.telemetry import configure_logging


def _operator_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ledgerlink-auth")
    commands = parser.add_subparsers(dest="command", required=True)
    vault = commands.add_parser("vault", help="the credential vault's keys").add_subparsers(
        dest="action", required=True
    )
    vault.add_parser("status", help="secrets per key version (JSON)")
    vault.add_parser("rotate", help="re-encrypt every secret under the active key")
    connections = commands.add_parser("connections", help="connections").add_subparsers(
        dest="action", required=True
    )
    revoke = connections.add_parser("revoke", help="revoke a connection and wipe its secrets")
    revoke.add_argument("connection_id", type=uuid.UUID)
    terms = commands.add_parser("terms", help="terms of use and privacy notice").add_subparsers(
        dest="action", required=True
    )
    publish = terms.add_parser("publish", help="publish a new version (immutable)")
    publish.add_argument("--kind", required=True, choices=[kind.value for kind in TermsKind])
    publish.add_argument("--version", required=True, type=int)
    publish.add_argument("--title", required=True)
    source = publish.add_mutually_exclusive_group(required=True)
    source.add_argument("--text-file", type=Path, help="the text (UTF-8)")
    source.add_argument("--url", help="where the text is published")
    publish.add_argument(
        "--published-at",
        type=datetime.fromisoformat,
        help="when it becomes current, ISO 8601 with offset (default: now)",
    )
    return parser


async def _vault(config: Config, action: str) -> dict[str, object]:
    db = Database.from_settings(config.database)
    try:
        rotation = VaultRotation(db, build_vault(config), batch_size=config.vault.rotate_batch_size)
        if action == "rotate":
            rotated = await rotation.rotate()
            return {
                "rotated": rotated,
                "active_key": config.vault.active_key,
                "by_key_version": await rotation.status(),
            }
        return {"active_key": config.vault.active_key, "by_key_version": await rotation.status()}
    finally:
        await db.dispose()


async def _revoke(config: Config, connection_id: uuid.UUID) -> dict[str, object]:
    db = Database.from_settings(config.database)
    outbox = Outbox(
        messaging, source=f"ledgerlink/{SERVICE_NAME}", topic_prefix=config.kafka.topic_prefix
    )
    try:
        async with httpx.AsyncClient() as http:
            components = build_components(
                config, db, outbox, VendorOAuthClient(http, timeout=config.vendor_timeout_seconds)
            )
            connection, outcome = await components.revocation().revoke(connection_id)
        return {
            "connection_id": str(connection.id),
            "status": connection.status.value,
            "vendor_revocation": outcome,
        }
    finally:
        await db.dispose()


async def _publish_terms(config: Config, args: argparse.Namespace) -> dict[str, object]:
    if args.version < 1:
        raise AccessRefused("--version must be 1 or higher.", code="bad_version")
    published_at = args.published_at
    if published_at is not None and published_at.tzinfo is None:
        raise AccessRefused("--published-at needs a UTC offset (e.g. +00:00).", code="naive_time")
    text = args.text_file.read_text(encoding="utf-8") if args.text_file else None
    db = Database.from_settings(config.database)
    try:
        async with db.transaction() as session:
            document = await TermsService(session, utc_now).publish(
                TermsKind(args.kind),
                args.version,
                args.title,
                text=text,
                url=args.url,
                published_at=published_at,
            )
        return {
            "id": str(document.id),
            "kind": document.kind.value,
            "version": document.version,
            "published_at": document.published_at.isoformat(),
        }
    finally:
        await db.dispose()


def operator_command(argv: Sequence[str], config: Config | None = None) -> int:
    """Run one operator command; prints JSON; the exit status."""
    args = _operator_parser().parse_args(argv)
    config = config or Config()
    configure_logging(SERVICE_NAME, config.log_level)
    try:
        if args.command == "vault":
            result = asyncio.run(_vault(config, args.action))
        elif args.command == "terms":
            result = asyncio.run(_publish_terms(config, args))
        else:
            result = asyncio.run(_revoke(config, args.connection_id))
    except LifecycleError as error:
        print(json.dumps({"error": error.reason_code, "message": error.message}))
        return 1
    except AccessRefused as refused:
        print(json.dumps({"error": refused.code or "refused", "message": refused.message}))
        return 1
    print(json.dumps(result, default=str))
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the service's image."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments and arguments[0] in {"vault", "connections", "terms"}:
        sys.exit(operator_command(arguments))
    run_service_command(
        service_name=SERVICE_NAME,
        load_config=Config,
        create_app=create_app,
        migrations=MIGRATIONS,
        argv=arguments,
    )


if __name__ == "__main__":
    main()
