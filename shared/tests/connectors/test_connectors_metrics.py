"""Connector traffic metrics recorded by VendorHttpClient (MockTransport, fake time)."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client import CollectorRegistry

from ledgerlink.connectors import metrics as connector_metrics
from ledgerlink.connectors.errors import AuthenticationFailed, RateLimited, VendorUnavailable
from ledgerlink.connectors.http import RateBudget, RetryPolicy, VendorHttpClient
from ledgerlink.connectors.metrics import ConnectorMetrics, outcome_label


class FakeTime:
    def __init__(self) -> None:
        self.now = 10.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    found = registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


def client(
    answers: list[httpx.Response | Exception],
    fake: FakeTime,
    *,
    metrics: ConnectorMetrics | None = None,
    budget: RateBudget | None = None,
) -> VendorHttpClient:
    def answer(request: httpx.Request) -> httpx.Response:
        next_answer = answers.pop(0)
        if isinstance(next_answer, Exception):
            raise next_answer
        return next_answer

    return VendorHttpClient(
        "acme",
        "https://vendor.test/api",
        tenant="secret-tenant-id",
        transport=httpx.MockTransport(answer),
        sleep=fake.sleep,
        clock=fake.clock,
        budget=budget,
        retry=RetryPolicy(attempts=5, jitter_seconds=0.0),
        metrics=metrics,
    )


async def test_attempts_outcomes_retries_and_durations_are_counted() -> None:
    registry = CollectorRegistry()
    fake = FakeTime()
    answers: list[httpx.Response | Exception] = [
        httpx.Response(429, headers={"Retry-After": "1"}),
        httpx.ConnectError("refused"),
        httpx.Response(503),
        httpx.Response(200, json={}),
        httpx.Response(401),
    ]
    async with client(answers, fake, metrics=ConnectorMetrics(registry)) as http:
        await http.get("/accounts")
        with pytest.raises(AuthenticationFailed):
            await http.get("/accounts")

    def requests(outcome: str) -> float:
        return value(
            registry,
            "ledgerlink_connector_requests_total",
            vendor="acme",
            method="GET",
            outcome=outcome,
        )

    assert requests("ok") == 1
    assert requests("rate_limited") == 1
    assert requests("transport_error") == 1
    assert requests("vendor_unavailable") == 1
    assert requests("authentication_failed") == 1
    retries = "ledgerlink_connector_retries_total"
    assert value(registry, retries, vendor="acme", reason="rate_limited") == 1
    assert value(registry, retries, vendor="acme", reason="vendor_unavailable") == 2
    # Every attempt has a duration; the 401 was not retried.
    count = "ledgerlink_connector_request_seconds_count"
    assert value(registry, count, vendor="acme", method="GET") == 5


async def test_time_held_back_by_the_budget_is_counted() -> None:
    registry = CollectorRegistry()
    fake = FakeTime()
    budget = RateBudget(2, 1, headroom=1.0, clock=fake.clock, sleep=fake.sleep)
    answers: list[httpx.Response | Exception] = [httpx.Response(200) for _ in range(3)]
    async with client(answers, fake, metrics=ConnectorMetrics(registry), budget=budget) as http:
        for _ in range(3):
            await http.get("/x")
    # 2 per second, one at a time: the second and the third waited half a second each.
    waited = value(registry, "ledgerlink_connector_budget_wait_seconds_total", vendor="acme")
    assert waited == pytest.approx(1.0)


async def test_labels_carry_no_tenant_and_no_url() -> None:
    registry = CollectorRegistry()
    async with client(
        [httpx.Response(200)], FakeTime(), metrics=ConnectorMetrics(registry)
    ) as http:
        await http.get("/companies/1234567-8/accounts?token=abc")
    for metric in registry.collect():
        for sample in metric.samples:
            text = repr(sample.labels)
            assert "secret-tenant-id" not in text
            assert "1234567-8" not in text
            assert "token" not in text


async def test_installed_metrics_are_used_when_none_is_given() -> None:
    registry = CollectorRegistry()
    connector_metrics.install(registry)
    try:
        async with client([httpx.Response(200)], FakeTime()) as http:
            await http.get("/x")
    finally:
        connector_metrics.uninstall()
    async with client([httpx.Response(200)], FakeTime()) as http:
        await http.get("/x")  # not recorded any more
    assert (
        value(
            registry,
            "ledgerlink_connector_requests_total",
            vendor="acme",
            method="GET",
            outcome="ok",
        )
        == 1
    )


def test_outcome_labels_are_snake_case_error_classes() -> None:
    assert outcome_label(None) == "ok"
    assert outcome_label(RateLimited("acme", "slow down")) == "rate_limited"
    assert outcome_label(VendorUnavailable("acme", "down")) == "vendor_unavailable"
