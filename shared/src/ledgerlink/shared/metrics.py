"""Prometheus metrics every service exports (one registry per process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class MessagingMetrics:
    """Counters for consumed events, dead letters and the outbox relay."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.events_consumed = Counter(
            "ledgerlink_events_consumed_total",
            "Events taken from Kafka, by outcome (processed, duplicate, ignored, dead_lettered).",
            ["topic", "event_type", "outcome"],
            registry=registry,
        )
        self.handler_seconds = Histogram(
            "ledgerlink_event_handler_seconds",
            "Time to handle one event: its savepoint in a batch, its transaction otherwise.",
            ["event_type"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "ledgerlink_dead_letters_total",
            "Events sent to a dead-letter topic, by original topic and error class.",
            ["topic", "error_class"],
            registry=registry,
        )
        self.outbox_published = Counter(
            "ledgerlink_outbox_published_total",
            "Outbox rows relayed to Kafka.",
            ["topic"],
            registry=registry,
        )
        self.outbox_pending = Gauge(
            "ledgerlink_outbox_pending",
            "Outbox rows committed but not yet relayed (last relay pass).",
            registry=registry,
        )
        self.outbox_relay_errors = Counter(
            "ledgerlink_outbox_relay_errors_total",
            "Relay passes that failed and will be retried.",
            registry=registry,
        )
