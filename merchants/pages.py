"""The web till for merchants without a POS."""

from __future__ import annotations

from typing import Any


def till_page_routes() -> list[Any]:
    return []
