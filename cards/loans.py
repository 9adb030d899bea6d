"""Loan interest subsidy applications, and the special fund approved subsidies draw on.

A member applies with the loan's principal, base rate, months and start date; the subsidy is computed by
cards.loan_subsidy then and kept. The reviewing org is the benefit's review level in force on the day of
submission (cards.catalog.reviewing_org); with no levels, a reviewer of the member's own subtree decides.
The federation admin may decide any.

Approval draws the whole subsidy from the fund (loan_funds.drawn_minor, never above the total: the draw is
one conditional UPDATE of the fund row, so concurrent approvals queue on its lock and each sees what the
others drew) and posts it to the ledger:

    Dr union:loan_fund  /  Cr member:<id>:loan_subsidy_payable   (the whole subsidy, at approval)

not Dr union:benefit_expense / Cr grants_payable: a grant is owed at once, whereas the subsidy is paid month
by month over up to 24 months (cards.loan_subsidy's schedule), so approval records a commitment of the
earmarked fund to the member. The debit balance of union:loan_fund is what the fund has committed and always
equals loan_funds.drawn_minor; each monthly payment (not built yet) would post Dr member:<id>:loan_subsidy_payable /
Cr payouts:in_transit, as a grant's payment does (platform/decisions/0008-loan-subsidy-fund.md).

The federation admin sets the fund up and adjusts its total (never below what is drawn); each change is audited.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import asyncpg
import msgspec

from cards import catalog
from cards.loan_subsidy import LoanSubsidy, Months, PrincipalMinor, RateBps, loan_subsidy
from unioncard import audit, clock, errors
from unioncard.auth import Principal, Role
from unioncard.db import Queries
from unioncard.errors import DomainError

queries = Queries(Path(__file__).parent / "loan_queries.sql")

FUND_ACCOUNT = "union:loan_fund"
DECIDERS = frozenset({Role.FEDERATION_ADMIN, Role.ORG_REVIEWER})
# A loan taken up to a year ago may still be subsidised; one starting more than half a year ahead is a plan.
START_DAYS_BACK = 365
START_DAYS_AHEAD = 183
NOTE_MAX = 500
FUND_TOTAL_MAX_MINOR = 10**14  # a trillion yuan: anything larger is a typing error

errors.extend(
    {
        "loan_fund_not_found": (404, "暂无贷款贴息基金", "There is no loan subsidy fund"),
        "loan_fund_exhausted": (409, "贴息基金余额不足", "The loan subsidy fund has too little left"),
        "loan_application_not_found": (404, "贴息申请不存在", "No such loan subsidy application"),
        "loan_application_status_conflict": (
            409,
            "该申请已审核，不能再次审核",
            "The application's status does not allow this: it has been decided",
        ),
        "loan_fund_exists": (409, "该福利已有贴息基金", "This benefit has a loan subsidy fund already"),
        "loan_fund_below_drawn": (
            409,
            "基金总额不能低于已批贴息",
            "The fund's total cannot be less than what approved subsidies drew",
        ),
    }
)


class LoanApplicationIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    lender: Annotated[str, msgspec.Meta(min_length=1, max_length=100, description="the bank that lent")]
    principal_minor: PrincipalMinor
    rate_bps: RateBps
    months: Months
    loan_start_on: date
    idempotency_key: Annotated[str, msgspec.Meta(max_length=100)] | None = None


class DecisionIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    note: Annotated[str, msgspec.Meta(max_length=NOTE_MAX)] = ""
    """Why; required for a rejection."""


FundTotal = Annotated[int, msgspec.Meta(gt=0, le=FUND_TOTAL_MAX_MINOR, description="fen")]


class FundIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A loan-subsidy benefit's special fund (in the benefit's currency)."""

    benefit_code: Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
    total_minor: FundTotal


class FundTotalIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    total_minor: FundTotal
    """The fund's new total; never less than what approved subsidies drew."""
    note: Annotated[str, msgspec.Meta(max_length=NOTE_MAX)] = ""
    """Why it changes (the audit log keeps it)."""


def invalid(field: str, key: str, message: str) -> DomainError:
    """validation_failed naming the field, with the page sentence's key (unioncard.i18n) and the API's message."""
    return DomainError("validation_failed", message, errors=[{"field": field, "key": key, "message": message}])


def subsidy_of(data: LoanApplicationIn) -> LoanSubsidy:
    """The subsidy of the loan applied for. Raises DomainError validation_failed outside the rule's bounds."""
    try:
        return loan_subsidy(data.principal_minor, data.rate_bps, data.months)
    except ValueError as exc:
        raise DomainError(
            "validation_failed", str(exc), errors=[{"field": "principal_minor", "message": str(exc)}]
        ) from exc


async def fund(conn: asyncpg.Connection | asyncpg.Pool) -> dict[str, Any]:
    """The loan subsidy fund with what remains. Raises DomainError loan_fund_not_found."""
    row = await conn.fetchrow(queries.loan_fund)
    if row is None:
        raise DomainError("loan_fund_not_found")
    return dict(row)


async def apply(
    pool: asyncpg.Pool, member_id: int, data: LoanApplicationIn, now: datetime, timezone: str
) -> tuple[dict[str, Any], bool]:
    """Submit an application: (the application, replayed). The same idempotency key with the same loan answers
    the first application, replayed True.

    Raises DomainError validation_failed, loan_fund_not_found, benefit_not_eligible, no_reviewing_org,
    benefit_cap_reached (with cap and limit), idempotency_key_reused.
    """
    lender = data.lender.strip()
    today = clock.local_date(now, timezone)
    _check_loan(data, lender, today)
    subsidy = subsidy_of(data)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(queries.loan_member_lock, member_id)
        if data.idempotency_key:
            earlier = await conn.fetchrow(queries.loan_application_by_key, member_id, data.idempotency_key)
            if earlier is not None:
                return await _replay(conn, earlier, data, lender), True
        found = await fund(conn)
        member = await catalog.member_profile(conn, member_id)
        benefit = await catalog.require_eligible(conn, member_id, found["code"], today, profile=member)
        await _check_caps(conn, member_id, benefit, today)
        reviewing_org_id = await _reviewing_org_id(conn, benefit["id"], member["org_id"], today)
        application_id = await conn.fetchval(
            queries.loan_application_insert,
            member_id, benefit["id"], reviewing_org_id, lender, data.principal_minor, data.rate_bps, data.months,
            data.loan_start_on, subsidy.yearly_minor, subsidy.total_minor, found["currency"], today, now,
            data.idempotency_key,
        )  # fmt: skip
        await conn.execute(queries.loan_event_insert, application_id, "submitted", f"member:{member_id}", "", now)
        return await application(conn, application_id), False


def _check_loan(data: LoanApplicationIn, lender: str, today: date) -> None:
    if not 1 <= len(lender) <= 100:
        raise invalid("lender", "loan_lender_invalid", "the lender is 1 to 100 characters")
    if not today - timedelta(days=START_DAYS_BACK) <= data.loan_start_on <= today + timedelta(days=START_DAYS_AHEAD):
        detail = f"the loan starts at most {START_DAYS_BACK} days ago and {START_DAYS_AHEAD} days ahead"
        raise invalid("loan_start_on", "loan_start_out_of_range", detail)


async def _replay(
    conn: asyncpg.Connection, earlier: asyncpg.Record, data: LoanApplicationIn, lender: str
) -> dict[str, Any]:
    same = (earlier["lender"], earlier["principal_minor"], earlier["rate_bps"], earlier["months"]) == (
        lender, data.principal_minor, data.rate_bps, data.months,
    ) and earlier["loan_start_on"] == data.loan_start_on  # fmt: skip
    if not same:
        raise DomainError("idempotency_key_reused")
    return await application(conn, earlier["id"])


async def _check_caps(conn: asyncpg.Connection, member_id: int, benefit: dict[str, Any], today: date) -> None:
    """The benefit's caps, as grants count them: applications not rejected, per year and per lifetime."""
    counts = await conn.fetchrow(queries.loan_member_counts, member_id, benefit["id"], today.year)
    catalog.require_within_caps(benefit, this_year=counts["this_year"], lifetime=counts["lifetime"])


async def _reviewing_org_id(conn: asyncpg.Connection, benefit_id: int, member_org_id: int, on: date) -> int | None:
    if not await conn.fetchval(queries.loan_has_review_levels, benefit_id):
        return None
    org = await catalog.reviewing_org(conn, benefit_id, member_org_id, on)
    return int(org["id"])


async def application(conn: asyncpg.Connection | asyncpg.Pool, application_id: int) -> dict[str, Any]:
    """One application. Raises DomainError loan_application_not_found."""
    row = await conn.fetchrow(queries.loan_application, application_id)
    if row is None:
        raise DomainError("loan_application_not_found")
    return dict(row)


async def member_applications(conn: asyncpg.Connection | asyncpg.Pool, member_id: int) -> list[dict[str, Any]]:
    return [dict(row) for row in await conn.fetch(queries.loan_member_applications, member_id)]


async def applications_to_review(
    conn: asyncpg.Connection | asyncpg.Pool, principal: Principal, status: str | None, limit: int
) -> list[dict[str, Any]]:
    """The applications in the reviewer's subtree (all for the federation). Raises DomainError forbidden."""
    scope = _scope_of(principal)
    return [dict(row) for row in await conn.fetch(queries.loan_review_list, scope, status, limit)]


async def review_counts(conn: asyncpg.Connection | asyncpg.Pool, principal: Principal) -> dict[str, Any]:
    return dict(await conn.fetchrow(queries.loan_review_counts, _scope_of(principal)))


def _scope_of(principal: Principal) -> str | None:
    if principal.role == Role.FEDERATION_ADMIN:
        return None
    if principal.role == Role.ORG_REVIEWER and principal.org_path:
        return principal.org_path
    raise DomainError("forbidden", "loan subsidies are decided by the federation or an org reviewer")


async def approve(
    pool: asyncpg.Pool, principal: Principal, application_id: int, note: str, now: datetime
) -> dict[str, Any]:
    """Approve: draw the subsidy from the fund and post it. Nothing changes when it raises.

    Raises DomainError loan_application_not_found, forbidden (not the reviewer's subtree),
    loan_application_status_conflict, loan_fund_exhausted (with remaining_minor).
    """
    try:
        async with pool.acquire() as conn, conn.transaction():
            found = await _for_decision(conn, principal, application_id)
            drawn = await conn.fetchrow(queries.loan_fund_draw, found["benefit_id"], found["subsidy_total_minor"])
            if drawn is None:
                remaining = await conn.fetchval(queries.loan_fund_remaining, found["benefit_id"])
                raise DomainError(
                    "loan_fund_exhausted", remaining_minor=remaining, subsidy_minor=found["subsidy_total_minor"]
                )
            payable = f"member:{found['member_id']}:loan_subsidy_payable"
            transaction_id = await conn.fetchval(
                queries.loan_ledger_post, now, FUND_ACCOUNT, payable, found["subsidy_total_minor"], found["currency"]
            )
            return await _decide(conn, principal, found, "approved", note, now, transaction_id)
    except asyncpg.CheckViolationError as exc:  # the fund's own check, should the conditional draw ever miss
        if exc.constraint_name == "loan_funds_not_overdrawn":
            raise DomainError("loan_fund_exhausted") from exc
        raise


async def reject(
    pool: asyncpg.Pool, principal: Principal, application_id: int, note: str, now: datetime
) -> dict[str, Any]:
    """Reject with a reason; the fund is untouched.

    Raises DomainError validation_failed (no reason), loan_application_not_found, forbidden,
    loan_application_status_conflict.
    """
    if not note.strip():
        raise invalid("note", "loan_reject_note_hint", "say why the application is rejected")
    async with pool.acquire() as conn, conn.transaction():
        found = await _for_decision(conn, principal, application_id)
        return await _decide(conn, principal, found, "rejected", note, now, None)


async def _for_decision(conn: asyncpg.Connection, principal: Principal, application_id: int) -> asyncpg.Record:
    found = await conn.fetchrow(queries.loan_application_for_decision, application_id)
    if found is None:
        raise DomainError("loan_application_not_found")
    if principal.role not in DECIDERS or not principal.may_see_org_path(found["scope_path"]):
        raise DomainError("forbidden", "this application is reviewed by another org")
    if found["status"] != "submitted":
        raise DomainError("loan_application_status_conflict", status=found["status"])
    return found


async def _decide(
    conn: asyncpg.Connection,
    principal: Principal,
    found: asyncpg.Record,
    status: str,
    note: str,
    now: datetime,
    transaction_id: int | None,
) -> dict[str, Any]:
    note = note.strip()[:NOTE_MAX]
    await conn.execute(
        queries.loan_application_decide, found["id"], status, now, principal.staff_user_id, note, transaction_id
    )
    await conn.execute(queries.loan_event_insert, found["id"], status, principal.actor, note, now)
    subject = f"loan_application:{found['id']}"
    detail = {"subsidy_minor": found["subsidy_total_minor"], "note": note, "ledger_transaction_id": transaction_id}
    await audit.record(conn, principal, f"loan_application.{status}", subject, **detail)
    return await application(conn, found["id"])


# ------------------------------------------------------------------ the federation admin's


async def open_fund(pool: asyncpg.Pool, principal: Principal, data: FundIn) -> dict[str, Any]:
    """Give a loan-subsidy benefit its fund, in the benefit's currency; audited.

    Raises DomainError benefit_not_found, validation_failed (not a loan-subsidy benefit), loan_fund_exists.
    """
    async with pool.acquire() as conn, conn.transaction():
        benefit = await conn.fetchrow(queries.loan_fund_benefit, data.benefit_code)
        if benefit is None:
            raise DomainError("benefit_not_found")
        if benefit["kind"] != "loan_subsidy":
            raise invalid("benefit_code", "loan_fund_benefit_kind", "only a loan_subsidy benefit has a fund")
        made = await conn.fetchrow(queries.loan_fund_create, benefit["id"], data.total_minor, benefit["currency"])
        if made is None:
            raise DomainError("loan_fund_exists", benefit_id=benefit["id"])
        await audit.record(conn, principal, "loan_fund.create", f"loan_fund:{benefit['id']}",
                           total_minor=data.total_minor)  # fmt: skip
        return await _fund_of(conn, benefit["id"])


async def set_fund_total(
    pool: asyncpg.Pool, principal: Principal, benefit_id: int, data: FundTotalIn
) -> dict[str, Any]:
    """Change a fund's total, never below what is drawn (under the row lock approvals draw through); audited.

    Raises DomainError loan_fund_not_found, loan_fund_below_drawn (with drawn_minor).
    """
    async with pool.acquire() as conn, conn.transaction():
        found = await conn.fetchrow(queries.loan_fund_lock, benefit_id)
        if found is None:
            raise DomainError("loan_fund_not_found")
        if data.total_minor < found["drawn_minor"]:
            raise DomainError("loan_fund_below_drawn", drawn_minor=found["drawn_minor"])
        await conn.execute(queries.loan_fund_set_total, benefit_id, data.total_minor)
        change = {"from_minor": found["total_minor"], "to_minor": data.total_minor, "note": data.note.strip()}
        await audit.record(conn, principal, "loan_fund.adjust", f"loan_fund:{benefit_id}", **change)
        return await _fund_of(conn, benefit_id)


async def _fund_of(conn: asyncpg.Connection, benefit_id: int) -> dict[str, Any]:
    return dict(await conn.fetchrow(queries.loan_fund_of, benefit_id))


async def create_fund(conn: asyncpg.Connection, benefit_id: int, total_minor: int, currency: str = "CNY") -> None:
    """Give a loan-subsidy benefit its fund without an audit (tests); a second call changes nothing."""
    await conn.execute(queries.loan_fund_create, benefit_id, total_minor, currency)
