"""`unioncard bench reconcile`: N claim lines against N sales through the claims code path, beside bare SQL."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import io
import json
import secrets
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from unioncard import db
from unioncard.bench import BenchError, redact
from unioncard.settings import Settings

PERIOD = "2026-10"
MONTH_START = datetime(2026, 10, 1)
MONTH_S = 31 * 86400
OUT_OF_PERIOD_START = datetime(2026, 9, 15, 12)
CARD_COUNT = 1000
HEADER = "核销编号,小票号,交易时间,消费金额,工会补贴金额"  # the GBK files merchants' spreadsheets write
STAGES = ("parse", "load", "classify", "aggregate")
# What line i does, by i % 1000 (the rest are sound; i % 50 == 0 sales are refunded in full, i % 50 == 25 by half,
# i % 5 == 3 lines name their sale by receipt number only).
AMOUNT_MISMATCH, NOT_FOUND, DUPLICATE_LINE, ALREADY_CLAIMED, OUT_OF_PERIOD = 1, 2, 5, 7, 9

# The bench's world: one org, $1 members with a card each, $1 merchants with a contract and a terminal each.
CREATE_CARDS_SQL = """
WITH o AS (
    INSERT INTO orgs (id, kind, name) VALUES (1, 'federation', 'bench') RETURNING id
), m AS (
    INSERT INTO members (id, org_id, name, national_id_hash, national_id_last4)
    SELECT i, o.id, 'member ' || i, sha256(convert_to('bench member ' || i, 'UTF8')),
           lpad((i % 10000)::text, 4, '0')
      FROM o, generate_series(1, $1::int) i
    RETURNING id
)
INSERT INTO cards (id, member_id, number, expires_on, status_since)
SELECT id, id, '6200' || lpad(id::text, 12, '0'), '2030-12-31', '2020-01-01' FROM m
"""
CREATE_MERCHANTS_SQL = """
WITH m AS (
    INSERT INTO merchants (id, name, category, org_id)
    SELECT i, 'merchant ' || i, 'dining', 1 FROM generate_series(1, $1::int) i
    RETURNING id
), c AS (
    INSERT INTO contract_versions (id, merchant_id, version, kind, rate_bps, valid_from, union_share_bps)
    SELECT id, id, 1, 'percent', 1000, '2026-01-01', 6000 FROM m
)
INSERT INTO terminals (id, merchant_id, name, key_prefix, key_hash)
SELECT id, id, 'bench', 'bench', sha256(convert_to('bench terminal ' || id, 'UTF8')) FROM m
"""
# Sale i of $1 belongs to merchant 1 + (i - 1) * $2 / $1; local times spread over October 2026, but
# i % 1000 = 9 in September. The ids are md5s, so the CSV writer knows them without reading them back.
CREATE_SALES_SQL = """
INSERT INTO redemptions (id, merchant_id, terminal_id, card_id, contract_version_id, amount_minor,
                         discount_minor, union_funded_minor, merchant_funded_minor, currency, receipt_ref,
                         occurred_at)
SELECT md5('sale ' || i)::uuid, m, m, 1 + i % $3, m, a, a / 10, a / 10 * 6 / 10, a / 10 - a / 10 * 6 / 10, 'CNY',
       'R' || i,
       CASE WHEN i % 1000 = 9 THEN ('2026-09-15 12:00:00'::timestamp + make_interval(secs => i % 86400))
            ELSE ('2026-10-01 00:00:00'::timestamp + make_interval(secs => (i - 1)::bigint * 2678400 / $1))
       END AT TIME ZONE till_local_tz()
  FROM generate_series(1, $1::int) i,
       LATERAL (SELECT 1 + ((i - 1)::bigint * $2 / $1)::int AS m, 1000 + (i::bigint * 7919) % 49000 AS a) v
"""
CREATE_REFUNDS_SQL = """
INSERT INTO refunds (id, redemption_id, merchant_id, terminal_id, amount_minor, discount_minor, union_funded_minor,
                     merchant_funded_minor, currency)
SELECT md5('refund ' || r.id)::uuid, r.id, r.merchant_id, r.terminal_id,
       CASE WHEN full_refund THEN r.amount_minor ELSE r.amount_minor / 2 END,
       CASE WHEN full_refund THEN r.discount_minor ELSE r.discount_minor / 2 END,
       CASE WHEN full_refund THEN r.union_funded_minor ELSE r.union_funded_minor / 2 END,
       CASE WHEN full_refund THEN r.merchant_funded_minor ELSE r.discount_minor / 2 - r.union_funded_minor / 2 END,
       r.currency
  FROM generate_series(25, $1::int, 25) i
  JOIN redemptions r ON r.id = md5('sale ' || i)::uuid,
       LATERAL (SELECT i % 50 = 0 AS full_refund) k
"""
BARE_TABLE_SQL = """
SET work_mem = '256MB';
CREATE TABLE bench_bare_lines (
    line_no       bigint GENERATED ALWAYS AS IDENTITY,
    merchant_id   bigint NOT NULL DEFAULT current_setting('bench.merchant_id')::bigint,
    redemption_id uuid,
    receipt_ref   text,
    occurred_at   timestamp NOT NULL,
    amount        numeric NOT NULL,
    union_funded  numeric NOT NULL
);
"""
BARE_COLUMNS = ["redemption_id", "receipt_ref", "occurred_at", "amount", "union_funded"]
# The classes without the service's refinements (no earlier claims, no nearest receipt, no tolerance),
# then lines, amounts and union shares per merchant and class.
BARE_CLASSIFY_SQL = """
WITH period AS (
    SELECT ($1::date::timestamp AT TIME ZONE till_local_tz()) AS starts_at,
           (($1::date + interval '1 month')::timestamp AT TIME ZONE till_local_tz()) AS ends_at
), resolved AS (
    SELECT l.line_no, l.merchant_id, (l.amount * 100)::bigint AS amount_minor,
           (l.union_funded * 100)::bigint AS union_funded_minor,
           coalesce(a.id, b.id) AS sale_id, coalesce(a.occurred_at, b.occurred_at) AS sale_at,
           coalesce(a.amount_minor, b.amount_minor) AS sale_amount_minor,
           coalesce(a.union_funded_minor, b.union_funded_minor) AS sale_union_funded_minor
      FROM bench_bare_lines l
      LEFT JOIN redemptions a ON a.id = l.redemption_id AND a.merchant_id = l.merchant_id
      LEFT JOIN redemptions b ON l.redemption_id IS NULL AND b.merchant_id = l.merchant_id
                             AND b.receipt_ref = l.receipt_ref
), firsts AS (
    SELECT sale_id, min(line_no) AS line_no FROM resolved WHERE sale_id IS NOT NULL GROUP BY sale_id
), refunded AS (
    SELECT redemption_id, sum(amount_minor) AS amount_minor, sum(union_funded_minor) AS union_funded_minor
      FROM refunds GROUP BY redemption_id
), classified AS (
    SELECT k.merchant_id, k.amount_minor, k.union_funded_minor,
           CASE
             WHEN k.sale_id IS NULL THEN 'not_found'
             WHEN d.line_no <> k.line_no THEN 'duplicate_line'
             WHEN k.sale_at < p.starts_at OR k.sale_at >= p.ends_at THEN 'out_of_period'
             WHEN coalesce(f.amount_minor, 0) >= k.sale_amount_minor THEN 'reversed'
             WHEN k.amount_minor <> k.sale_amount_minor
                  OR k.union_funded_minor <> k.sale_union_funded_minor - coalesce(f.union_funded_minor, 0)
               THEN 'amount_mismatch'
             ELSE 'matched'
           END AS class
      FROM resolved k
     CROSS JOIN period p
      LEFT JOIN firsts d ON d.sale_id = k.sale_id
      LEFT JOIN refunded f ON f.redemption_id = k.sale_id
)
SELECT merchant_id, class, count(*) AS lines, sum(amount_minor)::bigint AS amount_minor,
       sum(union_funded_minor)::bigint AS union_funded_minor
  FROM classified
 GROUP BY merchant_id, class
"""


@dataclass
class Claims:
    """The bench's CSV files per merchant, and the classes the service must find."""

    files: dict[int, bytes] = field(default_factory=dict)
    earlier: dict[int, bytes] = field(default_factory=dict)
    expected: Counter[str] = field(default_factory=Counter)
    lines: int = 0


# ---------------------------------------------------------------- the whole run


def run_bench_reconcile(args: argparse.Namespace, settings: Settings) -> int:
    """Run the bench on a database it creates and drops; 0 when every class came out as planned."""
    lines, merchants = int(args.lines), min(int(getattr(args, "merchants", 100) or 100), int(args.lines))
    if lines < 1:
        print("bench failed: --lines must be at least 1", file=sys.stderr)
        return 2
    try:
        with db.database_url(settings) as dsn:
            summary = asyncio.run(_run(dsn, settings, lines, merchants, int(getattr(args, "concurrency", 2) or 1)))
    except BenchError as error:
        print(f"bench failed: {error}", file=sys.stderr)
        return 2
    _print_summary(summary)
    if getattr(args, "json", None):
        Path(args.json).write_text(json.dumps(summary, indent=2, ensure_ascii=False))
    return 0 if summary["classes_as_planned"] else 1


async def _run(dsn: str, settings: Settings, lines: int, merchants: int, concurrency: int) -> dict[str, Any]:
    async with _scratch_database(dsn) as bench_dsn:
        # the app pool's session settings
        conn = await asyncpg.connect(bench_dsn, server_settings=session_settings(settings))
        try:
            started = time.perf_counter()
            await db.migrate(conn)
            await _create_data(conn, lines, merchants)
            claims = _write_claims(lines, merchants)
            await _submit_earlier_claims(conn, claims, settings.timezone)
            print(f"data set ready in {time.perf_counter() - started:.1f} s; reconciling …", flush=True)
            service = await _service_path(bench_dsn, claims, settings, concurrency)
            bare = await _bare_sql(conn, claims)
        finally:
            await conn.close()
    return _summary(dsn, lines, merchants, claims, service, bare)


@contextlib.asynccontextmanager
async def _scratch_database(dsn: str) -> AsyncIterator[str]:
    """A database of its own on the same server, dropped on the way out (sales are append-only)."""
    name = f"unioncard_bench_{secrets.token_hex(4)}"
    try:
        admin = await asyncpg.connect(dsn)
    except (OSError, asyncpg.PostgresError) as exc:
        raise BenchError(f"cannot connect to {redact(dsn)}: {exc}") from exc
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    except asyncpg.PostgresError as exc:
        await admin.close()
        raise BenchError(f"cannot create a scratch database: {exc}") from exc
    try:
        yield urlunsplit(urlsplit(dsn)._replace(path="/" + name))
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


# ---------------------------------------------------------------- data


async def _create_data(conn: asyncpg.Connection, lines: int, merchants: int) -> None:
    """Set-based: the world, `lines` sales spread over `merchants`, refunds of one sale in 25."""
    async with conn.transaction():
        await conn.execute(CREATE_CARDS_SQL, CARD_COUNT)
        await conn.execute(CREATE_MERCHANTS_SQL, merchants)
        await conn.execute(CREATE_SALES_SQL, lines, merchants, CARD_COUNT)
        await conn.execute(CREATE_REFUNDS_SQL, lines)
    await conn.execute("ANALYZE")


def sale_id(i: int) -> str:
    """md5('sale ' || i)::uuid, as PostgreSQL spells it."""
    return _uuid_of(f"sale {i}")


def _yuan(minor: int) -> str:
    return f"{minor // 100}.{minor % 100:02d}"


def _line(i: int, lines: int) -> tuple[str, str, str, int, int, str]:
    """(redemption id, receipt, local time, amount, union share, expected class) of the line for sale i."""
    kind, amount = i % 1000, 1000 + (i * 7919) % 49000
    union = amount // 10 * 6 // 10
    if kind == OUT_OF_PERIOD:
        at = OUT_OF_PERIOD_START + timedelta(seconds=i % 86400)
    else:
        at = MONTH_START + timedelta(seconds=(i - 1) * 2678400 // lines)
    named, expected = sale_id(i), "matched"
    if i % 50 == 0:
        expected = "reversed"
    elif i % 50 == 25:
        union -= union // 2
    if kind == AMOUNT_MISMATCH:
        amount, expected = amount + 1, "amount_mismatch"
    elif kind == NOT_FOUND:
        named, expected = _uuid_of(f"nobody {i}"), "not_found"
    elif kind == DUPLICATE_LINE and i > 1:
        named, expected = sale_id(i - 1), "duplicate_line"
        amount = 1000 + ((i - 1) * 7919) % 49000
        union = amount // 10 * 6 // 10
    elif kind == ALREADY_CLAIMED:
        expected = "already_claimed"
    elif kind == OUT_OF_PERIOD:
        expected = "out_of_period"
    receipt = f"R{i}" if named == sale_id(i) else ""
    if i % 5 == 3 and receipt:
        named = ""  # by receipt number only
    return named, receipt, at.strftime("%Y-%m-%d %H:%M:%S"), amount, union, expected


def _uuid_of(text: str) -> str:
    h = hashlib.md5(text.encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _write_claims(lines: int, merchants: int) -> Claims:
    """One GBK file per merchant with a line for each of its sales; an earlier claim of the already_claimed ones."""
    claims = Claims(lines=lines)
    body: dict[int, list[str]] = {}
    earlier: dict[int, list[str]] = {}
    for i in range(1, lines + 1):
        merchant = 1 + (i - 1) * merchants // lines
        named, receipt, at, amount, union, expected = _line(i, lines)
        text = f"{named},{receipt},{at},{_yuan(amount)},{_yuan(union)}"
        body.setdefault(merchant, [HEADER]).append(text)
        claims.expected[expected] += 1
        if expected == "already_claimed":
            earlier.setdefault(merchant, [HEADER]).append(text)
    claims.files = {m: ("\r\n".join(rows) + "\r\n").encode("gbk") for m, rows in body.items()}
    claims.earlier = {m: ("\r\n".join(rows) + "\r\n").encode("gbk") for m, rows in earlier.items()}
    return claims


async def _submit_earlier_claims(conn: asyncpg.Connection, claims: Claims, timezone: str) -> None:
    """The already_claimed lines' sales, claimed before and taken into a (draft) settlement batch: held."""
    from settlement.batches import BatchIn, create_batch
    from settlement.service import submit_csv_claim
    from unioncard.auth import Principal, Role

    finance = Principal(role=Role.FINANCE_OFFICER, staff_user_id=0, name="bench")
    for merchant_id, data in claims.earlier.items():
        earlier = await submit_csv_claim(conn, merchant_id, data, PERIOD, timezone)
        await create_batch(conn, finance, BatchIn(claim_id=earlier["id"]))


# ---------------------------------------------------------------- measuring


def session_settings(settings: Settings) -> dict[str, str]:
    """The app pool's session settings."""
    return {"unioncard.timezone": settings.timezone, "jit": "off"}


async def _service_path(dsn: str, claims: Claims, settings: Settings, concurrency: int) -> dict[str, Any]:
    """Each merchant's file parsed and submitted as an upload is, `concurrency` claims at a time, stage by stage.

    Stage seconds are summed over the claims; with more than one claim at a time they add up to more than the
    wall time, which is `total`: while one claim is parsed in Python, PostgreSQL classes another.
    """
    from settlement.service import submit_csv_claim

    timings = dict.fromkeys(STAGES, 0.0)
    classes: Counter[str] = Counter()
    pending = list(claims.files.items())

    async def worker() -> None:
        conn = await asyncpg.connect(dsn, server_settings=session_settings(settings))
        try:
            while pending:
                merchant_id, data = pending.pop(0)
                summary = await submit_csv_claim(conn, merchant_id, data, PERIOD, settings.timezone, timings=timings)
                for name, totals in summary["classes"].items():
                    classes[name] += totals["lines"]
        finally:
            await conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))
    total = time.perf_counter() - started
    return {
        "seconds": {**{k: round(v, 3) for k, v in timings.items()}, "total": round(total, 3)},
        "lines_per_s": round(claims.lines / total),
        "claims": len(claims.files),
        "concurrency": max(1, concurrency),
        "classes": dict(classes),
    }


async def _bare_sql(conn: asyncpg.Connection, claims: Claims) -> dict[str, Any]:
    """The same files COPYed by PostgreSQL into an unindexed table, classed and summed per merchant in one query."""
    await conn.execute(BARE_TABLE_SQL)
    started = time.perf_counter()
    for merchant_id, data in claims.files.items():
        await conn.execute("SELECT set_config('bench.merchant_id', $1, false)", str(merchant_id))
        await conn.copy_to_table(
            "bench_bare_lines", source=io.BytesIO(data), columns=BARE_COLUMNS, format="csv", header=True,
            encoding="GBK",
        )  # fmt: skip
    copied = time.perf_counter()
    rows = await conn.fetch(BARE_CLASSIFY_SQL, datetime.strptime(PERIOD, "%Y-%m").date())
    done = time.perf_counter()
    classes: Counter[str] = Counter()
    for row in rows:
        classes[row["class"]] += row["lines"]
    seconds = {"copy": copied - started, "classify_aggregate": done - copied, "total": done - started}
    return {
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
        "lines_per_s": round(claims.lines / (done - started)),
        "groups": len(rows),
        "classes": dict(classes),
    }


# ---------------------------------------------------------------- the summary


def _summary(
    dsn: str, lines: int, merchants: int, claims: Claims, service: dict[str, Any], bare: dict[str, Any]
) -> dict[str, Any]:
    return {
        "database": redact(dsn),
        "lines": lines,
        "merchants": merchants,
        "service": service,
        "bare": bare,
        "expected_classes": dict(claims.expected),
        "classes_as_planned": {k: v for k, v in service["classes"].items() if v} == +claims.expected,
    }


def _print_summary(s: dict[str, Any]) -> None:
    service, bare = s["service"], s["bare"]
    seconds = service["seconds"]
    print(f"\n=== unioncard bench reconcile: {s['lines']:,} lines against {s['lines']:,} sales ===")
    print(f"database {s['database']} (a scratch database, dropped); {s['merchants']} merchants, a GBK CSV claim each")
    print(f"claims path: {service['concurrency']} claim(s) at a time; stage seconds are summed over the claims")
    busy = sum(seconds[stage] for stage in STAGES)
    print(f"  {'stage':<22}{'seconds':>9}{'share':>8}")
    for stage in STAGES:
        share = f"{seconds[stage] / busy:.0%}" if busy else "-"
        print(f"  {'claims path ' + stage:<22}{seconds[stage]:>9.3f}{share:>8}")
    print(f"  {'claims path wall':<22}{seconds['total']:>9.3f}")
    print(f"  {'claims path lines/s':<22}{service['lines_per_s']:>9,}")
    for stage, value in bare["seconds"].items():
        print(f"  {'bare SQL ' + stage:<22}{value:>9.3f}")
    print(f"  {'bare SQL lines/s':<22}{bare['lines_per_s']:>9,}")
    ratio = seconds["total"] / bare["seconds"]["total"] if bare["seconds"]["total"] else 0
    print(f"  claims path ÷ bare SQL: {ratio:.2f}× the time")
    print(f"  classes: {json.dumps(service['classes'], sort_keys=True)}")
    print(f"  bare SQL classes (no already_claimed): {json.dumps(bare['classes'], sort_keys=True)}")
    print(f"  classes as planned: {'yes' if s['classes_as_planned'] else 'NO, expected ' + str(s['expected_classes'])}")
