"""Migrations: ordered, idempotent, checksummed, and refusing a newer database."""

from __future__ import annotations

import asyncpg
import pytest

from unioncard import db


async def test_migrate_again_applies_nothing(conn: asyncpg.Connection) -> None:
    assert await db.migrate(conn) == []


async def test_a_changed_applied_migration_is_an_error(conn: asyncpg.Connection) -> None:
    migrations = db.load_migrations()
    changed = [*migrations[:-1], db.Migration(migrations[-1].version, migrations[-1].name, "SELECT 1")]
    with pytest.raises(db.MigrationError, match="changed after it was applied"):
        await db.migrate(conn, changed)


async def test_a_newer_database_is_refused(conn: asyncpg.Connection) -> None:
    await conn.execute("INSERT INTO schema_migrations (version, name, checksum) VALUES (9999, 'future', 'x')")
    with pytest.raises(db.MigrationError, match="newer than this code"):
        await db.migrate(conn)


async def test_ledger_tables_refuse_update_and_delete(conn: asyncpg.Connection) -> None:
    tx = await conn.fetchval("INSERT INTO ledger_transactions (kind, occurred_at) VALUES ('test', now()) RETURNING id")
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO ledger_postings (transaction_id, account, amount_minor, currency) "
            "VALUES ($1, 'a', 5, 'CNY'), ($1, 'b', -5, 'CNY')",
            tx,
        )
    for statement in (
        "UPDATE ledger_postings SET amount_minor = 6",
        "DELETE FROM ledger_postings",
        "UPDATE ledger_transactions SET memo = 'x'",
        "TRUNCATE ledger_postings",
    ):
        with pytest.raises(asyncpg.PostgresError, match="append-only"):
            await conn.execute(statement)


async def test_an_unbalanced_transaction_cannot_commit(conn: asyncpg.Connection) -> None:
    tx = await conn.fetchval("INSERT INTO ledger_transactions (kind, occurred_at) VALUES ('test', now()) RETURNING id")
    with pytest.raises(asyncpg.PostgresError, match="does not balance"):
        async with conn.transaction():
            await conn.execute(
                "INSERT INTO ledger_postings (transaction_id, account, amount_minor, currency) "
                "VALUES ($1, 'a', 5, 'CNY'), ($1, 'b', -4, 'CNY')",
                tx,
            )
    assert await conn.fetchval("SELECT count(*) FROM ledger_postings") == 0


async def test_postings_cannot_be_written_one_leg_at_a_time(conn: asyncpg.Connection) -> None:
    tx = await conn.fetchval("INSERT INTO ledger_transactions (kind, occurred_at) VALUES ('test', now()) RETURNING id")
    with pytest.raises(asyncpg.PostgresError, match="does not balance"):
        await conn.execute(
            "INSERT INTO ledger_postings (transaction_id, account, amount_minor, currency) VALUES ($1, 'a', 5, 'CNY')",
            tx,
        )
    assert await conn.fetchval("SELECT ledger_post('test', NULL, NULL, NULL, now(), 'a', 'b', 7, 'CNY')") is not None
    assert await conn.fetchval("SELECT count(*) FROM ledger_unbalanced") == 0
