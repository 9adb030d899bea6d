"""`unioncard bench reconcile` at a small size: every stage timed, every line classed, nothing left behind."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

import asyncpg
import pytest

from unioncard.bench.reconcile import STAGES, run_bench_reconcile
from unioncard.settings import Settings

LINES = 2000


async def _bench_databases(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        return [row["datname"] for row in await conn.fetch("SELECT datname FROM pg_database")
                if row["datname"].startswith("unioncard_bench_")]  # fmt: skip
    finally:
        await conn.close()


def test_the_reconcile_bench_reports_every_stage(
    server_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = asyncio.run(_bench_databases(server_dsn))
    summary_path = tmp_path / "summary.json"
    args = argparse.Namespace(lines=LINES, merchants=7, concurrency=3, json=str(summary_path))
    assert run_bench_reconcile(args, Settings(database_url=server_dsn)) == 0

    summary = json.loads(summary_path.read_text())
    service, bare = summary["service"], summary["bare"]
    assert set(service["seconds"]) == {*STAGES, "total"}
    assert all(seconds >= 0 for seconds in service["seconds"].values())
    assert service["lines_per_s"] > 0 and service["claims"] == 7 and service["concurrency"] == 3
    assert set(bare["seconds"]) == {"copy", "classify_aggregate", "total"}
    assert sum(service["classes"].values()) == LINES
    assert sum(bare["classes"].values()) == LINES
    assert summary["classes_as_planned"]
    assert all(service["classes"][name] > 0 for name in summary["expected_classes"])
    assert len(summary["expected_classes"]) == 7  # every class, in small numbers beside matched

    printed = capsys.readouterr().out
    for label in (*STAGES, "wall", "total", "lines/s", "bare SQL copy"):
        assert label in printed
    assert asyncio.run(_bench_databases(server_dsn)) == before  # its scratch database is dropped
