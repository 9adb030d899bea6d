"""Stripe's signed webhooks: each event stored once by its id and applied forward-only in the same transaction.

How events reach an instruction:
- transfer.* (platform endpoint): the transfer's metadata instruction_id, which we set on every transfer, else
  the transfer id kept on the instruction. created/updated mark a submitting instruction transferred (the answer
  to a call that timed out); reversed in full fails it and reverses the approval; a partial reversal moves nothing.
- payout.paid / payout.failed (connect endpoint): a payout belongs to the connected account, not to our transfer,
  and with Stripe's automatic payouts one payout sweeps the account's whole balance, however many transfers fed
  it. We tie a payout to an instruction only by its metadata instruction_id (a payout made for exactly one
  instruction, by finance on the Dashboard or by a manual-payout schedule). Any other payout is stored as
  'unmapped' and the instruction stays transferred until finance confirms it paid. Matching a swept payout
  through its balance transactions (source = the transfer's destination_payment) is not done.
  payout.failed moves nothing ('unchanged'): the transfer stands and the money is in the connected account's
  balance, so a retry would pay twice. Its reason is kept on a transferred instruction for finance to see; only
  a full transfer.reversed (the money back in our balance) fails the instruction.
- account.updated (connect endpoint): payouts_enabled of our record, unless a newer account.updated was applied.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec

from settlement.batches import mark_transferred, settle_reported
from settlement.payees import queries
from settlement.stripe_rail import SignatureInvalid, construct_event, event_outcome, instruction_of, payout_failure
from unioncard.errors import DomainError
from unioncard.settings import Settings

INSTRUCTION_EVENTS = {
    "platform": frozenset({"transfer.created", "transfer.updated", "transfer.reversed"}),
    "connect": frozenset({"payout.paid", "payout.failed"}),
}


# Who Stripe's events are recorded as: an actor, not a Principal, so no staff or finance check can accept it.
ACTOR = "stripe:webhook"


def secret_for(settings: Settings, endpoint: str) -> str:
    """The signing secret of an endpoint: the platform's, or the connected accounts' (Connect)."""
    return settings.stripe_connect_webhook_secret if endpoint == "connect" else settings.stripe_webhook_secret


async def receive(
    conn: asyncpg.Connection, settings: Settings, endpoint: str, payload: bytes, signature: str | None
) -> dict[str, Any]:
    """Verify an event, store it once, apply it; a duplicate changes nothing.

    Raises DomainError webhook_signature_invalid (bad, tampered, too old or another endpoint's): nothing is stored.
    """
    try:
        event = construct_event(payload, signature, secret_for(settings, endpoint))
    except SignatureInvalid as exc:
        raise DomainError("webhook_signature_invalid", str(exc)) from exc
    async with conn.transaction():
        stored = await conn.fetchval(queries.event_insert, event["id"], endpoint, event["type"],
                                     event.get("account"), payload.decode("utf-8"))  # fmt: skip
        if stored is None:
            return {"id": event["id"], "type": event["type"], "duplicate": True}
        outcome, detail = await _apply(conn, endpoint, event)
        await conn.fetchval(queries.event_outcome_set, event["id"], outcome, detail)
    return {"id": event["id"], "type": event["type"], "duplicate": False, "outcome": outcome, "detail": detail}


async def _apply(conn: asyncpg.Connection, endpoint: str, event: dict[str, Any]) -> tuple[str, str | None]:
    kind, found = event["type"], event["data"]["object"]
    if endpoint == "connect" and kind == "account.updated":
        return await _account_updated(conn, found, event["created"])
    if kind not in INSTRUCTION_EVENTS[endpoint]:
        return "ignored", f"{kind} on the {endpoint} endpoint moves no instruction"
    instruction_id = instruction_of(found)
    if instruction_id is None and kind.startswith("transfer."):
        instruction_id = await conn.fetchval(queries.instruction_by_reference, found.get("id"))
    if instruction_id is None:
        return "unmapped", "no instruction_id in the metadata"
    row = await conn.fetchrow(queries.instruction_account, instruction_id)
    if row is None:
        return "unmapped", f"no Stripe instruction {instruction_id}"
    account = event.get("account") or (found.get("destination") if kind.startswith("transfer.") else None)
    if account is not None and account != row["account_id"]:
        return "unmapped", f"{account} is not the connected account of instruction {instruction_id}"
    if kind == "payout.failed":  # the money is in the connected account's balance: the instruction stays
        reason = payout_failure(found)
        await conn.fetchval(queries.instruction_payout_failed, instruction_id, reason)
        return "unchanged", f"instruction {instruction_id} stays {row['status']}: {reason}"
    outcome = event_outcome(event, instruction_id)
    if outcome is None:
        return "ignored", "a partial reversal moves nothing"
    if outcome.status == "transferred":
        moved = await mark_transferred(conn, ACTOR, outcome)
        return ("applied" if moved else "unchanged"), f"instruction {instruction_id} was {row['status']}"
    if not await settle_reported(conn, ACTOR, outcome):
        return "unchanged", f"instruction {instruction_id}: {outcome.status}"
    await conn.execute(queries.audit_insert, ACTOR, "settlement.payouts_settled", "payouts",
                       msgspec.json.encode({"applied": {instruction_id: outcome.status}}).decode())  # fmt: skip
    return "applied", f"instruction {instruction_id}: {outcome.status}"


async def _account_updated(conn: asyncpg.Connection, account: dict[str, Any], created: int) -> tuple[str, str | None]:
    account_id = account.get("id")
    enabled = bool(account.get("payouts_enabled"))
    stated_at = datetime.fromtimestamp(created, UTC)
    merchant_id = await conn.fetchval(queries.account_state_set, account_id, enabled,
                                      bool(account.get("details_submitted")), stated_at)  # fmt: skip
    if merchant_id is not None:
        return "applied", f"merchant {merchant_id}: payouts_enabled={str(enabled).lower()}"
    if await conn.fetchval(queries.account_known, account_id) is not None:
        return "unchanged", "a newer account.updated was applied already"
    return "unmapped", f"{account_id} is no payee's account"
