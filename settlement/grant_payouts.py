"""Grant payouts: finance pays approved grant applications to members' bank accounts through the payout rail.

A payout goes approved → submitting → transferred → paid | failed, as merchant payout instructions do, and its
application follows: disbursed when transferred, paid or failed when the rail says so. Disbursing posts
Dr member:<id>:grants_payable / Cr payouts:in_transit; paid posts Dr payouts:in_transit / Cr union:cash; failed
reverses the disbursement, and the application may be disbursed again. No transaction is open across a rail call.

Grants are paid by bank file only. Stripe Connect pays connected accounts, and members have none (nor does Stripe
pay out CNY for a mainland platform): with that rail configured, disbursing a grant answers rail_unavailable.
A grant payout's reference in the bank file is G and its id (G900000001): a merchant payout's is its bare id, so
neither result file can settle the other's lines (platform/decisions/0006-grants-paid-by-bank-file.md).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import msgspec

from cards import applications
from settlement.batches import BankFile
from settlement.rails import (
    BANK_FILE_HEADER,
    RESULT_COLUMNS,
    RESULT_STATUSES,
    BankFileRail,
    Instruction,
    Payee,
    PayoutRail,
    RailEvent,
)
from unioncard import audit
from unioncard.auth import Principal, Role
from unioncard.csvfile import CsvRejected, problem, read_rows, rejection_as_domain_error
from unioncard.db import Queries
from unioncard.errors import DomainError
from unioncard.jsonish import iso_values
from unioncard.money import format_yuan

queries = Queries(Path(__file__).parent / "grant_payout_queries.sql")

FINANCE = frozenset({Role.FINANCE_OFFICER, Role.FEDERATION_ADMIN})
SENT = "transferred"  # with the bank: only such a payout is confirmed paid or failed
# A payout still submitting this long after a take was left by a take that never finished (its file never
# reached finance): the next take puts it in its own file. A take itself lasts well under a second.
STALE_SUBMITTING = timedelta(minutes=10)
PAGE_LIMIT_MAX = 1000
REFERENCE_PREFIX = "G"  # a grant payout's reference on the bank file; a merchant payout's is its bare id


class DisburseIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Applications to pay; none means every approved one. A failed one is paid again only when named."""

    application_ids: list[int] | None = None


class GrantConfirmIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Payouts finance saw paid: those named, or every transferred one of a bank file."""

    payout_ids: list[int] | None = None
    bank_file_id: int | None = None


def grant_rail(rail: PayoutRail) -> BankFileRail:
    """The rail grants are paid through. Raises DomainError rail_unavailable for any rail but the bank file."""
    if not isinstance(rail, BankFileRail):
        raise DomainError("rail_unavailable", f"grants are paid by bank file; the payout rail is {rail.name}, and "
                          "members have no accounts on it")  # fmt: skip
    return rail


async def disburse(
    conn: asyncpg.Connection, principal: Principal, data: DisburseIn, rail: PayoutRail, now: datetime
) -> dict[str, Any]:
    """Open a payout for each approved application (those named, or all) that has none live, and post it.

    Disbursing again opens nothing for an application already on its way; one named but not opened (not approved
    or failed, or already on its way) is listed as skipped. Raises forbidden, rail_unavailable.
    """
    _require_finance(principal)
    grant_rail(rail)
    statuses = ["approved"] if data.application_ids is None else ["approved", "failed"]
    async with conn.transaction():
        await conn.execute(queries.disbursement_lock)
        opened = [dict(row) for row in await conn.fetch(queries.payouts_open, data.application_ids, statuses,
                                                        rail.name, principal.actor, now)]  # fmt: skip
        if opened:
            await audit.record(conn, principal, "grants.disbursed", "grant_payouts",
                               payouts={row["id"]: row["application_id"] for row in opened})  # fmt: skip
    paying = {row["application_id"] for row in opened}
    skipped = [number for number in dict.fromkeys(data.application_ids or []) if number not in paying]
    return {"opened": opened, "skipped": skipped}


async def take_bank_file(conn: asyncpg.Connection, principal: Principal, rail: PayoutRail, now: datetime) -> BankFile:
    """The bank's bulk-payment file of every payout not yet in one; each moves approved → submitting → transferred
    and its application to disbursed. The move to submitting is committed before the rail is called, the outcome
    after. Raises DomainError forbidden, rail_unavailable, conflict (nothing to pay), validation_failed (payee).
    """
    _require_finance(principal)
    bank = grant_rail(rail)
    for row in await conn.fetch(queries.payouts_approved):
        readiness = bank.onboard_payee(_instruction(dict(row)).payee)
        if readiness != "ready":
            raise DomainError("validation_failed", f"payout {row['id']}: {readiness}")
    async with conn.transaction():
        await conn.execute(queries.disbursement_lock)
        file_id = await conn.fetchval(queries.bank_file_insert, principal.actor, now)
        taken = await conn.fetch(queries.payouts_take, file_id, principal.actor, now, now - STALE_SUBMITTING)
        if not taken:
            raise DomainError("conflict", "no grant payout is waiting for a bank file: disburse approved grants first")
        await audit.record(conn, principal, "grants.bank_file_taken", f"grant_bank_file:{file_id}",
                           payouts=[row["payout_id"] for row in taken])  # fmt: skip
    rows = [dict(row) for row in await conn.fetch(queries.payouts_of_file, file_id)]
    items = [_instruction(row) for row in rows]
    sending = [_instruction(row) for row in rows if row["status"] == "submitting"]
    outcomes = [await bank.submit(item) for item in sending]  # no transaction open across the rail
    await _record_submitted(conn, principal, outcomes, now)
    return BankFile(grant_file_csv(items), f"grant-file-{file_id}.csv")


async def _record_submitted(conn: asyncpg.Connection, principal: Principal, outcomes: list[RailEvent],
                            now: datetime) -> None:  # fmt: skip
    transferred = [event.instruction_id for event in outcomes if event.status == SENT]
    async with conn.transaction():
        moved = await conn.fetch(queries.payouts_move, transferred, ["submitting"], SENT, principal.actor, now)
        moves = [(row["application_id"], "disbursed", f"payout {row['id']}", row["ledger_transaction_id"])
                 for row in moved]  # fmt: skip
        await applications.follow_payouts(conn, principal.actor, moves, now)
    failed = [event for event in outcomes if event.status == "failed"]
    if failed:
        await apply_outcomes(conn, principal, failed, ["submitting"], now)


async def copy_bank_file(conn: asyncpg.Connection, principal: Principal, file_id: int, rail: PayoutRail) -> BankFile:
    """A bank file taken before, again, named as a copy; no payout moves, and the copy is audited (it carries whole
    account numbers). Raises forbidden, rail_unavailable, not_found."""
    _require_finance(principal)
    grant_rail(rail)
    async with conn.transaction():
        if await conn.fetchrow(queries.bank_file_get, file_id) is None:
            raise DomainError("not_found", f"no grant bank file {file_id}")
        items = [_instruction(dict(row)) for row in await conn.fetch(queries.payouts_of_file, file_id)]
        await audit.record(conn, principal, "grants.bank_file_copied", f"grant_bank_file:{file_id}",
                           payouts=[item.id for item in items])  # fmt: skip
    return BankFile(grant_file_csv(items), f"grant-file-{file_id}-copy.csv")


def grant_file_csv(instructions: Iterable[Instruction]) -> bytes:
    """The bank's bulk-payment file as the rail writes it (BankFileRail.export_batch_csv), each line's reference
    G and the payout's id."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(BANK_FILE_HEADER)
    for item in instructions:
        payee = item.payee
        writer.writerow([payee.name or "", payee.account or "", payee.bank or "", format_yuan(item.amount_minor),
                         item.currency, f"{REFERENCE_PREFIX}{item.id}"])  # fmt: skip
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def read_grant_result(data: bytes) -> tuple[list[RailEvent], list[int]]:
    """The bank's result file (reference, status paid/failed, reason) as events for grant payouts (references G…),
    and the bare numbers it names (merchant payouts': not ours). Raises CsvRejected listing every bad line."""
    events: dict[int, RailEvent] = {}
    foreign: list[int] = []
    errors = []
    for line, row in read_rows(data, RESULT_COLUMNS, {"reference", "status"}):
        status = RESULT_STATUSES.get(row["status"].strip().lower())
        reference = row["reference"].strip().upper()
        number = reference.removeprefix(REFERENCE_PREFIX)
        readable = number.isascii() and number.isdigit() and len(number) <= 18
        if not readable:
            errors.append(problem(line, "reference", "a grant payout's reference is G and its number, e.g. G900000001"))
        if status is None:
            errors.append(problem(line, "status", "status is paid or failed"))
        if status is None or not readable:
            continue
        if number == reference:  # a bare number: a merchant payout's reference
            foreign.append(int(number))
            continue
        event = RailEvent(instruction_id=int(number), status=status, reason=row["reason"] or None)
        earlier = events.setdefault(event.instruction_id, event)
        if earlier.status != event.status:
            errors.append(problem(line, "status", f"reference {reference} is both {earlier.status} and {status}"))
    if errors:
        raise CsvRejected(errors)
    return list(events.values()), list(dict.fromkeys(foreign))


async def confirm_paid(
    conn: asyncpg.Connection, principal: Principal, data: GrantConfirmIn, rail: PayoutRail, now: datetime
) -> dict[str, Any]:
    """Finance saw these payouts paid (those named, or the transferred ones of a bank file); confirming again
    changes nothing. Raises forbidden, rail_unavailable, validation_failed (neither named), not_found (file)."""
    _require_finance(principal)
    bank = grant_rail(rail)
    if data.payout_ids is None and data.bank_file_id is None:
        raise DomainError("validation_failed", "name the payouts (payout_ids) or their bank file (bank_file_id)")
    chosen = list(data.payout_ids or [])
    if data.bank_file_id is not None:
        if await conn.fetchrow(queries.bank_file_get, data.bank_file_id) is None:
            raise DomainError("not_found", f"no grant bank file {data.bank_file_id}")
        chosen += [row["id"] for row in await conn.fetch(queries.payouts_of_file, data.bank_file_id)
                   if row["status"] == SENT]  # fmt: skip
    return await apply_outcomes(conn, principal, bank.confirm_paid(chosen), [SENT], now)


async def import_bank_result(
    conn: asyncpg.Connection, principal: Principal, body: bytes, rail: PayoutRail, now: datetime
) -> dict[str, Any]:
    """The bank's result file for grant payouts (reference G…, status paid/failed, reason), forward only; a reference
    that is no grant payout (a merchant instruction's bare number, say) is listed unknown. Raises import_rejected
    (nothing applied)."""
    _require_finance(principal)
    grant_rail(rail)
    with rejection_as_domain_error():
        events, foreign = read_grant_result(body)
    found = await apply_outcomes(conn, principal, events, [SENT], now)
    found["unknown"] = list(dict.fromkeys([*found["unknown"], *foreign]))
    return found


async def apply_outcomes(
    conn: asyncpg.Connection, principal: Principal, events: list[RailEvent], from_statuses: list[str], now: datetime
) -> dict[str, Any]:
    """Apply the rail's paid/failed to payouts in one of `from_statuses`, with their postings, and move their
    applications to paid or failed, in one transaction. A payout already settled stays as it is."""
    requested = list(dict.fromkeys(event.instruction_id for event in events))
    async with conn.transaction():
        known = {row["id"] for row in await conn.fetch(queries.payouts_known, requested)}
        mine = [event for event in events if event.instruction_id in known]
        rows = await conn.fetch(
            queries.payouts_settle, [event.instruction_id for event in mine], [event.status for event in mine],
            [event.reason for event in mine], from_statuses, now, principal.actor,
        )  # fmt: skip
        settled = [dict(row) for row in rows]
        moves = [(row["application_id"], row["status"], row["failure_reason"] or f"payout {row['id']}",
                  row["ledger_transaction_id"]) for row in settled]  # fmt: skip
        await applications.follow_payouts(conn, principal.actor, moves, now)
        if settled:
            await audit.record(conn, principal, "grants.payouts_settled", "grant_payouts",
                               settled={row["id"]: row["status"] for row in settled})  # fmt: skip
    moved = {row["id"] for row in settled}
    return {
        "applied": [{"payout_id": row["id"], "application_id": row["application_id"], "status": row["status"]}
                    for row in settled],
        "unchanged": [number for number in requested if number in known and number not in moved],
        "unknown": [number for number in requested if number not in known],
    }  # fmt: skip


# ------------------------------------------------------------------ reading


async def list_payouts(
    conn: asyncpg.Connection, principal: Principal, status: str | None, bank_file_id: int | None, after_id: int,
    limit: int,
) -> list[dict[str, Any]]:  # fmt: skip
    """Grant payouts by id, of a status and a bank file or all."""
    _require_finance(principal)
    rows = await conn.fetch(queries.payouts_list, status, bank_file_id, after_id, max(1, min(limit, PAGE_LIMIT_MAX)))
    return [iso_values(dict(row)) for row in rows]


async def desk(conn: asyncpg.Connection, principal: Principal, shown: int = 100) -> dict[str, Any]:
    """What finance's grants page shows: applications awaiting payment, payouts on their way, the latest files."""
    _require_finance(principal)
    waiting = [dict(row) for row in await conn.fetch(queries.awaiting_disbursement, shown)]
    unfiled = [dict(row) for row in await conn.fetch(queries.payouts_list, "approved", None, 0, shown)]
    files = [dict(row) for row in await conn.fetch(queries.bank_files_list, 20)]
    failed = [dict(row) for row in await conn.fetch(queries.payouts_list, "failed", None, 0, shown)]
    return {"waiting": waiting, "unfiled": unfiled, "files": files, "failed": failed}


def _require_finance(principal: Principal) -> None:
    if principal.role not in FINANCE:
        raise DomainError("forbidden", "grant payouts are finance's")


def _instruction(row: dict[str, Any]) -> Instruction:
    # The rail's payee is merchant-shaped; a member's grant has no merchant (0), only the bank account.
    payee = Payee(merchant_id=0, name=row["payee_name"], account=row["payee_account"], bank=row["payee_bank"])
    return Instruction(id=row["id"], batch_id=row["bank_file_id"] or 0, amount_minor=row["amount_minor"],
                       currency=row["currency"], payee=payee, reference=row["rail_reference"])  # fmt: skip
