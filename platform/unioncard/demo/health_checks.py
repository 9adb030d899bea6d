"""The demo's health checks: clinics across the towns, a year of weekday slots, the towns' shares of the
year's places, and the year's bookings at DESIGN.md's figures (20,000 places, 15,120 done), copied in."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import asyncpg

from unioncard.demo.figures import DISTRICT_PLACE, ROADS, DemoError
from unioncard.settings import Settings

# DESIGN.md: 15,120 of the 20,000 places done so far; the other figures are shares of the quota.
ATTENDED_PER_QUOTA = (15_120, 20_000)
BOOKED_SHARE = 0.032  # booked for the coming weeks
NO_SHOW_SHARE = 0.045  # of those who came
CANCELLED_SHARE = 0.04
EXPIRED_SHARE = 0.015
MEMBERS_USED_MAX = 0.7  # a small district books at most this share of its members
CLINICS = 8
CLINIC_KINDS = ("社区卫生服务中心", "中心卫生院", "人民医院体检中心", "中医院健康管理中心")
SLOT_HOURS = (8, 9, 10, 11)  # local starts, one hour each, Monday to Friday
SLOT_CAPACITY = 6
HOLD = timedelta(seconds=Settings().health_check_hold_s)  # the run-out holds of the past lasted the default
BOOKING_COLUMNS = (
    "member_id", "benefit_id", "year", "slot_id", "town_id", "status",
    "held_at", "held_until", "booked_at", "closed_at", "marked_by",
)  # fmt: skip

BENEFIT_SQL = "SELECT id, yearly_quota FROM benefits WHERE code = 'health_check' AND kind = 'health_check'"
# Each town with its members who may book all year (the benefit's eligibility on 1 January) and the
# centre of its merchants; $1 the benefit, $2 1 January.
TOWNS_SQL = """
WITH b AS (SELECT eligible_tiers, eligible_tags, eligible_org_ids, membership_months_min FROM benefits WHERE id = $1),
town_of AS (SELECT o.id AS org_id, o.path, t.id AS town_id FROM orgs o JOIN orgs t ON t.kind = 'town'
             AND o.path LIKE t.path || '%')
SELECT t.id, t.name, t.path,
       (SELECT count(*) FROM members m JOIN town_of x ON x.org_id = m.org_id CROSS JOIN b
         WHERE x.town_id = t.id AND m.joined_on + make_interval(months => b.membership_months_min) <= $2
           AND (b.eligible_tags IS NULL OR m.tags && b.eligible_tags)
           AND (b.eligible_org_ids IS NULL OR EXISTS (SELECT FROM orgs r WHERE r.id = ANY (b.eligible_org_ids)
                                                       AND x.path LIKE r.path || '%'))
           AND (b.eligible_tiers IS NULL OR EXISTS (SELECT FROM cards c WHERE c.member_id = m.id
                                                     AND c.tier = ANY (b.eligible_tiers)))) AS eligible,
       (SELECT avg(latitude) FROM merchants WHERE org_id = t.id) AS latitude,
       (SELECT avg(longitude) FROM merchants WHERE org_id = t.id) AS longitude
  FROM orgs t WHERE t.kind = 'town' ORDER BY t.id
"""
# The first $4[i] eligible members of town $3[i] in an order fixed by the salt $5.
PICK_SQL = """
WITH b AS (SELECT eligible_tiers, eligible_tags, eligible_org_ids, membership_months_min FROM benefits WHERE id = $1),
want AS (SELECT * FROM unnest($3::bigint[], $4::integer[]) AS w (town_id, n)),
town_of AS (SELECT o.id AS org_id, o.path, t.id AS town_id FROM orgs o JOIN orgs t ON t.kind = 'town'
             AND o.path LIKE t.path || '%'),
pool AS (
    SELECT m.id, x.town_id, row_number() OVER (PARTITION BY x.town_id ORDER BY md5(m.id::text || $5)) AS rank
      FROM members m JOIN town_of x ON x.org_id = m.org_id CROSS JOIN b
     WHERE m.joined_on + make_interval(months => b.membership_months_min) <= $2
       AND (b.eligible_tags IS NULL OR m.tags && b.eligible_tags)
       AND (b.eligible_org_ids IS NULL OR EXISTS (SELECT FROM orgs r WHERE r.id = ANY (b.eligible_org_ids)
                                                   AND x.path LIKE r.path || '%'))
       AND (b.eligible_tiers IS NULL OR EXISTS (SELECT FROM cards c WHERE c.member_id = m.id
                                                 AND c.tier = ANY (b.eligible_tiers)))
)
SELECT p.id, p.town_id FROM pool p JOIN want w ON w.town_id = p.town_id AND p.rank <= w.n ORDER BY p.town_id, p.rank
"""
CLINICS_SQL = """
INSERT INTO health_check_clinics (name, address, latitude, longitude, org_id)
SELECT * FROM unnest($1::text[], $2::text[], $3::float8[], $4::float8[], $5::bigint[])
RETURNING id, org_id
"""
# Every weekday of year $3 at the local hours $4, for clinics $1 and benefit $2.
SLOTS_SQL = """
INSERT INTO health_check_slots (clinic_id, benefit_id, year, starts_at, ends_at, capacity)
SELECT c.id, $2, $3, (d + make_interval(hours => h)) AT TIME ZONE till_local_tz(),
       (d + make_interval(hours => h + 1)) AT TIME ZONE till_local_tz(), $5
  FROM unnest($1::bigint[]) AS c (id)
 CROSS JOIN generate_series(make_date($3, 1, 1)::timestamp, make_date($3, 12, 31)::timestamp, interval '1 day') AS d
 CROSS JOIN unnest($4::integer[]) AS h
 WHERE extract(isodow FROM d) < 6
RETURNING id, clinic_id, starts_at, ends_at
"""
YEAR_SQL = "INSERT INTO health_check_years (benefit_id, year, places) VALUES ($1, $2, $3)"
TOWN_QUOTAS_SQL = """
INSERT INTO health_check_town_quotas (benefit_id, year, town_id, places)
SELECT $1, $2, town_id, places FROM unnest($3::bigint[], $4::integer[]) AS q (town_id, places)
"""
START_OF_DAY_SQL = "SELECT $1::date::timestamp AT TIME ZONE till_local_tz()"
STAFF_SQL = "SELECT id, role, org_id FROM staff_users WHERE role IN ('federation_admin', 'org_reviewer') ORDER BY id"


@dataclass
class Seats:
    """The places of past or coming slots, per clinic, drawn at random without taking one twice."""

    rng: random.Random
    by_clinic: dict[int, list[asyncpg.Record]] = field(default_factory=dict)

    def add(self, slot: asyncpg.Record) -> None:
        self.by_clinic.setdefault(slot["clinic_id"], []).extend([slot] * SLOT_CAPACITY)

    def shuffle(self) -> None:
        for seats in self.by_clinic.values():
            self.rng.shuffle(seats)

    def take(self, clinic_id: int) -> asyncpg.Record:
        """A seat at this clinic, else at the clinic with the most left. Raises DemoError when none is left."""
        seats = self.by_clinic.get(clinic_id)
        if not seats:
            seats = max(self.by_clinic.values(), key=len, default=[])
        if not seats:
            raise DemoError("the demo's health-check slots are too few for its bookings")
        return seats.pop()


def shares(total: int, weights: list[int]) -> list[int]:
    """`total` split in proportion to `weights` by largest remainder; the parts add up to it."""
    weight_sum = sum(weights)
    if weight_sum == 0:
        return [0] * len(weights)
    exact = [total * w / weight_sum for w in weights]
    parts = [int(x) for x in exact]
    by_remainder = sorted(range(len(weights)), key=lambda i: exact[i] - parts[i], reverse=True)
    for i in by_remainder[: total - sum(parts)]:
        parts[i] += 1
    return parts


def targets(quota: int, eligible: int) -> dict[str, int]:
    """How many bookings of each outcome: DESIGN.md's at 20,000 places, fewer in a district too small."""
    attended = quota * ATTENDED_PER_QUOTA[0] // ATTENDED_PER_QUOTA[1]
    wanted = {
        "attended": attended,
        "booked": round(quota * BOOKED_SHARE),
        "no_show": round(attended * NO_SHOW_SHARE),
        "cancelled": round(quota * CANCELLED_SHARE),
        "expired": round(quota * EXPIRED_SHARE),
    }
    room = int(eligible * MEMBERS_USED_MAX)
    if sum(wanted.values()) <= room:
        return wanted
    factor = room / sum(wanted.values())
    return {status: int(n * factor) for status, n in wanted.items()}


async def load_health_checks(conn: asyncpg.Connection, rng: random.Random, today: date) -> dict[str, Any]:
    """Clinics, this year's slots, the towns' shares and the bookings up to `today`, for the catalog's
    health_check benefit. Raises DemoError when the catalog lacks it or the district has no town."""
    benefit = await conn.fetchrow(BENEFIT_SQL)
    if benefit is None or benefit["yearly_quota"] is None:
        raise DemoError("the catalog has no health_check benefit with a yearly quota")
    benefit_id, quota, year = benefit["id"], benefit["yearly_quota"], today.year
    towns = [dict(row) for row in await conn.fetch(TOWNS_SQL, benefit_id, date(year, 1, 1))]
    if not towns:
        raise DemoError("the demo district has no town for the health-check clinics")
    town_places = shares(quota, [town["eligible"] for town in towns])
    await conn.execute(YEAR_SQL, benefit_id, year, quota)
    await conn.execute(TOWN_QUOTAS_SQL, benefit_id, year, [t["id"] for t in towns], town_places)
    clinics_of_town = await _clinics(conn, rng, towns)
    clinic_ids = sorted({clinic for clinics in clinics_of_town.values() for clinic in clinics})
    slots = await conn.fetch(SLOTS_SQL, clinic_ids, benefit_id, year, list(SLOT_HOURS), SLOT_CAPACITY)
    counts = targets(quota, sum(town["eligible"] for town in towns))
    picked = await _members(conn, rng, benefit_id, year, towns, town_places, counts)
    start_of_today = await conn.fetchval(START_OF_DAY_SQL, today)
    staff = await conn.fetch(STAFF_SQL)
    rows = _bookings(rng, benefit_id, year, start_of_today, slots, clinics_of_town, picked, counts, staff)
    await conn.copy_records_to_table("health_check_bookings", records=rows, columns=list(BOOKING_COLUMNS))
    return {
        "year": year,
        "quota": quota,
        "town_quotas": len(towns),
        "clinics": len(clinic_ids),
        "slots": len(slots),
        **counts,
        "places_left": quota - counts["attended"] - counts["booked"],
    }


async def _clinics(conn: asyncpg.Connection, rng: random.Random, towns: list[dict[str, Any]]) -> dict[int, list[int]]:
    """CLINICS clinics in the towns with the most members, near their shops; each town's clinics: its own,
    or one of the others in turn."""
    busiest = sorted(towns, key=lambda town: (-town["eligible"], town["id"]))
    names, addresses, latitudes, longitudes, org_ids = [], [], [], [], []
    for number in range(CLINICS):
        town = busiest[number % len(busiest)]
        place = town["name"].removesuffix("总工会")
        road = rng.choice(ROADS)
        name = f"{place}{CLINIC_KINDS[(number // len(busiest) + number) % len(CLINIC_KINDS)]}"
        names.append(name if name not in names else f"{name}（{road}院区）")  # a small district repeats
        addresses.append(f"{DISTRICT_PLACE}{place}{road}{rng.randrange(1, 300)}号")
        latitudes.append(round((town["latitude"] or 30.25) + rng.uniform(-0.006, 0.006), 6))
        longitudes.append(round((town["longitude"] or 120.15) + rng.uniform(-0.008, 0.008), 6))
        org_ids.append(town["id"])
    rows = await conn.fetch(CLINICS_SQL, names, addresses, latitudes, longitudes, org_ids)
    own: dict[int, list[int]] = {}
    for row in rows:
        own.setdefault(row["org_id"], []).append(row["id"])
    clinic_ids = [row["id"] for row in rows]
    return {town["id"]: own.get(town["id"], [clinic_ids[i % len(clinic_ids)]]) for i, town in enumerate(towns)}


async def _members(
    conn: asyncpg.Connection,
    rng: random.Random,
    benefit_id: int,
    year: int,
    towns: list[dict[str, Any]],
    town_places: list[int],
    counts: dict[str, int],
) -> dict[str, list[tuple[int, int]]]:
    """(member, town) for each outcome: the live ones within each town's share, each member once."""
    live = shares(counts["attended"] + counts["booked"], town_places)
    closed = counts["no_show"] + counts["cancelled"] + counts["expired"]
    extra = shares(closed, [town["eligible"] for town in towns])
    wanted = [min(town["eligible"], n + e) for town, n, e in zip(towns, live, extra, strict=True)]
    salt = f"{rng.getrandbits(32):08x}"
    rows = await conn.fetch(PICK_SQL, benefit_id, date(year, 1, 1), [t["id"] for t in towns], wanted, salt)
    by_town: dict[int, list[int]] = {}
    for row in rows:
        by_town.setdefault(row["town_id"], []).append(row["id"])
    booked_live: list[tuple[int, int]] = []
    others: list[tuple[int, int]] = []
    for town, n in zip(towns, live, strict=True):
        found = by_town.get(town["id"], [])
        booked_live += [(m, town["id"]) for m in found[:n]]
        others += [(m, town["id"]) for m in found[n:]]
    rng.shuffle(booked_live)
    rng.shuffle(others)
    if len(booked_live) < counts["attended"] + counts["booked"] or len(others) < closed:
        raise DemoError("the demo district has too few members for its health-check bookings")
    attended, no_show = counts["attended"], counts["no_show"]
    return {
        "attended": booked_live[:attended],
        "booked": booked_live[attended:],
        "no_show": others[:no_show],
        "cancelled": others[no_show : no_show + counts["cancelled"]],
        "expired": others[no_show + counts["cancelled"] : closed],
    }


def _bookings(
    rng: random.Random,
    benefit_id: int,
    year: int,
    start_of_today: datetime,
    slots: list[asyncpg.Record],
    clinics_of_town: dict[int, list[int]],
    picked: dict[str, list[tuple[int, int]]],
    counts: dict[str, int],
    staff: list[asyncpg.Record],
) -> list[tuple[Any, ...]]:
    """The booking rows: who came or not in past slots, who is booked in coming ones (today's included),
    and cancellations and run-out holds anywhere, every one made before today began."""
    past, coming = Seats(rng), Seats(rng)
    for slot in slots:
        (past if slot["starts_at"] < start_of_today else coming).add(slot)
    past.shuffle()
    coming.shuffle()
    admin = next((s["id"] for s in staff if s["role"] == "federation_admin"), None)
    reviewers = {s["org_id"]: s["id"] for s in staff if s["role"] == "org_reviewer"}
    rows: list[tuple[Any, ...]] = []

    def booking(member: int, town: int, slot: asyncpg.Record, status: str, latest: datetime) -> None:
        held_at = min(slot["starts_at"], latest) - timedelta(days=rng.uniform(0.1, 25))
        booked_at = held_at + timedelta(seconds=rng.randint(20, 400))
        closed_at, marked_by = None, None
        if status in ("attended", "no_show"):
            closed_at = slot["ends_at"] + timedelta(minutes=rng.randint(-50, 300))
            marked_by = reviewers.get(town, admin)
        elif status == "cancelled":
            closed_at = booked_at + (min(slot["starts_at"], latest) - booked_at) * rng.random()
        elif status == "expired":
            booked_at, closed_at = None, held_at + HOLD
        rows.append((member, benefit_id, year, slot["id"], town, status, held_at, held_at + HOLD, booked_at,
                     closed_at, marked_by))  # fmt: skip

    for status in ("attended", "no_show"):
        for member, town in picked[status]:
            booking(member, town, past.take(rng.choice(clinics_of_town[town])), status, start_of_today)
    for member, town in picked["booked"]:
        booking(member, town, coming.take(rng.choice(clinics_of_town[town])), "booked", start_of_today)
    for status in ("cancelled", "expired"):
        for member, town in picked[status]:
            booking(member, town, rng.choice(slots), status, start_of_today)
    return rows
