"""Unit tests for ledgerlink.importer.domain.saft: the streaming SAF-T Financial parser.

The two published sample files are read from the shared data folder beside the repository
(never copied into it); the tests that need them are skipped when it is absent. Every
other test builds its input here.
"""

from __future__ import annotations

import io
import re
import tracemalloc
from collections import defaultdict
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, cast

import pytest

from ledgerlink.importer.domain.saft import (
    SAFT_NAMESPACE,
    SaftAccount,
    SaftAnalysis,
    SaftAnalysisType,
    SaftCustomer,
    SaftHeader,
    SaftLedgerTotals,
    SaftLine,
    SaftParseError,
    SaftRecord,
    SaftSelection,
    SaftSupplier,
    SaftTransaction,
    parse_saft,
    read_saft,
)

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

SAFT_DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "saf-t"
SAMPLE_999 = SAFT_DATA / "example-financial-999999999.xml"
SAMPLE_XMLSPY = SAFT_DATA / "example-financial-1.30-xmlspy.xml"
XSI = "http://www.w3.org/2001/XMLSchema-instance"


def sample(path: Path) -> Path:
    if not path.is_file():
        pytest.skip(
            f"SAF-T sample {path.name} not found in {SAFT_DATA.resolve()} "
            "(the shared data folder beside the repository)"
        )
    return path


def parse_bytes(data: bytes, filename: str = "crafted.xml") -> list[SaftRecord]:
    return list(parse_saft(io.BytesIO(data), filename=filename))


def parse_until_error(data: bytes, filename: str) -> tuple[list[SaftRecord], SaftParseError]:
    """The records yielded before the parser gave up, and its error."""
    records: list[SaftRecord] = []
    with pytest.raises(SaftParseError) as caught:
        records.extend(parse_saft(io.BytesIO(data), filename=filename))
    return records, caught.value


# --- the published samples -------------------------------------------------------------


def test_sample_999999999_header() -> None:
    header = read_saft(sample(SAMPLE_999)).header

    assert header == SaftHeader(
        namespace=SAFT_NAMESPACE,
        schema_location=f"{SAFT_NAMESPACE} Norwegian_SAF-T_Financial_Schema_v_1.10.xsd",
        audit_file_version="1.0",
        audit_file_country="NO",
        date_created=date(2016, 1, 15),
        software_company_name="Sluttbrukersystemet AS",
        software_id="Regnskapssystemet",
        software_version="3.14",
        registration_number="999999999",
        company_name="Selskapet AS",
        default_currency_code="NOK",
        selection=SaftSelection(
            period_start=1, period_start_year=2015, period_end=12, period_end_year=2015
        ),
        tax_accounting_basis="A",
    )


def test_sample_999999999_records_in_document_order() -> None:
    with sample(SAMPLE_999).open("rb") as stream:
        kinds = [type(record).__name__ for record in parse_saft(stream, filename="x.xml")]

    assert kinds == [
        "SaftHeader",
        *["SaftAccount"] * 4,
        "SaftCustomer",
        "SaftSupplier",
        *["SaftAnalysisType"] * 4,
        *["SaftTransaction"] * 2,
        "SaftLedgerTotals",
    ]


def test_sample_999999999_master_files() -> None:
    document = read_saft(sample(SAMPLE_999))

    assert [
        (a.account_id, a.description, a.standard_account_id, a.account_type)
        for a in document.accounts
    ] == [
        ("1925", "Bankkonto 1234.56.78911", "19", "GL"),
        ("2400", "Leverandørgjeld", "24", "GL"),
        ("2740", "MVA-konto", "27", "GL"),
        ("4000", "Varekjøp", "43", "GL"),
    ]
    assert all(a.grouping_category is None and a.grouping_code is None for a in document.accounts)
    assert document.customers == (SaftCustomer("12000", "Kunden AS", "999999999"),)
    assert document.suppliers == (SaftSupplier("20000", "Leverandøren AS", "999999999"),)
    assert document.analysis_types == (
        SaftAnalysisType("A", "Avdeling", "100", "Administrasjon"),
        SaftAnalysisType("P", "Prosjekt", "2000", "Kontorbygg Aker Brygge"),
        SaftAnalysisType("B", "Bilagsart", "4", "Bank"),
        SaftAnalysisType("B", "Bilagsart", "11", "Inngående faktura"),
    )


def test_sample_999999999_transactions() -> None:
    document = read_saft(sample(SAMPLE_999))

    assert len(document.transactions) == 2
    assert sum(len(t.lines) for t in document.transactions) == 5
    invoice, payment = document.transactions
    assert (invoice.journal_id, invoice.transaction_id, invoice.period, invoice.period_year) == (
        "A",
        "4567",
        10,
        2015,
    )
    assert invoice.transaction_date == date(2015, 10, 31)
    assert invoice.description == "Faktura 123456"
    assert invoice.system_entry_date == date(2015, 10, 20)
    assert invoice.gl_posting_date == date(2015, 10, 22)
    assert invoice.lines == (
        SaftLine(
            record_id="1",
            account_id="4000",
            amount=Decimal("10000"),
            description="Faktura 123456",
            analyses=(
                SaftAnalysis("B", "11"),
                SaftAnalysis("A", "100"),
                SaftAnalysis("P", "2000"),
            ),
        ),
        SaftLine("2", "2740", Decimal("2500"), "Beregnet MVA", (SaftAnalysis("B", "11"),)),
        SaftLine(
            "3",
            "2400",
            Decimal("-12500"),
            "Faktura 123456",
            (SaftAnalysis("B", "11"),),
            supplier_id="20000",
        ),
    )
    assert [(line.account_id, line.amount) for line in payment.lines] == [
        ("2400", Decimal("12500")),
        ("1925", Decimal("-12500")),
    ]
    # Every voucher balances, and the control totals agree with the lines.
    assert [t.balance for t in document.transactions] == [Decimal(0), Decimal(0)]
    assert document.ledger_totals == SaftLedgerTotals(
        declared_entries=2,
        declared_debit=Decimal("25000"),
        declared_credit=Decimal("25000"),
        counted_entries=2,
        counted_debit=Decimal("25000"),
        counted_credit=Decimal("25000"),
    )
    assert document.ledger_totals.discrepancies == ()
    # Every account, dimension value and supplier the lines name is in the master files.
    lines = [line for t in document.transactions for line in t.lines]
    assert {line.account_id for line in lines} <= {a.account_id for a in document.accounts}
    assert {(a.analysis_type, a.analysis_id) for line in lines for a in line.analyses} <= {
        (a.analysis_type, a.analysis_id) for a in document.analysis_types
    }
    assert {line.supplier_id for line in lines} - {None} == {"20000"}


def test_sample_999999999_balances_do_not_reconcile() -> None:
    """Opening balance + movements != closing balance, for each of the four accounts.

    The balances are the sample's placeholders (1234.56 and 12345.67, the same for every
    account but 4000), unrelated to the two vouchers. The opening and the closing trial
    balances do not sum to zero either.
    """
    document = read_saft(sample(SAMPLE_999))
    movements: dict[str, Decimal] = defaultdict(Decimal)
    for transaction in document.transactions:
        for line in transaction.lines:
            movements[line.account_id] += line.amount

    found = {
        a.account_id: (
            a.opening_balance,
            movements[a.account_id],
            a.closing_balance,
            a.closing_balance - (a.opening_balance + movements[a.account_id]),
        )
        for a in document.accounts
    }

    # account: (opening, movements, closing, closing - (opening + movements)); debit > 0
    assert found == {
        "1925": (Decimal("1234.56"), Decimal("-12500"), Decimal("12345.67"), Decimal("23611.11")),
        "2400": (Decimal("-1234.56"), Decimal("0"), Decimal("-12345.67"), Decimal("-11111.11")),
        "2740": (Decimal("-1234.56"), Decimal("2500"), Decimal("-12345.67"), Decimal("-13611.11")),
        "4000": (Decimal("0"), Decimal("10000"), Decimal("0"), Decimal("-10000")),
    }
    assert all(difference != 0 for *_, difference in found.values())
    assert sum(a.opening_balance for a in document.accounts) == Decimal("-1234.56")
    assert sum(a.closing_balance for a in document.accounts) == Decimal("-12345.67")


def test_xmlspy_sample_is_refused_at_its_header() -> None:
    """The XMLSpy 1.30 sample is schema-shaped filler: 'a' for every text, 'aaa' for every
    currency, 0 for every number, 1957-08-13 for every date. Its header names no company
    and no currency, so it is refused before any record is yielded."""
    records, error = parse_until_error(
        sample(SAMPLE_XMLSPY).read_bytes(), "example-financial-1.30-xmlspy.xml"
    )

    assert records == []
    assert error.element_path == "/AuditFile/Header"
    assert error.reason == (
        "the header does not identify a company and its currency, so nothing in this file "
        "can be imported: "
        "AuditFileVersion 'a' is not a SAF-T version number (such as '1.30'); "
        "Company/RegistrationNumber 'a' is not a Norwegian organisation number (9 digits) "
        "or national identity number (11 digits); "
        "DefaultCurrencyCode 'aaa' is not an ISO 4217 currency code "
        "(three capital letters, such as 'NOK')"
    )
    assert str(error).startswith("example-financial-1.30-xmlspy.xml /AuditFile/Header: ")


def test_xmlspy_sample_with_a_real_header_parses_and_its_totals_disagree() -> None:
    """Past the header the filler is type-valid; in memory, give it a real header and the
    rest parses, with the one accounting finding the filler has: NumberOfEntries 0 for a
    file with one transaction."""
    data = sample(SAMPLE_XMLSPY).read_bytes()
    data = data.replace(b"<AuditFileVersion>a<", b"<AuditFileVersion>1.30<")
    data = data.replace(b"<RegistrationNumber>a<", b"<RegistrationNumber>999999999<", 1)
    data = data.replace(b">aaa</DefaultCurrencyCode>", b">NOK</DefaultCurrencyCode>")
    data = data.replace(b"<CurrencyCode>aaa<", b"<CurrencyCode>NOK<")

    records = parse_bytes(data, "patched-xmlspy.xml")

    header = records[0]
    assert isinstance(header, SaftHeader)
    # Unprefixed elements with only xmlns:n1 declared: the file uses no namespace at all.
    assert header.namespace is None
    assert header.schema_location == f"{SAFT_NAMESPACE} Norwegian_SAF-T_Financial_Schema_v_1.30.xsd"
    assert (header.company_name, header.audit_file_country) == ("a", "aa")
    assert header.date_created == date(1957, 8, 13)
    assert header.selection == SaftSelection(
        start_date=date(1957, 8, 13), end_date=date(1957, 8, 13)
    )
    assert records[1:-1] == [
        SaftAccount(
            account_id="a",
            description="a",
            standard_account_id=None,
            grouping_category="a",
            grouping_code="a",
            account_type="GL",
            opening_balance=Decimal(0),
            closing_balance=Decimal(0),
        ),
        SaftCustomer("a", "a", "a"),
        SaftSupplier("a", "a", "a"),
        SaftAnalysisType("a", "a", "a", "a"),
        SaftTransaction(
            journal_id="a",
            transaction_id="a",
            period=0,
            period_year=1970,
            transaction_date=date(1957, 8, 13),
            description="a",
            system_entry_date=date(1957, 8, 13),
            gl_posting_date=date(1957, 8, 13),
            lines=(
                SaftLine(
                    record_id="a",
                    account_id="a",
                    amount=Decimal(0),
                    description="a",
                    analyses=(SaftAnalysis("a", "a", Decimal(0)),),
                    currency_code="NOK",
                    currency_amount=Decimal(0),
                    customer_id="a",
                    supplier_id="a",
                ),
            ),
        ),
    ]
    totals = records[-1]
    assert isinstance(totals, SaftLedgerTotals)
    assert totals.discrepancies == ("NumberOfEntries is 0 but the file has 1 transactions",)


def test_truncated_sample_is_refused_with_line_and_column() -> None:
    data = sample(SAMPLE_999).read_bytes()
    cut = data.index(b"<n1:Amount>12500</n1:Amount>") + len(b"<n1:Amou")

    records, error = parse_until_error(data[:cut], "truncated.xml")

    # Line 388 is six tabs and "<n1:Amou": the unclosed tag starts in column 7.
    assert (error.line, error.column) == (388, 7)
    assert data[:cut].splitlines()[-1] == b"\t" * 6 + b"<n1:Amou"
    assert error.element_path == (
        "/AuditFile/GeneralLedgerEntries/Journal[JournalID=A]"
        "/Transaction[TransactionID=4567]/Line[3]/CreditAmount"
    )
    assert error.reason == (
        "XML is not well-formed at line 388, column 7: unclosed token "
        "(the file ends before </AuditFile>: is it truncated?)"
    )
    assert len(records) == 11  # header and master files; no transaction


# --- crafted documents: 1.30, 1.10 and no namespace ------------------------------------

HEADER = """
<Header>
  <AuditFileVersion>{version}</AuditFileVersion>
  <AuditFileCountry>NO</AuditFileCountry>
  <AuditFileDateCreated>2024-04-02</AuditFileDateCreated>
  <SoftwareCompanyName>Ledgerlink</SoftwareCompanyName>
  <SoftwareID>crafted</SoftwareID>
  <SoftwareVersion>1</SoftwareVersion>
  <Company>
    <RegistrationNumber>999 999 999</RegistrationNumber>
    <Name>Testselskapet AS</Name>
  </Company>
  <DefaultCurrencyCode>NOK</DefaultCurrencyCode>
  <SelectionCriteria>
    <PeriodStart>1</PeriodStart><PeriodStartYear>2024</PeriodStartYear>
    <PeriodEnd>3</PeriodEnd><PeriodEndYear>2024</PeriodEndYear>
  </SelectionCriteria>
  <TaxAccountingBasis>A</TaxAccountingBasis>
</Header>"""

MASTER_FILES = """
<MasterFiles>
  <GeneralLedgerAccounts>
    <Account>
      <AccountID>1920</AccountID><AccountDescription>Bank</AccountDescription>
      <GroupingCategory>RF-1167</GroupingCategory><GroupingCode>1920</GroupingCode>
      <AccountType>GL</AccountType>
      <OpeningDebitBalance>5000.00</OpeningDebitBalance>
      <ClosingDebitBalance>3750.00</ClosingDebitBalance>
    </Account>
    <Account>
      <AccountID>2400</AccountID><AccountDescription>Leverandørgjeld</AccountDescription>
      <GroupingCategory>RF-1167</GroupingCategory><GroupingCode>2400</GroupingCode>
      <AccountType>GL</AccountType>
      <OpeningCreditBalance>0</OpeningCreditBalance>
      <ClosingCreditBalance>0</ClosingCreditBalance>
    </Account>
    <Account>
      <AccountID>2710</AccountID><AccountDescription>Inngående MVA</AccountDescription>
      <GroupingCategory>RF-1167</GroupingCategory><GroupingCode>2710</GroupingCode>
      <AccountType>GL</AccountType>
      <OpeningDebitBalance>0</OpeningDebitBalance>
      <ClosingDebitBalance>250.00</ClosingDebitBalance>
    </Account>
    <Account>
      <AccountID>6300</AccountID><AccountDescription>Leie lokale</AccountDescription>
      <GroupingCategory>RF-1167</GroupingCategory><GroupingCode>6300</GroupingCode>
      <AccountType>GL</AccountType>
      <OpeningDebitBalance>0</OpeningDebitBalance>
      <ClosingDebitBalance>1000.00</ClosingDebitBalance>
    </Account>
  </GeneralLedgerAccounts>
  <Suppliers>
    <Supplier>
      <RegistrationNumber>888888888</RegistrationNumber><Name>Utleier AS</Name>
      <SupplierID>20000</SupplierID>
      <BalanceAccount>
        <AccountID>2400</AccountID>
        <OpeningCreditBalance>0</OpeningCreditBalance>
        <ClosingCreditBalance>0</ClosingCreditBalance>
      </BalanceAccount>
    </Supplier>
  </Suppliers>
  <AnalysisTypeTable>
    <AnalysisTypeTableEntry>
      <AnalysisType>A</AnalysisType><AnalysisTypeDescription>Avdeling</AnalysisTypeDescription>
      <AnalysisID>100</AnalysisID><AnalysisIDDescription>Administrasjon</AnalysisIDDescription>
    </AnalysisTypeTableEntry>
  </AnalysisTypeTable>
</MasterFiles>"""

LEDGER = """
<GeneralLedgerEntries>
  <NumberOfEntries>2</NumberOfEntries>
  <TotalDebit>2500.00</TotalDebit>
  <TotalCredit>2500.00</TotalCredit>
  <Journal>
    <JournalID>GL</JournalID><Description>Hovedbok</Description><Type>GL</Type>
    <Transaction>
      <TransactionID>123</TransactionID>
      <Period>3</Period><PeriodYear>2024</PeriodYear>
      <TransactionDate>2024-03-15</TransactionDate>
      <Description>Husleie mars</Description>
      <SystemEntryDate>2024-03-16</SystemEntryDate><GLPostingDate>2024-03-16</GLPostingDate>
      <Line>
        <RecordID>1</RecordID><AccountID>6300</AccountID>
        <Analysis>
          <AnalysisType>A</AnalysisType><AnalysisID>100</AnalysisID>
          <DebitAnalysisAmount><Amount>1000.00</Amount></DebitAnalysisAmount>
        </Analysis>
        <Description>Husleie</Description>
        <DebitAmount><Amount>1000.00</Amount></DebitAmount>
      </Line>
      <Line>
        <RecordID>2</RecordID><AccountID>2710</AccountID>
        <Description>MVA</Description>
        <DebitAmount><Amount>250.00</Amount></DebitAmount>
      </Line>
      <Line>
        <RecordID>3</RecordID><AccountID>2400</AccountID>
        <Analysis>
          <AnalysisType>A</AnalysisType><AnalysisID>100</AnalysisID>
          <CreditAnalysisAmount><Amount>1250.00</Amount></CreditAnalysisAmount>
        </Analysis>
        <SupplierID>20000</SupplierID>
        <Description>Faktura 77</Description>
        <CreditAmount><Amount>1250.00</Amount></CreditAmount>
      </Line>
    </Transaction>
    <Transaction>
      <TransactionID>124</TransactionID>
      <Period>3</Period><PeriodYear>2024</PeriodYear>
      <TransactionDate>2024-03-20</TransactionDate>
      <Description>Betaling faktura 77</Description>
      <SystemEntryDate>2024-03-20</SystemEntryDate><GLPostingDate>2024-03-20</GLPostingDate>
      <Line>
        <RecordID>1</RecordID><AccountID>2400</AccountID><SupplierID>20000</SupplierID>
        <Description>Betaling</Description>
        <DebitAmount><Amount>1250.00</Amount></DebitAmount>
      </Line>
      <Line>
        <RecordID>2</RecordID><AccountID>1920</AccountID>
        <Description>Betaling</Description>
        <CreditAmount>
          <Amount>1250.00</Amount><CurrencyCode>EUR</CurrencyCode>
          <CurrencyAmount>110.00</CurrencyAmount><ExchangeRate>11.36363636</ExchangeRate>
        </CreditAmount>
      </Line>
    </Transaction>
  </Journal>
</GeneralLedgerEntries>"""

EXPECTED_TRANSACTIONS = (
    SaftTransaction(
        journal_id="GL",
        transaction_id="123",
        period=3,
        period_year=2024,
        transaction_date=date(2024, 3, 15),
        description="Husleie mars",
        system_entry_date=date(2024, 3, 16),
        gl_posting_date=date(2024, 3, 16),
        lines=(
            SaftLine(
                "1",
                "6300",
                Decimal("1000.00"),
                "Husleie",
                (SaftAnalysis("A", "100", Decimal(1000)),),
            ),
            SaftLine("2", "2710", Decimal("250.00"), "MVA"),
            SaftLine(
                "3",
                "2400",
                Decimal("-1250.00"),
                "Faktura 77",
                (SaftAnalysis("A", "100", Decimal(-1250)),),
                supplier_id="20000",
            ),
        ),
    ),
    SaftTransaction(
        journal_id="GL",
        transaction_id="124",
        period=3,
        period_year=2024,
        transaction_date=date(2024, 3, 20),
        description="Betaling faktura 77",
        system_entry_date=date(2024, 3, 20),
        gl_posting_date=date(2024, 3, 20),
        lines=(
            SaftLine("1", "2400", Decimal("1250.00"), "Betaling", supplier_id="20000"),
            SaftLine(
                "2",
                "1920",
                Decimal("-1250.00"),
                "Betaling",
                currency_code="EUR",
                currency_amount=Decimal("-110.00"),
            ),
        ),
    ),
)

ROOT_ATTRIBUTES = {
    # 1.30, prefixed as XMLSpy and most producers write it.
    "1.30": (
        "n1:",
        f'xmlns:n1="{SAFT_NAMESPACE}" xmlns:xsi="{XSI}" '
        f'xsi:schemaLocation="{SAFT_NAMESPACE} Norwegian_SAF-T_Financial_Schema_v_1.30.xsd"',
    ),
    # 1.10 (the same namespace), as the default namespace.
    "1.10": (
        "",
        f'xmlns="{SAFT_NAMESPACE}" xmlns:xsi="{XSI}" '
        f'xsi:schemaLocation="{SAFT_NAMESPACE} Norwegian_SAF-T_Financial_Schema_v_1.10.xsd"',
    ),
    "none": ("", ""),
}


def to_1_10(text: str) -> str:
    """The 1.10 shapes: StandardAccountID, AnalysisAmount, customer balances inline."""
    text = re.sub(
        r"<GroupingCategory>[^<]*</GroupingCategory><GroupingCode>(\d\d)\d*</GroupingCode>",
        r"<StandardAccountID>\1</StandardAccountID>",
        text,
    )
    text = re.sub(r"(Debit|Credit)AnalysisAmount>", "AnalysisAmount>", text)
    return re.sub(r"</?BalanceAccount>", "", text)


def crafted(
    variant: str = "1.30",
    *,
    replace: tuple[str, str] | None = None,
    header: str = HEADER,
    ledger: str = LEDGER,
) -> bytes:
    """A small, reconciling SAF-T file: ``variant`` picks namespace and version shapes;
    ``replace`` swaps the first occurrence of a fragment (before prefixing)."""
    version = "1.10" if variant == "1.10" else "1.30"
    text = f"<AuditFile>{header.format(version=version)}{MASTER_FILES}{ledger}\n</AuditFile>"
    if variant == "1.10":
        text = to_1_10(text)
    if replace is not None:
        assert replace[0] in text, replace[0]
        text = text.replace(*replace, 1)
    prefix, attributes = ROOT_ATTRIBUTES[variant]
    text = re.sub(r"<(/?)(?=[A-Za-z])", rf"<\g<1>{prefix}", text)
    if attributes:
        text = text.replace(f"<{prefix}AuditFile>", f"<{prefix}AuditFile {attributes}>", 1)
    return f'<?xml version="1.0" encoding="UTF-8"?>\n{text}\n'.encode()


@pytest.mark.parametrize("variant", ["1.30", "1.10", "none"])
def test_namespace_and_version_variants_read_alike(variant: str) -> None:
    records = parse_bytes(crafted(variant))

    header = records[0]
    assert isinstance(header, SaftHeader)
    expected_namespace = None if variant == "none" else SAFT_NAMESPACE
    assert header.namespace == expected_namespace
    if variant == "none":
        assert header.schema_location is None
    else:
        assert header.schema_location is not None
        assert header.schema_location.endswith(f"_v_{variant}.xsd")
    assert header.audit_file_version == ("1.10" if variant == "1.10" else "1.30")
    assert header.registration_number == "999999999"  # written as "999 999 999"
    assert [r for r in records if isinstance(r, SaftTransaction)] == list(EXPECTED_TRANSACTIONS)
    accounts = [r for r in records if isinstance(r, SaftAccount)]
    assert [(a.account_id, a.opening_balance, a.closing_balance) for a in accounts] == [
        ("1920", Decimal("5000.00"), Decimal("3750.00")),
        ("2400", Decimal(0), Decimal(0)),
        ("2710", Decimal(0), Decimal("250.00")),
        ("6300", Decimal(0), Decimal("1000.00")),
    ]
    if variant == "1.10":
        assert [(a.standard_account_id, a.grouping_category) for a in accounts] == [
            ("19", None),
            ("24", None),
            ("27", None),
            ("63", None),
        ]
    else:
        assert {(a.standard_account_id, a.grouping_category) for a in accounts} == {
            (None, "RF-1167")
        }
    assert [r for r in records if isinstance(r, SaftSupplier)] == [
        SaftSupplier("20000", "Utleier AS", "888888888")
    ]
    totals = records[-1]
    assert isinstance(totals, SaftLedgerTotals)
    assert totals.discrepancies == ()


def test_crafted_document_reconciles() -> None:
    """The crafted file is a correct one: what the 999999999 sample is not."""
    records = parse_bytes(crafted())
    movements: dict[str, Decimal] = defaultdict(Decimal)
    for record in records:
        if isinstance(record, SaftTransaction):
            assert record.balance == 0
            for line in record.lines:
                movements[line.account_id] += line.amount
    for record in records:
        if isinstance(record, SaftAccount):
            assert record.opening_balance + movements[record.account_id] == record.closing_balance


def test_utf16_document_reads_alike() -> None:
    data = crafted().decode().replace('encoding="UTF-8"', 'encoding="UTF-16"').encode("utf-16")

    records = parse_bytes(data)

    assert [r for r in records if isinstance(r, SaftTransaction)] == list(EXPECTED_TRANSACTIONS)


def test_unbalanced_voucher_and_wrong_totals_are_reported_not_refused() -> None:
    """Accounting findings are the importer's and the accountant's to judge."""
    records = parse_bytes(
        crafted(
            replace=(
                "<CreditAmount><Amount>1250.00</Amount></CreditAmount>",
                "<CreditAmount><Amount>1200.00</Amount></CreditAmount>",
            )
        )
    )

    transactions = [r for r in records if isinstance(r, SaftTransaction)]
    assert [t.balance for t in transactions] == [Decimal("50.00"), Decimal(0)]
    totals = records[-1]
    assert isinstance(totals, SaftLedgerTotals)
    assert totals.discrepancies == ("TotalCredit is 2500.00 but the credit lines sum to 2450.00",)


TRANSACTION_123 = (
    "/AuditFile/GeneralLedgerEntries/Journal[JournalID=GL]/Transaction[TransactionID=123]"
)


@pytest.mark.parametrize(
    ("old", "new", "path", "reason"),
    [
        pytest.param(
            "<Amount>250.00</Amount>",
            "<Amount>abc</Amount>",
            f"{TRANSACTION_123}/Line[2]",
            "DebitAmount/Amount 'abc' is not a decimal",
            id="amount-not-decimal",
        ),
        pytest.param(
            "<Amount>250.00</Amount>",
            "<Amount>2.5E2</Amount>",
            f"{TRANSACTION_123}/Line[2]",
            "DebitAmount/Amount '2.5E2' is not a decimal",
            id="amount-exponent",
        ),
        pytest.param(
            "<Amount>250.00</Amount>",
            "<Amount>250,00</Amount>",
            f"{TRANSACTION_123}/Line[2]",
            "DebitAmount/Amount '250,00' is not a decimal",
            id="amount-decimal-comma",
        ),
        pytest.param(
            "<Amount>250.00</Amount>",
            "<Amount>250.005</Amount>",
            f"{TRANSACTION_123}/Line[2]",
            "DebitAmount/Amount '250.005' has more than 2 decimals",
            id="amount-three-decimals",
        ),
        pytest.param(
            "<DebitAmount><Amount>250.00</Amount></DebitAmount>",
            "",
            f"{TRANSACTION_123}/Line[2]",
            "DebitAmount or CreditAmount is missing",
            id="amount-missing",
        ),
        pytest.param(
            "<DebitAmount><Amount>250.00</Amount></DebitAmount>",
            "<DebitAmount><Amount>250.00</Amount></DebitAmount>"
            "<CreditAmount><Amount>250.00</Amount></CreditAmount>",
            f"{TRANSACTION_123}/Line[2]",
            "has both DebitAmount and CreditAmount",
            id="amount-both-sides",
        ),
        pytest.param(
            "<DebitAmount><Amount>250.00</Amount></DebitAmount>",
            "<DebitAmount><Amount>250.00</Amount><CurrencyCode>nok</CurrencyCode>"
            "<CurrencyAmount>250.00</CurrencyAmount></DebitAmount>",
            f"{TRANSACTION_123}/Line[2]",
            "DebitAmount/CurrencyCode 'nok' is not an ISO 4217 currency code "
            "(three capital letters)",
            id="currency-code",
        ),
        pytest.param(
            "<RecordID>2</RecordID><AccountID>2710</AccountID>",
            "<RecordID>2</RecordID><AccountID> </AccountID>",
            f"{TRANSACTION_123}/Line[2]",
            "AccountID is empty",
            id="account-empty",
        ),
        pytest.param(
            "<Amount>1000.00</Amount></DebitAnalysisAmount>",
            "<Amount>1 000</Amount></DebitAnalysisAmount>",
            f"{TRANSACTION_123}/Line[1]",
            "Analysis[1]/DebitAnalysisAmount/Amount '1 000' is not a decimal",
            id="analysis-amount",
        ),
        pytest.param(
            "<TransactionDate>2024-03-15</TransactionDate>",
            "<TransactionDate>2024-02-30</TransactionDate>",
            TRANSACTION_123,
            "TransactionDate '2024-02-30' is not a date (YYYY-MM-DD)",
            id="date-impossible",
        ),
        pytest.param(
            "<TransactionDate>2024-03-15</TransactionDate>",
            "<TransactionDate>15.03.2024</TransactionDate>",
            TRANSACTION_123,
            "TransactionDate '15.03.2024' is not a date (YYYY-MM-DD)",
            id="date-norwegian-format",
        ),
        pytest.param(
            "<PeriodYear>2024</PeriodYear>",
            "<PeriodYear>1969</PeriodYear>",
            TRANSACTION_123,
            "PeriodYear 1969 is outside 1970-2100",
            id="period-year-range",
        ),
        pytest.param(
            "<Period>3</Period>",
            "<Period>-1</Period>",
            TRANSACTION_123,
            "Period '-1' is not a whole number (0 or more)",
            id="period-negative",
        ),
        pytest.param(
            "<TransactionID>123</TransactionID>",
            "",
            "/AuditFile/GeneralLedgerEntries/Journal[JournalID=GL]/Transaction[1]",
            "TransactionID is missing",
            id="transaction-id-missing",
        ),
        pytest.param(
            "<OpeningDebitBalance>5000.00</OpeningDebitBalance>",
            "<OpeningDebitBalance>5 000,00</OpeningDebitBalance>",
            "/AuditFile/MasterFiles/GeneralLedgerAccounts/Account[AccountID=1920]",
            "OpeningDebitBalance '5 000,00' is not a decimal",
            id="account-balance",
        ),
        pytest.param(
            "<OpeningDebitBalance>5000.00</OpeningDebitBalance>",
            "",
            "/AuditFile/MasterFiles/GeneralLedgerAccounts/Account[AccountID=1920]",
            "OpeningDebitBalance or OpeningCreditBalance is missing",
            id="account-opening-missing",
        ),
        pytest.param(
            "<TotalDebit>2500.00</TotalDebit>",
            "<TotalDebit>n/a</TotalDebit>",
            "/AuditFile/GeneralLedgerEntries",
            "TotalDebit 'n/a' is not a decimal",
            id="control-total",
        ),
    ],
)
def test_bad_values_are_refused_with_their_element_path(
    old: str, new: str, path: str, reason: str
) -> None:
    _, error = parse_until_error(crafted(replace=(old, new)), "example.xml")

    assert (error.element_path, error.reason) == (path, reason)
    assert str(error) == f"example.xml {path}: {reason}"
    assert (error.line, error.column) == (None, None)


def test_bad_amount_message_reads_like_the_issue() -> None:
    _, error = parse_until_error(
        crafted(replace=("<Amount>250.00</Amount>", "<Amount>abc</Amount>")), "example.xml"
    )

    assert str(error) == (
        "example.xml /AuditFile/GeneralLedgerEntries/Journal[JournalID=GL]"
        "/Transaction[TransactionID=123]/Line[2]: DebitAmount/Amount 'abc' is not a decimal"
    )


def test_records_before_a_bad_value_were_already_yielded() -> None:
    """Lazy parsing: a caller that wants all or nothing must discard what it got."""
    records, error = parse_until_error(
        crafted(replace=("<CurrencyAmount>110.00<", "<CurrencyAmount>x<")), "example.xml"
    )

    assert error.reason == "CreditAmount/CurrencyAmount 'x' is not a decimal"
    assert [type(r).__name__ for r in records] == [
        "SaftHeader",
        *["SaftAccount"] * 4,
        "SaftSupplier",
        "SaftAnalysisType",
        "SaftTransaction",
    ]


def test_truncated_crafted_file_is_refused_with_line_and_column() -> None:
    data = crafted()
    cut = data.index(b"<n1:Amount>1250.00</n1:Amount><n1:CurrencyCode>") + len(b"<n1:Amount>12")
    truncated = data[:cut]
    last_line = truncated.splitlines()[-1]

    records, error = parse_until_error(truncated, "truncated.xml")

    assert error.line == truncated.count(b"\n") + 1
    assert error.column == len(last_line) + 1  # just past the last character read
    assert error.element_path == (
        "/AuditFile/GeneralLedgerEntries/Journal[JournalID=GL]"
        "/Transaction[TransactionID=124]/Line[2]/CreditAmount/Amount"
    )
    assert error.reason.endswith(
        "no element found (the file ends before </AuditFile>: is it truncated?)"
    )
    assert f"line {error.line}, column {error.column}" in str(error)
    assert sum(isinstance(r, SaftTransaction) for r in records) == 1


@pytest.mark.parametrize(
    ("data", "path", "reason"),
    [
        pytest.param(
            b'<?xml version="1.0"?>\n'
            b'<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"/>',
            "/Invoice",
            "root element is <Invoice> in namespace "
            "'urn:oasis:names:specification:ubl:schema:xsd:Invoice-2', not <AuditFile>: "
            "this is not a SAF-T Financial file",
            id="ubl-invoice",
        ),
        pytest.param(
            b"<AuditFile xmlns='urn:OECD:StandardAuditFile-Tax:PT_1.04_01'><Header/></AuditFile>",
            "/AuditFile",
            "root element is <AuditFile> in namespace 'urn:OECD:StandardAuditFile-Tax:PT_1.04_01'"
            ", not in the Norwegian SAF-T Financial namespace "
            "'urn:StandardAuditFile-Taxation-Financial:NO' (or none): "
            "this is not a Norwegian SAF-T Financial file",
            id="portuguese-saft",
        ),
        pytest.param(
            b'#FLAGGA 0\n#PROGRAM "Fortnox" 3.0\n#FORMAT PC8\n',
            "",
            "XML is not well-formed at line 1, column 1: syntax error "
            "(the file is empty or not XML)",
            id="sie-file",
        ),
        pytest.param(
            b"",
            "",
            "XML is not well-formed at line 1, column 1: no element found "
            "(the file is empty or not XML)",
            id="empty",
        ),
        pytest.param(
            b"<AuditFile><MasterFiles/></AuditFile>",
            "/AuditFile/MasterFiles",
            "MasterFiles comes before the Header",
            id="header-not-first",
        ),
        pytest.param(b"<AuditFile/>", "/AuditFile", "Header is missing", id="header-missing"),
    ],
)
def test_files_that_are_not_saft_are_refused(data: bytes, path: str, reason: str) -> None:
    records, error = parse_until_error(data, "upload.bin")

    assert records == []
    assert (error.element_path, error.reason) == (path, reason)


def test_header_placeholders_are_refused() -> None:
    header = (
        HEADER.replace("999 999 999", "99999999")
        .replace(">NOK<", ">nok<")
        .replace("{version}", "v{version}")
    )

    records, error = parse_until_error(crafted(header=header), "example.xml")

    assert records == []
    assert error.element_path == "/AuditFile/Header"
    assert "AuditFileVersion 'v1.30' is not a SAF-T version number" in error.reason
    assert "Company/RegistrationNumber '99999999' is not a Norwegian organisation" in error.reason
    assert "DefaultCurrencyCode 'nok' is not an ISO 4217 currency code" in error.reason


# --- untrusted input -------------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE AuditFile [
  <!ENTITY lol "lol">
  <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<AuditFile><Header><AuditFileVersion>&lol3;</AuditFileVersion></Header></AuditFile>
"""

DOCTYPE_REASON = (
    "the file has a document type declaration (<!DOCTYPE ...>); SAF-T files have none, "
    "and DTDs and entities are refused in uploaded files"
)


def test_document_type_declarations_are_refused() -> None:
    records, error = parse_until_error(BILLION_LAUGHS, "laughs.xml")

    assert records == []
    assert (error.element_path, error.reason) == ("", DOCTYPE_REASON)
    assert str(error) == f"laughs.xml: {DOCTYPE_REASON}"


def test_document_type_declaration_split_across_reads_is_refused() -> None:
    stream = ChunkStream(BILLION_LAUGHS[i : i + 4] for i in range(0, len(BILLION_LAUGHS), 4))

    with pytest.raises(SaftParseError) as caught:
        list(parse_saft(cast(BinaryIO, stream), filename="laughs.xml"))

    assert caught.value.reason == DOCTYPE_REASON


def test_utf16_document_type_declaration_is_refused() -> None:
    data = BILLION_LAUGHS.decode().replace('version="1.0"', 'version="1.0" encoding="UTF-16"')

    _, error = parse_until_error(data.encode("utf-16"), "laughs.xml")

    assert error.reason == DOCTYPE_REASON


# --- streaming: flat memory for a large file -------------------------------------------


class ChunkStream(io.RawIOBase):
    """A read-only binary stream over a generator of chunks; it never holds the file."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        super().__init__()
        self._chunks = chunks
        self._pending = b""
        self.produced = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = chunk
        view = memoryview(buffer).cast("B")
        size = min(len(view), len(self._pending))
        view[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        self.produced += size
        return size


LARGE_TRANSACTIONS = 50_000  # two lines each: 100k lines, about 46 MB

LARGE_LINE = (
    "<n1:Line><n1:RecordID>{record}</n1:RecordID><n1:AccountID>{account}</n1:AccountID>"
    "<n1:Analysis><n1:AnalysisType>A</n1:AnalysisType><n1:AnalysisID>100</n1:AnalysisID>"
    "</n1:Analysis><n1:Description>Generated line {number}</n1:Description>"
    "<n1:{side}Amount><n1:Amount>{amount}</n1:Amount></n1:{side}Amount></n1:Line>\n"
)


def large_cents(number: int) -> int:
    return number % 100_000 + 100


def large_document(transactions: int) -> Iterator[bytes]:
    """A SAF-T file with ``transactions`` balanced vouchers, produced piece by piece."""
    total = sum(large_cents(n) for n in range(transactions))
    head = crafted().split(b"<n1:GeneralLedgerEntries>")[0]
    yield head
    yield (
        f"<n1:GeneralLedgerEntries><n1:NumberOfEntries>{transactions}</n1:NumberOfEntries>"
        f"<n1:TotalDebit>{total // 100}.{total % 100:02d}</n1:TotalDebit>"
        f"<n1:TotalCredit>{total // 100}.{total % 100:02d}</n1:TotalCredit>"
        "<n1:Journal><n1:JournalID>GL</n1:JournalID><n1:Description>Generated</n1:Description>"
        "<n1:Type>GL</n1:Type>\n"
    ).encode()
    for number in range(transactions):
        cents = large_cents(number)
        amount = f"{cents // 100}.{cents % 100:02d}"
        yield (
            f"<n1:Transaction><n1:TransactionID>{number}</n1:TransactionID>"
            "<n1:Period>3</n1:Period><n1:PeriodYear>2024</n1:PeriodYear>"
            "<n1:TransactionDate>2024-03-15</n1:TransactionDate>"
            f"<n1:Description>Voucher {number}</n1:Description>"
            "<n1:SystemEntryDate>2024-03-15</n1:SystemEntryDate>"
            "<n1:GLPostingDate>2024-03-15</n1:GLPostingDate>\n"
            + LARGE_LINE.format(record=1, account=6300, number=number, side="Debit", amount=amount)
            + LARGE_LINE.format(record=2, account=1920, number=number, side="Credit", amount=amount)
            + "</n1:Transaction>\n"
        ).encode()
    yield b"</n1:Journal></n1:GeneralLedgerEntries></n1:AuditFile>\n"


def test_large_file_is_parsed_in_flat_memory() -> None:
    """Peak memory stays far below the file's size (about 0.4 MB for 46 MB).

    Without the clearing and detaching the parser does, the tree would keep everything:
    about 3.7 times the file's size (34 MB measured for a 9 MB file).
    """
    stream = ChunkStream(large_document(LARGE_TRANSACTIONS))
    transactions = lines = 0
    debit = Decimal(0)
    totals: SaftLedgerTotals | None = None

    tracemalloc.start()
    try:
        records = parse_saft(io.BufferedReader(stream), filename="large.xml")
        assert isinstance(next(records), SaftHeader)
        read_for_header = stream.produced
        for record in records:
            if isinstance(record, SaftTransaction):
                transactions += 1
                lines += len(record.lines)
                assert record.balance == 0
                debit += record.lines[0].amount
            elif isinstance(record, SaftLedgerTotals):
                totals = record
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    size = stream.produced
    assert size > 35_000_000, f"the generated file is only {size} bytes"
    assert read_for_header < 1_000_000  # the header came out long before the end
    assert (transactions, lines) == (LARGE_TRANSACTIONS, 2 * LARGE_TRANSACTIONS)
    assert totals is not None
    assert totals.discrepancies == ()
    assert totals.counted_debit == debit
    assert peak < 10_000_000, f"peak {peak / 1e6:.1f} MB while parsing {size / 1e6:.1f} MB"
