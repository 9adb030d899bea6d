"""The cards domain's named queries."""

from __future__ import annotations

from pathlib import Path

from unioncard.db import Queries

queries = Queries(Path(__file__).parent / "queries.sql")
