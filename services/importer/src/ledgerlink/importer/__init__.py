"""Ledgerlink."""
