"""Recording vendor exchanges (redacted, opt-in) and replaying them as tests."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from ledgerlink.connectors.http import RateBudget, RetryPolicy
from ledgerlink.connectors.nmbrs import NmbrsConnector, NmbrsSettings
from ledgerlink.connectors.recording import (
    RecordingSettings,
    RecordingTransport,
    ReplayError,
    ReplayTransport,
    recording_transport,
    redact_body,
)
from ledgerlink.connectors.vismanet import VismaNetConnector, VismaNetSettings

CLIENT_SECRET = "client-secret-91f2"
ACCESS_TOKEN = "access-token-5c7d"
NMBRS_TOKEN = "nmbrs-api-token-3e1b"
PERSON_EMAIL = "anna.andersson@customer.example"
PERSON_PHONE = "070-1234567"

# A BranchDto (published shape, see contracts/vismanet/SOURCES.md) with a contact person.
BRANCH = {
    "number": "1",
    "name": "Exempel AB",
    "organizationId": 1234567,
    "isMainBranch": True,
    "corporateId": "556036-0793",
    "currency": {"id": "SEK"},
    "mainContact": {"name": "Anna Andersson", "email": PERSON_EMAIL, "phone1": PERSON_PHONE},
}


def visma_vendor(request: httpx.Request) -> httpx.Response:
    if request.url.path == "/connect/token":
        return httpx.Response(
            200,
            json={"access_token": ACCESS_TOKEN, "token_type": "Bearer", "expires_in": 3600},
            headers={"Set-Cookie": "idsrv.session=abc123; Path=/"},
        )
    assert request.headers["authorization"] == f"Bearer {ACCESS_TOKEN}"
    return httpx.Response(200, json=[BRANCH], headers={"X-RateLimit-Remaining": "99"})


def visma(transport: httpx.AsyncBaseTransport) -> VismaNetConnector:
    return VismaNetConnector(
        VismaNetSettings(
            client_id="isv_recording",
            client_secret=SecretStr(CLIENT_SECRET),
            tenant_id="7d5e3c1a-0000-4000-8000-000000000001",
        ),
        budget=RateBudget(1_000_000, 1_000),
        retry=RetryPolicy(attempts=1),
        transport=transport,
    )


def recorded_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.json"))


def read_all(folder: Path) -> str:
    return "".join(f.read_text("utf-8") for f in recorded_files(folder))


def test_recording_is_off_by_default(tmp_path: Path) -> None:
    inner = httpx.MockTransport(visma_vendor)
    assert RecordingSettings().enabled is False
    assert recording_transport(inner, RecordingSettings(), vendor="vismanet") is inner
    wrapped = recording_transport(
        inner, RecordingSettings(enabled=True, directory=tmp_path), vendor="vismanet"
    )
    assert isinstance(wrapped, RecordingTransport)
    assert wrapped.directory == tmp_path / "vismanet"


async def test_a_recorded_visma_exchange_holds_no_secret_and_replays(tmp_path: Path) -> None:
    settings = RecordingSettings(enabled=True, directory=tmp_path)
    transport = recording_transport(httpx.MockTransport(visma_vendor), settings, vendor="vismanet")
    async with visma(transport) as connector:
        recorded = await connector.list_companies()

    files = recorded_files(tmp_path / "vismanet")
    assert [f.name for f in files] == ["00001-POST-connect-token.json", "00002-GET-v1-branch.json"]
    everything = read_all(tmp_path / "vismanet")
    for secret in (
        CLIENT_SECRET,
        ACCESS_TOKEN,
        PERSON_EMAIL,
        PERSON_PHONE,
        "Anna Andersson",
        "abc123",
    ):
        assert secret not in everything
    branch = json.loads(files[1].read_text("utf-8"))
    assert branch["request"]["headers"]["authorization"] == "***"
    assert "expandCurrency=true" in branch["request"]["url"]
    assert json.loads(branch["response"]["body"]["text"])[0]["corporateId"] == "556036-0793"

    replay = ReplayTransport(tmp_path / "vismanet")
    async with visma(replay) as connector:
        replayed = await connector.list_companies()
    assert replayed == recorded
    assert replay.unused == 0


async def test_a_second_recording_continues_the_numbering(tmp_path: Path) -> None:
    for _ in range(2):
        transport = RecordingTransport(
            httpx.MockTransport(visma_vendor), tmp_path, vendor="vismanet"
        )
        async with visma(transport) as connector:
            await connector.list_companies()
    assert [f.name[:5] for f in recorded_files(tmp_path)] == [
        "00001",
        "00002",
        "00003",
        "00004",
    ]


JOURNAL = (
    "<transactions><transaction><header><date>20250325</date><period>3/2025</period></header>"
    '<lines><line id="0"><dim1>4000</dim1><dim2 /><dim3 /><value>10.00</value>'
    "<debitcredit>debit</debitcredit><description>Loon</description></line>"
    '<line id="1"><dim1>1600</dim1><dim2 /><dim3 /><value>10.00</value>'
    "<debitcredit>credit</debitcredit><description>Netto</description></line>"
    "</lines></transaction></transactions>"
)


def nmbrs_vendor(request: httpx.Request) -> httpx.Response:
    assert NMBRS_TOKEN.encode() in request.content
    operation = request.headers["SOAPAction"].strip('"').rsplit("/", 1)[-1]
    ns = "https://api.nmbrs.nl/soap/v3/CompanyService"
    if operation == "Run_GetList":
        result = (
            "<RunInfo><ID>7</ID><Year>2025</Year><PeriodStart>3</PeriodStart>"
            "<Description>Maart</Description></RunInfo>"
        )
    else:
        result = JOURNAL.replace("<", "&lt;").replace(">", "&gt;")
    body = (
        '<?xml version="1.0" encoding="utf-8"?><soap:Envelope '
        'xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
        f'<{operation}Response xmlns="{ns}"><{operation}Result>{result}</{operation}Result>'
        f"</{operation}Response></soap:Body></soap:Envelope>"
    )
    return httpx.Response(200, text=body, headers={"Content-Type": "text/xml; charset=utf-8"})


def nmbrs(transport: httpx.AsyncBaseTransport) -> NmbrsConnector:
    return NmbrsConnector(
        NmbrsSettings(
            username=PERSON_EMAIL,
            token=SecretStr(NMBRS_TOKEN),
            domain="voorbeeld",
            rate_per_second=1_000_000,
            burst=1_000,
            retry=RetryPolicy(attempts=1),
        ),
        transport=transport,
    )


async def test_a_recorded_soap_exchange_hides_the_auth_header_and_replays(tmp_path: Path) -> None:
    transport = RecordingTransport(httpx.MockTransport(nmbrs_vendor), tmp_path, vendor="nmbrs")
    async with nmbrs(transport) as connector:
        recorded = await connector.read_run_journal("52171", "2025-7")
    everything = read_all(tmp_path)
    assert NMBRS_TOKEN not in everything
    assert PERSON_EMAIL not in everything
    assert "<Token>***</Token>" in everything

    async with nmbrs(ReplayTransport(tmp_path)) as connector:
        assert await connector.read_run_journal("52171", "2025-7") == recorded


async def test_replay_refuses_a_request_it_does_not_hold(tmp_path: Path) -> None:
    transport = RecordingTransport(httpx.MockTransport(visma_vendor), tmp_path, vendor="vismanet")
    async with visma(transport) as connector:
        await connector.list_companies()
    async with visma(ReplayTransport(tmp_path)) as connector:
        await connector.list_companies()
        with pytest.raises(ReplayError, match="GET /v1/branch"):
            await connector.list_companies()


@pytest.mark.parametrize(
    ("body", "content_type", "hidden", "kept"),
    [
        (
            b"grant_type=client_credentials&client_secret=s3cret&tenant_id=t1",
            "application/x-www-form-urlencoded",
            "s3cret",
            "tenant_id=t1",
        ),
        (
            b'{"refresh_token": "r3fresh", "scope": "read"}',
            "application/json",
            "r3fresh",
            '"scope": "read"',
        ),
        (
            b"<Employee><FirstName>Jan</FirstName><Iban>NL91ABNA0417164300</Iban>"
            b"<Number>12</Number></Employee>",
            "text/xml",
            "NL91ABNA0417164300",
            "<Number>12</Number>",
        ),
        (
            b'{"message": "Bearer abc.def.ghi was refused"}',
            "application/json",
            "abc.def",
            "refused",
        ),
    ],
)
def test_redaction_of_bodies(body: bytes, content_type: str, hidden: str, kept: str) -> None:
    text = redact_body(body, content_type)
    assert text is not None
    assert hidden not in text
    assert kept in text
