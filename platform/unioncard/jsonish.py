"""Rows from the database as JSON-ready dicts: dates, times and datetimes in ISO 8601."""

from __future__ import annotations

from typing import Any


def iso_values(row: dict[str, Any]) -> dict[str, Any]:
    """The row with every date, time or datetime value as its isoformat(), the rest as it is."""
    return {key: value.isoformat() if hasattr(value, "isoformat") else value for key, value in row.items()}
