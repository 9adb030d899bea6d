"""The merchants domain's named queries, and the bridge from SQL errors to domain errors."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import asyncpg

from unioncard.db import Queries
from unioncard.errors import DomainError

queries = Queries(Path(__file__).parent / "queries.sql")

DOMAIN_SQLSTATE = "UC001"  # raised by till_fail() in the till's SQL functions


@contextlib.contextmanager
def domain_errors() -> Iterator[None]:
    """Turn a till_fail() raised in SQL into the DomainError it names."""
    try:
        yield
    except asyncpg.PostgresError as exc:
        if getattr(exc, "sqlstate", None) != DOMAIN_SQLSTATE:
            raise
        detail = getattr(exc, "detail", None)
        extra = json.loads(detail) if detail else {}
        raise DomainError(str(exc.args[0] if exc.args else exc), **extra) from exc
