"""Sys.path for the fakes beside the tests (pytest's importlib mode does not add this folder)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
