"""The VDXP-compatible facade under /vdxp/ (issue 7 fills this in)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
