"""Entrypoints: Kafka subscribers and HTTP routes, thin."""
