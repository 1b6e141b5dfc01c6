"""VendorHttpClient: retries, Retry-After, idempotency, rate budget, safe logs, metrics
(MockTransport)."""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import logging
from collections.abc import Callable

import httpx
import pytest
from prometheus_client import CollectorRegistry

from ledgerlink.connectors import metrics as connector_metrics
from ledgerlink.connectors.errors import (
    AccessNotEnabled,
    AuthenticationFailed,
    ConnectorError,
    InvalidData,
    NotFound,
    RateLimited,
    VendorUnavailable,
)
from ledgerlink.connectors.http import (
    RateBudget,
    RetryPolicy,
    VendorHttpClient,
    parse_retry_after,
    redact_headers,
)


class FakeTime:
    """A clock and a sleep that advances it: waits are recorded, never slept."""

    def __init__(self, *, advance: bool = True) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []
        self.advance = advance

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self.advance:
            self.now += seconds


def _client(
    handler: Callable[[httpx.Request], httpx.Response],
    fake: FakeTime,
    *,
    budget: RateBudget | None = None,
    retry: RetryPolicy | None = None,
    metrics: connector_metrics.ConnectorMetrics | None = None,
) -> VendorHttpClient:
    return VendorHttpClient(
        "testvendor",
        "https://vendor.test/api",
        tenant="t1",
        transport=httpx.MockTransport(handler),
        sleep=fake.sleep,
        clock=fake.clock,
        budget=budget,
        retry=retry or RetryPolicy(attempts=4, jitter_seconds=0.1),
        metrics=metrics,
    )


class Script:
    """Answers requests from a list; records what was asked."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


async def test_get_is_retried_on_503_with_exponential_backoff() -> None:
    fake = FakeTime()
    script = Script(httpx.Response(503), httpx.Response(502), httpx.Response(200, json={"ok": 1}))
    async with _client(script, fake) as client:
        response = await client.get("/coa")
    assert response.json() == {"ok": 1}
    assert len(script.requests) == 3
    assert len(fake.sleeps) == 2
    assert 0.5 <= fake.sleeps[0] <= 0.6
    assert 1.0 <= fake.sleeps[1] <= 1.1


async def test_429_waits_retry_after_seconds_and_pauses_the_budget() -> None:
    fake = FakeTime()
    budget = RateBudget(rate=100, burst=10, headroom=1.0, clock=fake.clock, sleep=fake.sleep)
    script = Script(
        httpx.Response(429, headers={"Retry-After": "3"}),
        httpx.Response(200),
        httpx.Response(200),
    )
    async with _client(script, fake, budget=budget) as client:
        await client.get("/x")
        assert len(fake.sleeps) >= 1
        waited = sum(fake.sleeps)
        assert 3 <= waited <= 4
        await client.get("/y")
    assert len(script.requests) == 3


async def test_429_with_http_date_is_honoured() -> None:
    fake = FakeTime()
    when = email.utils.format_datetime(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5), True)
    script = Script(httpx.Response(429, headers={"Retry-After": when}), httpx.Response(200))
    async with _client(script, fake) as client:
        await client.get("/x")
    assert 3.5 <= fake.sleeps[0] <= 6.5


async def test_too_long_retry_after_fails_fast_as_rate_limited() -> None:
    fake = FakeTime()
    script = Script(httpx.Response(429, headers={"Retry-After": "3600"}))
    async with _client(script, fake) as client:
        with pytest.raises(RateLimited) as limited:
            await client.get("/x")
    assert limited.value.retry_after == 3600
    assert fake.sleeps == []


async def test_attempts_are_bounded() -> None:
    fake = FakeTime()
    script = Script(*[httpx.Response(503) for _ in range(4)])
    async with _client(script, fake) as client:
        with pytest.raises(VendorUnavailable) as failed:
            await client.get("/x")
    assert failed.value.status == 503
    assert len(script.requests) == 4


async def test_total_time_is_bounded() -> None:
    fake = FakeTime()
    script = Script(*[httpx.Response(429, headers={"Retry-After": "40"}) for _ in range(10)])
    policy = RetryPolicy(attempts=10, max_total_seconds=100, jitter_seconds=0)
    async with _client(script, fake, retry=policy) as client:
        with pytest.raises(RateLimited):
            await client.get("/x")
    assert sum(fake.sleeps) <= 100
    assert len(script.requests) < 10


async def test_post_is_not_repeated_after_a_5xx_or_a_reset() -> None:
    fake = FakeTime()
    script = Script(httpx.Response(503), httpx.ReadError("reset"))
    async with _client(script, fake) as client:
        with pytest.raises(VendorUnavailable):
            await client.post("/journals", json={"a": 1})
        with pytest.raises(VendorUnavailable) as reset:
            await client.post("/journals", json={"a": 1})
    assert isinstance(reset.value.__cause__, httpx.ReadError)
    assert len(script.requests) == 2
    assert fake.sleeps == []


async def test_post_is_retried_when_the_connection_never_opened_or_when_idempotent() -> None:
    fake = FakeTime()
    script = Script(
        httpx.ConnectError("refused"),
        httpx.Response(201),
        httpx.Response(503),
        httpx.Response(200),
    )
    async with _client(script, fake) as client:
        assert (await client.post("/journals", json={})).status_code == 201
        assert (await client.post("/query", json={}, idempotent=True)).status_code == 200
    assert len(script.requests) == 4


async def test_default_classification() -> None:
    fake = FakeTime()
    script = Script(httpx.Response(403), httpx.Response(404), httpx.Response(400, text="bad"))
    async with _client(script, fake) as client:
        with pytest.raises(AccessNotEnabled):
            await client.get("/a")
        with pytest.raises(NotFound):
            await client.get("/b")
        with pytest.raises(InvalidData) as invalid:
            await client.get("/c")
    assert invalid.value.vendor_message == "bad"


async def test_vendor_classifier_decides_and_can_make_200_an_error() -> None:
    fake = FakeTime()

    def classify(response: httpx.Response) -> ConnectorError | None:
        if b"SYSTEM_MAINTANANCE" in response.content:
            return VendorUnavailable("testvendor", "maintenance")
        if b"FAILED" in response.content:
            return InvalidData("testvendor", "refused", vendor_code="INVALID_DATA")
        return None

    script = Script(
        httpx.Response(200, text="FAILED SYSTEM_MAINTANANCE"),
        httpx.Response(200, text="OK"),
        httpx.Response(200, text="FAILED"),
    )
    client_with_hook = VendorHttpClient(
        "testvendor",
        "https://vendor.test",
        transport=httpx.MockTransport(script),
        classify=classify,
        sleep=fake.sleep,
    )
    async with client_with_hook:
        assert (await client_with_hook.get("/x")).text == "OK"
        with pytest.raises(InvalidData) as refused:
            await client_with_hook.get("/y")
    assert refused.value.vendor_code == "INVALID_DATA"


async def test_build_hook_signs_every_attempt_freshly() -> None:
    fake = FakeTime()
    script = Script(httpx.Response(503), httpx.Response(200))
    counter = iter(range(100))

    def sign(request: httpx.Request) -> httpx.Request:
        request.headers["X-Transaction-Id"] = f"tx-{next(counter)}"
        return request

    async with _client(script, fake) as client:
        await client.get("/x", build=sign)
    assert [r.headers["X-Transaction-Id"] for r in script.requests] == ["tx-0", "tx-1"]


async def test_retry_logs_carry_no_secret_and_no_query(caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeTime()
    script = Script(httpx.Response(503), httpx.Response(200))
    caplog.set_level(logging.DEBUG)
    async with _client(script, fake) as client:
        await client.get(
            "/x",
            params={"api_key": "query-secret"},
            headers={"Authorization": "Bearer header-secret", "Cookie": "sid=cookie-secret"},
        )
    assert "retrying vendor request" in caplog.text
    # httpx's own INFO line shows the full URL: vendors keep secrets out of query strings.
    ours = [r for r in caplog.records if r.name.startswith("ledgerlink")]
    assert ours
    records = " ".join(str(r.__dict__) for r in ours)
    for secret in ("query-secret", "header-secret", "cookie-secret"):
        assert secret not in records


def test_redact_headers() -> None:
    safe = redact_headers(
        {
            "Authorization": "Bearer a",
            "X-Netvisor-Authentication-MAC": "m",
            "Cookie": "c",
            "Accept": "application/json",
        }
    )
    assert safe == {
        "Authorization": "***",
        "X-Netvisor-Authentication-MAC": "***",
        "Cookie": "***",
        "Accept": "application/json",
    }


def test_parse_retry_after() -> None:
    now = dt.datetime(2025, 1, 1, 12, 0, tzinfo=dt.UTC)
    assert parse_retry_after("5") == 5
    assert parse_retry_after("1.5") == 1.5
    assert parse_retry_after("Wed, 01 Jan 2025 12:00:30 GMT", now=now) == 30
    assert parse_retry_after("Wed, 01 Jan 2025 11:00:00 GMT", now=now) == 0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


async def test_rate_budget_allows_a_burst_then_spaces_requests() -> None:
    fake = FakeTime()
    budget = RateBudget(rate=2, burst=3, headroom=1.0, clock=fake.clock, sleep=fake.sleep)
    key = ("v", "t")
    waits = [await budget.acquire(key) for _ in range(5)]
    assert waits[:3] == [0, 0, 0]
    assert waits[3] == pytest.approx(0.5)
    assert waits[4] == pytest.approx(0.5)
    assert await budget.acquire(("v", "other")) == 0


def test_rate_budget_refuses_a_fake_sleep_on_the_real_clock() -> None:
    # The mix that made a Visma.net test depend on the machine's speed: waits computed from
    # real elapsed time, "slept" on another clock.
    async def fake_sleep(seconds: float) -> None:
        return None

    with pytest.raises(ValueError, match="needs the clock it advances"):
        RateBudget(10, 1, sleep=fake_sleep)
    assert RateBudget(10, 1, sleep=fake_sleep, clock=lambda: 0.0).now() == 0.0
    assert RateBudget(10, 1).burst == 1


def test_rate_budget_reservations_queue_concurrent_callers() -> None:
    fake = FakeTime()
    budget = RateBudget(rate=10, burst=1, headroom=1.0, clock=fake.clock, sleep=fake.sleep)
    # Five callers arrive at the same instant: each gets the next slot, 0.1 s apart.
    waits = [budget.reserve(("v", "t")) for _ in range(5)]
    assert waits == pytest.approx([0, 0.1, 0.2, 0.3, 0.4])


def test_rate_budget_keeps_headroom_below_the_vendor_limit_by_default() -> None:
    fake = FakeTime()
    budget = RateBudget(rate=10, burst=1, clock=fake.clock, sleep=fake.sleep)
    waits = [budget.reserve(("v", "t")) for _ in range(3)]
    assert budget.limit == 10
    assert waits == pytest.approx([0, 1 / 9.7, 2 / 9.7])
    with pytest.raises(ValueError, match="headroom"):
        RateBudget(rate=10, headroom=1.5)


async def test_rate_budget_pause_holds_the_key_back() -> None:
    fake = FakeTime()
    budget = RateBudget(rate=100, burst=100, headroom=1.0, clock=fake.clock, sleep=fake.sleep)
    budget.pause(("v", "t"), 4)
    assert await budget.acquire(("v", "t")) == pytest.approx(4)
    assert await budget.acquire(("v", "t")) == 0
    assert await budget.acquire(("v", "u")) == 0


async def test_concurrent_requests_share_the_budget() -> None:
    # Time stands still while the six start: they queue behind each other in the budget.
    fake = FakeTime(advance=False)
    budget = RateBudget(rate=5, burst=2, headroom=1.0, clock=fake.clock, sleep=fake.sleep)
    script = Script(*[httpx.Response(200) for _ in range(6)])
    async with _client(script, fake, budget=budget) as client:
        await asyncio.gather(*(client.get(f"/p{i}") for i in range(6)))
    assert len(script.requests) == 6
    assert sorted(fake.sleeps) == pytest.approx([0.2, 0.4, 0.6, 0.8])


# -- metrics ---------------------------------------------------------------------------------


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    found = registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


def attempts(registry: CollectorRegistry, outcome: str) -> float:
    return sample(
        registry,
        "ledgerlink_connector_requests_total",
        vendor="testvendor",
        method="GET",
        outcome=outcome,
    )


async def test_metrics_count_attempts_by_outcome_retries_and_durations() -> None:
    registry = CollectorRegistry()
    script = Script(
        httpx.Response(429, headers={"Retry-After": "1"}),
        httpx.ConnectError("refused"),
        httpx.Response(503),
        httpx.Response(200, json={}),
        httpx.Response(401),
    )
    metrics = connector_metrics.ConnectorMetrics(registry)
    async with _client(
        script, FakeTime(), retry=RetryPolicy(attempts=5), metrics=metrics
    ) as client:
        await client.get("/accounts")
        with pytest.raises(AuthenticationFailed):
            await client.get("/accounts")
    assert attempts(registry, "ok") == 1
    assert attempts(registry, "rate_limited") == 1
    assert attempts(registry, "transport_error") == 1
    assert attempts(registry, "vendor_unavailable") == 1
    assert attempts(registry, "authentication_failed") == 1
    retries = "ledgerlink_connector_retries_total"
    assert sample(registry, retries, vendor="testvendor", reason="rate_limited") == 1
    assert sample(registry, retries, vendor="testvendor", reason="vendor_unavailable") == 2
    # Every attempt has a duration; the 401 was not retried.
    durations = "ledgerlink_connector_request_seconds_count"
    assert sample(registry, durations, vendor="testvendor", method="GET") == 5


async def test_metrics_count_time_held_back_by_the_budget() -> None:
    registry = CollectorRegistry()
    fake = FakeTime()
    budget = RateBudget(2, 1, headroom=1.0, clock=fake.clock, sleep=fake.sleep)
    script = Script(*(httpx.Response(200) for _ in range(3)))
    metrics = connector_metrics.ConnectorMetrics(registry)
    async with _client(script, fake, budget=budget, metrics=metrics) as client:
        for _ in range(3):
            await client.get("/x")
    # 2 per second, one at a time: the second and the third waited half a second each.
    waited = sample(registry, "ledgerlink_connector_budget_wait_seconds_total", vendor="testvendor")
    assert waited == pytest.approx(1.0)


async def test_metric_labels_carry_no_tenant_and_no_url() -> None:
    registry = CollectorRegistry()
    metrics = connector_metrics.ConnectorMetrics(registry)
    async with _client(Script(httpx.Response(200)), FakeTime(), metrics=metrics) as client:
        await client.get("/companies/1234567-8/accounts?token=abc")
    for metric in registry.collect():
        for found in metric.samples:
            text = repr(found.labels)
            assert "t1" not in text
            assert "1234567-8" not in text
            assert "token" not in text


async def test_installed_metrics_are_used_when_none_is_given() -> None:
    registry = CollectorRegistry()
    connector_metrics.install(registry)
    try:
        async with _client(Script(httpx.Response(200)), FakeTime()) as client:
            await client.get("/x")
    finally:
        connector_metrics.uninstall()
    async with _client(Script(httpx.Response(200)), FakeTime()) as client:
        await client.get("/x")  # not recorded any more
    assert attempts(registry, "ok") == 1


def test_outcome_labels_are_snake_case_error_classes() -> None:
    assert connector_metrics.outcome_label(None) == "ok"
    assert connector_metrics.outcome_label(RateLimited("acme", "slow down")) == "rate_limited"
    assert (
        connector_metrics.outcome_label(VendorUnavailable("acme", "down")) == "vendor_unavailable"
    )
