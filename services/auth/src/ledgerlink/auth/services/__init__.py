"""Orchestration of the auth service (no SQL here: see storage)."""
