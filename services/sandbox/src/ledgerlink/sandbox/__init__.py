"""Ledgerlink sandbox: local stand-ins for the vendor APIs (dev, demo and tests only)."""
