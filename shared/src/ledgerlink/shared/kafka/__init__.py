"""Kafka wiring shared by every service."""
