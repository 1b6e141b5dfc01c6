"""``ledgerlink-sandbox serve`` (also ``python -m ledgerlink.sandbox serve``)."""

from __future__ import annotations

import argparse
import gc
import logging
from collections.abc import Sequence

import uvicorn

from ledgerlink.sandbox.app import VENDOR_MODULES, create_app, uvicorn_config
from ledgerlink.sandbox.config import SandboxConfig
from ledgerlink.sandbox.world import World


def main(argv: Sequence[str] | None = None) -> None:
    """Serve every vendor stand-in on one port (development and demos only)."""
    parser = argparse.ArgumentParser(prog="ledgerlink-sandbox")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the vendor sandboxes (never in production)")
    serve.add_argument("--host", help="interface to listen on (default from the config)")
    serve.add_argument("--port", type=int, help="TCP port (default from the config)")
    serve.add_argument("--seed", type=int, help="seed of the generated data")
    args = parser.parse_args(argv)

    overrides = {
        key: value
        for key, value in (("host", args.host), ("port", args.port), ("seed", args.seed))
        if value is not None
    }
    config = SandboxConfig(**overrides)
    logging.basicConfig(level=config.log_level, format="%(asctime)s %(levelname)s %(message)s")
    world = World(config)
    if config.demo_tenants:
        world.add_demo_tenants(VENDOR_MODULES)
    app = create_app(config, world)
    # The generated books live as long as the process: frozen, the collector no longer
    # walks them on every full collection (at a million lines, that made every page slow).
    gc.collect()
    gc.freeze()
    logging.getLogger(__name__).info(
        "sandbox listening on http://%s:%s (tenants: GET /_sandbox/tenants)",
        config.host,
        config.port,
    )
    uvicorn.Server(uvicorn_config(app, config.host, config.port)).run()


if __name__ == "__main__":
    main()
