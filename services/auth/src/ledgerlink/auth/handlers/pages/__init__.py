"""The activation pages (issue 13): server-rendered, English and Finnish, usable without
JavaScript. ``common`` holds what every page shares, ``activation`` how a browser reaches
an activation (store redirect, e-mailed link, ``/connect/{provider}``), and one module per
flow builds its steps.

Each flow module offers ``PROVIDER``, ``build_router(context)``, and either
``first_step(ref)`` (store-started flows: where ``/activate/{provider}/{ref}`` continues
once the activation event has arrived) or ``CONNECT_PATH`` (in-product flows, started at
``/connect/{provider}``).
"""

from __future__ import annotations

from types import ModuleType

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import Response

from ledgerlink.auth.factory import AuthComponents
from ledgerlink.auth.handlers.pages import (
    activation,
    netvisor,
    nmbrs,
    procountor,
    twentyfour,
    vismanet,
)
from ledgerlink.auth.handlers.pages.common import (
    CsrfRefused,
    PagesContext,
    load_catalogs,
    page_templates,
)
from ledgerlink.auth.handlers.web import WebContext

__all__ = ["FLOW_MODULES", "PagesContext", "include_pages"]

#: Every flow's module, in the order their routes are attached.
FLOW_MODULES: tuple[ModuleType, ...] = (netvisor, procountor, vismanet, nmbrs, twentyfour)


def include_pages(
    app: FastAPI,
    web: WebContext,
    components: AuthComponents,
    *,
    vendor_transport: httpx.AsyncBaseTransport | None = None,
    flows: tuple[ModuleType, ...] = FLOW_MODULES,
) -> PagesContext:
    """Mount the shared activation routes and every flow's router on ``app``."""
    context = PagesContext(
        web=web,
        components=components,
        templates=page_templates(),
        catalogs=load_catalogs(),
        vendor_transport=vendor_transport,
    )
    starts = {}
    for module in flows:
        if hasattr(module, "first_step"):
            starts[module.PROVIDER] = module.first_step
        if hasattr(module, "CONNECT_PATH"):
            context.register_connect(module.PROVIDER, module.CONNECT_PATH)
    # Flow routers first: their fixed paths (/activate/procountor/callback) win over the
    # shared /activate/{provider}/{ref}.
    for module in flows:
        app.include_router(module.build_router(context))
    activation.register_activation_routes(app, context, starts)

    async def csrf_refused(request: Request, error: Exception) -> Response:
        return context.csrf_refused(request)

    app.add_exception_handler(CsrfRefused, csrf_refused)
    return context
