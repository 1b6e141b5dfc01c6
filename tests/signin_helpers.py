"""A person signing in, driven with httpx: auth's redirect, the IdP's login form, the callback.

No browser: the sandbox IdPs' login page is a plain HTML form, so following it takes a
parser and two requests. One client holds every cookie (auth's and the IdP's), as a
browser would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx


class _LoginForm(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.hidden: dict[str, str] = {}
        self.usernames: list[str] = []
        self.hidden_inputs_named: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {key: value or "" for key, value in attrs}
        if tag == "form" and not self.action:
            self.action = values.get("action", "")
        elif tag == "input" and values.get("type") == "hidden":
            self.hidden[values["name"]] = values.get("value", "")
        elif tag == "input" and values.get("name") == "username":
            self.usernames.append(values["value"])


def parse_form(page: str) -> _LoginForm:
    """The first form of ``page``: its action, hidden fields and user choices."""
    form = _LoginForm()
    form.feed(page)
    return form


def hidden_field(page: str, name: str) -> str:
    """The value of a hidden input of ``page`` (a CSRF token ...)."""
    value = parse_form(page).hidden.get(name)
    assert value is not None, f"no hidden field {name!r} in the page"
    return value


@dataclass
class SigninRun:
    """One sign-in, step by step, so a test can tamper between the steps."""

    client: httpx.AsyncClient
    auth_url: str
    provider: str
    steps: list[httpx.Response] = field(default_factory=list)

    async def start(self, next_url: str | None = None, **params: str) -> str:
        """Ask auth to sign in; the IdP authorization URL it redirects to."""
        query = dict(params)
        if next_url is not None:
            query["next"] = next_url
        response = await self.client.get(f"{self.auth_url}/signin/{self.provider}", params=query)
        self.steps.append(response)
        assert response.status_code == 302, response.text
        location = response.headers["location"]
        assert "code_challenge=" in location
        assert "nonce=" in location
        assert "state=" in location
        return location

    async def login(self, authorize_url: str, username: str) -> str:
        """Choose ``username`` on the IdP's page; the callback URL it redirects to."""
        page = await self.client.get(authorize_url)
        self.steps.append(page)
        if page.status_code == 302:  # the IdP remembered the person: no page
            return str(page.headers["location"])
        assert page.status_code == 200, page.text
        form = parse_form(page.text)
        assert username in form.usernames, f"{username} not offered: {form.usernames}"
        answer = await self.client.post(
            urljoin(authorize_url, form.action), data={**form.hidden, "username": username}
        )
        self.steps.append(answer)
        assert answer.status_code == 302, answer.text
        return str(answer.headers["location"])

    async def finish(self, callback_url: str) -> httpx.Response:
        """Come back to auth with the IdP's answer."""
        response = await self.client.get(callback_url)
        self.steps.append(response)
        return response

    async def sign_in(self, username: str, next_url: str | None = None) -> httpx.Response:
        """The whole way: start, log in at the IdP, come back."""
        return await self.finish(await self.login(await self.start(next_url), username))


def with_query(url: str, **changes: str) -> str:
    """``url`` with some query parameters replaced (a forged ``state`` ...)."""
    parts = urlsplit(url)
    query = {key: values[0] for key, values in parse_qs(parts.query).items()}
    query.update(changes)
    return parts._replace(query=httpx.QueryParams(query).__str__()).geturl()
