"""Loading the demo: one transaction of COPYs, derived counters and ledger, proven, then the settlement month."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from typing import Any

import asyncpg

from unioncard.demo.benefits import load_benefits
from unioncard.demo.figures import SAMPLE_PER_STATUS, DemoError
from unioncard.demo.merchants import draw_merchants, merchant_row
from unioncard.demo.model import Calendar, Merchant, Sizes
from unioncard.demo.people import District, People, draw_district, draw_people
from unioncard.demo.settlement import claim_period, load_settlement
from unioncard.demo.sql import (
    ANALYZE_SQL,
    ANY_ROWS_SQL,
    BUDGET_MONTHS_SQL,
    CARD_COLUMNS,
    CONTRACT_COLUMNS,
    COUNTS_SQL,
    FOREIGN_KEYS_SQL,
    HISTORY_COLUMNS,
    LEDGER_CHECK_SQL,
    LEDGER_TRANSACTIONS_SQL,
    MEMBER_COLUMNS,
    MERCHANT_COLUMNS,
    ORG_COLUMNS,
    ORIGIN_SQL,
    REDEMPTION_COLUMNS,
    REFUND_COLUMNS,
    REFUND_POSTINGS_SQL,
    REPLICA_SQL,
    SALE_POSTINGS_SQL,
    SEQUENCES_SQL,
    STAFF_SQL,
    SUPERUSER_SQL,
    TERMINAL_COLUMNS,
    TOKEN_SQL,
    USAGE_DAYS_SQL,
    USAGE_MONTHS_SQL,
    WORK_MEM_SQL,
)
from unioncard.demo.traffic import Pools, draw_refunds, draw_sales, sale_candidates, tighten_budgets
from unioncard.ids import hash_secret, new_secret
from unioncard.passwords import hash_password


class Steps:
    """Progress lines and the seconds each stage took."""

    def __init__(self, progress: Callable[[str], None]) -> None:
        self.progress = progress
        self.seconds: dict[str, float] = {}
        self._last = self._start = time.monotonic()

    def done(self, stage: str, count: int | None = None, note: str = "") -> None:
        now = time.monotonic()
        elapsed, self._last = now - self._last, now
        self.seconds[stage] = round(elapsed, 2)
        shown = f"{stage} {count:,}" if count is not None else stage
        self.progress(f"{shown} ({note}{elapsed:.1f} s)")

    @property
    def total(self) -> float:
        return round(time.monotonic() - self._start, 2)


async def _copy(conn: asyncpg.Connection, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> int:
    await conn.copy_records_to_table(table, records=rows, columns=list(columns))
    return len(rows)


def _status_count(status: str) -> int:
    return int(status.rsplit(" ", 1)[-1])  # 'INSERT 0 1234'


async def _load_district(conn: asyncpg.Connection, rng: random.Random, sizes: Sizes, steps: Steps) -> District:
    district = draw_district(rng, sizes)
    # Parents before children: the path trigger reads the parent's row.
    for level in (district.district, district.towns, district.grassroots):
        await _copy(conn, "orgs", ORG_COLUMNS, level)
    steps.done("orgs", 1 + len(district.towns) + len(district.grassroots))
    return district


async def _copy_people(conn: asyncpg.Connection, people: People, steps: Steps) -> None:
    steps.done("members", await _copy(conn, "members", MEMBER_COLUMNS, people.members))
    steps.done("cards", await _copy(conn, "cards", CARD_COLUMNS, people.cards))
    steps.done("card_status_history", await _copy(conn, "card_status_history", HISTORY_COLUMNS, people.history))


async def _copy_merchants(
    conn: asyncpg.Connection, rng: random.Random, sizes: Sizes, merchants: list[Merchant], cal: Calendar, steps: Steps
) -> None:
    centres = [(30.22 + 0.16 * rng.random(), 120.03 + 0.24 * rng.random()) for _ in range(sizes.towns)]
    signed = {m.id: cal.midnight(m.offers[0].valid_from) - timedelta(days=7) for m in merchants}
    rows = [merchant_row(rng, m, centres, signed[m.id]) for m in merchants]
    steps.done("merchants", await _copy(conn, "merchants", MERCHANT_COLUMNS, rows))
    terminals = [t.row() for m in merchants for t in m.terminals]
    steps.done("terminals", await _copy(conn, "terminals", TERMINAL_COLUMNS, terminals))


async def _copy_contracts(conn: asyncpg.Connection, merchants: list[Merchant], cal: Calendar, steps: Steps) -> None:
    offers = [o.row(cal.midnight(o.valid_from) - timedelta(days=3)) for m in merchants for o in m.offers]
    steps.done("contract_versions", await _copy(conn, "contract_versions", CONTRACT_COLUMNS, offers))


def _staff(district: District, merchants: list[Merchant]) -> list[dict[str, Any]]:
    staff: list[dict[str, Any]] = [
        {
            "email": "admin@demo.unioncard",
            "password": "demo-admin",
            "role": "federation_admin",
            "display_name": "区总工会管理员",
        },
        {
            "email": "finance@demo.unioncard",
            "password": "demo-finance",
            "role": "finance_officer",
            "display_name": "区总工会财务",
        },
    ]
    # Hospitalization grants dated before 1 Oct were reviewed at the district; the rest at the towns.
    staff.append(
        {
            "email": "reviewer-district@demo.unioncard",
            "password": "demo-reviewer",
            "role": "org_reviewer",
            "org_id": district.district[0][0],
            "display_name": "区总工会审核员",
        }
    )
    for number, (org_id, _, _, name, _) in enumerate(district.towns, start=1):
        staff.append(
            {
                "email": f"reviewer{number}@demo.unioncard",
                "password": "demo-reviewer",
                "role": "org_reviewer",
                "org_id": org_id,
                "display_name": f"{name}审核员",
            }
        )
    for merchant in merchants[:5]:
        staff.append(
            {
                "email": f"merchant{merchant.id}@demo.unioncard",
                "password": "demo-merchant",
                "role": "merchant_admin",
                "merchant_id": merchant.id,
                "display_name": f"{merchant.name}管理员",
            }
        )
    return staff


async def _load_staff(
    conn: asyncpg.Connection, district: District, merchants: list[Merchant], steps: Steps
) -> tuple[str, list[dict[str, Any]]]:
    """Staff and the admin's API token. Raises DemoError if the admin row is missing."""
    staff = _staff(district, merchants)
    # Argon2 costs 0.1 s a hash here; these passwords are printed in the manifest anyway, so one
    # hash per password serves every account that shares it.
    hashes = {p: hash_password(p) for p in {s["password"] for s in staff}}
    rows = await conn.fetch(
        STAFF_SQL,
        [s["email"] for s in staff],
        [s["display_name"] for s in staff],
        [hashes[s["password"]] for s in staff],
        [s["role"] for s in staff],
        [s.get("org_id") for s in staff],
        [s.get("merchant_id") for s in staff],
    )
    admin_id = next((r["id"] for r in rows if r["email"] == staff[0]["email"]), None)
    if admin_id is None:
        raise DemoError("the demo admin was not created")
    token = new_secret("uca")
    await conn.execute(TOKEN_SQL, hash_secret(token), admin_id)
    steps.done("staff_users", len(rows))
    return token, staff


def _traffic(
    rng: random.Random, sizes: Sizes, merchants: list[Merchant], people: People, cal: Calendar
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], float]:
    """Sales and refunds, and the seconds it took; runs in a thread while the server copies.

    It sets the tight budgets, so the contract versions are copied after it.
    """
    started = time.monotonic()
    pools = Pools(rng, people, sizes.towns)
    candidates = sale_candidates(rng, merchants, sizes, cal)
    tighten_budgets(candidates, cal)
    sales = draw_sales(rng, candidates, pools, cal)
    return sales, draw_refunds(rng, sales, cal), time.monotonic() - started


async def _copy_traffic(
    conn: asyncpg.Connection, sales: list[tuple[Any, ...]], refunds: list[tuple[Any, ...]], steps: Steps
) -> None:
    steps.done("redemptions", await _copy(conn, "redemptions", REDEMPTION_COLUMNS, sales))
    steps.done("refunds", await _copy(conn, "refunds", REFUND_COLUMNS, refunds))


async def _derive(conn: asyncpg.Connection, cal: Calendar, steps: Steps) -> None:
    tz = cal.tz.key
    steps.done("card_usage_days", _status_count(await conn.execute(USAGE_DAYS_SQL, tz)))
    steps.done("card_usage_months", _status_count(await conn.execute(USAGE_MONTHS_SQL)))
    steps.done("merchant_budget_months", _status_count(await conn.execute(BUDGET_MONTHS_SQL, tz)))
    steps.done("ledger_transactions", _status_count(await conn.execute(LEDGER_TRANSACTIONS_SQL)))
    postings = _status_count(await conn.execute(SALE_POSTINGS_SQL))
    postings += _status_count(await conn.execute(REFUND_POSTINGS_SQL))
    steps.done("ledger_postings", postings)


async def _prove(conn: asyncpg.Connection, steps: Steps) -> None:
    """What the skipped triggers would have checked, set-based.

    Raises DemoError on a dangling reference, an unbalanced ledger transaction, or a subsidy
    expense that disagrees with the sales and refunds.
    """
    dangling = {name: n for name, n in (await conn.fetchrow(FOREIGN_KEYS_SQL)).items() if n}
    if dangling:
        raise DemoError(f"the demo has dangling references: {dangling}")
    ledger = await conn.fetchrow(LEDGER_CHECK_SQL)
    if ledger["unbalanced"] != 0 or ledger["expense"] != ledger["union_net"]:
        raise DemoError(f"the demo ledger does not balance: {dict(ledger)}")
    steps.done("foreign keys and ledger proven")


def _manifest(rng: random.Random, people: People, merchants: list[Merchant], cal: Calendar) -> dict[str, Any]:
    terminals, revoked = [], []
    for merchant in merchants:
        terms = merchant.offer_at(cal.today).terms()
        for terminal in merchant.terminals:
            if merchant.status == "active" and terminal.revoked_at is None:
                terminals.append(
                    {
                        "merchant_id": merchant.id,
                        "merchant_name": merchant.name,
                        "category": merchant.category.slug,
                        "terminal_id": terminal.id,
                        "terminal_key": terminal.key,
                        "contract": terms,
                    }
                )
            else:
                reason = "terminal_revoked" if terminal.revoked_at is not None else "merchant_suspended"
                revoked.append(
                    {
                        "merchant_id": merchant.id,
                        "terminal_id": terminal.id,
                        "terminal_key": terminal.key,
                        "reason": reason,
                    }
                )
    numbers: dict[str, list[str]] = {}
    for _, _, number, status, *_ in people.cards:
        numbers.setdefault(status, []).append(number)
    cards = {status: rng.sample(found, min(len(found), SAMPLE_PER_STATUS)) for status, found in numbers.items()}
    return {"terminals": terminals, "revoked_terminals": revoked, "cards": cards}


async def _load_all(
    conn: asyncpg.Connection,
    rng: random.Random,
    traffic_rng: random.Random,
    sizes: Sizes,
    cal: Calendar,
    secret_key: str,
    steps: Steps,
) -> dict[str, Any]:
    district = await _load_district(conn, rng, sizes, steps)
    triggers_off = bool(await conn.fetchval(SUPERUSER_SQL))
    if triggers_off:
        await conn.execute(REPLICA_SQL)  # the orgs' path trigger has run; no other trigger is wanted
    else:
        steps.progress("not a superuser: loading with every trigger on (slower)")
    people = draw_people(rng, sizes, district, cal, secret_key)
    merchants = draw_merchants(rng, sizes, district, cal)
    steps.done("members, cards and merchants generated", len(people.cards))
    # Two cores: Python draws the month's sales while the server takes the cards.
    with ThreadPoolExecutor(max_workers=1) as worker:
        traffic = asyncio.get_running_loop().run_in_executor(
            worker, _traffic, traffic_rng, sizes, merchants, people, cal
        )
        await _copy_people(conn, people, steps)
        await _copy_merchants(conn, rng, sizes, merchants, cal, steps)
        admin_token, staff = await _load_staff(conn, district, merchants, steps)
        sales, refunds, drawn_s = await traffic
    steps.done(
        "sales and refunds drawn", len(sales) + len(refunds), note=f"{drawn_s:.1f} s beside the copies, then waited "
    )
    await _copy_contracts(conn, merchants, cal, steps)
    await _copy_traffic(conn, sales, refunds, steps)
    await _derive(conn, cal, steps)
    if triggers_off:
        await conn.execute(ORIGIN_SQL)
    await _prove(conn, steps)
    await conn.execute(SEQUENCES_SQL)
    await conn.execute(ANALYZE_SQL)
    steps.done("sequences and statistics")
    return {
        "admin_token": admin_token,
        "staff": staff,
        **_manifest(rng, people, merchants, cal),
        "counts": dict(await conn.fetchrow(COUNTS_SQL)),
    }


async def load_demo(
    conn: asyncpg.Connection,
    *,
    scale: float = 1.0,
    secret_key: str,
    seed: int = 20261129,
    progress: Callable[[str], None] = print,
    today: date | None = None,
    settlement: bool = True,
    benefits: bool = True,
) -> dict[str, Any]:
    """Load a district at `scale` of DESIGN.md's figures, with the month of till traffic before `today`.

    The district in one transaction; then, with `settlement`, the month's claims and batches through
    the settlement code (demo_settlement); then, with `benefits`, the catalog and a year of its use.
    Raises DemoError when the database is not empty or a check fails.
    """
    if scale <= 0:
        raise ValueError(f"scale must be positive, not {scale}")
    if await conn.fetchval(ANY_ROWS_SQL):
        raise DemoError("the demo loads into an empty database: reset it first (unioncard demo --reset)")
    sizes, steps = Sizes.at(scale), Steps(progress)
    cal = Calendar(await conn.fetchval("SELECT till_local_tz()"), today)
    # The traffic thread draws from its own stream, so the demo is the same whatever the timing.
    rng, traffic_rng = random.Random(seed), random.Random(seed + 1)
    async with conn.transaction():
        await conn.execute(WORK_MEM_SQL)
        manifest = await _load_all(conn, rng, traffic_rng, sizes, cal, secret_key, steps)
    steps.done("committed")
    if settlement:
        logins = [member["merchant_id"] for member in manifest["staff"] if member.get("merchant_id")]
        manifest["settlement"] = made = await load_settlement(
            conn, random.Random(seed + 2), claim_period(cal.window), cal.tz.key, logins
        )
        manifest["counts"] = dict(await conn.fetchrow(COUNTS_SQL))  # with the settlement's ledger postings
        steps.done("claims reconciled, batches approved and paid", made["claims"])
    if benefits:
        manifest["benefits"] = await load_benefits(conn, random.Random(seed + 3), cal.today, scale, steps.done)
        manifest["counts"] = dict(await conn.fetchrow(COUNTS_SQL))  # with the grants' ledger postings
    return {
        **manifest,
        "today": cal.today.isoformat(),
        "scale": scale,
        "stage_seconds": {**steps.seconds, "total": steps.total},
    }
