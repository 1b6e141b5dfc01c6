"""``ledgerlink``: the operator's command line."""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from aiokafka import AIOKafkaProducer

from ledgerlink.cli.activation_demos import connection_page_lines, demo_lines, prepare_demos
from ledgerlink.cli.imports import import_ledger
from ledgerlink.cli.payroll import payroll_app
from ledgerlink.cli.reports import report_app
from ledgerlink.cli.stack import (
    SERVICES,
    Stack,
    StackConfig,
    StatusRow,
    create_all_topics,
    render_status,
)
from ledgerlink.cli.syncs import sync_app
from ledgerlink.shared.config import KafkaSettings
from ledgerlink.shared.envelope import CloudEvent
from ledgerlink.shared.events import (
    ActivationRequestedV1,
    Country,
    Product,
    Provider,
    Requester,
)
from ledgerlink.shared.kafka.broker import create_topics
from ledgerlink.shared.kafka.embedded import EmbeddedKafka
from ledgerlink.shared.topics import all_topics

app = typer.Typer(
    help="Ledgerlink: run the stack, manage topics, publish events, import ledgers, report.",
    no_args_is_help=True,
)
dev_app = typer.Typer(
    help="Development: the whole system on embedded defaults.", no_args_is_help=True
)
topics_app = typer.Typer(help="Kafka topics.", no_args_is_help=True)
publish_app = typer.Typer(help="Publish events as an upstream system would.", no_args_is_help=True)
app.add_typer(dev_app, name="dev")
app.add_typer(topics_app, name="topics")
app.add_typer(publish_app, name="publish")
app.add_typer(report_app, name="report")
app.add_typer(sync_app, name="sync")
app.add_typer(payroll_app, name="payroll")
app.command("import")(import_ledger)


@dev_app.command("up")
def dev_up(
    data_dir: Annotated[Path, typer.Option(help="Where the SQLite stores and logs go.")] = Path(
        "var"
    ),
    bootstrap_servers: Annotated[
        str | None,
        typer.Option(
            "--kafka",
            envvar="KAFKA_BOOTSTRAP_SERVERS",
            help="Use this Kafka instead of the embedded mock cluster.",
        ),
    ] = None,
    base_port: Annotated[
        int, typer.Option(help="auth gets this port, the others the next.")
    ] = 8081,
    logs_to_files: Annotated[
        bool,
        typer.Option(
            "--log-files/--show-logs",
            help="Keep the services' JSON logs in DATA_DIR/logs/<service>.log (the default), "
            "or stream them live to this terminal.",
        ),
    ] = True,
) -> None:
    """Start an embedded Kafka broker, SQLite stores and every service; Ctrl-C stops all."""
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    asyncio.run(_dev_up(data_dir, bootstrap_servers, base_port, logs_to_files))


def dev_auth_env(sandbox_port: int, auth_port: int = 8081) -> dict[str, str]:
    """auth's vendor clients in development: the sandbox's public demo clients, so the token
    service refreshes (and revokes, for Visma Connect), signs Netvisor identities and logs
    in at 24SevenOffice against the local stand-ins. The journal-exporter posts payroll
    from the sandbox's Nmbrs into its Visma.net, with its pages signed in through auth."""
    sandbox = f"http://127.0.0.1:{sandbox_port}"
    auth = f"http://127.0.0.1:{auth_port}"
    providers = {
        # The connection pages' Visma Connect client (the sandbox registers it): a grant
        # refreshes only with the client it was issued to.
        "visma_net": {
            "client_id": "isv_ledgerlink_pages",
            "client_secret": "sandbox-secret",
            "token_url": f"{sandbox}/visma-connect/connect/token",
            "revocation_url": f"{sandbox}/visma-connect/connect/revocation",
        },
        "nmbrs": {
            "client_id": "sandbox-nmbrs-client",
            "token_endpoint_auth_method": "none",
            "token_url": f"{sandbox}/nmbrs/rest/connect/token",
        },
        # The activation pages' Procountor client (activation_demos registers it there).
        "procountor": {
            "client_id": "ledgerlink-procountor-dev",
            "client_secret": "ledgerlink-procountor-dev-secret",
            "token_url": f"{sandbox}/procountor/api/oauth/token",
        },
    }
    return {
        "LEDGERLINK_AUTH_OAUTH_PROVIDERS": json.dumps(providers),
        # The sandbox's demo Netvisor partner and 24SevenOffice application (public demo
        # values of the stand-ins): the token service signs and logs in against them, and
        # the activation pages check a customer's identifiers with them.
        "LEDGERLINK_AUTH_NETVISOR__PARTNER_ID": "LEDGERLINK_DEMO",
        "LEDGERLINK_AUTH_NETVISOR__PARTNER_KEY": "demo-partner-key",
        "LEDGERLINK_AUTH_NETVISOR__BASE_URL": f"{sandbox}/netvisor",
        "LEDGERLINK_AUTH_TWENTYFOUR__APPLICATION_ID": "24so-sandbox-application",
        "LEDGERLINK_AUTH_TWENTYFOUR__SOAP_BASE_URL": f"{sandbox}/24so/soap",
        "LEDGERLINK_AUTH_PAGES__PROCOUNTOR__BASE_URL": f"{sandbox}/procountor",
        # The connection pages (Visma.net, Nmbrs, 24SevenOffice) call the sandbox's vendors.
        "LEDGERLINK_AUTH_CONNECT__VISMA_CONNECT__AUTHORIZE_URL": (
            f"{sandbox}/visma-connect/connect/authorize"
        ),
        "LEDGERLINK_AUTH_CONNECT__VISMA_CONNECT__TOKEN_URL": (
            f"{sandbox}/visma-connect/connect/token"
        ),
        "LEDGERLINK_AUTH_CONNECT__VISMA_CONNECT__API_BASE_URL": f"{sandbox}/vismanet",
        "LEDGERLINK_AUTH_CONNECT__NMBRS__SOAP_BASE_URL": f"{sandbox}/nmbrs",
        # journal-exporter: credentials from auth's token service (auth accepts this token
        # in development only), the sandbox's Nmbrs and Visma.net, and the payroll pages
        # (people sign in at auth; cookies are per host, so auth's reaches these pages).
        "LEDGERLINK_JOURNAL_EXPORTER_TOKEN_SERVICE__URL": auth,
        "LEDGERLINK_JOURNAL_EXPORTER_TOKEN_SERVICE__TOKEN": "development-only-service-token",
        "LEDGERLINK_JOURNAL_EXPORTER_PAYROLL__NMBRS_BASE_URL": f"{sandbox}/nmbrs",
        "LEDGERLINK_JOURNAL_EXPORTER_PAYROLL__VISMANET_API_BASE_URL": f"{sandbox}/vismanet",
        "LEDGERLINK_JOURNAL_EXPORTER_PAYROLL__PAGES_ENABLED": "true",
        "LEDGERLINK_JOURNAL_EXPORTER_PAYROLL__SIGNIN__AUTH_URL": auth,
        "LEDGERLINK_JOURNAL_EXPORTER_PAYROLL__SIGNIN__SIGNIN_URL": f"{auth}/signin",
    }


async def _dev_up(
    data_dir: Path, bootstrap_servers: str | None, base_port: int, logs_to_files: bool
) -> None:
    embedded: EmbeddedKafka | None = None
    if bootstrap_servers is None:
        embedded = EmbeddedKafka().start()
        bootstrap_servers = embedded.bootstrap_servers
        await create_all_topics(embedded)
    else:
        await create_topics(KafkaSettings(bootstrap_servers=bootstrap_servers), all_topics())

    stack = Stack(
        StackConfig(
            bootstrap_servers=bootstrap_servers,
            database_urls={
                spec.name: f"sqlite+aiosqlite:///{data_dir / (spec.name + '.db')}"
                for spec in SERVICES
            },
            ports={spec.name: base_port + index for index, spec in enumerate(SERVICES)},
            log_dir=data_dir / "logs" if logs_to_files else None,
            env=dev_auth_env(
                base_port + [spec.name for spec in SERVICES].index("sandbox"),
                base_port + [spec.name for spec in SERVICES].index("auth"),
            ),
        )
    )
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    try:
        await stack.up()
        await prepare_demos(stack.services["sandbox"].url, stack.services["auth"].url)
        typer.echo("\nLedgerlink is running:\n")
        typer.echo(_status_table(stack, bootstrap_servers, embedded is not None, data_dir))
        typer.echo("")
        watcher = asyncio.create_task(_watch_children(stack, stopping))
        await stopping.wait()
        watcher.cancel()
    finally:
        typer.echo("stopping services ...")
        stack.stop_all()
        if embedded is not None:
            embedded.close()
        typer.echo("stopped.")


def _status_table(stack: Stack, bootstrap_servers: str, embedded: bool, data_dir: Path) -> str:
    kafka_note = "embedded mock cluster: development and tests only" if embedded else "external"
    rows = [StatusRow("kafka", bootstrap_servers, "ready", kafka_note)]
    for name, running in stack.services.items():
        log = stack.log_path(name)
        where = str(log) if log is not None else "logs on this terminal"
        rows.append(StatusRow(name, running.url, "ready", where))
    auth = stack.services.get("auth")
    footer = [
        f"Stores: {data_dir}/<service>.db (SQLite). HTTP API of each service: <address>/docs.",
        "Vendor APIs in the sandbox: <sandbox address>/<vendor>/..., control at /_sandbox.",
    ]
    if auth is not None:
        footer.append(f"Readiness: {auth.url}{auth.spec.ready_path} (and likewise per service).")
        signin = stack.signin_url()
        if signin is not None:
            footer.append(
                f"Sign in: {signin} (Google and Microsoft stand-ins in the sandbox, test users)."
            )
        if "sandbox" in stack.services:
            footer.extend(demo_lines(auth.url, bootstrap_servers))
        exporter = stack.services.get("journal-exporter")
        if exporter is not None:
            footer.append(
                f"Payroll journals, Nmbrs -> Visma.net (seed 003): {exporter.url}/payroll "
                "(sign in first; connect the accounts at the Nmbrs page above)."
            )
            footer.extend(connection_page_lines(auth.url))
    footer.append("Ctrl-C stops everything.")
    return render_status(rows, footer=footer)


async def _watch_children(stack: Stack, stopping: asyncio.Event) -> None:
    while not stopping.is_set():
        for name, running in stack.services.items():
            if running.process.poll() is not None:
                typer.echo(f"{name} exited with {running.process.returncode}; stopping the stack")
                stopping.set()
                return
        await asyncio.sleep(0.5)  # supervision poll, not synchronisation


@topics_app.command("create")
def topics_create(
    bootstrap_servers: Annotated[str, typer.Option("--kafka", envvar="KAFKA_BOOTSTRAP_SERVERS")],
    prefix: Annotated[str, typer.Option(help="Topic prefix of the environment.")] = "",
) -> None:
    """Create every topic and its dead-letter topic on a real Kafka cluster."""
    topics = all_topics(prefix)
    asyncio.run(create_topics(KafkaSettings(bootstrap_servers=bootstrap_servers), topics))
    for name, partitions in topics.items():
        typer.echo(f"{name}\t{partitions} partition(s)")


@topics_app.command("list")
def topics_list(prefix: Annotated[str, typer.Option()] = "") -> None:
    """Print every topic name with its partition count."""
    for name, partitions in all_topics(prefix).items():
        typer.echo(f"{name}\t{partitions}")


@publish_app.command("activation")
def publish_activation(
    provider: Annotated[Provider, typer.Option()],
    business_id: Annotated[str, typer.Option()],
    country: Annotated[Country, typer.Option()],
    company_name: Annotated[str, typer.Option()],
    email: Annotated[str, typer.Option(help="Who requested the activation.")],
    name: Annotated[str, typer.Option(help="Their name.")],
    product: Annotated[Product, typer.Option()] = Product.PLANNING,
    store_reference: Annotated[str | None, typer.Option()] = None,
    bootstrap_servers: Annotated[
        str, typer.Option("--kafka", envvar="KAFKA_BOOTSTRAP_SERVERS")
    ] = "127.0.0.1:9092",
    prefix: Annotated[str, typer.Option()] = "",
) -> None:
    """Publish ``ledgerlink.activation.requested.v1`` exactly as any Kafka client would."""
    data = ActivationRequestedV1(
        provider=provider,
        business_id=business_id,
        country=country,
        company_name=company_name,
        requested_by=Requester(email=email, name=name),
        product=product,
        store_reference=store_reference,
    )
    envelope = CloudEvent(
        id=str(uuid.uuid4()),
        source="ledgerlink/cli",
        type=data.EVENT_TYPE,
        time=datetime.now(UTC),
        subject=business_id,
    )

    async def send() -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap_servers, acks="all", enable_idempotence=True
        )
        await producer.start()
        try:
            await producer.send_and_wait(
                f"{prefix}{data.TOPIC}",
                data.model_dump_json().encode(),
                key=business_id.encode(),
                headers=envelope.to_headers(),
            )
        finally:
            await producer.stop()

    asyncio.run(send())
    typer.echo(json.dumps({"ce_id": envelope.id, "topic": f"{prefix}{data.TOPIC}"}))


if __name__ == "__main__":
    app()
