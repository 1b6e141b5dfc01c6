"""Orchestration of the importer (no SQL here: see storage)."""
