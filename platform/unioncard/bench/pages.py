"""`unioncard bench pages`: members open their pages (catalog, card, shops) under closed-loop load.

The bench signs in a few thousand members of the demo by writing session rows (a PIN sign-in costs an
argon2 hash: that is the sign-in's cost, not the pages'), serves the app with granian, and drives each
page with wrk at N connections, every request as a random one of those members.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg

from unioncard import db
from unioncard.bench import BenchError, redact
from unioncard.bench.ceiling import percentiles
from unioncard.bench.cpu import CpuMeter, our_postgres, run_child
from unioncard.bench.fixture import WARMUP_S, WRK_THREADS, load_demo_data
from unioncard.bench.http import print_cpu
from unioncard.bench.server import serve_app
from unioncard.ids import hash_secret, new_secret
from unioncard.settings import Settings

LUA_SCRIPT = Path(__file__).with_name("pages.lua")
PAGES = ("/me/benefits", "/me/", "/me/merchants")
# The ceiling beside the pages: the smallest request the same server answers from the database.
CEILING_PAGE = "/healthz"
SQL_TASKS, SQL_POOL = 64, 16
TARGET_PAGE = "/me/benefits"
TARGET_P99_MS = 50.0
SESSION_TTL_S = 3600.0

# Members whose card opens the member pages, at random.
PICK_MEMBERS_SQL = """
SELECT c.member_id FROM cards c WHERE c.status = 'active' AND c.expires_on > current_date ORDER BY random() LIMIT $1
"""
SESSIONS_SQL = """
INSERT INTO sessions (token_hash, member_id, expires_at)
SELECT h, m, now() + make_interval(secs => $3) FROM unnest($1::bytea[], $2::bigint[]) AS s(h, m)
"""
END_SESSIONS_SQL = "DELETE FROM sessions WHERE token_hash = ANY ($1::bytea[])"


def run_bench_pages(args: argparse.Namespace, settings: Settings) -> int:
    try:
        with db.database_url(settings) as dsn, tempfile.TemporaryDirectory(prefix="unioncard-bench-") as tmp:
            summary = _run(args, settings, dsn, Path(tmp))
    except BenchError as error:
        print(f"bench failed: {error}", file=sys.stderr)
        return 2
    _print_summary(summary)
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2, ensure_ascii=False))
        print(f"summary written to {args.json}")
    return 1 if any(page["server_5xx"] or page["redirect"] for page in summary["pages"].values()) else 0


def _run(args: argparse.Namespace, settings: Settings, dsn: str, work: Path) -> dict[str, Any]:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise BenchError("wrk is not installed (apt-get install wrk)")
    if not args.skip_demo:
        asyncio.run(load_demo_data(dsn, args.scale, settings))
    tokens, postmaster = asyncio.run(_sign_in_members(dsn, args.members))
    data_path = work / "sessions.txt"
    data_path.write_text("\n".join(tokens) + "\n")
    print(f"{len(tokens)} members signed in for the bench")
    pages: dict[str, Any] = {}
    try:
        with serve_app(dsn, args.workers, work / "server.log") as (url, server):
            for path in [*(args.page or PAGES), CEILING_PAGE]:
                print(f"page {path}: warm-up {WARMUP_S:.0f} s, then {args.seconds:g} s at {args.connections} …")
                _wrk(wrk, url, path, data_path, args.connections, WARMUP_S, work, None)
                with CpuMeter(server, postmaster, dsn) as meter:
                    raw = _wrk(wrk, url, path, data_path, args.connections, args.seconds, work, meter)
                pages[path] = _page_result(raw, meter.finish("wrk_s", raw.pop("wrk_s")))
                _print_page(path, pages[path])
        print(f"the catalog page's SQL bare: {SQL_TASKS} asyncpg tasks on a pool of {SQL_POOL}, {args.seconds:g} s …")
        with CpuMeter(None, postmaster, dsn) as meter:
            bare = asyncio.run(_drive_page_sql(dsn, tokens, args.seconds))
        bare["cpu"] = meter.finish("client_s", bare.pop("client_s"))
    finally:
        asyncio.run(_sign_out(dsn, tokens))
    target: dict[str, Any] | None = pages.get(TARGET_PAGE)
    return {
        "database": redact(dsn),
        "demo_scale": None if args.skip_demo else args.scale,
        "members_signed_in": len(tokens),
        "connections": args.connections,
        "server_workers": args.workers,
        "seconds_per_page": args.seconds,
        "pages": pages,
        "page_sql_bare": bare,
        "target": {
            "page": TARGET_PAGE,
            "p99_ms": TARGET_P99_MS,
            "connections": args.connections,
            "met": target is not None and target["latency_ms"]["p99"] < TARGET_P99_MS and not target["server_5xx"],
        },
    }


async def _sign_in_members(dsn: str, count: int) -> tuple[list[str], Any]:
    conn = await asyncpg.connect(dsn)
    try:
        await db.migrate(conn)
        members = [row["member_id"] for row in await conn.fetch(PICK_MEMBERS_SQL, count)]
        if not members:
            raise BenchError("the database has no members with an active card: load the demo first")
        tokens = [new_secret("ucs") for _ in members]
        await conn.execute(SESSIONS_SQL, [hash_secret(t) for t in tokens], members, SESSION_TTL_S)
        return tokens, await our_postgres(conn)
    finally:
        await conn.close()


async def _sign_out(dsn: str, tokens: list[str]) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(END_SESSIONS_SQL, [hash_secret(t) for t in tokens])
    finally:
        await conn.close()


async def _drive_page_sql(dsn: str, tokens: list[str], seconds: float) -> dict[str, Any]:
    """What the catalog page asks the database (the session, then the member), in a loop without HTTP."""
    from cards.repository import queries as card_queries
    from unioncard.auth import SESSION_SQL

    hashes = [hash_secret(token) for token in tokens]
    latencies: list[float] = []
    started_cpu = time.process_time()
    pool = await asyncpg.create_pool(dsn, min_size=SQL_POOL, max_size=SQL_POOL)
    try:
        deadline = time.monotonic() + seconds

        async def loop(seed: int) -> None:
            pick = random.Random(seed)
            while time.monotonic() < deadline:
                started = time.monotonic()
                session = await pool.fetchrow(SESSION_SQL, pick.choice(hashes))
                await pool.fetchrow(card_queries.member_profile, session["member_id"])
                latencies.append(time.monotonic() - started)

        began = time.monotonic()
        await asyncio.gather(*(loop(n) for n in range(SQL_TASKS)))
        wall = time.monotonic() - began
    finally:
        await pool.close()
    return {"pages_per_s": round(len(latencies) / wall, 1), "latency_ms": percentiles(latencies),
            "tasks": SQL_TASKS, "pool_size": SQL_POOL, "client_s": time.process_time() - started_cpu}  # fmt: skip


def _wrk(
    wrk: str, url: str, path: str, data_path: Path, connections: int, seconds: float, work: Path, meter: Any
) -> dict[str, Any]:
    command = [wrk, f"-t{WRK_THREADS}", f"-c{connections}", f"-d{seconds:g}s", "--latency", "--timeout", "10s",
               "-s", str(LUA_SCRIPT), url, "--", path, str(data_path)]  # fmt: skip
    out_path = work / "wrk-pages.txt"
    status, wrk_cpu_s = run_child(command, out_path, seconds + 30)
    output = out_path.read_text(errors="replace")
    found = re.search(r"^BENCH_RESULT (.*)$", output, re.MULTILINE)
    if status != 0 or found is None:
        raise BenchError(f"wrk failed ({status}):\n{output[-2000:]}")
    return {**json.loads(found[1]), "wrk_s": wrk_cpu_s}


def _page_result(raw: dict[str, Any], cpu: dict[str, Any]) -> dict[str, Any]:
    seconds = raw["duration_us"] / 1e6
    return {
        "seconds": round(seconds, 2),
        "requests": raw["requests"],
        "requests_per_s": round(raw["requests"] / seconds, 1),
        "latency_ms": {k: round(v / 1000, 2) for k, v in raw["latency_us"].items()},
        "ok": raw["ok"],
        "redirect": raw["redirect"],
        "client_4xx": raw["client_4xx"],
        "server_5xx": raw["server_5xx"],
        "socket_errors": raw["socket_errors"],
        "error_sample": raw["error_sample"],
        "cpu": cpu,
    }


def _print_page(path: str, page: dict[str, Any]) -> None:
    lat = page["latency_ms"]
    print(
        f"  {path:<14} {page['requests_per_s']:>6.0f} pages/s | latency ms p50 {lat['p50']:.1f}, p90 "
        f"{lat['p90']:.1f}, p99 {lat['p99']:.1f}, max {lat['max']:.0f} | 200 {page['ok']}, 3xx {page['redirect']}, "
        f"4xx {page['client_4xx']}, 5xx {page['server_5xx']}, socket {page['socket_errors']}"
        f"{'; first: ' + page['error_sample'][:160] if page['error_sample'] else ''}"
    )
    print_cpu(page["cpu"], "wrk_s", page["requests"])


def _print_summary(s: dict[str, Any]) -> None:
    print("\n=== unioncard bench pages ===")
    print(
        f"database {s['database']}, demo scale {s['demo_scale'] or 'reused'}, {s['members_signed_in']} members; "
        f"wrk -t{WRK_THREADS} -c{s['connections']}, {s['seconds_per_page']:g} s per page, "
        f"{s['server_workers']} server workers"
    )
    for path, page in s["pages"].items():
        _print_page(path, page)
    bare = s["page_sql_bare"]
    print(
        f"  bare SQL of the catalog page (session + member, asyncpg, {bare['tasks']} tasks, pool {bare['pool_size']}):"
        f" {bare['pages_per_s']:.0f} pages/s, latency ms {bare['latency_ms']}"
    )
    print_cpu(bare["cpu"], "client_s", bare["pages_per_s"] * bare["cpu"]["wall_s"])
    t = s["target"]
    print(
        f"  target  {t['page']} p99 < {t['p99_ms']:g} ms at {t['connections']} connections: "
        f"{'met' if t['met'] else 'NOT met'}"
    )
