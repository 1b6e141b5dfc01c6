"""The HTTP core every connector uses: pooled client, retries, rate budget, safe logging.

:class:`VendorHttpClient` wraps one ``httpx.AsyncClient`` per connection (keep-alive pool,
timeouts). Each request first awaits the :class:`RateBudget` for its (vendor, tenant) key,
then is sent and classified: the vendor module's ``classify(response)`` hook turns the
vendor's error format into a :class:`ConnectorError` (or ``None`` for success).

Retries use tenacity with bounded attempts *and* bounded total time:

* :class:`RateLimited` (429 or the vendor's equivalent) is always retried: the vendor refused
  the request before doing anything. The wait is the vendor's ``Retry-After`` (seconds or an
  HTTP date) and the whole (vendor, tenant) budget pauses that long, so concurrent requests
  slow down together instead of hammering the vendor.
* :class:`VendorUnavailable` (502/503/504, maintenance) and transport errors are retried
  with exponential back-off and jitter, but only when repeating cannot book twice: for
  idempotent methods, for requests the caller marks ``idempotent=True``, or when the
  connection failed before the request was sent.

Nothing secret is logged: header values of Authorization, cookies, MACs, keys and tokens are
replaced by ``***`` (:func:`redact_headers`), and URLs are logged without their query string.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

import httpx
from pydantic import BaseModel, ConfigDict, Field
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_any,
)
from tenacity.stop import stop_base

from ledgerlink.connectors import metrics as connector_metrics
from ledgerlink.connectors.errors import (
    AccessNotEnabled,
    AuthenticationFailed,
    ConcurrencyConflict,
    ConnectorError,
    InvalidData,
    NotFound,
    RateLimited,
    VendorUnavailable,
)

__all__ = [
    "Classifier",
    "RateBudget",
    "RetryPolicy",
    "VendorHttpClient",
    "budget_for",
    "default_classify",
    "parse_retry_after",
    "redact_headers",
    "retry_after_of",
]

logger = logging.getLogger(__name__)

Classifier = Callable[[httpx.Response], ConnectorError | None]

_IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# Failures that happen before a byte of the request reached the vendor: always safe to retry.
_NOT_SENT: Final = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_SENSITIVE_HEADER_PARTS: Final = (
    "authorization",
    "cookie",
    "mac",
    "token",
    "secret",
    "key",
    "password",
    "session",
)


def redact_headers(headers: Mapping[str, str] | httpx.Headers) -> dict[str, str]:
    """A copy of ``headers`` safe to log: sensitive values become ``***``."""
    return {
        name: "***" if any(part in name.lower() for part in _SENSITIVE_HEADER_PARTS) else value
        for name, value in headers.items()
    }


def _loggable_url(url: httpx.URL) -> str:
    return str(url.copy_with(query=None, fragment=None))


def parse_retry_after(value: str | None, *, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP-date)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    reference = now or dt.datetime.now(dt.UTC)
    return max(0.0, (when - reference).total_seconds())


def retry_after_of(response: httpx.Response) -> float | None:
    """Seconds to wait that ``response``'s ``Retry-After`` header asks for, if any."""
    return parse_retry_after(response.headers.get("retry-after"))


def default_classify(vendor: str, response: httpx.Response) -> ConnectorError | None:
    """Plain HTTP status mapping, for vendors without a richer error format."""
    status = response.status_code
    if status < 400:
        return None
    text = response.text[:500] if response.content else None
    message = f"HTTP {status} from {response.request.method} {response.url.path}"
    if status == 429:
        return RateLimited(
            vendor,
            "rate limited",
            retry_after=retry_after_of(response),
            vendor_message=text,
        )
    if status >= 500:
        return VendorUnavailable(vendor, message, status=status, vendor_message=text)
    error_class: type[ConnectorError] = {
        401: AuthenticationFailed,
        403: AccessNotEnabled,
        404: NotFound,
        409: ConcurrencyConflict,
        412: ConcurrencyConflict,
    }.get(status, InvalidData)
    return error_class(vendor, message, status=status, vendor_message=text)


class RetryPolicy(BaseModel):
    """How hard to try: bounded attempts and total time, back-off with jitter."""

    model_config = ConfigDict(frozen=True)

    attempts: int = Field(default=6, ge=1, description="Attempts per request, first included.")
    max_total_seconds: float = Field(
        default=300, gt=0, description="No retry is started that would end after this."
    )
    initial_backoff_seconds: float = Field(default=0.5, ge=0)
    max_backoff_seconds: float = Field(default=30, ge=0)
    jitter_seconds: float = Field(default=0.5, ge=0)
    max_retry_after_seconds: float = Field(
        default=120, ge=0, description="Longest Retry-After honoured; longer ones fail fast."
    )


class RateBudget:
    """An async token bucket per key: ``rate`` requests per second, ``burst`` at once.

    :meth:`acquire` reserves a slot and sleeps until it is due; reservations are taken
    without an ``await`` in between, so concurrent callers queue fairly without a lock.
    :meth:`pause` holds a key back (a vendor's ``Retry-After``). ``clock`` and ``sleep``
    are injectable so tests run without real waiting.

    ``rate`` is the vendor's published limit; the budget paces at ``headroom`` times it.
    Requests spaced exactly at the limit reach the vendor with network jitter, some closer
    together than they left, and the vendor's own bucket then refuses them (measured with
    ``bench/bench_connectors.py``: at 100% of the limit every connector met 429s, at 97%
    none did).
    """

    def __init__(
        self,
        rate: float,
        burst: int = 1,
        *,
        headroom: float = 0.97,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate <= 0 or burst < 1 or not 0 < headroom <= 1:
            raise ValueError("rate must be > 0, burst >= 1 and 0 < headroom <= 1")
        if sleep is not asyncio.sleep and clock is time.monotonic:
            # A fake sleep on the real clock computes every wait from real elapsed time
            # while the time it "sleeps" passes only on some other clock: pacing and
            # window pauses then depend on how fast the machine is (a test that passed
            # on one machine met 429s on a slower one). Time is injected as a pair.
            raise ValueError(
                "RateBudget: an injected sleep needs the clock it advances (pass clock= too)"
            )
        self.limit = rate
        self.rate = rate * headroom
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        # key -> (tokens at `stamp`, stamp); tokens may go negative: reserved slots.
        self._state: dict[tuple[str, str], tuple[float, float]] = {}
        self._paused_until: dict[tuple[str, str], float] = {}

    @classmethod
    def shared(cls, vendor: str, rate: float, burst: int) -> RateBudget:
        """The process-wide budget of ``vendor`` at this limit: every connection to the same
        vendor tenant in one process draws on it (it is keyed by tenant inside), so two
        syncs of one company cannot spend the vendor's limit twice."""
        budget = _SHARED_BUDGETS.get((vendor, rate, burst))
        if budget is None:
            budget = _SHARED_BUDGETS[(vendor, rate, burst)] = cls(rate, burst)
        return budget

    def reserve(self, key: tuple[str, str]) -> float:
        """Take a slot for ``key``; the seconds to wait before using it."""
        now = self._clock()
        tokens, stamp = self._state.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - stamp) * self.rate) - 1
        self._state[key] = (tokens, now)
        wait = 0.0 if tokens >= 0 else -tokens / self.rate
        return max(wait, self._paused_until.get(key, now) - now)

    async def acquire(self, key: tuple[str, str]) -> float:
        """Wait for a slot for ``key``; returns the seconds waited."""
        wait = self.reserve(key)
        if wait > 0:
            await self._sleep(wait)
        return wait

    def now(self) -> float:
        """The budget's clock (what :meth:`pause` counts from)."""
        return self._clock()

    def pause(self, key: tuple[str, str], seconds: float) -> None:
        """Hold every request for ``key`` back for ``seconds`` from now."""
        until = self._clock() + seconds
        if until > self._paused_until.get(key, 0.0):
            self._paused_until[key] = until

    #: True for a budget that follows the vendor's rate window itself from
    #: :meth:`observe_window` (a connector then leaves its own window pauses to it).
    follows_windows: bool = False

    def observe_window(
        self, key: tuple[str, str], *, limit: int | None, remaining: int, reset: float | None
    ) -> None:
        """An answer's rate-limit headers (``X-RateLimit-Limit/-Remaining/-Reset``), read
        now. A token bucket has no use for them; a window-following budget does."""


_SHARED_BUDGETS: dict[tuple[str, float, int], RateBudget] = {}


def budget_for(
    vendor: str,
    rate: float,
    burst: int,
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> RateBudget:
    """The budget a connector paces with when it is given none: the vendor's process-wide
    budget on real time, or a private one when the caller injected its own time (a test's
    fake clock must not leak into, or be shared through, the process-wide budget)."""
    if sleep is asyncio.sleep and clock is time.monotonic:
        return RateBudget.shared(vendor, rate, burst)
    return RateBudget(rate, burst, sleep=sleep, clock=clock)


class _Retry(Exception):  # noqa: N818 - internal signal, not an error for callers
    """Carries a retryable ConnectorError through tenacity."""

    def __init__(self, error: ConnectorError, wait: float | None) -> None:
        super().__init__(str(error))
        self.error = error
        self.wait = wait


class _StopBeforeDeadline(stop_base):
    """tenacity's stop_before_delay on an injectable clock: no retry starts whose wait
    would end past the total time allowed."""

    def __init__(self, clock: Callable[[], float], max_total: float) -> None:
        self._clock = clock
        self._deadline = clock() + max_total

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self._clock() + (retry_state.upcoming_sleep or 0) >= self._deadline


class VendorHttpClient:
    """One vendor connection's HTTP client; see the module docstring."""

    def __init__(
        self,
        vendor: str,
        base_url: str,
        *,
        tenant: str = "",
        classify: Classifier | None = None,
        budget: RateBudget | None = None,
        retry: RetryPolicy | None = None,
        timeout: httpx.Timeout | float = httpx.Timeout(30.0, connect=10.0),
        limits: httpx.Limits | None = None,
        headers: Mapping[str, str] | None = None,
        auth: httpx.Auth | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        metrics: connector_metrics.ConnectorMetrics | None = None,
    ) -> None:
        self.vendor = vendor
        #: Where traffic is recorded; None: what a service installed (if anything).
        self.metrics = metrics
        self._clock = clock
        self.tenant = tenant
        self.budget = budget
        self.retry = retry or RetryPolicy()
        self._classify = classify or (lambda response: default_classify(vendor, response))
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._client = httpx.AsyncClient(
            base_url=base_url,
            timeout=timeout,
            limits=limits or httpx.Limits(max_connections=10, max_keepalive_connections=5),
            headers=dict(headers or {}),
            auth=auth,
            transport=transport,
        )

    @property
    def client(self) -> httpx.AsyncClient:
        """The underlying pooled client (for what the helpers here do not cover)."""
        return self._client

    async def __aenter__(self) -> VendorHttpClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    # -- requests ---------------------------------------------------------------------------

    async def get(self, url: str, **kwargs: Any) -> httpx.Response:
        """``request("GET", url, ...)``."""
        return await self.request("GET", url, **kwargs)

    async def post(self, url: str, **kwargs: Any) -> httpx.Response:
        """``request("POST", url, ...)`` (not retried after sending unless idempotent)."""
        return await self.request("POST", url, **kwargs)

    async def put(self, url: str, **kwargs: Any) -> httpx.Response:
        """``request("PUT", url, ...)``."""
        return await self.request("PUT", url, **kwargs)

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: Any = None,
        json: Any = None,
        content: bytes | str | None = None,
        data: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        classify: Classifier | None = None,
        build: Callable[[httpx.Request], httpx.Request] | None = None,
    ) -> httpx.Response:
        """Send with budget, classification and retries; the successful response.

        ``build`` may sign each attempt's request (fresh timestamps, nonces, MACs): it gets
        the request before every attempt and returns the one to send. Raises the classified
        :class:`ConnectorError` when the vendor refuses or retries are exhausted.
        """
        method = method.upper()
        safe_to_repeat = method in _IDEMPOTENT_METHODS if idempotent is None else idempotent
        classifier = classify or self._classify
        policy = self.retry
        key = (self.vendor, self.tenant)

        metrics = self.metrics or connector_metrics.current()

        async def attempt() -> httpx.Response:
            if self.budget is not None:
                waited = await self.budget.acquire(key)
                if metrics is not None and waited > 0:
                    metrics.budget_wait_seconds.labels(self.vendor).inc(waited)
            request = self._client.build_request(
                method, url, params=params, json=json, content=content, data=data, headers=headers
            )
            if build is not None:
                request = build(request)
            sent = time.perf_counter()
            try:
                response = await self._client.send(request)
            except httpx.TransportError as exc:
                if metrics is not None:
                    metrics.request_seconds.labels(self.vendor, method).observe(
                        time.perf_counter() - sent
                    )
                    metrics.requests.labels(self.vendor, method, "transport_error").inc()
                unavailable = VendorUnavailable(
                    self.vendor, f"{type(exc).__name__} on {method} {request.url.path}"
                )
                unavailable.__cause__ = exc
                if safe_to_repeat or isinstance(exc, _NOT_SENT):
                    raise _Retry(unavailable, None) from exc
                raise unavailable from exc
            error = classifier(response)
            if metrics is not None:
                metrics.request_seconds.labels(self.vendor, method).observe(
                    time.perf_counter() - sent
                )
                metrics.requests.labels(
                    self.vendor, method, connector_metrics.outcome_label(error)
                ).inc()
            if error is None:
                return response
            if isinstance(error, RateLimited):
                wait = error.retry_after
                if wait is None:
                    wait = retry_after_of(response)
                if wait is not None:
                    if wait > policy.max_retry_after_seconds:
                        raise error
                    if self.budget is not None:
                        self.budget.pause(key, wait)
                raise _Retry(error, wait)
            retry_after = retry_after_of(response)
            if isinstance(error, VendorUnavailable) and safe_to_repeat:
                raise _Retry(error, retry_after)
            raise error

        retrying = AsyncRetrying(
            stop=stop_any(
                stop_after_attempt(policy.attempts),
                _StopBeforeDeadline(self._clock, policy.max_total_seconds),
            ),
            wait=self._wait,
            retry=retry_if_exception(lambda exc: isinstance(exc, _Retry)),
            sleep=self._sleep,
            before_sleep=self._before_retry(method, url, metrics),
            reraise=True,
        )
        try:
            result: httpx.Response = await retrying(attempt)
        except _Retry as exhausted:
            raise exhausted.error from exhausted.error.__cause__
        return result

    def _wait(self, state: RetryCallState) -> float:
        policy = self.retry
        outcome = state.outcome
        exc = outcome.exception() if outcome is not None else None
        if isinstance(exc, _Retry) and exc.wait is not None:
            # The vendor said how long; a little jitter keeps concurrent clients apart.
            return exc.wait + self._rng.uniform(0, min(policy.jitter_seconds, 1.0))
        exponent = max(0, state.attempt_number - 1)
        backoff = min(
            policy.max_backoff_seconds, policy.initial_backoff_seconds * float(2**exponent)
        )
        return float(backoff) + self._rng.uniform(0, policy.jitter_seconds)

    def _before_retry(
        self, method: str, url: str, metrics: connector_metrics.ConnectorMetrics | None
    ) -> Callable[[RetryCallState], None]:
        def log(state: RetryCallState) -> None:
            outcome = state.outcome
            exc = outcome.exception() if outcome is not None else None
            reason = exc.error if isinstance(exc, _Retry) else exc
            if metrics is not None:
                metrics.retries.labels(self.vendor, connector_metrics.outcome_label(reason)).inc()
            logger.warning(
                "retrying vendor request",
                extra={
                    "vendor": self.vendor,
                    "method": method,
                    "url": _loggable_url(self._client.base_url.join(url)),
                    "attempt": state.attempt_number,
                    "wait_seconds": round(state.upcoming_sleep, 3),
                    "reason": type(reason).__name__,
                },
            )

        return log
