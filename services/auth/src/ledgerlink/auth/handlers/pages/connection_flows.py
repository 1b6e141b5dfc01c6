"""Attach the in-product connection pages (Visma.net, Nmbrs' Visma.net account,
24SevenOffice) to the app."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from ledgerlink.auth.factory import AuthComponents
from ledgerlink.auth.handlers.pages._flowkit import FlowKit
from ledgerlink.auth.handlers.pages.nmbrs import build_nmbrs_router
from ledgerlink.auth.handlers.pages.twentyfour import build_twentyfour_router
from ledgerlink.auth.handlers.pages.vismanet import build_vismanet_router
from ledgerlink.auth.handlers.web import WebContext


def include_connection_flow_pages(
    app: FastAPI, context: WebContext, components: AuthComponents, http: httpx.AsyncClient
) -> None:
    """The pages of seeds 002, 003 and 004."""
    kit = FlowKit(context, components, http)
    app.include_router(build_vismanet_router(kit))
    app.include_router(build_nmbrs_router(kit))
    app.include_router(build_twentyfour_router(kit))
