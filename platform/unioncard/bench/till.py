"""`unioncard bench till`: closed-loop HTTP load on the till, beside the same redeem SQL driven bare."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from unioncard import db
from unioncard.bench import BenchError, redact
from unioncard.bench.ceiling import drive_sql, run_pgbench
from unioncard.bench.fixture import (
    TARGET_P99_MS,
    TARGET_SALES_PER_S,
    WRK_THREADS,
    Fixture,
    clean_up,
    load_demo_data,
    prepare_fixture,
    write_data_file,
)
from unioncard.bench.http import CpuMeterFactory, http_phases, print_cpu, print_phase
from unioncard.bench.server import serve_app
from unioncard.settings import Settings


def run_bench(args: argparse.Namespace, settings: Settings) -> int:
    embedded = settings.database_url is None
    try:
        with db.database_url(settings) as dsn, tempfile.TemporaryDirectory(prefix="unioncard-bench-") as tmp:
            summary = _run(args, settings, dsn, Path(tmp), embedded)
    except BenchError as error:
        print(f"bench failed: {error}", file=sys.stderr)
        return 2
    _print_summary(summary)
    if getattr(args, "json", None):
        Path(args.json).write_text(json.dumps(summary, indent=2, ensure_ascii=False))
        print(f"summary written to {args.json}")
    return 1 if any(phase["errors"]["server_5xx"] for phase in summary["http"].values()) else 0


def _run(args: argparse.Namespace, settings: Settings, dsn: str, work: Path, embedded: bool) -> dict[str, Any]:
    if not args.skip_demo:
        asyncio.run(load_demo_data(dsn, args.scale, settings))
    fixture = asyncio.run(prepare_fixture(dsn, settings, args.seconds))
    data_path = work / "till-data.txt"
    write_data_file(data_path, fixture)
    print(
        f"{len(fixture.terminals)} bench terminals, {len(fixture.cards)} cards, "
        f"{fixture.pair_count} pgbench pairs on {fixture.pgbench_terminals} terminals; run tag {fixture.tag}"
    )
    try:
        # pgbench first: it aborts a client at the first refusal, so it must not find budgets used up
        pgbench = run_pgbench(dsn, settings, args.seconds, work, embedded, fixture)
        with serve_app(dsn, args.workers, work / "server.log") as (url, server):
            http = http_phases(args, url, CpuMeterFactory(server, fixture.postmaster, dsn), data_path, fixture.tag)
        direct = asyncio.run(drive_sql(dsn, settings, fixture, args.seconds))
    finally:
        asyncio.run(clean_up(dsn, fixture))
    return _summary(args, dsn, fixture, http, pgbench, direct)


def _summary(
    args: argparse.Namespace,
    dsn: str,
    fixture: Fixture,
    http: dict[str, Any],
    pgbench: dict[str, Any],
    direct: dict[str, Any],
) -> dict[str, Any]:
    sale = http["sale"]
    met = sale["sales_per_s"] >= TARGET_SALES_PER_S and sale["latency_ms"]["p99"] < TARGET_P99_MS
    return {
        "database": redact(dsn),
        "demo_scale": None if args.skip_demo else args.scale,
        "connections": args.connections,
        "server_workers": args.workers,
        "seconds_per_phase": args.seconds,
        "terminals": len(fixture.terminals),
        "cards": len(fixture.cards),
        "http": http,
        "pgbench": pgbench,
        "asyncpg": direct,
        "ratios": {
            "http_sales_per_pgbench_tps": _ratio(sale["sales_per_s"], pgbench["tps"]),
            "http_sales_per_asyncpg_tps": _ratio(sale["sales_per_s"], direct["tps"]),
            "asyncpg_per_pgbench_tps": _ratio(direct["tps"], pgbench["tps"]),
        },
        "target": {
            "sales_per_s": TARGET_SALES_PER_S,
            "p99_ms": TARGET_P99_MS,
            "connections": args.connections,
            "met": met,
        },
    }


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


def _print_summary(s: dict[str, Any]) -> None:
    print("\n=== unioncard bench till ===")
    print(
        f"database {s['database']}, demo scale {s['demo_scale'] or 'reused'}, {s['terminals']} terminals, "
        f"{s['cards']} cards; HTTP: wrk -t{WRK_THREADS} -c{s['connections']}, {s['seconds_per_phase']:g} s per "
        f"phase, {s['server_workers']} server workers"
    )
    for mode, phase in s["http"].items():
        print_phase(f"http {mode}", phase)
    pg, direct = s["pgbench"], s["asyncpg"]
    print(
        f"  pgbench {pg['tps']:>6.0f} sales/s, {pg['clients']} clients, latency ms {pg['latency_ms']}, "
        f"aborted clients {pg['aborted_clients']}, pairs used {pg['pairs_used']} of {pg['pairs']}"
        f"{'; ' + pg['error_sample'][:160] if pg['error_sample'] else ''}"
    )
    print_cpu(pg["cpu"], "pgbench_s", pg["tps"] * pg["cpu"]["wall_s"])
    print(
        f"  asyncpg {direct['tps']:>6.0f} sales/s, {direct['tasks']} tasks on a pool of {direct['pool_size']}, "
        f"latency ms {direct['latency_ms']}, outcomes {direct['outcomes']}"
    )
    print_cpu(direct["cpu"], "client_s", sum(direct["outcomes"].values()))
    r, t = s["ratios"], s["target"]
    print(
        f"  ratio   HTTP sales/s ÷ pgbench = {r['http_sales_per_pgbench_tps']}, ÷ asyncpg = "
        f"{r['http_sales_per_asyncpg_tps']} (asyncpg ÷ pgbench = {r['asyncpg_per_pgbench_tps']})"
    )
    print(
        f"  target  {t['sales_per_s']} sales/s with p99 < {t['p99_ms']:g} ms at {t['connections']} connections: "
        f"{'met' if t['met'] else 'NOT met'}"
    )
