"""The shapes of a claim: JSON input in minor units, and the parsed lines the service loads."""

from __future__ import annotations

from datetime import date, datetime

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


# A validated line, in COPY's column order after (claim_id, merchant_id): line_no, redemption_id
# (canonical text), receipt_ref, occurred_at, amount_minor, union_funded_minor. A tuple, not a
# Struct: a million lines are built and sent by COPY, and each object costs.
ClaimRow = tuple[int, str | None, str | None, datetime, int, int]


class ParsedClaim(msgspec.Struct, frozen=True, kw_only=True):
    period: date
    currency: str
    source: str
    lines: list[ClaimRow]
    digest: str
    """SHA-256 (hex) of the document as received: a merchant can check it against `sha256sum` of its file."""
