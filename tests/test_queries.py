"""Every named query of every domain prepares against the migrated schema, so a typo fails here."""

from __future__ import annotations

from pathlib import Path

import asyncpg

import cards
import merchants
import settlement
from unioncard.db import Queries

DOMAINS = [Path(module.__file__).parent for module in (cards, merchants, settlement)]  # type: ignore[arg-type]


def all_query_files() -> list[Path]:
    return sorted(path for folder in DOMAINS for path in folder.glob("*queries.sql"))


async def test_every_named_query_prepares(conn: asyncpg.Connection) -> None:
    files = all_query_files()
    assert {p.name for p in files} >= {"queries.sql", "import_queries.sql"}
    prepared = 0
    async with conn.transaction():
        # The importers stage into temporary tables; create them as the importers do.
        stages = [sql for path in files for name, sql in Queries(path).items() if name.endswith("_stage")]
        for sql in stages:
            await conn.execute(sql)
        for path in files:
            for name, sql in Queries(path).items():
                if not name.endswith("_stage"):
                    await conn.prepare(sql)
                    prepared += 1
    assert prepared > 20
