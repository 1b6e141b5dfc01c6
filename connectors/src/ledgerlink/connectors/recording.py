"""Record vendor exchanges (redacted) and play them back in tests.

An operator who meets a vendor answer the connectors do not understand turns recording on
(:class:`RecordingSettings`, off by default), repeats the call, and hands us the folder: every
exchange is one JSON file, with tokens, keys, passwords, MACs, cookies and personal data
replaced by ``***`` before anything is written. :class:`ReplayTransport` plays such a folder
back, so the recording becomes a test::

    transport = recording_transport(httpx.AsyncHTTPTransport(), settings, vendor="vismanet")
    connector = VismaNetConnector(vismanet_settings, transport=transport)

    # later, in a test
    connector = VismaNetConnector(vismanet_settings, transport=ReplayTransport(folder))

Both are ordinary httpx transports, so they work with every connector (each accepts
``transport=``) and with the OAuth token calls that go through the same transport.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode

import httpx
from pydantic import BaseModel, ConfigDict, Field

from ledgerlink.connectors.errors import redact
from ledgerlink.connectors.http import redact_headers

__all__ = [
    "REDACTED",
    "RecordingSettings",
    "RecordingTransport",
    "ReplayError",
    "ReplayTransport",
    "recording_transport",
    "redact_body",
    "redact_url",
]

REDACTED: Final = "***"

# Names (of JSON keys, form and query fields, XML elements, lower-cased, without "_" or "-")
# whose values are never written: credentials, and personal data of employees and users.
_SECRET_NAMES: Final = frozenset(
    {
        "accesstoken",
        "refreshtoken",
        "idtoken",
        "token",
        "clientsecret",
        "apikey",
        "password",
        "code",
        "codeverifier",
        "customerkey",
        "partnerkey",
        "mac",
        "signature",
        "sessionid",
        "cookie",
        "authorization",
    }
)
_PERSONAL_NAMES: Final = frozenset(
    {
        "username",
        "email",
        "emailaddress",
        "phone",
        "phonenumber",
        "telephone",
        "mobile",
        "faxnumber",
        "firstname",
        "lastname",
        "givenname",
        "familyname",
        "initials",
        "employeename",
        "birthday",
        "birthdate",
        "dateofbirth",
        "bsn",
        "ssn",
        "socialsecuritynumber",
        "personalidentitycode",
        "iban",
        "bankaccount",
        "bankaccountnumber",
        "street",
        "streetname",
        "housenumber",
        "postalcode",
        "zipcode",
    }
)
_HIDDEN: Final = _SECRET_NAMES | _PERSONAL_NAMES
# Headers whose values identify a person or sign a request, beyond http.redact_headers'.
_EXTRA_HEADER_PARTS: Final = ("sender", "customerid", "partnerid", "signature", "set-cookie")
# Hop-by-hop or transfer headers that would be wrong on a replayed (decoded) body.
_DROPPED_HEADERS: Final = frozenset({"content-encoding", "content-length", "transfer-encoding"})
_XML_ELEMENT: Final = re.compile(
    r"<(?P<tag>(?:[\w.-]+:)?(?P<local>[\w.-]+))(?P<attrs>\s[^<>]*?)?>(?P<text>[^<]*)</(?P=tag)>"
)
# The same, escaped: an XML document carried as a string inside SOAP (the Nmbrs journal).
_ESCAPED_ELEMENT: Final = re.compile(
    r"&lt;(?P<tag>(?:[\w.-]+:)?(?P<local>[\w.-]+))(?P<attrs>\s(?:(?!&gt;)[^<>])*?)?&gt;"
    r"(?P<text>(?:(?!&lt;)[^<])*)&lt;/(?P=tag)&gt;"
)


# Numbered variants (phone1, phone2, email2...) of the personal names.
_NUMBERED: Final = re.compile(r"(phone|fax|mobile|email|telephone)\d*")


def _hidden(name: str) -> bool:
    plain = name.lower().replace("_", "").replace("-", "")
    return plain in _HIDDEN or _NUMBERED.fullmatch(plain) is not None


def _person(value: Any) -> Any:
    """Every text of a contact object (a person's name, phone, e-mail) replaced."""
    if isinstance(value, dict):
        return {key: _person(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_person(item) for item in value]
    return REDACTED if isinstance(value, str) and value else value


class RecordingSettings(BaseModel):
    """Whether to record vendor exchanges, and where. Off by default."""

    model_config = ConfigDict(frozen=True)

    enabled: bool = Field(
        default=False, description="Write every vendor exchange (redacted) to ``directory``."
    )
    directory: Path = Field(
        default=Path("vendor-recordings"), description="Folder of the recorded exchanges."
    )


def recording_transport(
    transport: httpx.AsyncBaseTransport, settings: RecordingSettings, *, vendor: str
) -> httpx.AsyncBaseTransport:
    """``transport`` itself, or wrapped in a :class:`RecordingTransport` when enabled."""
    if not settings.enabled:
        return transport
    return RecordingTransport(transport, settings.directory / vendor, vendor=vendor)


# --------------------------------------------------------------------------------------------
# Redaction
# --------------------------------------------------------------------------------------------


def _redact_headers(headers: Mapping[str, str] | httpx.Headers) -> dict[str, str]:
    safe = redact_headers(headers)
    return {
        name: REDACTED if any(part in name.lower() for part in _EXTRA_HEADER_PARTS) else value
        for name, value in safe.items()
        if name.lower() not in _DROPPED_HEADERS
    }


def redact_url(url: httpx.URL) -> str:
    """``url`` with the values of secret or personal query parameters replaced."""
    if not url.query:
        return str(url)
    pairs = parse_qsl(url.query.decode(), keep_blank_values=True)
    query = urlencode([(k, REDACTED if _hidden(k) else v) for k, v in pairs], safe="*")
    return str(url.copy_with(query=query.encode()))


def _redact_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: REDACTED
            if _hidden(str(key)) and item is not None
            else _person(item)
            if "contact" in str(key).lower()
            else _redact_json(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_redact_json(item) for item in value]
    if isinstance(value, str):
        return redact(value)
    return value


def _redact_xml(text: str) -> str:
    def element(match: re.Match[str]) -> str:
        if not _hidden(match.group("local")) or not match.group("text"):
            return match.group(0)
        tag, attrs = match.group("tag"), match.group("attrs") or ""
        return f"<{tag}{attrs}>{REDACTED}</{tag}>"

    def escaped(match: re.Match[str]) -> str:
        if not _hidden(match.group("local")) or not match.group("text"):
            return match.group(0)
        tag, attrs = match.group("tag"), match.group("attrs") or ""
        return f"&lt;{tag}{attrs}&gt;{REDACTED}&lt;/{tag}&gt;"

    return redact(_ESCAPED_ELEMENT.sub(escaped, _XML_ELEMENT.sub(element, text)))


def redact_body(content: bytes, content_type: str | None) -> str | None:
    """The body as text with secrets and personal data replaced (None: not text)."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        return None
    kind = (content_type or "").lower()
    stripped = text.lstrip()
    if "json" in kind or stripped.startswith(("{", "[")):
        try:
            return json.dumps(_redact_json(json.loads(text)), ensure_ascii=False)
        except ValueError:
            pass  # not JSON after all (truncated...): redacted as plain text below
    if "x-www-form-urlencoded" in kind:
        pairs = parse_qsl(text, keep_blank_values=True)
        return urlencode([(k, REDACTED if _hidden(k) else v) for k, v in pairs], safe="*")
    if "xml" in kind or stripped.startswith("<"):
        return _redact_xml(text)
    return redact(text)


def _body_record(content: bytes, content_type: str | None) -> dict[str, str]:
    text = redact_body(content, content_type)
    if text is not None:
        return {"text": text}
    # Binary bodies (attachments) are not kept: they may hold anything.
    return {"omitted": f"{len(content)} bytes, not text"}


# --------------------------------------------------------------------------------------------
# Recording
# --------------------------------------------------------------------------------------------


class RecordingTransport(httpx.AsyncBaseTransport):
    """Passes every request to ``inner`` and writes the exchange, redacted, to ``directory``.

    Files are numbered in the order the answers arrive (``00001-GET-v1-branch.json``...),
    continuing after the highest number already there, so repeated runs add to a folder.
    """

    def __init__(self, inner: httpx.AsyncBaseTransport, directory: Path, *, vendor: str) -> None:
        self.inner = inner
        self.directory = directory
        self.vendor = vendor
        directory.mkdir(parents=True, exist_ok=True)
        numbers = [int(p.name[:5]) for p in directory.glob("*.json") if p.name[:5].isdigit()]
        self._next = max(numbers, default=0) + 1

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        request_body = await request.aread()
        response = await self.inner.handle_async_request(request)
        content = await response.aread()
        await response.aclose()
        # Written synchronously: recording is a diagnostic mode, a few kilobytes an exchange.
        self._write(request, request_body, response, content)
        headers = [
            (name, value)
            for name, value in response.headers.multi_items()
            if name.lower() not in _DROPPED_HEADERS
        ]
        return httpx.Response(
            response.status_code, headers=headers, content=content, request=request
        )

    def _write(
        self,
        request: httpx.Request,
        request_body: bytes,
        response: httpx.Response,
        content: bytes,
    ) -> None:
        exchange = {
            "vendor": self.vendor,
            "request": {
                "method": request.method,
                "url": redact_url(request.url),
                "headers": _redact_headers(request.headers),
                "body": _body_record(request_body, request.headers.get("content-type")),
            },
            "response": {
                "status": response.status_code,
                "headers": _redact_headers(response.headers),
                "body": _body_record(content, response.headers.get("content-type")),
            },
        }
        slug = re.sub(r"[^A-Za-z0-9]+", "-", request.url.path).strip("-")[:60] or "root"
        path = self.directory / f"{self._next:05d}-{request.method}-{slug}.json"
        self._next += 1
        path.write_text(json.dumps(exchange, indent=2, ensure_ascii=False) + "\n", "utf-8")

    async def aclose(self) -> None:
        await self.inner.aclose()


# --------------------------------------------------------------------------------------------
# Replay
# --------------------------------------------------------------------------------------------


class ReplayError(Exception):
    """A request the recording does not hold (or holds no more)."""


class ReplayTransport(httpx.AsyncBaseTransport):
    """Answers requests from a folder written by :class:`RecordingTransport`.

    Each request takes the first unused exchange with the same method and path, in file
    order (query strings are not compared: they carry redacted values and paging the
    recording already fixed). A request with no such exchange raises :class:`ReplayError`.
    """

    def __init__(self, source: Path | Iterable[Mapping[str, Any]]) -> None:
        if isinstance(source, Path):
            self.exchanges = [
                json.loads(path.read_text("utf-8")) for path in sorted(source.glob("*.json"))
            ]
        else:
            self.exchanges = [dict(exchange) for exchange in source]
        self._used = [False] * len(self.exchanges)

    @property
    def unused(self) -> int:
        """How many recorded exchanges no request has taken yet."""
        return self._used.count(False)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        for index, exchange in enumerate(self.exchanges):
            recorded = exchange["request"]
            if (
                not self._used[index]
                and recorded["method"] == request.method
                and httpx.URL(recorded["url"]).path == request.url.path
            ):
                self._used[index] = True
                answer = exchange["response"]
                body = answer.get("body") or {}
                content = str(body["text"]).encode("utf-8") if "text" in body else b""
                return httpx.Response(
                    int(answer["status"]),
                    headers=dict(answer.get("headers") or {}),
                    content=content,
                    request=request,
                )
        raise ReplayError(f"no recorded answer left for {request.method} {request.url.path}")
