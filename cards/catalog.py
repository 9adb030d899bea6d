"""The benefits catalog: what a member may have, and who reviews an application for it on a date.

Merchant offers are part of what a member sees, but they live in the contracts (merchants/); the
catalog never copies them. Grants, health checks, the loan subsidy and service centres are rows of
`benefits`, each with zh-CN and English text, eligibility, amounts, caps and review levels by date.
"""

from __future__ import annotations

import time
from datetime import date
from typing import Any

import asyncpg
import msgspec

from cards import eligibility
from cards.model import BenefitIn
from cards.repository import queries
from unioncard import audit, errors
from unioncard.auth import Principal
from unioncard.errors import DomainError

KINDS = ("special_protection", "health_check", "loan_subsidy", "service_centre", "custom")

errors.extend(
    {
        "benefit_not_found": (404, "没有这项福利", "No such benefit"),
        "member_not_found": (404, "会员不存在", "No such member"),
        "benefit_not_eligible": (422, "不符合申请条件", "Not eligible for this benefit"),
        "no_reviewing_org": (409, "暂无受理单位", "No org reviews this benefit for this member on that date"),
        "benefit_cap_reached": (
            409,
            "已达到该福利的申请次数上限",
            "The limit of applications for this benefit is reached",
        ),
    }
)


async def member_profile(conn: asyncpg.Connection | asyncpg.Pool, member_id: int) -> dict[str, Any]:
    """The member's org, tags, membership date and card. Raises DomainError member_not_found."""
    row = await conn.fetchrow(queries.member_profile, member_id)
    if row is None:
        raise DomainError("member_not_found")
    return dict(row)


async def catalog_rows(conn: asyncpg.Connection | asyncpg.Pool, code: str | None = None) -> list[dict[str, Any]]:
    """The active catalog (or one code of it) as the eligibility rule reads it."""
    return [dict(row) for row in await conn.fetch(queries.catalog_rows, code)]


def for_member(rows: list[dict[str, Any]], profile: dict[str, Any], on: date) -> list[dict[str, Any]]:
    """The rows in force on `on`, each with `unmet` (what this member lacks; empty: eligible)."""
    return [{**row, "unmet": eligibility.unmet(row, profile, on)} for row in rows if eligibility.in_force(row, on)]


class CatalogCache:
    """The catalog for the member pages, read at most every `ttl_s` seconds per process: a change made in the
    admin API shows on the pages within that time. Paths that change something read the catalog fresh."""

    def __init__(self, ttl_s: float = 30.0) -> None:
        self.ttl_s = ttl_s
        self._rows: list[dict[str, Any]] = []
        self._until = 0.0

    async def rows(self, pool: asyncpg.Pool) -> list[dict[str, Any]]:
        if time.monotonic() >= self._until:
            self._rows, self._until = await catalog_rows(pool), time.monotonic() + self.ttl_s
        return self._rows


async def benefits_for_member(
    conn: asyncpg.Connection | asyncpg.Pool,
    member_id: int,
    on: date,
    kind: str | None = None,
    *,
    rows: list[dict[str, Any]] | None = None,
    profile: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Every benefit in force on `on`, each with `unmet` (what this member lacks; empty: eligible).

    `rows` (a cached catalog) and `profile` (the member's, already read) spare their queries.
    """
    profile = profile or await member_profile(conn, member_id)
    rows = rows if rows is not None else await catalog_rows(conn)
    return [row for row in for_member(rows, profile, on) if kind is None or row["kind"] == kind]


async def benefit_for_member(
    conn: asyncpg.Connection | asyncpg.Pool,
    member_id: int,
    code: str,
    on: date,
    *,
    profile: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One benefit, read fresh, with this member's `unmet` reasons; `profile`, when the caller has read it,
    spares reading it again. Raises DomainError benefit_not_found."""
    profile = profile or await member_profile(conn, member_id)
    found = for_member(await catalog_rows(conn, code), profile, on)
    if not found:
        raise DomainError("benefit_not_found")
    return found[0]


async def require_eligible(
    conn: asyncpg.Connection | asyncpg.Pool,
    member_id: int,
    code: str,
    on: date,
    *,
    profile: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The benefit, if this member may have it on `on`. Raises benefit_not_found or benefit_not_eligible."""
    benefit = await benefit_for_member(conn, member_id, code, on, profile=profile)
    if benefit["unmet"]:
        raise DomainError("benefit_not_eligible", reasons=list(benefit["unmet"]))
    return benefit


def require_within_caps(benefit: dict[str, Any], *, this_year: int, lifetime: int) -> None:
    """Refuse one more application when the member's count (applications not rejected) is at a cap.
    Raises DomainError benefit_cap_reached with the cap and its limit."""
    for cap, used in (("per_year_max", this_year), ("per_lifetime_max", lifetime)):
        if benefit[cap] is not None and used >= benefit[cap]:
            raise DomainError("benefit_cap_reached", cap=cap, limit=benefit[cap])


async def reviewing_org(
    conn: asyncpg.Connection | asyncpg.Pool, benefit_id: int, member_org_id: int, on: date
) -> dict[str, Any]:
    """The org that reviews an application dated `on`: the member's ancestor of the level in force then.

    Raises DomainError no_reviewing_org when the benefit has no level then or the branch lacks that level.
    """
    row = await conn.fetchrow(queries.benefit_reviewing_org, benefit_id, member_org_id, on)
    if row is None:
        raise DomainError("no_reviewing_org")
    return dict(row)


async def create_benefit(pool: asyncpg.Pool, principal: Principal, data: BenefitIn) -> dict[str, Any]:
    """A catalog entry with its review levels, audited. Raises DomainError validation_failed or conflict."""
    problems = []
    if data.amount_minor is not None and data.amount_max_minor is not None:
        problems.append({"field": "amount_max_minor", "message": "a fixed amount or a maximum, not both"})
    if data.valid_until is not None and data.valid_until < data.valid_from:
        problems.append({"field": "valid_until", "message": "ends before it starts"})
    dates = [level.effective_from for level in data.review_levels]
    if len(set(dates)) != len(dates):
        problems.append({"field": "review_levels", "message": "two levels take effect on the same date"})
    if problems:
        raise DomainError("validation_failed", problems[0]["message"], errors=problems)
    async with pool.acquire() as conn, conn.transaction():
        try:
            benefit_id = await conn.fetchval(
                queries.benefit_insert,
                data.code, data.kind, data.name_zh, data.name_en, data.summary_zh, data.summary_en,
                data.details_zh, data.details_en, data.amount_minor, data.amount_max_minor, data.currency,
                data.eligible_tiers, data.eligible_tags, data.eligible_org_ids, data.membership_months_min,
                data.per_year_max, data.per_lifetime_max, data.yearly_quota, data.needs_invoice,
                data.valid_from, data.valid_until, data.sort_order,
            )  # fmt: skip
        except asyncpg.UniqueViolationError as exc:
            raise DomainError("conflict", f"a benefit with code {data.code!r} exists") from exc
        for level in data.review_levels:
            await conn.execute(queries.benefit_review_level_insert, benefit_id, level.effective_from, level.org_kind)
        await audit.record(conn, principal, "benefit.create", f"benefit:{benefit_id}", code=data.code)
    return (await list_benefits(pool, data.code))[0]


async def list_benefits(pool: asyncpg.Pool, code: str | None = None) -> list[dict[str, Any]]:
    """The catalog as the admin API shows it, review levels included."""
    rows = [dict(row) for row in await pool.fetch(queries.benefit_list, code)]
    for row in rows:
        row["review_levels"] = msgspec.json.decode(row["review_levels"])
    return rows


def text_of(benefit: dict[str, Any], lang: str, field: str) -> str:
    """A benefit's name/summary/details in the page's language."""
    return str(benefit[f"{field}_en" if lang == "en" else f"{field}_zh"])
