"""Vendor stand-ins: one module per vendor, each exposing ``mount(app, world)``."""
