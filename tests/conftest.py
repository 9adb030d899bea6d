"""A real PostgreSQL for every test: DATABASE_URL's server, or the embedded one.

A template database is migrated once per run; each test that asks for `dsn` gets its own
database cloned from it, so tests that commit (concurrency, crash) never see each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from tests.browser import CHROMIUM, free_port, stop, wait_healthy
from unioncard import db as database
from unioncard.settings import Settings


def _admin_dsn_for(dsn: str, database: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + database))


@pytest.fixture(scope="session")
def server_dsn() -> Iterator[str]:
    """A DSN to a maintenance database on the server the tests use."""
    url = os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    with tempfile.TemporaryDirectory(prefix="unioncard-test-") as tmp:
        with database.embedded_server(Path(tmp)) as dsn:
            yield _admin_dsn_for(dsn, "postgres")


@pytest.fixture(scope="session")
def template_name(server_dsn: str) -> Iterator[str]:
    name = f"uc_template_{os.getpid()}"

    async def create() -> None:
        conn = await asyncpg.connect(server_dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        await database.migrate_dsn(_admin_dsn_for(server_dsn, name))

    asyncio.run(create())
    yield name
    asyncio.run(_drop(server_dsn, name))


async def _drop(server_dsn: str, name: str) -> None:
    conn = await asyncpg.connect(server_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def cloned_database(server_dsn: str, template: str) -> AsyncIterator[str]:
    name = f"uc_test_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(server_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    finally:
        await conn.close()
    try:
        yield _admin_dsn_for(server_dsn, name)
    finally:
        await _drop(server_dsn, name)


@pytest.fixture
async def dsn(server_dsn: str, template_name: str) -> AsyncIterator[str]:
    """A fresh migrated database of this test's own."""
    async with cloned_database(server_dsn, template_name) as url:
        yield url


@pytest.fixture
async def conn(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(dsn)
    try:
        yield connection
    finally:
        await connection.close()


# ------------------------------------------------------------------ the demo

DEMO_SCALE = 0.01
DEMO_SECRET = "demo-test-secret"


@pytest.fixture(scope="session")
async def demo(server_dsn: str, template_name: str) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """One database with the demo loaded at DEMO_SCALE, shared by the demo's tests (a load takes seconds);
    (its DSN, the manifest). The tests only read it, or sign in."""
    from unioncard.demo import load_demo

    async with cloned_database(server_dsn, template_name) as url:
        conn = await asyncpg.connect(url)
        try:
            manifest = await load_demo(conn, scale=DEMO_SCALE, secret_key=DEMO_SECRET, progress=lambda _: None)
        finally:
            await conn.close()
        yield url, manifest


@pytest.fixture
async def db(demo: tuple[str, dict[str, Any]]) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the demo's database."""
    connection = await asyncpg.connect(demo[0])
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture
def manifest(demo: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    return demo[1]


# ------------------------------------------------------------------ the app


@pytest.fixture
def settings() -> Settings:
    return Settings(secret_key="test-secret", terminal_cache_ttl_s=0.0, pool_max_size=60)


@pytest.fixture
async def client(dsn: str, settings: Settings) -> AsyncIterator[AsyncTestClient]:
    from unioncard.app import create_app

    async with AsyncTestClient(app=create_app(settings, dsn=dsn)) as test_client:
        yield test_client


# ------------------------------------------------------------------ the browser tests


@pytest.fixture
def base_url(dsn: str, tmp_path: Path) -> Iterator[str]:
    """`unioncard serve` (granian) on a free port, against this test's database."""
    if not CHROMIUM.exists():
        pytest.skip(f"browser test needs Chromium at {CHROMIUM}; it is not installed")
    pytest.importorskip("playwright.async_api", reason="browser test needs the playwright package")
    port = free_port()
    env = {**os.environ, "DATABASE_URL": dsn, "UNIONCARD_SECRET_KEY": "test-secret", "UNIONCARD_DEBUG": ""}
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "unioncard.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, server, log_path)
        yield url
    finally:
        stop(server)


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Path:
    """Where screenshots go: $UNIONCARD_SCREENSHOTS, else the module's SHOTS_DIR, else a fresh temporary folder."""
    default = getattr(request.module, "SHOTS_DIR", None)
    folder = Path(os.environ.get("UNIONCARD_SCREENSHOTS") or default or tempfile.mkdtemp(prefix="unioncard-shots-"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"screenshots in {folder}")
    return folder
