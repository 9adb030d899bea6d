"""The till's use-cases: quote, redeem, refund, look up; each one round trip to PostgreSQL."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

import asyncpg
import msgspec

from cards.member_code import verify_member_code
from merchants.model import QuoteIn, RedeemIn, RefundIn
from merchants.repository import domain_errors, queries
from unioncard import clock
from unioncard.auth import Principal
from unioncard.errors import DomainError
from unioncard.ids import card_number_valid

OFFLINE_CAPTURE_AGE_MAX = timedelta(days=30)
CLOCK_SKEW_MAX = timedelta(minutes=5)
IDEMPOTENCY_KEY_LENGTH_MAX = 255


def card_reference(body: QuoteIn | RedeemIn, secret_key: str) -> tuple[str | None, int | None]:
    """(card number, card id) from a card number or a member code, never both.

    Raises DomainError validation_failed, member_code_invalid, member_code_expired.
    """
    if (body.card is None) == (body.member_code is None):
        raise DomainError(
            "validation_failed",
            "send exactly one of card and member_code",
            errors=[{"field": "card", "message": "exactly one of card and member_code"}],
        )
    if body.card is not None:
        if not card_number_valid(body.card):
            raise DomainError(
                "validation_failed",
                "the card number fails its check digit",
                errors=[{"field": "card", "message": "not Luhn-valid"}],
            )
        return body.card, None
    assert body.member_code is not None  # narrowed above; not a money check
    return None, verify_member_code(secret_key, body.member_code, clock.now())


def check_occurred_at(occurred_at: datetime | None) -> None:
    """An offline capture is in the past, at most 30 days, with an explicit offset."""
    if occurred_at is None:
        return
    problem = None
    now = clock.now()
    if occurred_at.tzinfo is None:
        problem = "occurred_at needs a UTC offset, e.g. 2026-11-29T10:15:00+08:00"
    elif occurred_at > now + CLOCK_SKEW_MAX:
        problem = "occurred_at is in the future"
    elif occurred_at < now - OFFLINE_CAPTURE_AGE_MAX:
        problem = "occurred_at is more than 30 days ago"
    if problem:
        raise DomainError("validation_failed", problem, errors=[{"field": "occurred_at", "message": problem}])


def check_idempotency_key(key: str | None) -> str:
    if not key:
        raise DomainError("idempotency_key_missing")
    if len(key) > IDEMPOTENCY_KEY_LENGTH_MAX or not key.isprintable():
        raise DomainError("validation_failed", "Idempotency-Key must be 1–255 printable characters")
    return key


def request_hash(operation: str, body: msgspec.Struct) -> bytes:
    return hashlib.sha256(operation.encode() + b"\n" + msgspec.json.encode(body)).digest()


async def quote_discount(pool: asyncpg.Pool, principal: Principal, body: QuoteIn, secret_key: str) -> str:
    """The discount this card would get now, as JSON; changes nothing.

    Raises DomainError card_not_found, card_inactive, currency_mismatch, unauthorized, ….
    """
    number, card_id = card_reference(body, secret_key)
    with domain_errors():
        return await pool.fetchval(  # type: ignore[no-any-return]
            queries.till_quote,
            principal.terminal_id,
            number,
            card_id,
            body.amount,
            body.currency,
            clock.now(),
        )


async def redeem(
    pool: asyncpg.Pool, principal: Principal, body: RedeemIn, key: str | None, secret_key: str
) -> tuple[str, bool]:
    """Record a sale and its ledger postings; (response JSON, replayed).

    Raises DomainError not_eligible, card_inactive, idempotency_key_reused, ….
    """
    key = check_idempotency_key(key)
    try:
        number, card_id = card_reference(body, secret_key)
    except DomainError as error:
        # A POS retrying a sale after the member's code expired must get the sale it recorded.
        if error.code == "member_code_expired" and (replay := await _replay(pool, principal, body, key)):
            return replay, True
        raise
    check_occurred_at(body.occurred_at)
    with domain_errors():
        row = await pool.fetchrow(
            queries.till_redeem,
            principal.terminal_id,
            number,
            card_id,
            body.amount,
            body.currency,
            body.receipt_ref,
            body.occurred_at,
            key,
            request_hash("redeem", body),
        )
    return row["body"], row["replayed"]


async def _replay(pool: asyncpg.Pool, principal: Principal, body: RedeemIn, key: str) -> str | None:
    with domain_errors():
        return await pool.fetchval(  # type: ignore[no-any-return]
            queries.till_replay, principal.terminal_id, key, request_hash("redeem", body)
        )


async def refund(
    pool: asyncpg.Pool, principal: Principal, redemption_id: str, body: RefundIn, key: str | None
) -> tuple[str, bool]:
    """Refund all that remains of a sale, or `amount` of it; (response JSON, replayed).

    Raises DomainError redemption_not_found, refund_exceeds_remaining, idempotency_key_reused.
    """
    key = check_idempotency_key(key)
    with domain_errors():
        row = await pool.fetchrow(
            queries.till_refund,
            principal.terminal_id,
            parse_redemption_id(redemption_id),
            body.amount,
            key,
            request_hash(f"refund {redemption_id}", body),
        )
    return row["body"], row["replayed"]


async def get_redemption(pool: asyncpg.Pool, principal: Principal, redemption_id: str) -> str:
    """The sale with its refunds. Raises DomainError redemption_not_found."""
    with domain_errors():
        found = await pool.fetchval(queries.till_redemption, principal.terminal_id, parse_redemption_id(redemption_id))
    if found is None:
        raise DomainError("redemption_not_found")
    return found  # type: ignore[no-any-return]


def parse_redemption_id(text: str) -> str:
    import uuid

    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise DomainError("redemption_not_found") from None
