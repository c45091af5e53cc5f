"""Shared runtime for lienthong services, written once and used by every service."""
