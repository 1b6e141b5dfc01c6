"""What every activation page shares: the layout and its language, CSRF on forms, errors
next to their fields, the signed-in person, step-up, and safe redirects.

* **Language.** English and Finnish gettext catalogs (``web/locale/<lang>/LC_MESSAGES/
  messages.po``) are read from the ``.po`` files at start-up (Babel). A page speaks the
  language of the ``ledgerlink_lang`` cookie (the switch in every page's header,
  ``GET /language/{code}``), else the best of the browser's ``Accept-Language``, else
  English; ``<html lang>`` says which. Code marks messages with :func:`gettext`
  (``_``) or, where the language is not known yet, :func:`N_`.
* **CSRF.** Every browser gets the cookie ``ledgerlink_browser`` (256 random bits,
  HttpOnly, SameSite=Lax) on its first page. Every form carries ``csrf_token``, an HMAC of
  that cookie under the session secret; every POST is checked (:meth:`PagesContext.form`)
  and refused with a 400 page otherwise. The same cookie (its SHA-256) keys each browser's
  progress through an activation.
* **Errors.** :class:`FormErrors` maps a field to its message; ``pages/forms.html`` puts
  the message next to the field (``aria-describedby``), lists them in a summary at the top
  linking to each field, and the first field in error gets the focus (``autofocus``).
* **Who.** :meth:`PagesContext.person` is the signed-in person or a redirect to
  ``/signin?next=<this page>``; :meth:`PagesContext.recent_person` also demands a sign-in
  at most ``max_age`` seconds old (the provider asks again).
* **Redirects.** A finished flow goes only to the environment's own address
  (:meth:`PagesContext.environment_url`, from ``pages.environment_url_template`` and the
  environment's validated subdomain), never to an address from the request.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import logging
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlencode

import httpx
import jinja2
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData

from ledgerlink.auth.config import Config
from ledgerlink.auth.domain.activation_pages import (
    LANGUAGE_NAMES,
    LANGUAGES,
    negotiate_language,
    new_token,
    token_hash,
)
from ledgerlink.auth.domain.environments import SubdomainError, check_subdomain
from ledgerlink.auth.domain.next_url import UnsafeNextUrl, check_next
from ledgerlink.auth.factory import AuthComponents
from ledgerlink.auth.handlers.web import WEB_ROOT, WebContext, step_up_url
from ledgerlink.auth.services.activation_links import LinkSettings
from ledgerlink.auth.services.activation_pages import ActivationPages
from ledgerlink.auth.services.sessions import ActiveSession
from ledgerlink.auth.storage.models import Environment
from ledgerlink.auth.storage.vendor_checks import (
    NetvisorCheck,
    NetvisorPartner,
    ProcountorAuthorization,
    ProcountorClient,
)

logger = logging.getLogger(__name__)

LOCALE_DIR: Final = WEB_ROOT / "locale"
LANGUAGE_COOKIE: Final = "ledgerlink_lang"
BROWSER_COOKIE: Final = "ledgerlink_browser"
_NO_STORE: Final = {"Cache-Control": "no-store"}
_YEAR: Final = 365 * 24 * 3600

_translations: ContextVar[NullTranslations | None] = ContextVar(
    "ledgerlink_page_translations", default=None
)
_ENGLISH: Final = NullTranslations()


def N_(message: str) -> str:  # noqa: N802 - gettext's conventional name for a marker
    """Mark ``message`` for translation where it is rendered later (Babel extracts it)."""
    return message


def gettext(message: str, **values: Any) -> str:
    """``message`` in the current page's language, ``%(name)s`` filled from ``values``."""
    text = (_translations.get() or _ENGLISH).ugettext(message)
    return text % values if values else text


def ngettext(singular: str, plural: str, count: int, **values: Any) -> str:
    """The singular or plural of a message in the current page's language."""
    text = (_translations.get() or _ENGLISH).ungettext(singular, plural, count)
    return text % {"num": count, **values}


_ = gettext


def load_catalogs(directory: Path = LOCALE_DIR) -> dict[str, NullTranslations]:
    """Every language's catalog, read from its ``.po`` file (compiled in memory: no ``.mo``
    is kept in the repository). Fuzzy entries are left out, so they fall back to English."""
    catalogs: dict[str, NullTranslations] = {}
    for language in LANGUAGES:
        path = directory / language / "LC_MESSAGES" / "messages.po"
        if not path.exists():
            catalogs[language] = NullTranslations()
            continue
        with path.open("rb") as po:
            catalog = read_po(po, locale=language)
        buffer = io.BytesIO()
        write_mo(buffer, catalog)
        buffer.seek(0)
        catalogs[language] = Translations(fp=buffer)
    return catalogs


def page_templates() -> Jinja2Templates:
    """Jinja2 with gettext (``{{ _("...") }}``, ``{% trans %}``) bound to the page's language."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(WEB_ROOT / "templates"),
        autoescape=True,
        extensions=["jinja2.ext.i18n"],
    )
    env.install_gettext_callables(  # type: ignore[attr-defined]
        gettext=lambda message, **values: gettext(message, **values),
        ngettext=lambda singular, plural, count, **values: ngettext(
            singular, plural, count, **values
        ),
        newstyle=True,
    )
    env.policies["ext.i18n.trimmed"] = True
    return Jinja2Templates(env=env)


@dataclass
class FormErrors:
    """Errors of one form: field name -> message (already in the page's language).

    The order is the order of the fields on the page: the summary lists them so, and the
    first gets the focus.
    """

    fields: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, message: str) -> None:
        """An error for ``name`` (the first one given for a field stays)."""
        self.fields.setdefault(name, message)

    def __bool__(self) -> bool:
        return bool(self.fields)

    @property
    def first(self) -> str | None:
        """The field that gets the focus."""
        return next(iter(self.fields), None)

    def get(self, name: str) -> str | None:
        """The message of ``name``, if any."""
        return self.fields.get(name)


@dataclass(frozen=True)
class Step:
    """One entry of a flow's step indicator."""

    label: str
    state: str  # "done", "current" or "todo"


def steps(labels: Sequence[str], current: int) -> list[Step]:
    """The step indicator of a flow at step ``current`` (0-based), labels translated."""
    return [
        Step(
            gettext(label), "done" if index < current else "current" if index == current else "todo"
        )
        for index, label in enumerate(labels)
    ]


class CsrfRefused(Exception):  # noqa: N818 - a refusal, not a failure of ours
    """A form came without this browser's CSRF token."""


@dataclass
class PagesContext:
    """What the activation pages share for the process's lifetime."""

    web: WebContext
    components: AuthComponents
    templates: Jinja2Templates
    catalogs: Mapping[str, NullTranslations]
    #: Carries the pages' calls to vendors (tests may route them; None: the network).
    vendor_transport: httpx.AsyncBaseTransport | None = None
    #: ``/connect/{provider}``: where each in-product flow starts (the flows register).
    connect_entries: dict[str, str] = field(default_factory=dict)

    @property
    def config(self) -> Config:
        """The auth settings."""
        return self.components.config

    def now(self) -> datetime:
        """Auth's clock."""
        return self.components.clock()

    # Services --------------------------------------------------------------------------

    def link_settings(self) -> LinkSettings:
        """Where activation links point and how long they live."""
        return LinkSettings(
            public_url=self.config.public_base_url,
            ttl=timedelta(hours=self.config.pages.link_ttl_hours),
        )

    def pages(self, session: AsyncSession) -> ActivationPages:
        """The activation use cases on one request's transaction."""
        return ActivationPages(
            session,
            self.components.outbox,
            self.components.vault,
            self.components.clock,
            self.link_settings(),
        )

    def netvisor_check(self) -> NetvisorCheck:
        """The live check of a Netvisor customer's identifiers (our partner identity)."""
        settings = self.config.pages.netvisor
        return NetvisorCheck(
            NetvisorPartner(
                partner_id=settings.partner_id,
                partner_key=settings.partner_key,
                base_url=settings.base_url,
                sender=settings.sender,
            ),
            transport=self.vendor_transport,
        )

    def procountor(self) -> ProcountorAuthorization:
        """Procountor's authorization code grant with our client."""
        settings = self.config.pages.procountor
        return ProcountorAuthorization(
            ProcountorClient(
                client_id=settings.client_id,
                client_secret=settings.client_secret,
                base_url=settings.base_url,
                redirect_uri=self.config.procountor_redirect_uri,
            ),
            transport=self.vendor_transport,
        )

    def register_connect(self, provider: str, path: str) -> None:
        """Make ``/connect/{provider}`` start an in-product flow at ``path`` (a local path)."""
        self.connect_entries[provider] = check_next(path)

    # Language --------------------------------------------------------------------------

    def language(self, request: Request) -> str:
        """The page language of this request."""
        return negotiate_language(
            request.headers.get("accept-language"), request.cookies.get(LANGUAGE_COOKIE)
        )

    def use_language(self, request: Request) -> str:
        """Switch gettext to this request's language (for messages built in code)."""
        language = self.language(request)
        _translations.set(self.catalogs.get(language, NullTranslations()))
        return language

    # Browser cookie and CSRF -----------------------------------------------------------

    def _browser_token(self, request: Request) -> str:
        token = request.cookies.get(BROWSER_COOKIE) or getattr(
            request.state, "new_browser_token", None
        )
        if not token:
            token = new_token()
            request.state.new_browser_token = token
        return str(token)

    def browser_hash(self, request: Request) -> str:
        """This browser's key for its progress through a flow (the cookie's SHA-256)."""
        return token_hash(self._browser_token(request))

    def csrf_token(self, request: Request) -> str:
        """The token this browser's forms carry."""
        return self._csrf_of(self._browser_token(request))

    def _csrf_of(self, browser_token: str) -> str:
        key = self.config.session_secret.get_secret_value().encode()
        return hmac.new(key, f"page-csrf:{browser_token}".encode(), hashlib.sha256).hexdigest()

    def csrf_is_valid(self, request: Request, submitted: str | None) -> bool:
        """Whether a form's token belongs to this browser (cookie present, HMAC equal)."""
        cookie = request.cookies.get(BROWSER_COOKIE)
        if not cookie or not submitted:
            return False
        return hmac.compare_digest(self._csrf_of(cookie), submitted)

    async def form(self, request: Request) -> FormData:
        """The posted form, its CSRF token checked (:class:`CsrfRefused` otherwise)."""
        form = await request.form()
        token = form.get("csrf_token")
        if not self.csrf_is_valid(request, token if isinstance(token, str) else None):
            logger.warning("page form refused: CSRF token", extra={"path": request.url.path})
            raise CsrfRefused()
        return form

    def _remember_browser(self, request: Request, response: Response) -> None:
        token = getattr(request.state, "new_browser_token", None)
        if token and not request.cookies.get(BROWSER_COOKIE):
            response.set_cookie(
                BROWSER_COOKIE,
                token,
                max_age=_YEAR,
                path="/",
                httponly=True,
                samesite="lax",
                secure=self.config.cookie_secure,
            )

    # Rendering -------------------------------------------------------------------------

    def render(
        self, request: Request, template: str, *, status: int = 200, **values: Any
    ) -> HTMLResponse:
        """A page in the layout, in the request's language (never cached)."""
        language = self.use_language(request)
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        errors = values.pop("errors", None) or FormErrors()
        response = self.templates.TemplateResponse(
            request,
            template,
            {
                "lang": language,
                "languages": LANGUAGE_NAMES,
                "here": here,
                "csrf_token": self.csrf_token(request),
                "product_name": self.config.pages.product_name,
                "errors": errors,
                **values,
            },
            status_code=status,
            headers=_NO_STORE,
        )
        self._remember_browser(request, response)
        return response

    def message(
        self,
        request: Request,
        *,
        title: str,
        paragraphs: Sequence[str],
        status: int = 200,
        kind: str = "info",
        actions: Sequence[tuple[str, str]] = (),
    ) -> HTMLResponse:
        """A page that only says something (a refusal, an ended activation ...): a heading,
        paragraphs and links (label, href), all already translated."""
        return self.render(
            request,
            "pages/message.html",
            status=status,
            title=title,
            paragraphs=list(paragraphs),
            kind=kind,
            actions=list(actions),
        )

    def csrf_refused(self, request: Request) -> HTMLResponse:
        """The page of a form without this browser's CSRF token."""
        self.use_language(request)
        return self.message(
            request,
            title=_("This form has expired"),
            paragraphs=[
                _(
                    "For your security we could not accept the form. Go back, reload the "
                    "page and send it again."
                )
            ],
            status=400,
            kind="error",
        )

    def redirect(self, path: str) -> RedirectResponse:
        """A 303 to a local path (after a POST, or on to the next step)."""
        return RedirectResponse(check_next(path), status_code=303, headers=_NO_STORE)

    # The person ------------------------------------------------------------------------

    async def person(self, request: Request) -> ActiveSession | RedirectResponse:
        """The signed-in person, or a redirect to the sign-in page that comes back here."""
        active = await self.web.current_session(request)
        if active is None:
            return RedirectResponse(
                f"/signin?{urlencode({'next': _here(request)})}", status_code=303, headers=_NO_STORE
            )
        return active

    async def recent_person(
        self, request: Request, max_age: int | None = None, *, back_to: str | None = None
    ) -> ActiveSession | RedirectResponse:
        """The person, signed in at most ``max_age`` seconds ago (default
        ``pages.step_up_seconds``), or a redirect that makes the provider ask again and
        comes back to ``back_to`` (default: this page; give a GET page for a POST)."""
        limit = self.config.pages.step_up_seconds if max_age is None else max_age
        back = back_to or _here(request)
        active = await self.web.current_session(request)
        if active is None:
            return RedirectResponse(
                f"/signin?{urlencode({'next': back, 'max_age': limit})}",
                status_code=303,
                headers=_NO_STORE,
            )
        async with self.web.db.transaction() as session:
            recent = self.web.sessions(session).is_recent(active, limit)
        if not recent:
            return RedirectResponse(
                step_up_url(active.provider, back, limit), status_code=303, headers=_NO_STORE
            )
        return active

    def sign_in_again(self, active: ActiveSession, back_to: str) -> RedirectResponse:
        """Send the person to their provider to sign in once more (``prompt=login``), then
        back to ``back_to``."""
        return RedirectResponse(
            step_up_url(active.provider, check_next(back_to), self.config.pages.step_up_seconds),
            status_code=303,
            headers=_NO_STORE,
        )

    # Where a finished flow goes --------------------------------------------------------

    def environment_url(self, environment: Environment) -> str | None:
        """The environment's own address (None when it has no valid subdomain yet)."""
        try:
            subdomain = check_subdomain(environment.subdomain or "")
        except SubdomainError:
            return None
        return self.config.pages.environment_url_template.format(subdomain=subdomain)


def _here(request: Request) -> str:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    try:
        return check_next(here)
    except UnsafeNextUrl:
        return "/me"


def form_text(form: FormData, name: str, *, limit: int = 300) -> str:
    """A posted text field, stripped and cut to ``limit`` characters ('' when absent)."""
    value = form.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


def form_checked(form: FormData, name: str) -> bool:
    """Whether a checkbox was ticked."""
    return form.get(name) not in (None, "")
