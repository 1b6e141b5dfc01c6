"""Topic names, partition counts and dead-letter topics."""

from __future__ import annotations

import pytest

from ledgerlink.shared.config import KafkaSettings
from ledgerlink.shared.topics import (
    DLQ_PARTITIONS,
    DLQ_SUFFIX,
    PARTITIONS,
    Topic,
    all_topics,
    dead_letter_topic,
)


def test_every_topic_has_a_partition_count() -> None:
    assert set(PARTITIONS) == set(Topic)
    assert all(count >= 1 for count in PARTITIONS.values())


def test_dead_letter_topic_name() -> None:
    assert DLQ_SUFFIX == ".dlq"
    assert dead_letter_topic("ledgerlink.activations") == "ledgerlink.activations.dlq"
    assert dead_letter_topic("dev.ledgerlink.imports") == "dev.ledgerlink.imports.dlq"


def test_all_topics_without_prefix() -> None:
    topics = all_topics()

    assert len(topics) == 2 * len(Topic)
    for topic in Topic:
        assert topics[topic.value] == PARTITIONS[topic]
        assert topics[f"{topic.value}.dlq"] == DLQ_PARTITIONS
    assert topics["ledgerlink.activations"] == 6
    assert topics["ledgerlink.activations.dlq"] == 1


@pytest.mark.parametrize("prefix", ["dev.", "tenant-a-", "x"])
def test_all_topics_with_prefix(prefix: str) -> None:
    topics = all_topics(prefix)

    assert len(topics) == 2 * len(Topic)
    assert all(name.startswith(prefix) for name in topics)
    for topic in Topic:
        assert topics[f"{prefix}{topic}"] == PARTITIONS[topic]
        assert topics[dead_letter_topic(f"{prefix}{topic}")] == DLQ_PARTITIONS
    assert "ledgerlink.activations" not in topics


def test_every_non_dlq_topic_has_exactly_one_dlq() -> None:
    topics = all_topics("p.")
    main = {name for name in topics if not name.endswith(DLQ_SUFFIX)}
    dlqs = {name for name in topics if name.endswith(DLQ_SUFFIX)}

    assert {dead_letter_topic(name) for name in main} == dlqs
    assert len(main) == len(dlqs) == len(Topic)


def test_kafka_settings_topic_agrees_with_all_topics() -> None:
    settings = KafkaSettings(topic_prefix="stage.")
    topics = all_topics(settings.topic_prefix)

    for topic in Topic:
        assert settings.topic(topic) in topics
        assert dead_letter_topic(settings.topic(topic)) in topics


def test_topic_values_are_distinct_and_namespaced() -> None:
    values = [topic.value for topic in Topic]

    assert len(values) == len(set(values))
    assert all(value.startswith("ledgerlink.") for value in values)
    assert str(Topic.JOURNALS) == "ledgerlink.journals"
