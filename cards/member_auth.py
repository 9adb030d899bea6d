"""Member sign-in: card number + PIN, with the card's sign-in locked after repeated failures.

The count of failures lives on the card row, so every server process sees the same lock, and a restart
does not forget it. The lock stops sign-in only; the card still works at the till.
"""

from __future__ import annotations

import asyncio
import math
from datetime import datetime

import asyncpg

from unioncard import errors
from unioncard.errors import DomainError
from unioncard.ids import hash_secret, new_secret
from unioncard.passwords import hash_password, verify_password

FAILURES_MAX = 5
LOCK_S = 15 * 60

errors.extend(
    {
        "member_sign_in_failed": (401, "卡号或密码不正确", "The card number or PIN is not right"),
        "member_sign_in_locked": (429, "密码错误次数过多，请稍后再试", "Too many wrong PINs: try again later"),
    }
)

# Compared against when no card matches, so an unknown card costs the same time as a wrong PIN.
_DUMMY_HASH = hash_password("not-a-pin")

_CARD = """
SELECT c.id, c.member_id, c.pin_hash, c.pin_locked_until, c.status
  FROM cards c WHERE c.number = $1
"""
_FAILED = """
-- After a lock has run out, counting starts again from one.
UPDATE cards
   SET pin_failures = CASE WHEN pin_locked_until <= $3::timestamptz THEN 1 ELSE pin_failures + 1 END,
       pin_locked_until = CASE WHEN (CASE WHEN pin_locked_until <= $3::timestamptz THEN 1
                                          ELSE pin_failures + 1 END) >= $2
                               THEN $3::timestamptz + make_interval(secs => $4) END
 WHERE id = $1
RETURNING pin_failures, pin_locked_until
"""
_SUCCEEDED = "UPDATE cards SET pin_failures = 0, pin_locked_until = NULL WHERE id = $1 AND pin_failures <> 0"
_SESSION = """
INSERT INTO sessions (token_hash, member_id, expires_at) VALUES ($1, $2, $3::timestamptz + make_interval(secs => $4))
"""
# A card that is lost, cancelled or expired no longer opens the member's pages; frozen still shows them.
SIGN_IN_STATUSES = frozenset({"active", "frozen"})


async def sign_in(conn: asyncpg.Connection, card_number: str, pin: str, now: datetime, ttl_s: int) -> str:
    """A session token for the card's member.

    Raises DomainError member_sign_in_locked (with retry_after_s) or member_sign_in_failed; the latter never
    says whether the card exists.
    """
    card = await conn.fetchrow(_CARD, card_number)
    if card is not None and card["pin_locked_until"] is not None and card["pin_locked_until"] > now:
        raise DomainError("member_sign_in_locked", retry_after_s=_seconds_left(card["pin_locked_until"], now))
    pin_hash = card["pin_hash"] if card is not None and card["pin_hash"] else _DUMMY_HASH
    # argon2 takes tens of milliseconds of CPU on purpose: keep it off the event loop.
    matched = await asyncio.to_thread(verify_password, pin_hash, pin)
    if card is None or not card["pin_hash"] or card["status"] not in SIGN_IN_STATUSES:
        raise DomainError("member_sign_in_failed")
    if not matched:
        failed = await conn.fetchrow(_FAILED, card["id"], FAILURES_MAX, now, float(LOCK_S))
        if failed["pin_locked_until"] is not None:
            raise DomainError("member_sign_in_locked", retry_after_s=_seconds_left(failed["pin_locked_until"], now))
        raise DomainError("member_sign_in_failed", attempts_left=FAILURES_MAX - failed["pin_failures"])
    token = new_secret("ucs")
    async with conn.transaction():
        await conn.execute(_SUCCEEDED, card["id"])
        await conn.execute(_SESSION, hash_secret(token), card["member_id"], now, float(ttl_s))
    return token


def _seconds_left(until: datetime, now: datetime) -> int:
    return max(1, math.ceil((until - now).total_seconds()))
