"""Trust-store administration (issue 5 fills this in)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
