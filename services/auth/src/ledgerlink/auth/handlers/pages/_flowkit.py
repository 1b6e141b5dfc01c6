"""What the Visma.net, Nmbrs and 24SevenOffice pages share: rendering with the person's
language, the signed-in person (or a redirect to sign in), the form's CSRF token, field
errors, and the refusal page.

Kept small and separate on purpose: the shared page infrastructure (``common.py``, built
beside these pages) replaces it when both are merged; the pages only use ``FlowKit``'s
methods, so moving them is a matter of this one module.
"""

from __future__ import annotations

import gettext
import io
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlencode

import httpx
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from ledgerlink.auth.factory import AuthComponents
from ledgerlink.auth.handlers.web import WEB_ROOT, WebContext
from ledgerlink.auth.services.sessions import ActiveSession

logger = logging.getLogger(__name__)

LANGUAGES: Final = ("en", "fi")
LANGUAGE_COOKIE: Final = "ledgerlink_lang"
_NO_STORE: Final = {"Cache-Control": "no-store"}


def _load_translations(root: Path) -> dict[str, gettext.NullTranslations]:
    """The gettext catalogs under ``web/locale/<lang>/LC_MESSAGES/messages.po``, compiled
    in memory at start-up (no build step; English is the msgids themselves)."""
    found: dict[str, gettext.NullTranslations] = {"en": gettext.NullTranslations()}
    for language in LANGUAGES:
        path = root / language / "LC_MESSAGES" / "messages.po"
        if language == "en" or not path.exists():
            continue
        with path.open("rb") as source:
            catalog = read_po(source, locale=language)
        compiled = io.BytesIO()
        write_mo(compiled, catalog)
        compiled.seek(0)
        found[language] = gettext.GNUTranslations(compiled)
    return found


def choose_language(request: Request) -> str:
    """``?lang=``, else the cookie, else the browser's Accept-Language, else English."""
    asked = request.query_params.get("lang") or request.cookies.get(LANGUAGE_COOKIE)
    if asked in LANGUAGES:
        return str(asked)
    for part in request.headers.get("accept-language", "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in LANGUAGES:
            return code
    return "en"


class Refused(Exception):  # noqa: N818 - a page's refusal, shown to the person
    """Stop and show a refusal page (status, heading, message)."""

    def __init__(self, status: int, heading: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.heading = heading
        self.message = message


@dataclass
class FlowKit:
    """The flow pages' shared machinery (one per process)."""

    context: WebContext
    components: AuthComponents
    http: httpx.AsyncClient
    templates: Jinja2Templates = field(init=False)
    translations: dict[str, gettext.NullTranslations] = field(init=False)

    def __post_init__(self) -> None:
        self.templates = Jinja2Templates(directory=WEB_ROOT / "templates")
        self.translations = _load_translations(WEB_ROOT / "locale")

    def gettext_for(self, language: str) -> Callable[[str], str]:
        """The ``_`` of one language."""
        return self.translations.get(language, self.translations["en"]).gettext

    async def person(self, request: Request) -> ActiveSession | RedirectResponse:
        """The signed-in person, or a redirect to sign in and come back here."""
        active = await self.context.current_session(request)
        if active is None:
            here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(
                f"/signin?{urlencode({'next': here})}", status_code=303, headers=_NO_STORE
            )
        return active

    async def csrf_token(self, active: ActiveSession) -> str:
        """The token every form of the person's pages carries (hidden ``csrf_token``)."""
        async with self.context.db.transaction() as session:
            return self.context.sessions(session).csrf_token(active)

    async def check_csrf(self, active: ActiveSession, submitted: str | None) -> None:
        """Refuse a form without the session's CSRF token (403)."""
        async with self.context.db.transaction() as session:
            valid = self.context.sessions(session).csrf_is_valid(active, submitted)
        if not valid:
            raise Refused(
                403,
                "This form has expired",
                "The page was open too long or came from elsewhere. Go back, reload the "
                "page and send the form again.",
            )

    async def page(
        self,
        request: Request,
        active: ActiveSession | None,
        template: str,
        status: int = 200,
        **values: Any,
    ) -> HTMLResponse:
        """A page in the person's language (never cached: it names the person)."""
        language = choose_language(request)
        translate = self.gettext_for(language)
        csrf = await self.csrf_token(active) if active is not None else None
        response = self.templates.TemplateResponse(
            request,
            template,
            {
                "_": translate,
                "lang": language,
                "other_lang": "fi" if language == "en" else "en",
                "path": request.url.path,
                "query": request.url.query,
                "active": active,
                "csrf_token": csrf,
                "errors": {},
                **values,
            },
            status_code=status,
            headers=_NO_STORE,
        )
        if request.query_params.get("lang") in LANGUAGES:
            response.set_cookie(
                LANGUAGE_COOKIE,
                language,
                max_age=365 * 24 * 3600,
                samesite="lax",
                secure=self.context.config.cookie_secure,
            )
        return response

    async def refused(
        self, request: Request, active: ActiveSession | None, refusal: Refused
    ) -> HTMLResponse:
        """The page of a refusal (the heading names what went wrong)."""
        return await self.page(
            request,
            active,
            "pages/flows_refused.html",
            refusal.status,
            heading=refusal.heading,
            message=refusal.message,
        )

    def wake_relay(self) -> None:
        """Events were committed to the outbox: send them now."""
        self.components.credentials.on_commit()


def redirect(url: str) -> Response:
    """A 303 after a form (safe: only paths of this service are passed here)."""
    assert url.startswith("/"), url
    assert not url.startswith("//"), url
    return RedirectResponse(url, status_code=303, headers=_NO_STORE)


def callback_url(kit: FlowKit, request: Request, name: str) -> str:
    """An exact redirect URI registered at a vendor (the public URL when configured)."""
    public = kit.context.config.signin.public_url
    path = str(request.app.url_path_for(name))
    if public:
        return f"{public.rstrip('/')}{path}"
    return str(request.url_for(name))


def html_responses(statuses: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` of a page route (redirects carry no body)."""
    return {
        status: {"description": text}
        if 300 <= status < 400
        else {"description": text, "content": {"text/html": {}}}
        for status, text in statuses.items()
    }


#: Statuses every flow page can answer.
PAGE_STATUSES: Final = {
    303: "Not signed in: to the sign-in page, which comes back here.",
    403: "The form's CSRF token is missing or wrong, or the person may not do this.",
    404: "No such organisation, environment, company or connection attempt (or not yours).",
    409: "The current state forbids it (already connected, finished attempt ...).",
}
