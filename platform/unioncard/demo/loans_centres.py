"""The demo's loan subsidy fund with a year of applications, and its six worker service centres with a year of
room bookings. Members, orgs, staff and the catalog (benefits 'loan_subsidy' and 'service_centre') come from the
tables; everything here is written set-based (unnest, COPY)."""

from __future__ import annotations

import math
import random
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from asyncpg import Range

from cards.loan_subsidy import loan_subsidy
from unioncard.demo.figures import BANKS, DISTRICT_PLACE, ROADS, DemoError

FUND_MINOR = 10_000_000_00
CURRENCY = "CNY"
LOAN_APPLICATIONS = 48
WAITING_DAYS = 12  # applications younger than this are still waiting for review
CENTRES = 6
PAST_DAYS, AHEAD_DAYS = 365, 14
BOOKERS = 5_000
ROOMS = (  # kind, zh, en, capacity, bookings a day (mean), purposes
    ("training", "培训室", "Training room", 40, 1.4, ("电工技能培训", "直播电商培训", "安全生产讲座", "劳动法宣讲")),
    ("activity", "活动室", "Activity room", 30, 1.8, ("职工合唱排练", "乒乓球活动", "书法兴趣小组", "职工生日会")),
    ("library", "职工书屋", "Workers' library", 20, 1.2, ("读书分享会", "子女课后自习", "职工读书会")),
    ("mediation", "调解室", "Mediation room", 6, 0.5, ("劳动争议调解", "工资纠纷协商", "法律咨询")),
)
PLACES_EN = {
    "青山镇": "Qingshan", "城东街道": "Chengdong", "城西街道": "Chengxi", "城南街道": "Chengnan",
    "城北街道": "Chengbei", "湖滨街道": "Hubin", "新塘镇": "Xintang", "白沙镇": "Baisha", "石桥镇": "Shiqiao",
    "龙泉镇": "Longquan", "柳溪镇": "Liuxi", "桃源镇": "Taoyuan", "江口镇": "Jiangkou", "凤凰街道": "Fenghuang",
    "金沙镇": "Jinsha",
}  # fmt: skip
ROADS_EN = {
    "解放路": "Jiefang Rd", "人民路": "Renmin Rd", "中山路": "Zhongshan Rd", "建设路": "Jianshe Rd",
    "文化路": "Wenhua Rd", "湖滨路": "Hubin Rd", "新华路": "Xinhua Rd", "振兴路": "Zhenxing Rd",
    "学院路": "Xueyuan Rd", "工业路": "Gongye Rd", "江滨路": "Jiangbin Rd", "青年路": "Qingnian Rd",
    "和平路": "Heping Rd", "健康路": "Jiankang Rd", "幸福路": "Xingfu Rd", "东风路": "Dongfeng Rd",
    "胜利路": "Shengli Rd", "迎宾路": "Yingbin Rd", "府前街": "Fuqian St", "南大街": "South Main St",
}  # fmt: skip
DISTRICT_EN = "Linjiang District"  # figures.DISTRICT_PLACE
DISTRICT_CENTRE = (30.30, 120.15)  # where a town without merchants puts its centre

_BENEFIT = "SELECT id, membership_months_min FROM benefits WHERE code = $1"
_FUND = "INSERT INTO loan_funds (benefit_id, total_minor, currency) VALUES ($1, $2, $3)"
# Members with an active card who had been members long enough a year ago, in an order fixed by the seed.
_APPLICANTS = """
SELECT m.id FROM members m
 WHERE m.joined_on <= $1::date - make_interval(months => $2)
   AND EXISTS (SELECT 1 FROM cards c WHERE c.member_id = m.id AND c.status = 'active')
 ORDER BY md5(m.id::text || $3::text) LIMIT $4
"""
_TX_IDS = "SELECT nextval(pg_get_serial_sequence('ledger_transactions', 'id')) FROM generate_series(1, $1)"
_TRANSACTIONS = """
INSERT INTO ledger_transactions (id, kind, memo, occurred_at, recorded_at) OVERRIDING SYSTEM VALUE
SELECT id, 'loan_subsidy_approved', 'demo', at, at FROM unnest($1::bigint[], $2::timestamptz[]) AS t (id, at)
"""
# Approval's posting (cards.loans): Dr union:loan_fund / Cr member:<id>:loan_subsidy_payable.
_POSTINGS = """
INSERT INTO ledger_postings (transaction_id, account, amount_minor, currency, recorded_at)
SELECT t.id, leg.account, leg.amount_minor, $5, t.at
  FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::timestamptz[]) AS t (id, member_id, amount, at)
 CROSS JOIN LATERAL (VALUES ('union:loan_fund', t.amount),
                            ('member:' || t.member_id || ':loan_subsidy_payable', -t.amount))
       AS leg (account, amount_minor)
"""
# The reviewing org by the benefit's level on the day; the decider is a reviewer of that subtree, else the admin.
_APPLICATIONS = """
INSERT INTO loan_applications (member_id, benefit_id, reviewing_org_id, lender, principal_minor, rate_bps, months,
                               loan_start_on, subsidy_yearly_minor, subsidy_total_minor, currency, status,
                               submitted_on, submitted_at, decided_at, decided_by, decision_note,
                               ledger_transaction_id)
SELECT x.member_id, $1, r.org_id, x.lender, x.principal, x.rate, x.months, x.start_on, x.yearly, x.total, $2,
       x.status, x.submitted_on, x.submitted_at, x.decided_at,
       CASE WHEN x.status <> 'submitted' THEN (
           SELECT s.id FROM staff_users s LEFT JOIN orgs so ON so.id = s.org_id
            WHERE s.status = 'active' AND (s.role = 'federation_admin'
                  OR (s.role = 'org_reviewer' AND coalesce(ro.path, mo.path) LIKE so.path || '%'))
            ORDER BY (s.role = 'org_reviewer') DESC, length(so.path) DESC, s.id LIMIT 1) END,
       x.note, x.tx_id
  FROM unnest($3::bigint[], $4::text[], $5::bigint[], $6::int[], $7::int[], $8::date[], $9::bigint[], $10::bigint[],
              $11::text[], $12::date[], $13::timestamptz[], $14::timestamptz[], $15::text[], $16::bigint[])
       AS x (member_id, lender, principal, rate, months, start_on, yearly, total, status, submitted_on,
             submitted_at, decided_at, note, tx_id)
  JOIN members m ON m.id = x.member_id
  JOIN orgs mo ON mo.id = m.org_id
 CROSS JOIN LATERAL (SELECT benefit_reviewing_org($1, m.org_id, x.submitted_on) AS org_id) r
  LEFT JOIN orgs ro ON ro.id = r.org_id
"""
_EVENTS = """
INSERT INTO loan_application_events (application_id, status, actor, note, occurred_at)
SELECT id, 'submitted', 'member:' || member_id, '', submitted_at FROM loan_applications
UNION ALL
SELECT a.id, a.status, coalesce(s.role || ':' || s.id, 'demo'), a.decision_note, a.decided_at
  FROM loan_applications a LEFT JOIN staff_users s ON s.id = a.decided_by
 WHERE a.status <> 'submitted'
ORDER BY 5
"""
_DRAWN = """
UPDATE loan_funds f SET drawn_minor = (SELECT coalesce(sum(subsidy_total_minor), 0) FROM loan_applications a
                                        WHERE a.benefit_id = f.benefit_id AND a.status = 'approved')
 WHERE f.benefit_id = $1
RETURNING drawn_minor
"""
# Each town with the middle of its subtree's merchants; the district (or any org) when there is no town.
_TOWNS = """
SELECT o.id, o.name, avg(x.latitude) AS latitude, avg(x.longitude) AS longitude
  FROM orgs o
  LEFT JOIN orgs xo ON xo.path LIKE o.path || '%'
  LEFT JOIN merchants x ON x.org_id = xo.id AND x.latitude IS NOT NULL
 WHERE o.kind = coalesce((SELECT 'town' WHERE EXISTS (SELECT 1 FROM orgs WHERE kind = 'town')),
                         (SELECT kind FROM orgs ORDER BY length(path), id LIMIT 1))
 GROUP BY o.id, o.name
 ORDER BY o.id
"""
_CENTRES = """
INSERT INTO service_centres (org_id, name_zh, name_en, address_zh, address_en, latitude, longitude, opens_at,
                             closes_at, created_at)
SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::float8[], $7::float8[],
                     $8::time[], $9::time[], $10::timestamptz[])
RETURNING id, opens_at, closes_at
"""
_ROOMS = """
INSERT INTO service_rooms (centre_id, kind, name_zh, name_en, capacity)
SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::int[])
RETURNING id, kind, capacity, (SELECT opens_at FROM service_centres c WHERE c.id = centre_id) AS opens_at,
          (SELECT closes_at FROM service_centres c WHERE c.id = centre_id) AS closes_at
"""
_BOOKERS = "SELECT id FROM members ORDER BY md5(id::text || $1::text) LIMIT $2"
BOOKING_COLUMNS = ("room_id", "member_id", "during", "purpose", "headcount", "status", "created_at", "cancelled_at")


async def load_loans_centres(conn: asyncpg.Connection, rng: random.Random, today: date) -> dict[str, Any]:
    """The fund and a year of loan applications before `today`; the centres, rooms and a year of bookings.

    Raises DemoError when the catalog lacks 'loan_subsidy' or 'service_centre', or there are no orgs.
    """
    zone = ZoneInfo(await conn.fetchval("SELECT till_local_tz()"))
    figures = await _load_loans(conn, rng, today, zone)
    figures.update(await _load_centres(conn, rng, today, zone))
    return figures


# ------------------------------------------------------------------ loans


async def _load_loans(conn: asyncpg.Connection, rng: random.Random, today: date, zone: ZoneInfo) -> dict[str, Any]:
    benefit = await conn.fetchrow(_BENEFIT, "loan_subsidy")
    if benefit is None:
        raise DemoError("the catalog has no benefit 'loan_subsidy': load the catalog first")
    await conn.execute(_FUND, benefit["id"], FUND_MINOR, CURRENCY)
    months_min = benefit["membership_months_min"]
    applicants = [
        r["id"] for r in await conn.fetch(_APPLICANTS, today, months_min, str(rng.random()), LOAN_APPLICATIONS)
    ]
    # The first few are recent enough to be still waiting, so the reviewers' page has work on it.
    ages = [rng.randint(1, WAITING_DAYS) if n < 4 else int(rng.triangular(1, 365, 120)) for n in range(len(applicants))]
    rows = [_application(rng, member_id, age, today, zone) for member_id, age in zip(applicants, ages, strict=True)]
    approved = [row for row in rows if row["status"] == "approved"]
    tx_ids = [r[0] for r in await conn.fetch(_TX_IDS, len(approved))] if approved else []
    for row, tx_id in zip(approved, tx_ids, strict=True):
        row["tx_id"] = tx_id
    if approved:
        at = [row["decided_at"] for row in approved]
        await conn.execute(_TRANSACTIONS, tx_ids, at)
        members, amounts = [row["member_id"] for row in approved], [row["total"] for row in approved]
        await conn.execute(_POSTINGS, tx_ids, members, amounts, at, CURRENCY)
    names = ("member_id", "lender", "principal", "rate", "months", "start_on", "yearly", "total", "status",
             "submitted_on", "submitted_at", "decided_at", "note", "tx_id")  # fmt: skip
    columns = [[row.get(name) for row in rows] for name in names]
    await conn.execute(_APPLICATIONS, benefit["id"], CURRENCY, *columns)
    await conn.execute(_EVENTS)
    drawn = await conn.fetchval(_DRAWN, benefit["id"])
    if drawn > FUND_MINOR:
        raise DemoError(f"the demo's loan subsidies ({drawn}) overdraw the fund")
    return {
        "loan_fund_total_minor": FUND_MINOR,
        "loan_applications": len(rows),
        "loan_approved": len(approved),
        "loan_rejected": sum(row["status"] == "rejected" for row in rows),
        "loan_submitted": sum(row["status"] == "submitted" for row in rows),
        "loan_subsidy_drawn_minor": drawn,
    }


def _application(rng: random.Random, member_id: int, age_days: int, today: date, zone: ZoneInfo) -> dict[str, Any]:
    """One application made `age_days` before today: most approved, some rejected, the latest waiting."""
    submitted = datetime.combine(today - timedelta(days=age_days), time(9), zone) + timedelta(
        minutes=rng.randrange(9 * 60)
    )
    principal = rng.choice((5, 8, 10, 10, 12, 15, 20, 20, 25, 30, 30)) * 10_000_00
    rate = 345 if submitted.date() < date(today.year, 7, 1) else 310  # the base rate came down mid-year
    months = rng.choice((24, 24, 24, 12, 18))
    subsidy = loan_subsidy(principal, rate, months)
    status, decided_at, note = "submitted", None, ""
    if age_days > WAITING_DAYS:
        decided_at = submitted + timedelta(days=rng.randint(2, WAITING_DAYS), hours=rng.randint(0, 6))
        if rng.random() < 0.85:
            status, note = "approved", rng.choice(("同意", "材料齐全，同意贴息", ""))
        else:
            status, note = "rejected", rng.choice(("营业执照未提供", "贷款用途不属于创业", "贷款合同与申请不符"))
    return {
        "member_id": member_id, "lender": f"{rng.choice(BANKS)}{DISTRICT_PLACE}支行", "principal": principal,
        "rate": rate, "months": months, "start_on": submitted.date() - timedelta(days=rng.randint(0, 45)),
        "yearly": subsidy.yearly_minor, "total": subsidy.total_minor, "status": status,
        "submitted_on": submitted.date(), "submitted_at": submitted, "decided_at": decided_at, "note": note,
        "tx_id": None,
    }  # fmt: skip


# ------------------------------------------------------------------ service centres


async def _load_centres(conn: asyncpg.Connection, rng: random.Random, today: date, zone: ZoneInfo) -> dict[str, Any]:
    if await conn.fetchval(_BENEFIT, "service_centre") is None:
        raise DemoError("the catalog has no benefit 'service_centre': load the catalog first")
    towns = await conn.fetch(_TOWNS)
    if not towns:
        raise DemoError("the service centres need orgs to belong to")
    # Six of the towns, the bigger list first drawn without repeats; a small district has some towns twice.
    chosen = sorted(rng.sample(list(towns), min(CENTRES, len(towns))), key=lambda t: t["id"])
    chosen += [towns[i % len(towns)] for i in range(CENTRES - len(chosen))]
    opened = datetime.combine(today - timedelta(days=PAST_DAYS + 30), time(9), zone)
    rows = [_centre(rng, number, town, opened, again=town in chosen[: number - 1])
            for number, town in enumerate(chosen, start=1)]  # fmt: skip
    made = await conn.fetch(_CENTRES, *[[row[i] for row in rows] for i in range(10)])
    rooms = [(c["id"], kind, zh, en, capacity + rng.choice((-5, 0, 0, 5)) if capacity > 10 else capacity)
             for c in made for kind, zh, en, capacity, _, _ in ROOMS]  # fmt: skip
    made_rooms = await conn.fetch(_ROOMS, *[[room[i] for room in rooms] for i in range(5)])
    bookers = [r["id"] for r in await conn.fetch(_BOOKERS, str(rng.random()), BOOKERS)]
    bookings = _bookings(rng, made_rooms, bookers, today, zone) if bookers else []
    await conn.copy_records_to_table("room_bookings", records=bookings, columns=list(BOOKING_COLUMNS))
    return {"centres": len(made), "rooms": len(made_rooms), "room_bookings": len(bookings)}


def _centre(
    rng: random.Random, number: int, town: asyncpg.Record, opened: datetime, again: bool = False
) -> tuple[Any, ...]:
    """A town's centre; a second one in the same town (a small district) is named after its road."""
    place = str(town["name"]).removesuffix("总工会")
    place_en = PLACES_EN.get(place, f"No. {number}")
    latitude, longitude = (town["latitude"], town["longitude"]) if town["latitude"] is not None else DISTRICT_CENTRE
    road, house = rng.choice(ROADS), rng.randrange(1, 300)
    opens, closes = rng.choice(((time(8), time(21)), (time(9), time(21)), (time(8), time(20))))
    name, name_en = f"{place}职工服务中心", f"{place_en} Worker Service Centre"
    if again:
        name, name_en = f"{place}{road}职工服务站", f"{place_en} {ROADS_EN.get(road, road)} Worker Service Point"
    return (
        town["id"], name, name_en,
        f"{DISTRICT_PLACE}{place}{road}{house}号", f"{house} {ROADS_EN.get(road, road)}, {place_en}, {DISTRICT_EN}",
        round(latitude + rng.uniform(-0.004, 0.004), 6), round(longitude + rng.uniform(-0.005, 0.005), 6),
        opens, closes, opened,
    )  # fmt: skip


def _bookings(
    rng: random.Random, rooms: list[asyncpg.Record], bookers: list[int], today: date, zone: ZoneInfo
) -> list[tuple[Any, ...]]:
    """A year of bookings and two weeks ahead: whole hours within the opening hours, never overlapping."""
    kinds = {kind: (mean, purposes) for kind, _, _, _, mean, purposes in ROOMS}
    now = datetime.combine(today, time(8), zone)
    rows = []
    for room in rooms:
        mean, purposes = kinds[room["kind"]]
        hours = list(range(room["opens_at"].hour, room["closes_at"].hour))
        for offset in range(-PAST_DAYS, AHEAD_DAYS + 1):
            day = today + timedelta(days=offset)
            busy = mean * (1.5 if day.isoweekday() >= 6 else 1.0)
            taken: set[int] = set()
            for _ in range(_count(rng, busy)):
                length = rng.choice((1, 1, 2, 2, 3))
                start = rng.choice(hours[: len(hours) - length + 1])
                span = set(range(start, start + length))
                cancelled = rng.random() < 0.06
                if span & taken and not cancelled:
                    continue
                begins = datetime.combine(day, time(start), zone)
                created = begins - timedelta(days=rng.randint(1, 10), minutes=rng.randrange(600))
                if created >= now:
                    created = now - timedelta(hours=rng.randint(1, 48))
                if not cancelled:
                    taken |= span
                rows.append((
                    room["id"], rng.choice(bookers), Range(begins, begins + timedelta(hours=length)),
                    rng.choice(purposes), rng.randint(1, room["capacity"]), "cancelled" if cancelled else "booked",
                    created, created + (begins - created) / 2 if cancelled else None,
                ))  # fmt: skip
    return rows


def _count(rng: random.Random, mean: float) -> int:
    """A Poisson draw (Knuth's), small means only."""
    limit, product, count = math.exp(-mean), rng.random(), 0
    while product > limit:
        product *= rng.random()
        count += 1
    return count
