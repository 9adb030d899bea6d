"""The `unioncard` command as a newcomer runs it: migrate, admin create, serve on the embedded default."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

CLI = [sys.executable, "-m", "unioncard.cli"]


def run_cli(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_migrate_and_admin_token_against_a_server(dsn: str) -> None:
    env = {**os.environ, "DATABASE_URL": dsn}
    migrated = run_cli("migrate", env=env)
    assert migrated.returncode == 0, migrated.stderr
    created = run_cli("admin", "create", "--email", "first@union.test", env=env)
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip().splitlines()[-1]
    assert token.startswith("uca_") and len(token) > 30
    checked = run_cli("ledger", "check", env=env)
    assert checked.returncode == 0 and "balances" in checked.stdout


def _wait_for_health(url: str, process: subprocess.Popen[str], seconds: float = 60) -> bytes:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"serve exited early: {process.stdout.read() if process.stdout else ''}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.read()  # type: ignore[no-any-return]
        except OSError:
            time.sleep(0.3)
    raise AssertionError("serve did not become healthy")


@pytest.mark.slow
def test_serve_starts_and_stops_the_embedded_database(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["UNIONCARD_DATA_DIR"] = str(tmp_path / "data")
    port = free_port()
    process = subprocess.Popen(
        [*CLI, "serve", "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        body = _wait_for_health(f"http://127.0.0.1:{port}/healthz", process)
        assert b'"status":"ok"' in body
        pgdata = str(tmp_path / "data" / "pgdata")
        assert _postgres_running(pgdata)
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    deadline = time.monotonic() + 15
    while _postgres_running(pgdata) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _postgres_running(pgdata), "the embedded PostgreSQL was left running"


def _postgres_running(pgdata: str) -> bool:
    for proc in psutil.process_iter(attrs=["name", "cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        if proc.info.get("name") == "postgres" and any(pgdata in part for part in cmdline):
            return True
    return False


def test_serve_refuses_the_development_secret_beyond_loopback() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "UNIONCARD_SECRET_KEY")}
    refused = run_cli("serve", "--host", "0.0.0.0", env=env, timeout=30)
    assert refused.returncode == 2 and "UNIONCARD_SECRET_KEY" in refused.stderr
