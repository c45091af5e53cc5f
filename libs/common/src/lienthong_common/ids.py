"""Identifiers."""

from __future__ import annotations

import uuid


def new_id() -> str:
    """A random UUID string: document ids, event ids, delivery ids."""
    return str(uuid.uuid4())
