"""Run the sandbox over real HTTP inside a test's event loop.

``async with running_sandbox(world=world) as sandbox:`` starts uvicorn on 127.0.0.1 with an
ephemeral port in the current loop and yields :class:`RunningSandbox`; leaving the block
stops the server and waits for it. Start-up is awaited on an event, never on a sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Generator, Sequence
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI

from ledgerlink.sandbox.app import VENDOR_MODULES, create_app, uvicorn_config
from ledgerlink.sandbox.config import SandboxConfig
from ledgerlink.sandbox.world import World

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


class _Server(uvicorn.Server):
    """uvicorn server that reports start-up on an event and leaves signals alone."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    async def startup(self, sockets: list[object] | None = None) -> None:  # type: ignore[override]
        await super().startup(sockets)  # type: ignore[arg-type]
        self.ready.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # Inside a test process, Ctrl-C belongs to pytest, not to this server.
        yield


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
    server = _Server(uvicorn_config(app, "127.0.0.1", 0, lifespan="off"))
    serving = asyncio.create_task(server.serve())
    ready = asyncio.create_task(server.ready.wait())
    await asyncio.wait({serving, ready}, return_when=asyncio.FIRST_COMPLETED)
    if not server.ready.is_set():
        ready.cancel()
        await serving  # re-raises the start-up error, if any
        raise RuntimeError("the sandbox server stopped during start-up")
    try:
        port = server.servers[0].sockets[0].getsockname()[1]
        yield RunningSandbox(base_url=f"http://127.0.0.1:{port}", world=world, app=app)
    finally:
        server.should_exit = True
        await serving
