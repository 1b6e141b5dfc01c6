"""Orchestration of the journal exporter (no SQL here: see storage)."""
