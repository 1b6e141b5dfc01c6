"""The Procountor activation flow (filled in by the flow's own commit)."""

from __future__ import annotations

from typing import Final

from fastapi import APIRouter

from ledgerlink.auth.handlers.pages.common import PagesContext

PROVIDER: Final = "procountor"


def first_step(ref: str) -> str:
    """Where the flow begins once the activation has arrived."""
    return f"/activate/{PROVIDER}/{ref}/start"


def build_router(context: PagesContext) -> APIRouter:
    """The flow's steps."""
    return APIRouter(tags=["activation pages"])
