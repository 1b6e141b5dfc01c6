"""Kafka topic names and partition counts: the one place they are defined."""

from __future__ import annotations

from enum import StrEnum


class Topic(StrEnum):
    """Every topic the services produce to or consume from (before any prefix)."""

    ACTIVATIONS = "ledgerlink.activations"
    CONNECTIONS = "ledgerlink.connections"
    IMPORT_REQUESTS = "ledgerlink.import-requests"
    IMPORTS = "ledgerlink.imports"
    JOURNALS = "ledgerlink.journals"
    JOURNAL_EXPORTS = "ledgerlink.journal-exports"


DLQ_SUFFIX = ".dlq"

#: Partition counts. Keys are business IDs, so one company's events keep their order
#: within a partition; counts bound the parallelism of each consumer group.
PARTITIONS: dict[Topic, int] = {
    Topic.ACTIVATIONS: 6,
    Topic.CONNECTIONS: 6,
    Topic.IMPORT_REQUESTS: 6,
    Topic.IMPORTS: 6,
    Topic.JOURNALS: 6,
    Topic.JOURNAL_EXPORTS: 6,
}
DLQ_PARTITIONS = 1


def dead_letter_topic(topic: str) -> str:
    """The dead-letter topic that receives what could not be processed from ``topic``."""
    return f"{topic}{DLQ_SUFFIX}"


def all_topics(prefix: str = "") -> dict[str, int]:
    """Every topic name (with ``prefix``) and its partition count, dead-letter topics included."""
    topics: dict[str, int] = {}
    for topic, partitions in PARTITIONS.items():
        topics[f"{prefix}{topic}"] = partitions
        topics[dead_letter_topic(f"{prefix}{topic}")] = DLQ_PARTITIONS
    return topics
