"""The signed-in person behind a JSON route, and the CSRF rule of state-changing ones.

One place for "who is calling" so every JSON route applies the same rules:

* ``person``: the browser session of the merged sign-in (cookie ``ledgerlink_session``);
  401 without a usable one.
* ``writer``: ``person``, plus, for a state-changing request, a JSON body
  (``Content-Type: application/json``, else 415) and the header ``X-CSRF-Token`` holding
  the session's CSRF token, the same HMAC of the session token the sign-out form carries
  (``GET /me`` hands it to the page's code), else 403. The session cookie is
  ``SameSite=Lax``, so another site cannot send it with a POST/PATCH/DELETE at all; the
  token covers same-site attackers and older browsers, and a custom header cannot be set by
  a plain HTML form.
"""

from __future__ import annotations

from typing import Any, Final

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from ledgerlink.auth.handlers.web import WebContext
from ledgerlink.auth.services.access import AccessRefused
from ledgerlink.auth.services.sessions import ActiveSession
from ledgerlink.shared.runtime import error_responses

CSRF_HEADER: Final = "X-CSRF-Token"
_NO_STORE: Final = {"Cache-Control": "no-store"}
_BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})


class RefusalBody(BaseModel):
    """A refused request: what went wrong in words, and a stable code when there is one."""

    detail: str
    code: str | None = None


#: The meaning of each status the person-facing routes share, for their ``responses``.
STATUS_TEXT: Final = {
    400: "The input cannot be accepted (the message says why).",
    401: "Nobody is signed in (no usable session cookie).",
    403: "Signed in, but not allowed: an admin-only action by a member (the message names "
    "the admins), a refused claim, or a missing/wrong CSRF token.",
    404: "No such thing, or it belongs to an environment the person is not a member of.",
    409: "The current state forbids it (the message says what: admins exist, last admin, "
    "subdomain taken, not the current terms ...).",
    415: "State-changing requests must send a JSON body (application/json).",
    422: "A field or parameter is missing or malformed.",
}


def statuses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these error statuses, with their shared meanings."""
    return error_responses({code: STATUS_TEXT[code] for code in codes}, model=RefusalBody)


class People:
    """Resolves the signed-in person of a request (FastAPI dependencies)."""

    def __init__(self, context: WebContext) -> None:
        self._context = context

    async def person(self, request: Request) -> ActiveSession:
        """The request's session; 401 when nobody is signed in."""
        active = await self._context.current_session(request)
        if active is None:
            raise HTTPException(
                401,
                "not signed in",
                headers={**_NO_STORE, "WWW-Authenticate": 'Cookie realm="ledgerlink"'},
            )
        return active

    async def session_of_cookie(self, cookie_value: str) -> tuple[ActiveSession, str] | None:
        """The usable session behind a session cookie's value and its CSRF token (another
        service's pages ask, with a service token); None when it is not usable."""
        async with self._context.db.transaction() as session:
            sessions = self._context.sessions(session)
            active = await sessions.resolve(cookie_value)
            return None if active is None else (active, sessions.csrf_token(active))

    async def writer(self, request: Request) -> ActiveSession:
        """``person`` for a state-changing request: JSON body and the CSRF header."""
        active = await self.person(request)
        if request.method in _BODY_METHODS:
            media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if media_type != "application/json":
                raise HTTPException(415, "send the request body as application/json")
        submitted = request.headers.get(CSRF_HEADER)
        async with self._context.db.transaction() as session:
            valid = self._context.sessions(session).csrf_is_valid(active, submitted)
        if not valid:
            raise HTTPException(
                403, f"missing or wrong {CSRF_HEADER} header (take it from GET /me)"
            )
        return active


async def _refused(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, AccessRefused)
    return JSONResponse(
        {"detail": error.message, "code": error.code or None},
        status_code=error.status,
        headers=_NO_STORE,
    )


def install_refusals(app: FastAPI) -> None:
    """Answer the services' refusals (NotFound, Forbidden, Conflict, BadInput) as JSON."""
    app.add_exception_handler(AccessRefused, _refused)
