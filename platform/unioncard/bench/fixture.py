"""The bench's data: the demo, terminals and card pairs it sells to, written for wrk, and cleaned up after."""

from __future__ import annotations

import json
import os
import secrets
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from unioncard import db
from unioncard.bench import BenchError, redact
from unioncard.bench.cpu import OurPostgres, our_postgres
from unioncard.ids import hash_secret, new_secret
from unioncard.settings import Settings

LUA_SCRIPT = Path(__file__).with_name("till.lua")
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


@dataclass
class Fixture:
    terminals: list[tuple[int, str]]
    cards: list[str]
    pair_count: int
    tag: str = field(default_factory=lambda: f"b{secrets.token_hex(4)}")
    postmaster: OurPostgres | None = None
    pgbench_terminals: int = 0


async def _connect(dsn: str, settings: Settings) -> asyncpg.Connection:
    return await asyncpg.connect(dsn, server_settings={"unioncard.timezone": settings.timezone})


async def load_demo_data(dsn: str, scale: float, settings: Settings) -> None:
    """What `unioncard demo --reset` does, with the manifest kept in a temporary file."""
    from unioncard.cli import RESET_SQL
    from unioncard.demo import load_demo

    started = time.monotonic()
    print(f"loading the demo at scale {scale} (replaces everything in {redact(dsn)}) …", flush=True)
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


async def prepare_fixture(dsn: str, settings: Settings, seconds: float) -> Fixture:
    """Fresh terminals (keys are stored hashed, so old ones cannot be used) and active cards."""
    conn = await _connect(dsn, settings)
    try:
        await db.migrate(conn)
        fixture = Fixture(terminals=[], cards=[], pair_count=0)
        fixture.postmaster = await our_postgres(conn)
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


def write_data_file(path: Path, fixture: Fixture) -> None:
    lines = [f"T {terminal_id} {key}" for terminal_id, key in fixture.terminals]
    lines += [f"C {number}" for number in fixture.cards]
    path.write_text("\n".join(lines) + "\n")


async def clean_up(dsn: str, fixture: Fixture) -> None:
    """Revoke the bench's terminal keys and drop pgbench's pairs; the sales stay, as in real life."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(REVOKE_TERMINALS_SQL, [t for t, _ in fixture.terminals])
        await conn.execute(DROP_PAIRS_SQL)
    finally:
        await conn.close()
