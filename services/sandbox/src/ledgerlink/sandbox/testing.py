"""Run the sandbox over real HTTP inside a test's event loop.

``async with running_sandbox(world=world) as sandbox:`` starts uvicorn on 127.0.0.1 with an
ephemeral port in the current loop and yields :class:`RunningSandbox`; leaving the block
stops the server and waits for it (``ledgerlink.shared.testing.serving``).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

from fastapi import FastAPI

from ledgerlink.sandbox.app import VENDOR_MODULES, create_app, uvicorn_config
from ledgerlink.sandbox.config import SandboxConfig
from ledgerlink.sandbox.world import World
from ledgerlink.shared.testing import serving

__all__ = ["RunningSandbox", "running_sandbox"]


@dataclass(frozen=True)
class RunningSandbox:
    """A started sandbox: its base URL (no trailing slash), world and app."""

    base_url: str
    world: World
    app: FastAPI

    def url(self, path: str) -> str:
        """Absolute URL of ``path`` (``/procountor/api/coa`` ...)."""
        return f"{self.base_url}/{path.lstrip('/')}"


@contextlib.asynccontextmanager
async def running_sandbox(
    config: SandboxConfig | None = None,
    world: World | None = None,
    *,
    vendors: Sequence[str] = VENDOR_MODULES,
    setup: Callable[[FastAPI, World], None] | None = None,
) -> AsyncIterator[RunningSandbox]:
    """Serve the sandbox on 127.0.0.1:<ephemeral> for the duration of the block.

    ``setup(app, world)`` runs after the vendors are mounted (tests mount extra routers).
    """
    config = config or (world.config if world is not None else SandboxConfig())
    world = world if world is not None else World(config)
    app = create_app(config, world, vendors=vendors)
    if setup is not None:
        setup(app, world)
    server_config = uvicorn_config(app, "127.0.0.1", 0, lifespan="off")
    async with serving(server_config) as base_url:
        yield RunningSandbox(base_url=base_url, world=world, app=app)
