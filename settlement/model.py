"""The shapes of a claim: JSON input in minor units, and the parsed lines the service loads."""

from __future__ import annotations

from datetime import date, datetime
from uuid import UUID

import msgspec

CLASSES = (
    "matched", "amount_mismatch", "not_found", "duplicate_line", "already_claimed", "reversed", "out_of_period",
)  # fmt: skip


class ClaimLineIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One claimed sale: named by redemption_id or receipt_ref; amounts in fen."""

    occurred_at: datetime
    amount: int
    union_funded: int
    redemption_id: str | None = None
    receipt_ref: str | None = None


class ClaimIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A claim as JSON: {"period": "2026-11", "lines": [...]}; period defaults to the first line's month."""

    lines: list[ClaimLineIn]
    period: str | None = None
    currency: str = "CNY"


class ClaimLine(msgspec.Struct, frozen=True, kw_only=True):
    """A validated line, ready for COPY."""

    line_no: int
    redemption_id: UUID | None
    receipt_ref: str | None
    occurred_at: datetime
    amount_minor: int
    union_funded_minor: int


class ParsedClaim(msgspec.Struct, frozen=True, kw_only=True):
    period: date
    currency: str
    source: str
    lines: list[ClaimLine]
