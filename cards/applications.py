"""Grant applications: a member applies, the reviewing org of the application's date decides, each step audited.

A grant is a special-protection benefit (hospitalization, serious illness, work injury) or a custom one. The
application is routed when submitted to the org that reviews that benefit for the member's part of the tree on
the local date of submission (cards.catalog.reviewing_org); a reviewer sees and acts on those routed into their
subtree only. Payment is settlement's (settlement/grant_payouts.py), which moves approved applications on to
disbursed, paid or failed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import asyncpg
import msgspec

from cards import catalog
from cards.application_rules import (
    ApplicationIn,
    ApproveIn,
    RejectIn,
    check_application,
    clean_details,
    mask_account,
    normalize_account,
    normalize_invoice_number,
    problem,
    request_hash,
    validated,
)
from cards.application_rules import InvoiceIn as InvoiceIn  # the input types, as callers import them from here
from cards.application_rules import PayeeIn as PayeeIn
from unioncard import audit, clock, errors
from unioncard.auth import Principal, Role, member_id_of
from unioncard.db import Queries
from unioncard.errors import DomainError
from unioncard.ids import mask_card
from unioncard.jsonish import iso_values

queries = Queries(Path(__file__).parent / "application_queries.sql")

GRANT_KINDS = frozenset({"special_protection", "custom"})
STATUSES = ("submitted", "under_review", "approved", "rejected", "disbursed", "paid", "failed")
REVIEWABLE = ("submitted", "under_review")
MEMBERS_ONLY = "applications are submitted by members"
REVIEWERS = frozenset({Role.ORG_REVIEWER, Role.FEDERATION_ADMIN})
WAITING = "waiting"  # a review filter: every status that waits for a decision (REVIEWABLE)
MEMBER_LIST_MAX = 200
PAGE_LIMIT_MAX = 500

errors.extend(
    {
        "application_not_found": (404, "申请不存在", "No such application"),
        "benefit_not_applicable": (422, "该福利不通过申请办理", "This benefit is not applied for as a grant"),
        "invoice_already_claimed": (409, "该发票已申领过", "This invoice has already been claimed"),
        "application_status_conflict": (
            409,
            "申请当前状态不允许此操作",
            "The application's status does not allow this",
        ),
    }
)


# ------------------------------------------------------------------ submission


async def submit(
    conn: asyncpg.Connection,
    principal: Principal,
    data: ApplicationIn,
    *,
    now: datetime,
    timezone: str,
    idempotency_key: str | None = None,
) -> tuple[dict[str, Any], bool]:
    """Submit a member's application dated `now`'s local date; (the application, replayed).

    The same idempotency key with the same input answers the first application (replayed True). One member's
    submissions queue on the member row, so the caps hold under concurrency. Raises DomainError forbidden,
    idempotency_key_reused, benefit_not_found, benefit_not_eligible, benefit_not_applicable, validation_failed
    (input out of its limits too, however `data` was built), no_reviewing_org, benefit_cap_reached (with `cap` and
    `limit`), invoice_already_claimed.
    """
    member_id = member_id_of(principal, MEMBERS_ONLY)
    data = validated(data)
    applied_on = clock.local_date(now, timezone)
    digest = request_hash(data)
    try:
        async with conn.transaction():
            await conn.execute(queries.member_lock, member_id)
            if idempotency_key:
                earlier = await conn.fetchrow(queries.application_by_key, member_id, idempotency_key)
                if earlier is not None:
                    if earlier["request_hash"] != digest:
                        raise DomainError("idempotency_key_reused")
                    return await _view(conn, earlier["id"]), True
            application_id = await _insert(conn, principal, data, applied_on, now, idempotency_key, digest)
    except asyncpg.UniqueViolationError as exc:
        if exc.constraint_name == "applications_invoice_key":
            raise DomainError("invoice_already_claimed", field="invoice_number") from exc
        raise
    return await _view(conn, application_id), False


async def _insert(
    conn: asyncpg.Connection, principal: Principal, data: ApplicationIn, applied_on: date, now: datetime,
    idempotency_key: str | None, digest: bytes,
) -> int:  # fmt: skip
    member_id = member_id_of(principal, MEMBERS_ONLY)
    profile = await catalog.member_profile(conn, member_id)
    benefit = await catalog.require_eligible(conn, member_id, data.benefit_code, applied_on, profile=profile)
    if benefit["kind"] not in GRANT_KINDS:
        raise DomainError("benefit_not_applicable", kind=benefit["kind"])
    amount = check_application(benefit, data, applied_on)
    org = await catalog.reviewing_org(conn, benefit["id"], profile["org_id"], applied_on)
    counts = await conn.fetchrow(queries.cap_counts, member_id, benefit["id"], applied_on)
    catalog.require_within_caps(benefit, this_year=counts["this_year"], lifetime=counts["lifetime"])
    invoice = data.invoice if benefit["needs_invoice"] else None
    payee = data.payee
    return await conn.fetchval(  # type: ignore[no-any-return]
        queries.application_insert,
        member_id, benefit["id"], applied_on, org["id"], org["path"], amount, benefit["currency"],
        invoice.issuer.strip() if invoice else None,
        normalize_invoice_number(invoice.number) if invoice else None,
        invoice.amount_minor if invoice else None, invoice.issued_on if invoice else None,
        msgspec.json.encode(clean_details(data.details)).decode(),
        payee.name.strip(), normalize_account(payee.account), payee.bank.strip(), idempotency_key or None, digest,
        now, principal.actor,
    )  # fmt: skip


# ------------------------------------------------------------------ the member's own


async def list_mine(conn: asyncpg.Connection, principal: Principal) -> list[dict[str, Any]]:
    """The member's applications, newest first."""
    rows = await conn.fetch(queries.applications_of_member, member_id_of(principal, MEMBERS_ONLY), MEMBER_LIST_MAX)
    return [iso_values(dict(row)) for row in rows]


async def get_mine(conn: asyncpg.Connection, principal: Principal, application_id: int) -> dict[str, Any]:
    """One of the member's applications with its history; another's is not found. Raises application_not_found."""
    application = await _view(conn, application_id)
    if application["member_id"] != member_id_of(principal, MEMBERS_ONLY):
        raise DomainError("application_not_found")
    return application


# ------------------------------------------------------------------ review


def review_scope(principal: Principal) -> str | None:
    """The path prefix a reviewer's lists are limited to; None: everywhere (federation admin, finance)."""
    if principal.role in (Role.FEDERATION_ADMIN, Role.FINANCE_OFFICER):
        return None
    if principal.role == Role.ORG_REVIEWER and principal.org_path:
        return principal.org_path
    raise DomainError("forbidden", "reviewing needs an org reviewer")


async def list_for_review(
    conn: asyncpg.Connection, principal: Principal, status: str | None, after_id: int, limit: int
) -> dict[str, Any]:
    """Applications routed into the caller's subtree by id, of one status, all waiting for a decision (`waiting`:
    submitted and under review) or all (anything else); with counts per status."""
    scope = review_scope(principal)
    statuses = list(REVIEWABLE) if status == WAITING else [status] if status in STATUSES else None
    limit = max(1, min(limit, PAGE_LIMIT_MAX))
    rows = await conn.fetch(queries.review_list, scope, statuses, after_id, limit)
    counts = {row["status"]: row["applications"] for row in await conn.fetch(queries.review_counts, scope)}
    items = [iso_values(dict(row)) for row in rows]
    return {"applications": items, "counts": counts, "next_after": items[-1]["id"] if len(items) == limit else None}


async def get_for_review(conn: asyncpg.Connection, principal: Principal, application_id: int) -> dict[str, Any]:
    """An application with its member (card number masked) and history, if routed into the caller's subtree.

    Raises DomainError application_not_found, forbidden (another subtree's).
    """
    review_scope(principal)
    application = await _view(conn, application_id)
    if not principal.may_see_org_path(application["org_path"]):
        raise DomainError("forbidden", "this application is reviewed by another org")
    application["payee_account"] = mask_account(application["payee_account"])
    return application


async def open_review(
    conn: asyncpg.Connection, principal: Principal, application_id: int, now: datetime
) -> dict[str, Any]:
    """submitted → under_review; one already under review stays. Raises not found, forbidden, status conflict."""
    async with conn.transaction():
        found = await _lock_for_review(conn, principal, application_id)
        if found["status"] == "submitted":
            await conn.fetch(queries.application_review_open, application_id, now, principal.actor)
            await audit.record(conn, principal, "application.review_opened", f"application:{application_id}")
        elif found["status"] != "under_review":
            raise DomainError("application_status_conflict", status=found["status"])
    return await _view(conn, application_id)


async def approve(
    conn: asyncpg.Connection, principal: Principal, application_id: int, data: ApproveIn, now: datetime
) -> dict[str, Any]:
    """Approve an amount (at most the one requested) and post Dr union:benefit_expense / Cr member grants_payable,
    in one transaction. Raises DomainError application_not_found, forbidden, application_status_conflict,
    validation_failed (more than requested, a note too long)."""
    async with conn.transaction():
        found = await _lock_for_review(conn, principal, application_id)
        if found["status"] not in REVIEWABLE:
            raise DomainError("application_status_conflict", status=found["status"])
        data = validated(data, "review_err")
        amount = data.amount_minor if data.amount_minor is not None else found["requested_minor"]
        if amount > found["requested_minor"]:
            over = problem("amount", "review_err_amount_over_requested", "more than the amount requested")
            raise DomainError("validation_failed", over["message"], errors=[over])
        note = data.note.strip() or None
        posted = await conn.fetchrow(queries.application_approve, application_id, amount, now, principal.actor, note)
        if posted is None or posted["ledger_transaction_id"] is None:
            raise RuntimeError(f"application {application_id} locked as reviewable but not approved")
        await audit.record(conn, principal, "application.approved", f"application:{application_id}",
                           amount_minor=amount, ledger_transaction_id=posted["ledger_transaction_id"])  # fmt: skip
    return await _view(conn, application_id)


async def reject(
    conn: asyncpg.Connection, principal: Principal, application_id: int, data: RejectIn, now: datetime
) -> dict[str, Any]:
    """Reject with a reason (required). Raises application_not_found, forbidden, application_status_conflict,
    validation_failed (none, or too long)."""
    async with conn.transaction():
        found = await _lock_for_review(conn, principal, application_id)
        if found["status"] not in REVIEWABLE:
            raise DomainError("application_status_conflict", status=found["status"])
        reason = validated(data, "review_err").reason.strip()
        if not reason:
            missing = problem("reason", "review_err_reason_missing", "a rejection needs a reason")
            raise DomainError("validation_failed", missing["message"], errors=[missing])
        await conn.fetch(queries.application_reject, application_id, now, principal.actor, reason)
        await audit.record(conn, principal, "application.rejected", f"application:{application_id}", reason=reason)
    return await _view(conn, application_id)


async def _lock_for_review(conn: asyncpg.Connection, principal: Principal, application_id: int) -> dict[str, Any]:
    if principal.role not in REVIEWERS:
        raise DomainError("forbidden", "only a reviewer or a federation admin decides applications")
    found = await conn.fetchrow(queries.application_lock, application_id)
    if found is None:
        raise DomainError("application_not_found")
    if not principal.may_see_org_path(found["org_path"]):
        raise DomainError("forbidden", "this application is reviewed by another org")
    return dict(found)


# ------------------------------------------------------------------ reading


async def _view(conn: asyncpg.Connection, application_id: int) -> dict[str, Any]:
    row = await conn.fetchrow(queries.application_get, application_id)
    if row is None:
        raise DomainError("application_not_found")
    application = dict(row)
    application["details"] = msgspec.json.decode(application["details"])
    number = application.pop("card_number")
    application["masked_card"] = mask_card(number) if number else None
    application["events"] = [iso_values(dict(event)) for event in await conn.fetch(queries.application_events,
                                                                                  application_id)]  # fmt: skip
    return iso_values(application)


async def follow_payouts(
    conn: asyncpg.Connection, actor: str, moves: Sequence[tuple[int, str, str | None, int | None]], now: datetime
) -> int:
    """Move applications after their payouts: (application id, disbursed | paid | failed, note, ledger transaction).

    Call it inside the caller's transaction (settlement's, which also moves the payouts). The database refuses a
    move the flow does not allow. The number of applications moved.
    """
    if not moves:
        return 0
    ids, statuses, notes, postings = (list(column) for column in zip(*moves, strict=True))
    rows = await conn.fetch(queries.applications_follow, ids, statuses, notes, postings, now, actor)
    return len(rows)
