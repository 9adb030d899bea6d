"""The `unioncard` command: serve, migrate, demo, admin, import, member-code, ledger, bench."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg

from unioncard import db
from unioncard.settings import Settings, load_settings


def _run(settings: Settings, work: Callable[[str], Awaitable[Any]]) -> Any:
    """Run `work(dsn)` against the configured database, migrated first."""
    with db.database_url(settings) as dsn:

        async def main() -> Any:
            await db.migrate_dsn(dsn)
            return await work(dsn)

        return asyncio.run(main())


async def _with_conn(dsn: str, work: Callable[[asyncpg.Connection], Awaitable[Any]]) -> Any:
    conn = await asyncpg.connect(dsn)
    try:
        return await work(conn)
    finally:
        await conn.close()


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from granian import Granian
    from granian.constants import Interfaces

    if settings.host not in ("127.0.0.1", "localhost", "::1") and settings.secret_key == Settings().secret_key:
        print(
            "refusing to listen beyond this machine with the development secret: set UNIONCARD_SECRET_KEY",
            file=sys.stderr,
        )
        return 2
    with db.database_url(settings) as dsn:
        applied = asyncio.run(db.migrate_dsn(dsn))
        if applied:
            print(f"migrations applied: {', '.join(applied)}")
        os.environ["DATABASE_URL"] = dsn  # the workers read it
        print(f"Union Card on http://{settings.host}:{settings.port}/  (till page /till, API /schema)")
        Granian(
            "unioncard.app:create_app_from_env",
            factory=True,
            interface=Interfaces.ASGI,
            address=settings.host,
            port=settings.port,
            workers=args.workers,
            log_access=False,
            backlog=2048,
        ).serve()
    return 0


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    def work(dsn: str) -> Awaitable[list[str]]:
        return db.migrate_dsn(dsn)

    _run(settings, work)
    print("schema is up to date")
    return 0


RESET_SQL = "DROP SCHEMA public CASCADE; CREATE SCHEMA public;"


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from unioncard.demo import load_demo

    if settings.database_url and not args.reset:
        print("demo replaces everything in the database: add --reset to confirm", file=sys.stderr)
        return 2

    with db.database_url(settings) as dsn:

        async def main() -> dict[str, Any]:
            conn = await asyncpg.connect(dsn)
            try:
                await conn.execute(RESET_SQL)
                await db.migrate(conn)
                return await load_demo(conn, scale=args.scale, secret_key=settings.secret_key)
            finally:
                await conn.close()

        started = time.monotonic()
        manifest = asyncio.run(main())
    manifest = {"base_url": f"http://{settings.host}:{settings.port}", **manifest}
    print(f"demo loaded in {time.monotonic() - started:.1f} s")
    if args.manifest:
        Path(args.manifest).write_text(json.dumps(manifest, ensure_ascii=False, indent=2, default=str))
        print(f"manifest written to {args.manifest}")
    _print_logins(manifest)
    return 0


def _print_logins(manifest: dict[str, Any]) -> None:
    print(f"\nadmin API token: {manifest['admin_token']}")
    staff = manifest.get("staff", [])
    # one of each role (the manifest has them all), with where it lands after signing in at /login
    shown = {member["role"]: member for member in reversed(staff)}
    homes = {"merchant_admin": "/merchant/", "finance_officer": "/finance/", "org_reviewer": "/review/",
             "federation_admin": "/federation/"}  # fmt: skip
    for role, member in sorted(shown.items()):
        home = f"  → {manifest['base_url']}{homes[role]}" if role in homes else ""
        print(f"staff sign-in: {member['email']} / {member['password']} ({role}){home}")
    town_reviewer = next((m for m in staff if m["email"] == "reviewer1@demo.unioncard"), None)
    if town_reviewer:  # hospitalization grants are reviewed by the towns from 1 Oct
        print(f"staff sign-in: {town_reviewer['email']} / {town_reviewer['password']} (org_reviewer, a town)"
              f"  → {manifest['base_url']}/review/")  # fmt: skip
    if manifest.get("terminals"):
        first = manifest["terminals"][0]
        print(f"web till: {manifest['base_url']}/till  key {first['terminal_key']} ({first['merchant_name']})")
    active = manifest.get("cards", {}).get("active", [])
    if active:
        print(f"an active card: {active[0]}")
    for login in manifest.get("benefits", {}).get("members", [])[:3]:
        print(f"member sign-in: {manifest['base_url']}/me/login  card {login['card_number']} PIN {login['pin']}"
              f" ({login['kind']})")  # fmt: skip


def cmd_admin_create(args: argparse.Namespace, settings: Settings) -> int:
    from unioncard.staff import create_admin

    async def work(dsn: str) -> str:
        return await _with_conn(dsn, lambda conn: create_admin(conn, args.email, args.password))

    token = _run(settings, work)
    print(token)
    return 0


def _load_file(settings: Settings, load: Callable[[asyncpg.Connection], Awaitable[Any]]) -> int:
    """Run a file loader; print its result, or every rejected line (nothing is stored then)."""
    from unioncard.errors import DomainError

    try:
        result = _run(settings, lambda dsn: _with_conn(dsn, load))
    except DomainError as error:
        print(f"rejected: {error.detail or error.code}; nothing was stored", file=sys.stderr)
        for problem in error.extra.get("errors", []):
            print(f"  line {problem.get('line')}: {problem.get('column') or ''} {problem['message']}", file=sys.stderr)
        return 1
    print(json.dumps(result, ensure_ascii=False, default=str))
    return 0


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    from cards.csv_import import import_members_and_cards
    from merchants.csv_import import import_merchants

    data = Path(args.file).read_bytes()

    async def load(conn: asyncpg.Connection) -> dict[str, int]:
        if args.kind == "members":
            return await import_members_and_cards(conn, data, secret_key=settings.secret_key)
        return await import_merchants(conn, data)

    return _load_file(settings, load)


def cmd_claims_import(args: argparse.Namespace, settings: Settings) -> int:
    from settlement.service import import_claim_file

    data = Path(args.file).read_bytes()

    async def load(conn: asyncpg.Connection) -> dict[str, Any]:
        return await import_claim_file(
            conn, data, merchant_id=args.merchant, period=args.period, timezone=settings.timezone
        )

    return _load_file(settings, load)


def cmd_member_code(args: argparse.Namespace, settings: Settings) -> int:
    from cards.member_code import issue_member_code
    from unioncard import clock

    async def work(dsn: str) -> int | None:
        return await _with_conn(dsn, lambda c: c.fetchval("SELECT id FROM cards WHERE number = $1", args.card))

    card_id = _run(settings, work)
    if card_id is None:
        print("no such card", file=sys.stderr)
        return 1
    code, expires_at = issue_member_code(settings.secret_key, card_id, clock.now(), settings.member_code_ttl_s)
    print(code)
    return 0


def cmd_ledger_check(args: argparse.Namespace, settings: Settings) -> int:
    async def work(dsn: str) -> list[Any]:
        return await _with_conn(dsn, lambda c: c.fetch("SELECT * FROM ledger_unbalanced"))

    rows = _run(settings, work)
    print("every ledger transaction balances" if not rows else f"{len(rows)} unbalanced: {rows[:10]}")
    return 1 if rows else 0


def cmd_bench(args: argparse.Namespace, settings: Settings) -> int:
    from unioncard.bench.till import run_bench

    if settings.database_url and not args.skip_demo and not args.reset:
        print(
            "bench loads the demo, replacing everything in the database: add --reset (or --skip-demo)", file=sys.stderr
        )
        return 2
    return run_bench(args, settings)


def cmd_bench_pages(args: argparse.Namespace, settings: Settings) -> int:
    from unioncard.bench.pages import run_bench_pages

    if settings.database_url and not args.skip_demo and not args.reset:
        print(
            "bench loads the demo, replacing everything in the database: add --reset (or --skip-demo)", file=sys.stderr
        )
        return 2
    return run_bench_pages(args, settings)


def cmd_bench_reconcile(args: argparse.Namespace, settings: Settings) -> int:
    from unioncard.bench.reconcile import run_bench_reconcile

    return run_bench_reconcile(args, settings)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="unioncard", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the platform (embedded PostgreSQL unless DATABASE_URL)")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument("--workers", type=int, default=1)
    serve.set_defaults(func=cmd_serve)

    sub.add_parser("migrate", help="apply the schema migrations").set_defaults(func=cmd_migrate)

    demo = sub.add_parser("demo", help="load a whole demo district (replaces the database)")
    demo.add_argument("--scale", type=float, default=1.0)
    demo.add_argument("--manifest", help="write base_url, tokens, terminal keys and cards as JSON")
    demo.add_argument("--reset", action="store_true", help="confirm replacing a DATABASE_URL database")
    demo.set_defaults(func=cmd_demo)

    admin = sub.add_parser("admin", help="staff accounts")
    admin_sub = admin.add_subparsers(dest="admin_command", required=True)
    create = admin_sub.add_parser("create", help="create a federation admin and print its API token")
    create.add_argument("--email", default="admin@localhost")
    create.add_argument("--password", default=None)
    create.set_defaults(func=cmd_admin_create)

    imp = sub.add_parser("import", help="bulk import from CSV (UTF-8, UTF-8 with BOM, or GBK)")
    imp.add_argument("kind", choices=["members", "merchants"])
    imp.add_argument("file")
    imp.set_defaults(func=cmd_import)

    code = sub.add_parser("member-code", help="issue a member's dynamic code for a card number")
    code.add_argument("card")
    code.set_defaults(func=cmd_member_code)

    ledger = sub.add_parser("ledger", help="the card ledger")
    ledger_sub = ledger.add_subparsers(dest="ledger_command", required=True)
    ledger_sub.add_parser("check", help="prove every transaction balances").set_defaults(func=cmd_ledger_check)

    claims = sub.add_parser("claims", help="settlement claims")
    claims_sub = claims.add_subparsers(dest="claims_command", required=True)
    claim_import = claims_sub.add_parser("import", help="a merchant's claim from CSV (UTF-8, UTF-8 with BOM, or GBK)")
    claim_import.add_argument("--merchant", type=int, required=True)
    claim_import.add_argument("--period", default=None, help="YYYY-MM; default: the first line's month")
    claim_import.add_argument("file")
    claim_import.set_defaults(func=cmd_claims_import)

    bench = sub.add_parser("bench", help="benchmarks")
    bench_sub = bench.add_subparsers(dest="bench_command", required=True)
    till = bench_sub.add_parser("till", help="closed-loop HTTP load on the till, beside the bare SQL")
    till.add_argument("--connections", type=int, default=64)
    till.add_argument("--seconds", type=float, default=15)
    till.add_argument("--workers", type=int, default=2)
    till.add_argument("--scale", type=float, default=1.0)
    till.add_argument("--skip-demo", action="store_true", help="reuse the loaded demo")
    till.add_argument("--reset", action="store_true", help="confirm replacing a DATABASE_URL database with the demo")
    till.add_argument("--json", metavar="PATH", help="also write the summary as JSON")
    till.set_defaults(func=cmd_bench)
    pages = bench_sub.add_parser("pages", help="members open the catalog, card and shops pages under load")
    pages.add_argument("--connections", type=int, default=64)
    pages.add_argument("--seconds", type=float, default=15)
    pages.add_argument("--workers", type=int, default=2)
    pages.add_argument("--members", type=int, default=5000, help="members signed in, one picked per request")
    pages.add_argument("--page", action="append", help="a path to drive (repeatable); default: catalog, card, shops")
    pages.add_argument("--scale", type=float, default=1.0)
    pages.add_argument("--skip-demo", action="store_true", help="reuse the loaded demo")
    pages.add_argument("--reset", action="store_true", help="confirm replacing a DATABASE_URL database with the demo")
    pages.add_argument("--json", metavar="PATH", help="also write the summary as JSON")
    pages.set_defaults(func=cmd_bench_pages)
    reconcile = bench_sub.add_parser("reconcile", help="N claim lines against N sales, beside bare COPY + SQL")
    reconcile.add_argument("--lines", type=int, default=1_000_000)
    reconcile.add_argument("--merchants", type=int, default=100, help="sales and claims spread over this many")
    reconcile.add_argument("--concurrency", type=int, default=2, help="claims uploaded at a time (default 2)")
    reconcile.add_argument("--json", metavar="PATH", help="also write the summary as JSON")
    reconcile.set_defaults(func=cmd_bench_reconcile)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides = {k: getattr(args, k, None) for k in ("host", "port")}
    settings = load_settings(**overrides)
    return int(args.func(args, settings))


if __name__ == "__main__":
    sys.exit(main())
