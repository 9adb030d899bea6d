"""Closed-loop HTTP load through wrk: quotes, sales and a mix, each phase with its CPU."""

from __future__ import annotations

import argparse
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unioncard.bench import BenchError
from unioncard.bench.cpu import CpuMeter, OurPostgres, run_child
from unioncard.bench.fixture import LUA_SCRIPT, WARMUP_S, WRK_THREADS


@dataclass
class CpuMeterFactory:
    server: Any
    postmaster: OurPostgres | None
    dsn: str

    def __call__(self) -> CpuMeter:
        return CpuMeter(self.server, self.postmaster, self.dsn)


def http_phases(
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
        print_phase(mode, phases[mode])
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
        status, wrk_cpu_s = run_child(command, out_path, seconds + 30)
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


def print_phase(mode: str, phase: dict[str, Any]) -> None:
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
    print_cpu(cpu, "wrk_s", phase["requests"])


def print_cpu(cpu: dict[str, Any], client: str, requests: float) -> None:
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
