"""`lienthong trust …`: the trust store (issue 5 fills this in)."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any, common: argparse.ArgumentParser, agency: argparse.ArgumentParser) -> None:
    """No trust verbs yet."""
