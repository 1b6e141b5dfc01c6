"""Over the wire: payroll journals through the journal-exporter process."""

from __future__ import annotations

import uuid

import httpx
import pytest
from wire_helpers import EventReader, PlainKafkaClient

from ledgerlink.cli.stack import Stack
from ledgerlink.shared.testing import KafkaBackend
from ledgerlink.shared.topics import Topic

pytestmark = pytest.mark.wire

READY = "ledgerlink.journal.ready.v1"
ACCEPTED = "ledgerlink.journal.accepted.v1"
REJECTED = "ledgerlink.journal.rejected.v1"
BUSINESS_ID = "0112038-9"


def journal(lines: list[dict[str, str]], **changes: object) -> dict[str, object]:
    data: dict[str, object] = {
        "journal_id": f"run-{uuid.uuid4().hex[:8]}",
        "source": "nmbrs",
        "business_id": BUSINESS_ID,
        "period": "2026-10",
        "run_reference": "payroll-2026-10-1",
        "lines": lines,
    }
    data.update(changes)
    return data


async def test_balanced_journal_is_accepted_and_unbalanced_is_rejected_with_the_imbalance(
    stack: Stack, reader: EventReader, kafka_backend: KafkaBackend
) -> None:
    await stack.up(("journal-exporter",))
    balanced = journal(
        [
            {"account": "5000", "debit": "4200.00", "credit": "0", "cost_center": "CC10"},
            {"account": "5000", "debit": "800.50", "credit": "0", "cost_unit": "CU7"},
            {"account": "2930", "debit": "0", "credit": "5000.50"},
        ]
    )
    unbalanced = journal(
        [
            {"account": "5000", "debit": "1000.00", "credit": "0"},
            {"account": "2930", "debit": "0", "credit": "900.00"},
        ]
    )
    correction = journal(
        [
            {"account": "5000", "debit": "0", "credit": "150.00", "cost_center": "CC10"},
            {"account": "2930", "debit": "150.00", "credit": "0"},
        ],
        corrects_period="2026-08",
    )
    async with PlainKafkaClient(
        kafka_backend.bootstrap_servers, stack.config.topic_prefix
    ) as client:
        for data in (balanced, unbalanced, correction):
            await client.send(Topic.JOURNALS, data, key=BUSINESS_ID, ce_type=READY)

    exports = reader.topic(Topic.JOURNAL_EXPORTS)
    outcomes = await reader.wait_for(lambda seen: seen.topic == exports, count=3)
    by_journal = {seen.data["journal_id"]: seen for seen in outcomes}

    accepted = by_journal[balanced["journal_id"]]
    assert accepted.type == ACCEPTED
    assert accepted.data["total_debit"] == "5000.50"
    assert accepted.data["total_credit"] == "5000.50"
    assert accepted.data["line_count"] == 3
    assert accepted.key == BUSINESS_ID

    rejected = by_journal[unbalanced["journal_id"]]
    assert rejected.type == REJECTED
    assert rejected.data["reason_code"] == "unbalanced"
    assert "debits 1000.00" in rejected.data["message"]
    assert "credits 900.00" in rejected.data["message"]
    assert "difference 100.00" in rejected.data["message"]

    corrected = by_journal[correction["journal_id"]]
    assert corrected.type == ACCEPTED
    assert corrected.data["period"] == "2026-10"
    assert corrected.data["corrects_period"] == "2026-08"

    async with httpx.AsyncClient() as http:
        stored = (
            await http.get(
                f"{stack.services['journal-exporter'].url}/v1/journals",
                params={"business_id": BUSINESS_ID},
            )
        ).json()
    assert {item["status"] for item in stored} == {"accepted", "rejected"}
    assert len(stored) == 3
