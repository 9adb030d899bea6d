"""Settlement batches: create from a reconciled claim, approve once, pay through a rail; each owns its transaction."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg
import msgspec

from settlement.rails import BankFileRail, Instruction, Payee, PayoutRail, RailEvent
from unioncard import audit
from unioncard.auth import Principal, Role
from unioncard.csvfile import rejection_as_domain_error
from unioncard.db import Queries
from unioncard.errors import DomainError
from unioncard.jsonish import iso_values

queries = Queries(Path(__file__).parent / "batch_queries.sql")

FINANCE = frozenset({Role.FINANCE_OFFICER, Role.FEDERATION_ADMIN})
LIVE = ["approved", "submitting", "transferred"]  # an instruction the rail may still pay
UNSENT = ["approved", "submitting"]  # not yet with the rail, or sent without an answer
SENT = "transferred"  # with the rail: only such an instruction can be confirmed paid
PAGE_LIMIT_MAX = 1000


class ExcludedLineIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    line_no: int
    reason: str


class BatchIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A batch for a reconciled claim; matched lines may be excluded, each with a reason."""

    claim_id: int
    excluded_lines: list[ExcludedLineIn] = []


class ConfirmPaidIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Instruction ids finance saw paid; none means every live instruction of the batch."""

    instruction_ids: list[int] | None = None


async def create_batch(conn: asyncpg.Connection, principal: Principal, data: BatchIn) -> dict[str, Any]:
    """A draft batch of the claim's matched lines. Raises DomainError not_found, validation_failed, conflict."""
    _require_finance(principal)
    claim = await conn.fetchrow(queries.claim_for_batch, data.claim_id)
    if claim is None:
        raise DomainError("not_found", f"no claim {data.claim_id}")
    if claim["status"] != "reconciled":
        raise DomainError("conflict", f"claim {data.claim_id} is not reconciled")
    _check_exclusions(data.excluded_lines, set(claim["matched_lines"]))
    numbers = [line.line_no for line in data.excluded_lines]
    reasons = [line.reason.strip() for line in data.excluded_lines]
    try:
        async with conn.transaction():
            batch_id = await conn.fetchval(queries.batch_insert, data.claim_id, principal.actor)
            await conn.fetch(queries.batch_lines_insert, batch_id, numbers, reasons)
            await conn.execute(queries.batch_gross_set, batch_id)
            await audit.record(conn, principal, "settlement.batch_created", f"batch:{batch_id}",
                               claim_id=data.claim_id, excluded=numbers)  # fmt: skip
    except asyncpg.UniqueViolationError as exc:
        if exc.constraint_name == "settlement_batches_claim_key":
            raise DomainError("conflict", f"claim {data.claim_id} already has a batch") from exc
        raise
    return await _view(conn, batch_id)


def _check_exclusions(excluded: list[ExcludedLineIn], matched: set[int]) -> None:
    errors = []
    seen: set[int] = set()
    for index, line in enumerate(excluded):
        if line.line_no not in matched:
            errors.append({"index": index, "line_no": line.line_no, "message": "not a matched line of the claim"})
        if line.line_no in seen:
            errors.append({"index": index, "line_no": line.line_no, "message": "excluded twice"})
        if not line.reason.strip():
            errors.append({"index": index, "line_no": line.line_no, "message": "an exclusion needs a reason"})
        seen.add(line.line_no)
    if errors:
        raise DomainError("validation_failed", f"{len(errors)} problem(s) in excluded_lines", errors=errors)


async def approve_batch(conn: asyncpg.Connection, principal: Principal, batch_id: int, rail: str) -> dict[str, Any]:
    """Approve a draft: settle its sales, net refunds, take clawbacks, post Dr merchant payable / Cr in transit.

    Approving an approved batch changes nothing and answers the same. Raises DomainError not_found, conflict.
    """
    _require_finance(principal)
    try:
        async with conn.transaction():
            batch = await conn.fetchrow(queries.batch_lock, batch_id)  # a second approver waits here
            if batch is None:
                raise DomainError("not_found", f"no batch {batch_id}")
            if batch["status"] == "draft":
                await conn.execute(queries.merchant_settlement_lock, batch["merchant_id"])
                await conn.execute(queries.settled_sales_insert, batch_id)
                await conn.execute(queries.refunds_net, batch_id)
                await conn.execute(queries.batch_lines_net, batch_id)
                await conn.execute(queries.clawbacks_take, batch_id)
                payable = await conn.fetchval(queries.batch_approve, batch_id, principal.actor)
                if payable is None:
                    raise RuntimeError(f"batch {batch_id} locked as draft but not approved")
                await conn.fetch(queries.instruction_open, batch_id, rail, None, principal.actor)
                await audit.record(conn, principal, "settlement.batch_approved", f"batch:{batch_id}",
                                   payable_minor=payable)  # fmt: skip
    except asyncpg.UniqueViolationError as exc:
        if exc.constraint_name == "settled_sales_pk":
            raise DomainError("conflict", "a sale of this batch is already settled in another batch") from exc
        raise
    return await _view(conn, batch_id)


async def discard_batch(conn: asyncpg.Connection, principal: Principal, batch_id: int) -> dict[str, Any]:
    """Discard a draft batch (made with the wrong exclusions, say): its claim may be batched again, and the sales
    it held may be claimed again. Raises DomainError not_found, conflict (approved: nothing is undone)."""
    _require_finance(principal)
    async with conn.transaction():
        batch = await conn.fetchrow(queries.batch_lock, batch_id)  # an approver of the same batch waits, or we do
        if batch is None:
            raise DomainError("not_found", f"no batch {batch_id}")
        if batch["status"] != "draft":
            raise DomainError("conflict", f"batch {batch_id} is {batch['status']}: only a draft is discarded")
        gone = await conn.fetchrow(queries.batch_discard, batch_id)
        await audit.record(conn, principal, "settlement.batch_discarded", f"batch:{batch_id}",
                           claim_id=gone["claim_id"])  # fmt: skip
    return {"discarded": batch_id, "claim_id": gone["claim_id"]}


async def get_batch(conn: asyncpg.Connection, principal: Principal, batch_id: int) -> dict[str, Any]:
    """The batch with its lines, clawbacks and instructions; another merchant's is not found. Raises not_found."""
    batch = await conn.fetchrow(queries.batch_get, batch_id)
    if batch is None or not principal.may_see_merchant(batch["merchant_id"]):
        raise DomainError("not_found", f"no batch {batch_id}")
    return await _view(conn, batch_id)


async def list_batches(
    conn: asyncpg.Connection, principal: Principal, merchant_id: int | None, after_id: int, limit: int
) -> list[dict[str, Any]]:
    """Batches by id; a merchant's admin sees only its own merchant's."""
    if principal.role not in FINANCE:
        merchant_id = principal.merchant_id if principal.merchant_id is not None else -1
    rows = await conn.fetch(queries.batch_list, merchant_id, after_id, max(1, min(limit, PAGE_LIMIT_MAX)))
    return [iso_values(dict(row)) for row in rows]


class BankFile(msgspec.Struct, frozen=True):
    body: bytes
    filename: str
    """batch-N-bank-file.csv when this take released instructions; …-copy.csv when it only repeats earlier lines."""


async def export_bank_file(
    conn: asyncpg.Connection, principal: Principal, batch_id: int, rail: BankFileRail
) -> BankFile:
    """The batch's live instructions as the bank's bulk-payment file; each moves approved → submitting → transferred.

    The intent is committed before the rail is called and the outcome recorded after. Taking it again gives the
    same lines, in a file named as a copy. Raises DomainError not_found, conflict (no live instruction),
    validation_failed (payee).
    """
    _require_finance(principal)
    await _approved_batch(conn, batch_id)
    live = [_instruction(row) for row in await _instructions(conn, batch_id) if row["status"] in LIVE]
    if not live:
        raise DomainError("conflict", f"batch {batch_id} has nothing to pay")
    for item in live:
        readiness = rail.onboard_payee(item.payee)
        if readiness != "ready":
            raise DomainError("validation_failed", f"merchant {item.payee.merchant_id}: {readiness}")
    async with conn.transaction():
        released = await conn.fetch(queries.instructions_move, [item.id for item in live], ["approved"], "submitting",
                                    principal.actor)  # fmt: skip
    # Read again: an instruction canceled since the first read is not in the file.
    items = [_instruction(row) for row in await _instructions(conn, batch_id) if row["status"] in LIVE]
    if not items:
        raise DomainError("conflict", f"batch {batch_id} has nothing to pay")
    outcomes = [await rail.submit(item) for item in items]  # no transaction open across the rail
    async with conn.transaction():
        for event in outcomes:
            await conn.fetch(queries.instructions_move, [event.instruction_id], ["submitting"], event.status,
                             principal.actor)  # fmt: skip
    name = f"batch-{batch_id}-bank-file{'' if released else '-copy'}.csv"
    return BankFile(rail.export_batch_csv(items), name)


async def pay_batch(conn: asyncpg.Connection, principal: Principal, batch_id: int, rail: PayoutRail) -> dict[str, Any]:
    """Hand the batch's unsent instructions to the rail, one call each, with no transaction open across the calls.

    approved → submitting is committed first. One already submitting (no answer last time) is first looked up at
    the rail (Stripe: the batch's transfers): one found is transferred without sending; it is sent again under the
    same key only when the rail made none. The answer moves it to transferred, to failed (the approval reversed),
    or leaves it submitting (no answer; the reason is audited).
    Raises DomainError not_found, conflict (a rail paid by file; nothing to pay), validation_failed (payee).
    """
    _require_finance(principal)
    if isinstance(rail, BankFileRail):
        raise DomainError("conflict", f"the {rail.name} rail is paid by file: download it and confirm",
                          bank_file=f"/api/settlement/v1/batches/{batch_id}/bank-file.csv")  # fmt: skip
    await _approved_batch(conn, batch_id)
    rows = await _instructions(conn, batch_id)
    if not any(row["status"] in LIVE for row in rows):
        raise DomainError("conflict", f"batch {batch_id} has nothing to pay")
    items = [_instruction(row) for row in rows if row["status"] in UNSENT]
    unanswered = {row["id"] for row in rows if row["status"] == "submitting"}  # sent before, the answer lost
    for item in items:
        readiness = rail.onboard_payee(item.payee)
        if readiness != "ready":
            raise DomainError("validation_failed", f"merchant {item.payee.merchant_id}: {readiness}")
    async with conn.transaction():
        # Only what this call moved is sent: an instruction canceled since it was read stays unpaid.
        moved = await conn.fetch(queries.instructions_move, [item.id for item in items], UNSENT, "submitting",
                                 principal.actor)  # fmt: skip
        sending = {row["instruction_id"] for row in moved}
        await audit.record(conn, principal, "settlement.payouts_submitted", f"batch:{batch_id}",
                           instructions=sorted(sending), rail=rail.name)  # fmt: skip
    outcomes: list[RailEvent] = []
    for item in (item for item in items if item.id in sending):  # no transaction open across the rail
        # Sent before without an answer: sent again only when the rail made nothing for it (an idempotency key
        # does not outlive a day at Stripe); else its word stands (transferred, failed, or submitting: no answer).
        found = await rail.fetch_status(item) if item.id in unanswered else None
        outcomes.append(found if found is not None else await rail.submit(item))
    async with conn.transaction():
        for event in outcomes:
            if event.status == "transferred":
                await mark_transferred(conn, principal.actor, event)
        waiting = {event.instruction_id: event.reason for event in outcomes if event.status == "submitting"}
        if waiting:
            await audit.record(conn, principal, "settlement.payouts_unanswered", f"batch:{batch_id}",
                               reasons=waiting, rail=rail.name)  # fmt: skip
    failed = [event for event in outcomes if event.status == "failed"]
    if failed:
        await apply_events(conn, principal, failed, ["submitting"])
    sent = [{"instruction_id": e.instruction_id, "status": e.status, "reason": e.reason, "reference": e.reference}
            for e in outcomes]  # fmt: skip
    return {"sent": sent, "batch": await _view(conn, batch_id)}


async def mark_transferred(conn: asyncpg.Connection, actor: str, event: RailEvent) -> bool:
    """Keep the rail's reference and move a submitting instruction to transferred; False when it was not submitting.

    actor is who says so: a staff principal's actor, or the rail itself ("stripe:webhook").
    """
    if event.reference is not None:
        await conn.fetch(queries.instruction_reference_set, event.instruction_id, event.reference)
    moved = await conn.fetch(queries.instructions_move, [event.instruction_id], ["submitting"], "transferred", actor)
    return bool(moved)


async def settle_reported(conn: asyncpg.Connection, actor: str, event: RailEvent) -> bool:
    """Apply an outcome the rail reported by itself (paid; failed: the approval reversed) to a live instruction,
    forward only, with its postings; actor is the rail's own ("stripe:webhook"), never a staff principal.

    Call it inside the caller's transaction, which also audits it. False when the instruction was not live.
    """
    rows = await conn.fetch(queries.instructions_settle, [event.instruction_id], [event.status], [event.reason],
                            LIVE, actor)  # fmt: skip
    return bool(rows)


async def confirm_paid(
    conn: asyncpg.Connection, principal: Principal, batch_id: int, data: ConfirmPaidIn, rail: PayoutRail
) -> dict[str, Any]:
    """Finance confirms the batch's instructions with the rail (all transferred ones, or those named) paid.

    Only a transferred instruction can be paid: one never handed to the rail is listed unchanged. Raises not_found.
    """
    _require_finance(principal)
    await _approved_batch(conn, batch_id)
    own = {row["id"]: row["status"] for row in await _instructions(conn, batch_id)}
    chosen = data.instruction_ids if data.instruction_ids is not None else [n for n, s in own.items() if s == SENT]
    foreign = [number for number in chosen if number not in own]
    if foreign:
        raise DomainError("not_found", f"instructions {foreign} are not of batch {batch_id}")
    result = await apply_events(conn, principal, rail.confirm_paid(chosen), [SENT])
    return {**result, "batch": await _view(conn, batch_id)}


async def import_bank_result(
    conn: asyncpg.Connection, principal: Principal, data: bytes, rail: BankFileRail
) -> dict[str, Any]:
    """The bank's result file: each line paid or failed, forward only; a reference to an instruction of another
    rail is listed unknown, not applied. Raises DomainError import_rejected.
    """
    _require_finance(principal)
    with rejection_as_domain_error():
        events = rail.import_result_file(data)
    return await apply_events(conn, principal, events, only_rail=rail.name)


async def apply_events(
    conn: asyncpg.Connection,
    principal: Principal,
    events: list[RailEvent],
    from_statuses: list[str] | None = None,
    *,
    only_rail: str | None = None,
) -> dict[str, Any]:
    """Apply rail outcomes in one transaction; an instruction already paid, failed or retried stays as it is.

    paid posts Dr payouts:in_transit / Cr union:cash; failed reverses the approval. Unknown ids (and with
    `only_rail`, those of another rail) are listed, not applied.
    """
    requested = [event.instruction_id for event in events]
    async with conn.transaction():
        rails = {row["id"]: row["rail"] for row in await conn.fetch(queries.instruction_batches, requested)}
        known = {number for number, name in rails.items() if only_rail is None or name == only_rail}
        events = [event for event in events if event.instruction_id in known]
        rows = await conn.fetch(
            queries.instructions_settle, [event.instruction_id for event in events],
            [event.status for event in events], [event.reason for event in events], from_statuses or LIVE,
            principal.actor,
        )  # fmt: skip
        applied = [dict(row) for row in rows]
        if applied:
            await audit.record(conn, principal, "settlement.payouts_settled", "payouts",
                               applied={row["id"]: row["status"] for row in applied})  # fmt: skip
    moved = {row["id"] for row in applied}
    return {
        "applied": [{"instruction_id": row["id"], "batch_id": row["batch_id"], "status": row["status"]}
                    for row in applied],
        "unchanged": [number for number in requested if number in known and number not in moved],
        "unknown": [number for number in requested if number not in known],
    }  # fmt: skip


async def retry_instruction(
    conn: asyncpg.Connection, principal: Principal, instruction_id: int, rail: str
) -> dict[str, Any]:
    """A failed or canceled instruction is retried as a new one; the approval is posted again.

    Raises not_found, conflict.
    """
    _require_finance(principal)
    async with conn.transaction():
        found = await conn.fetchrow(queries.instruction_lock, instruction_id)
        if found is None:
            raise DomainError("not_found", f"no instruction {instruction_id}")
        await conn.fetchrow(queries.batch_lock, found["batch_id"])
        if not await conn.fetch(queries.instruction_retire, instruction_id, principal.actor):
            raise DomainError("conflict", f"instruction {instruction_id} is {found['status']}, not failed or canceled")
        await conn.fetch(queries.instruction_open, found["batch_id"], rail, instruction_id, principal.actor)
        await audit.record(conn, principal, "settlement.payout_retried", f"instruction:{instruction_id}")
    return await _view(conn, found["batch_id"])


async def cancel_instruction(conn: asyncpg.Connection, principal: Principal, instruction_id: int) -> dict[str, Any]:
    """Cancel an instruction not yet handed to the rail; the approval is reversed. Raises not_found, conflict."""
    _require_finance(principal)
    result = await apply_events(
        conn, principal, [RailEvent(instruction_id=instruction_id, status="canceled")], ["approved"]
    )
    if result["unknown"]:
        raise DomainError("not_found", f"no instruction {instruction_id}")
    if result["unchanged"]:
        raise DomainError("conflict", f"instruction {instruction_id} is already with the rail or settled")
    return result


# ------------------------------------------------------------------ reading


def _require_finance(principal: Principal) -> None:
    if principal.role not in FINANCE:
        raise DomainError("forbidden", "settlement batches are finance's")


async def _approved_batch(conn: asyncpg.Connection, batch_id: int) -> dict[str, Any]:
    batch = await conn.fetchrow(queries.batch_get, batch_id)
    if batch is None:
        raise DomainError("not_found", f"no batch {batch_id}")
    if batch["status"] != "approved":
        raise DomainError("conflict", f"batch {batch_id} is not approved")
    return dict(batch)


async def _instructions(conn: asyncpg.Connection, batch_id: int) -> list[dict[str, Any]]:
    return [dict(row) for row in await conn.fetch(queries.instructions_of_batch, batch_id)]


def _instruction(row: dict[str, Any]) -> Instruction:
    payee = Payee(merchant_id=row["merchant_id"], name=row["payee_name"], account=row["payee_account"],
                  bank=row["payee_bank"], rail_account=row["rail_account"], rail_ready=row["rail_ready"])  # fmt: skip
    return Instruction(id=row["id"], batch_id=row["batch_id"], amount_minor=row["amount_minor"],
                       currency=row["currency"], payee=payee, reference=row["rail_reference"])  # fmt: skip


async def _view(conn: asyncpg.Connection, batch_id: int) -> dict[str, Any]:
    batch = await conn.fetchrow(queries.batch_get, batch_id)
    if batch is None:
        raise DomainError("not_found", f"no batch {batch_id}")
    body = iso_values(dict(batch))
    body["lines"] = [dict(row) for row in await conn.fetch(queries.batch_lines, batch_id)]
    body["clawbacks"] = [dict(row) for row in await conn.fetch(queries.batch_clawbacks, batch_id)]
    if batch["status"] == "draft":
        body["clawback_pending_minor"] = await conn.fetchval(
            queries.clawback_pending, batch["merchant_id"], batch["currency"]
        )
    body["instructions"] = [
        iso_values({key: row[key] for key in ("id", "rail", "amount_minor", "currency", "status", "retry_of",
                                           "failure_reason", "rail_reference", "created_at", "updated_at")})
        for row in await _instructions(conn, batch_id)
    ]  # fmt: skip
    return body
