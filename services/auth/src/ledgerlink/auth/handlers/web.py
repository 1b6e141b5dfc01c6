"""People's sign-in and sessions over HTTP: thin routes around the services.

| route | what |
| --- | --- |
| ``GET /signin`` | choose Google or Microsoft (``next``: a path on auth; ``max_age``: step-up) |
| ``GET /signin/{provider}`` | redirect to the provider (PKCE, ``state``, ``nonce``) |
| ``GET /signin/{provider}/callback`` | finish: a session and its cookie, or a page saying why not |
| ``POST /signout`` | end the session (CSRF token from the page) |
| ``GET /me`` | JSON: who is signed in and their CSRF token; 401 otherwise |
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlencode

from fastapi import APIRouter, FastAPI, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from ledgerlink.auth.config import Config
from ledgerlink.auth.domain.identity import SigninProblem, SigninRefused
from ledgerlink.auth.domain.next_url import UnsafeNextUrl, check_next
from ledgerlink.auth.domain.sessions import SessionPolicy
from ledgerlink.auth.services.cookies import SessionTokens
from ledgerlink.auth.services.sessions import ActiveSession, SessionService
from ledgerlink.auth.services.signin import SigninService
from ledgerlink.shared.db import Database
from ledgerlink.shared.runtime import error_responses

logger = logging.getLogger(__name__)

WEB_ROOT = Path(__file__).resolve().parent.parent / "web"
ATTEMPT_COOKIE = "ledgerlink_signin"
PROVIDER_LABELS = {"google": "Google", "microsoft": "Microsoft"}
_NO_STORE = {"Cache-Control": "no-store"}


@dataclass
class WebContext:
    """What the sign-in routes share for the process's lifetime."""

    config: Config
    db: Database
    signin: SigninService
    tokens: SessionTokens
    policy: SessionPolicy
    clock: Callable[[], datetime]
    templates: Jinja2Templates

    def sessions(self, session: Any) -> SessionService:
        """A session service on one request's transaction."""
        return SessionService(session, self.tokens, self.policy, self.clock)

    def page(
        self, request: Request, template: str, status: int = 200, **values: Any
    ) -> HTMLResponse:
        """A server-rendered page (never cached: it may name the person)."""
        return self.templates.TemplateResponse(
            request,
            template,
            {"labels": PROVIDER_LABELS, **values},
            status_code=status,
            headers=_NO_STORE,
        )

    def problem(self, request: Request, problem: SigninProblem) -> HTMLResponse:
        """The page of a refused sign-in (400 or 401), with no session made."""
        response = self.page(request, "problem.html", problem.status, problem=problem)
        response.delete_cookie(ATTEMPT_COOKIE, path="/signin")
        return response

    def set_session_cookie(self, response: Response, value: str) -> None:
        """The session cookie: HttpOnly, SameSite=Lax, Secure outside development."""
        response.set_cookie(
            self.config.sessions.cookie_name,
            value,
            max_age=self.config.sessions.absolute_seconds,
            path="/",
            httponly=True,
            samesite="lax",
            secure=self.config.cookie_secure,
        )

    def clear_session_cookie(self, response: Response) -> None:
        """Tell the browser to forget the session cookie."""
        response.delete_cookie(
            self.config.sessions.cookie_name,
            path="/",
            httponly=True,
            samesite="lax",
            secure=self.config.cookie_secure,
        )

    async def current_session(self, request: Request) -> ActiveSession | None:
        """The request's usable session, if any (its last-seen is kept up to date)."""
        cookie = request.cookies.get(self.config.sessions.cookie_name)
        if cookie is None:
            return None
        async with self.db.transaction() as session:
            return await self.sessions(session).resolve(cookie)

    def callback_url(self, request: Request, provider: str) -> str:
        """The redirect URI registered at the provider."""
        if self.config.signin.public_url:
            return f"{self.config.signin.public_url.rstrip('/')}/signin/{provider}/callback"
        return str(request.url_for("signin_callback", provider=provider))


def step_up_url(provider: str, next_url: str, max_age: int) -> str:
    """Where to send a person whose sign-in is older than a flow allows (``prompt=login``)."""
    return f"/signin/{provider}?{urlencode({'next': next_url, 'max_age': max_age})}"


async def require_recent_signin(
    context: WebContext, request: Request, max_age: int
) -> ActiveSession | RedirectResponse:
    """For flows that need a fresh sign-in: the session, or a redirect that gets one.

    A person who is not signed in goes to the sign-in page; one who signed in more than
    ``max_age`` seconds ago goes back to their provider, which must ask them again.
    """
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    active = await context.current_session(request)
    if active is None:
        query = urlencode({"next": here, "max_age": max_age})
        return RedirectResponse(f"/signin?{query}", status_code=303)
    async with context.db.transaction() as session:
        recent = context.sessions(session).is_recent(active, max_age)
    if not recent:
        return RedirectResponse(step_up_url(active.provider, here, max_age), status_code=303)
    return active


def _html_responses(statuses: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` of a route that answers with pages: each status with its
    meaning and an HTML body (redirects have none)."""
    return {
        status: {"description": text}
        if 300 <= status < 400
        else {"description": text, "content": {"text/html": {}}}
        for status, text in statuses.items()
    }


_REFUSED_PAGES: Final = {
    400: "A bad or stale request (unknown provider, unsafe next address, state mismatch, "
    "expired attempt, code refused, provider unreachable): a page says what to do.",
    401: "The identity was refused (signature, expiry, nonce, issuer, audience, unverified "
    "e-mail, sign-in too old): a page says why; no session is made.",
}


def build_web_router(context: WebContext) -> APIRouter:
    """The sign-in pages and session routes."""
    router = APIRouter(tags=["sign-in"])

    @router.get(
        "/signin",
        response_class=HTMLResponse,
        summary="Choose how to sign in.",
        responses=_html_responses({400: "The next address is not a page of this service."}),
    )
    async def signin_page(
        request: Request,
        next: str | None = None,
        max_age: int | None = Query(default=None, ge=0),
    ) -> Response:
        try:
            safe_next = check_next(next)
        except UnsafeNextUrl:
            return context.problem(request, SigninProblem.UNSAFE_NEXT)
        active = await context.current_session(request)
        links = {}
        for provider in context.signin.providers():
            query: dict[str, Any] = {"next": safe_next}
            if max_age is not None:
                query["max_age"] = max_age
            links[provider] = f"/signin/{provider}?{urlencode(query)}"
        csrf = None
        if active is not None:
            async with context.db.transaction() as session:
                csrf = context.sessions(session).csrf_token(active)
        return context.page(request, "signin.html", links=links, active=active, csrf_token=csrf)

    @router.get(
        "/signin/{provider}",
        summary="Go to the provider's sign-in.",
        response_class=HTMLResponse,
        responses=_html_responses({302: "To the provider's sign-in page.", **_REFUSED_PAGES}),
    )
    async def signin_start(
        request: Request,
        provider: str,
        next: str | None = None,
        max_age: int | None = Query(default=None, ge=0),
    ) -> Response:
        try:
            response, sealed = await context.signin.begin(
                request,
                provider,
                next_url=next,
                max_age=max_age,
                redirect_uri=context.callback_url(request, provider),
            )
        except SigninRefused as refusal:
            logger.warning(
                "sign-in not started",
                extra={"problem": refusal.problem.value, "provider": provider},
            )
            return context.problem(request, refusal.problem)
        response.set_cookie(
            ATTEMPT_COOKIE,
            sealed,
            max_age=context.config.signin.attempt_seconds,
            path="/signin",
            httponly=True,
            # Lax: the provider's redirect back is a top-level GET navigation, which carries it.
            samesite="lax",
            secure=context.config.cookie_secure,
        )
        response.headers["Cache-Control"] = "no-store"
        return response

    @router.get(
        "/signin/{provider}/callback",
        name="signin_callback",
        summary="Finish a sign-in.",
        response_class=HTMLResponse,
        responses=_html_responses({303: "Signed in: on to the next page.", **_REFUSED_PAGES}),
    )
    async def signin_callback(request: Request, provider: str) -> Response:
        try:
            identity, next_url = await context.signin.complete(
                request, provider, request.cookies.get(ATTEMPT_COOKIE)
            )
        except SigninRefused as refusal:
            logger.warning(
                "sign-in refused",
                extra={
                    "problem": refusal.problem.value,
                    "provider": provider,
                    "detail": refusal.detail[:500],
                },
            )
            return context.problem(request, refusal.problem)
        async with context.db.transaction() as session:
            cookie, active = await context.sessions(session).start(
                identity, replacing=request.cookies.get(context.config.sessions.cookie_name)
            )
        logger.info(
            "signed in",
            extra={"provider": provider, "user_id": str(active.user.id), "session": str(active.id)},
        )
        response = RedirectResponse(next_url, status_code=303, headers=_NO_STORE)
        context.set_session_cookie(response, cookie)
        response.delete_cookie(ATTEMPT_COOKIE, path="/signin")
        return response

    @router.post(
        "/signout",
        summary="Sign out (ends the session).",
        response_class=HTMLResponse,
        responses=_html_responses({400: "The form's CSRF token does not match the session."}),
    )
    async def signout(request: Request, csrf_token: str | None = Form(default=None)) -> Response:
        cookie = request.cookies.get(context.config.sessions.cookie_name)
        async with context.db.transaction() as session:
            sessions = context.sessions(session)
            active = await sessions.resolve(cookie)
            if active is not None and not sessions.csrf_is_valid(active, csrf_token):
                return context.page(request, "signout_refused.html", 400)
            if active is not None:
                await sessions.end(cookie)
        response = context.page(request, "signed_out.html")
        context.clear_session_cookie(response)
        return response

    @router.get(
        "/me",
        summary="Who is signed in (401 when nobody).",
        responses=error_responses({401: "Nobody is signed in (no or an expired session)."}),
    )
    async def me(request: Request) -> JSONResponse:
        active = await context.current_session(request)
        if active is None:
            return JSONResponse(
                {"detail": "not signed in"},
                status_code=401,
                headers={**_NO_STORE, "WWW-Authenticate": 'Cookie realm="ledgerlink"'},
            )
        user = active.user
        async with context.db.transaction() as session:
            csrf = context.sessions(session).csrf_token(active)
        return JSONResponse(
            {
                "user": {
                    "id": str(user.id),
                    "provider": user.provider,
                    "email": user.email,
                    "name": user.name,
                    "organisation": user.organisation,
                },
                "session": {
                    "authenticated_at": active.authenticated_at.isoformat(),
                    "expires_at": active.expires_at.isoformat(),
                    "idle_timeout_seconds": int(context.policy.idle.total_seconds()),
                },
                # The page's code sends it as X-CSRF-Token with state-changing JSON requests.
                "csrf_token": csrf,
            },
            headers=_NO_STORE,
        )

    return router


def register_web_routes(app: FastAPI, context: WebContext) -> None:
    """Attach the sign-in routes and the shared static files (CSS) to the app."""
    app.include_router(build_web_router(context))
    app.mount("/static", StaticFiles(directory=WEB_ROOT / "static"), name="static")


def templates() -> Jinja2Templates:
    """The page templates later flows share (``web/templates``)."""
    return Jinja2Templates(directory=WEB_ROOT / "templates")
