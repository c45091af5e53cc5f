"""Fixtures for the end-to-end tests live in harness.py (importable by the tests too)."""

from harness import platform, signed_pdf  # noqa: F401
