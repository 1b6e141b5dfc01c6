"""Prometheus metrics of the vendor connectors' HTTP traffic.

Every :class:`~ledgerlink.connectors.http.VendorHttpClient` records, per vendor:

* ``ledgerlink_connector_requests_total{vendor, method, outcome}``: attempts sent, by
  outcome: ``ok`` or the error class it was classified as (``rate_limited``,
  ``vendor_unavailable``, ``authentication_failed``, ...; ``transport_error`` when no answer
  came);
* ``ledgerlink_connector_request_seconds{vendor, method}``: time from sending an attempt to
  its answer (or transport failure);
* ``ledgerlink_connector_retries_total{vendor, reason}``: attempts repeated, by the error class
  that caused them;
* ``ledgerlink_connector_budget_wait_seconds_total{vendor}``: time held back by the rate budget
  (pacing, and pauses such as Visma.net's spent window); the wait before a retry is not in
  it, the retry is counted instead.

Labels never carry a tenant, a URL or anything secret: tenants are unbounded in number, and
URLs can carry identifiers. A service calls :func:`install` with its registry once at start-up;
a client built with ``metrics=`` uses that instead (tests).
"""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry, Counter, Histogram

__all__ = ["ConnectorMetrics", "current", "install", "outcome_label", "uninstall"]


class ConnectorMetrics:
    """The connector metrics in one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "ledgerlink_connector_requests_total",
            "Vendor API attempts, by outcome (ok or the connector error class).",
            ["vendor", "method", "outcome"],
            registry=registry,
        )
        self.request_seconds = Histogram(
            "ledgerlink_connector_request_seconds",
            "Time from sending one vendor API attempt to its answer.",
            ["vendor", "method"],
            registry=registry,
        )
        self.retries = Counter(
            "ledgerlink_connector_retries_total",
            "Vendor API attempts repeated, by the error that caused the retry.",
            ["vendor", "reason"],
            registry=registry,
        )
        self.budget_wait_seconds = Counter(
            "ledgerlink_connector_budget_wait_seconds_total",
            "Time requests were held back by the rate budget (pacing, window pauses).",
            ["vendor"],
            registry=registry,
        )


_CURRENT: ConnectorMetrics | None = None


def install(registry: CollectorRegistry) -> ConnectorMetrics:
    """Record every client's traffic (that was not given ``metrics=``) in ``registry``."""
    global _CURRENT
    _CURRENT = ConnectorMetrics(registry)
    return _CURRENT


def uninstall() -> None:
    """Stop recording traffic of clients that were not given ``metrics=``."""
    global _CURRENT
    _CURRENT = None


def current() -> ConnectorMetrics | None:
    """The installed metrics, if a service installed any."""
    return _CURRENT


_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def outcome_label(error: BaseException | None) -> str:
    """``ok``, or an error class name in snake case (``RateLimited`` -> ``rate_limited``)."""
    if error is None:
        return "ok"
    return _CAMEL.sub("_", type(error).__name__).lower()
