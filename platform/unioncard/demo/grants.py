"""A year of grant applications at the district's figures, through the applications and payout code.

DESIGN.md: this year 334 members had special-protection grants worth 168,200 yuan — 316 hospitalization,
15 serious illness, 3 work injury. Each application is submitted by its member on its date, routed by the
rule in force then (hospitalization: the district until 30 Sep, the member's town from 1 Oct), approved by a
reviewer of that org, disbursed and paid through the bank-file rail. Besides those, a few are still waiting
for review and a few were rejected; they are not in the year's figures.
"""

from __future__ import annotations

import random
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from cards import applications
from cards.applications import ApplicationIn, ApproveIn, InvoiceIn, PayeeIn, RejectIn
from settlement import grant_payouts
from settlement.grant_payouts import DisburseIn, GrantConfirmIn
from settlement.rails import BankFileRail
from unioncard.auth import Principal, Role

# (benefit code, approved amounts in fen and how many of each): 228 × 400 + 88 × 500 + 15 × 2,000 + 3 × 1,000
# = 168,200 yuan for 334 members.
GRANTED = (
    ("hospitalization", ((40_000, 228), (50_000, 88))),
    ("serious_illness", ((200_000, 15),)),
    ("work_injury", ((100_000, 3),)),
)
WAITING = 18  # recent applications: a third submitted, a third under review, a third rejected
REJECT_REASONS = ("住院不满3天，不符合条件", "发票为复印件，请提供原件信息", "同一住院已在单位工会申领")
HOSPITALS = ("区人民医院", "区中医院", "市第一人民医院", "镇卫生院", "市妇幼保健院")
BANKS = ("中国农业银行", "中国工商银行", "农村商业银行", "中国建设银行")
MEMBERS_SQL = """
SELECT m.id, m.name, m.org_id, o.path, m.joined_on
  FROM members m JOIN orgs o ON o.id = m.org_id
  JOIN cards c ON c.member_id = m.id AND c.status = 'active'
 ORDER BY m.id
"""
REVIEWERS_SQL = """
SELECT s.id, s.org_id, o.path, o.kind FROM staff_users s JOIN orgs o ON o.id = s.org_id
 WHERE s.role = 'org_reviewer' AND s.status = 'active' ORDER BY s.id
"""
FINANCE_SQL = "SELECT id FROM staff_users WHERE role = 'finance_officer' AND status = 'active' ORDER BY id LIMIT 1"
PAID_SQL = "SELECT member_id FROM applications WHERE status = 'paid' ORDER BY id LIMIT 3"
FIGURES_SQL = """
SELECT b.code, count(*) AS applications, count(DISTINCT a.member_id) AS members,
       coalesce(sum(a.approved_minor), 0)::bigint AS approved_minor
  FROM applications a JOIN benefits b ON b.id = a.benefit_id
 WHERE a.approved_minor IS NOT NULL AND a.applied_on >= $1
 GROUP BY b.code ORDER BY b.code
"""


async def load_grants(conn: asyncpg.Connection, rng: random.Random, today: date, zone: ZoneInfo,
                      scale: float = 1.0) -> dict[str, Any]:  # fmt: skip
    """The year's applications; figures by benefit and a member who was paid (for the manifest)."""
    members = [dict(row) for row in await conn.fetch(MEMBERS_SQL)]
    reviewers = {row["org_id"]: Principal(role=Role.ORG_REVIEWER, staff_user_id=row["id"], org_id=row["org_id"],
                                          org_path=row["path"]) for row in await conn.fetch(REVIEWERS_SQL)}  # fmt: skip
    finance_id = await conn.fetchval(FINANCE_SQL)
    finance = Principal(role=Role.FINANCE_OFFICER, staff_user_id=finance_id, name="区总工会财务")
    plan = [(code, amount) for code, mix in GRANTED for amount, n in mix for _ in range(_scaled(n, scale))]
    extra = max(3, _scaled(WAITING, scale))  # one of each state, even in a small district
    chosen = rng.sample(members, min(len(members), len(plan) + extra))
    start = date(today.year, 1, 1)
    span = (today - start).days
    made: list[tuple[int, date]] = []
    for number, ((code, amount), member) in enumerate(zip(plan, chosen, strict=False)):
        applied_on = start + timedelta(days=int(rng.random() ** 0.9 * max(span - 3, 1)))
        applied_on = min(max(applied_on, member["joined_on"]), today)  # a member applies once they are one
        application = await _submit(conn, rng, member, code, amount, applied_on, zone, number)
        approver = _reviewer_of(reviewers, application["org_path"])
        decided_on = min(applied_on + timedelta(days=rng.randint(1, 3)), today)
        await applications.approve(conn, approver, application["id"], ApproveIn(note="材料齐全，同意"),
                                   _at(decided_on, zone, today))  # fmt: skip
        made.append((application["id"], decided_on))
    await _pay(conn, finance, made, today, zone)
    await _leave_some_waiting(conn, rng, chosen[len(plan) :], reviewers, today, zone, len(plan))
    figures = [dict(row) for row in await conn.fetch(FIGURES_SQL, start)]
    return {
        "by_benefit": figures,
        "members": sum(row["members"] for row in figures),
        "approved_minor": sum(row["approved_minor"] for row in figures),
        "paid_member_ids": [row["member_id"] for row in await conn.fetch(PAID_SQL)],
    }


def _scaled(count: int, scale: float) -> int:
    return max(1, round(count * scale))


async def _submit(conn: asyncpg.Connection, rng: random.Random, member: dict[str, Any], code: str, amount: int,
                  applied_on: date, zone: ZoneInfo, number: int) -> dict[str, Any]:  # fmt: skip
    principal = Principal(role=Role.MEMBER, member_id=member["id"], name=member["name"])
    invoice = InvoiceIn(
        issuer=rng.choice(HOSPITALS),
        number=f"{applied_on:%Y}{rng.randint(10_000_000, 99_999_999)}{number:04d}",
        amount_minor=amount * rng.randint(8, 40),
        issued_on=applied_on - timedelta(days=rng.randint(1, 20)),
    )
    data = ApplicationIn(
        benefit_code=code,
        amount_minor=amount,
        invoice=invoice,
        payee=PayeeIn(name=member["name"], account=f"6228{rng.randint(10**14, 10**15 - 1)}", bank=rng.choice(BANKS)),
        details={"hospital": invoice.issuer, "days_in_hospital": rng.randint(3, 21)},
    )
    now = _at(applied_on, zone, applied_on)
    application, _ = await applications.submit(conn, principal, data, now=now, timezone=zone.key)
    return application


def _reviewer_of(reviewers: dict[int, Principal], org_path: str) -> Principal:
    """The demo's reviewer of the org an application was routed to."""
    org_id = int(org_path.strip("/").split("/")[-1])
    return reviewers[org_id]


def _at(day: date, zone: ZoneInfo, today: date) -> datetime:
    """Ten in the morning of `day` (never after today), local time."""
    return datetime.combine(min(day, today), time(10), zone)


async def _pay(conn: asyncpg.Connection, finance: Principal, made: list[tuple[int, date]], today: date,
               zone: ZoneInfo) -> None:  # fmt: skip
    """Month by month, finance disburses the month's approvals in one bank file, the day after the last of them,
    and confirms it paid; this month's stay disbursed (with the bank) or approved (not yet in a file)."""
    rail = BankFileRail()
    months = sorted({(day.year, day.month) for _, day in made})
    for year, month in months:
        decided = [(number, day) for number, day in made if (day.year, day.month) == (year, month)]
        this_month = (year, month) == (today.year, today.month)
        if this_month:
            decided = decided[: len(decided) // 2]  # the rest wait for the next file
        if not decided:
            continue
        ids = [number for number, _ in decided]
        paid_on = min(max(day for _, day in decided) + timedelta(days=1), today)
        now = datetime.combine(paid_on, time(15), zone)  # after the morning's decisions
        await grant_payouts.disburse(conn, finance, DisburseIn(application_ids=ids), rail, now)
        await grant_payouts.take_bank_file(conn, finance, rail, now)
        if not this_month:
            file_id = await conn.fetchval("SELECT max(id) FROM grant_bank_files")
            await grant_payouts.confirm_paid(conn, finance, GrantConfirmIn(bank_file_id=file_id), rail, now)


async def _leave_some_waiting(
    conn: asyncpg.Connection, rng: random.Random, members: list[dict[str, Any]], reviewers: dict[int, Principal],
    today: date, zone: ZoneInfo, offset: int,
) -> None:  # fmt: skip
    """Recent applications still waiting, some under review, and some rejected with a reason."""
    for index, member in enumerate(members):
        applied_on = max(today - timedelta(days=rng.randint(0, 12)), min(member["joined_on"], today))
        amount = rng.choice((40_000, 50_000, 60_000))
        application = await _submit(conn, rng, member, "hospitalization", amount, applied_on, zone, offset + index)
        reviewer = _reviewer_of(reviewers, application["org_path"])
        now = _at(applied_on + timedelta(days=1), zone, today)
        if index % 3 == 1:
            await applications.open_review(conn, reviewer, application["id"], now)
        elif index % 3 == 2:
            await applications.reject(conn, reviewer, application["id"], RejectIn(reason=rng.choice(REJECT_REASONS)),
                                      now)  # fmt: skip
