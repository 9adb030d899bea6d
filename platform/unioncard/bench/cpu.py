"""CPU per process while a phase runs: the server's workers, PostgreSQL's backends, the load generator."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import re
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg


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


async def our_postgres(conn: asyncpg.Connection) -> OurPostgres | None:
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


def run_child(
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
