"""What the till sends and what the admin API accepts about merchants, contracts, terminals."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Annotated, Literal

import msgspec

from unioncard.money import AMOUNT_MINOR_MAX

Amount = Annotated[int, msgspec.Meta(gt=0, le=AMOUNT_MINOR_MAX, description="minor units (fen)")]
Currency = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$", description="ISO 4217")]
CardNumber = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{16,19}$")]
MemberCode = Annotated[str, msgspec.Meta(min_length=10, max_length=64)]
Text = Annotated[str, msgspec.Meta(max_length=200)]


class QuoteIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    amount: Amount
    currency: Currency
    card: CardNumber | None = None
    member_code: MemberCode | None = None


class RedeemIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    amount: Amount
    currency: Currency
    card: CardNumber | None = None
    member_code: MemberCode | None = None
    receipt_ref: Annotated[str, msgspec.Meta(max_length=64)] = ""
    occurred_at: datetime | None = None


class RefundIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    amount: Amount | None = None


class MerchantIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    category: Annotated[str, msgspec.Meta(min_length=1, max_length=50)]
    address: Text = ""
    latitude: Annotated[float, msgspec.Meta(ge=-90, le=90)] | None = None
    longitude: Annotated[float, msgspec.Meta(ge=-180, le=180)] | None = None
    org_id: int | None = None
    payee_name: Text | None = None
    payee_account: Text | None = None
    payee_bank: Text | None = None


class ContractIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    kind: Literal["percent", "fixed"]
    valid_from: date
    union_share_bps: Annotated[int, msgspec.Meta(ge=0, le=10_000)]
    rate_bps: Annotated[int, msgspec.Meta(ge=1, le=10_000)] | None = None
    amount_minor: Amount | None = None
    currency: Currency = "CNY"
    min_spend_minor: Annotated[int, msgspec.Meta(ge=0, le=AMOUNT_MINOR_MAX)] = 0
    discount_minor_max: Amount | None = None
    per_card_daily_sales_max: Annotated[int, msgspec.Meta(ge=1, le=1000)] | None = None
    per_card_daily_discount_minor_max: Amount | None = None
    per_card_monthly_sales_max: Annotated[int, msgspec.Meta(ge=1, le=10000)] | None = None
    per_card_monthly_discount_minor_max: Amount | None = None
    valid_until: date | None = None
    days_of_week: list[Annotated[int, msgspec.Meta(ge=1, le=7)]] | None = None
    hours_start: time | None = None
    hours_end: time | None = None
    eligible_tiers: list[Text] | None = None
    eligible_org_ids: list[int] | None = None
    monthly_budget_minor: Annotated[int, msgspec.Meta(ge=0)] | None = None


class TerminalIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class StatusIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    status: Literal["active", "suspended"]


class QuoteOut(msgspec.Struct, kw_only=True):
    """What the till shows before the sale: all amounts in minor units."""

    eligible: bool
    amount: int
    currency: str
    discount: int
    union_funded: int
    merchant_funded: int
    pay_amount: int
    offer_id: int | None
    card: str
    member: str
    reasons: list[str]


class RefundOut(msgspec.Struct, kw_only=True):
    id: str
    amount: int
    discount: int
    union_funded: int
    merchant_funded: int
    created_at: datetime


class RedemptionOut(msgspec.Struct, kw_only=True):
    """A recorded sale and its refunds; `refund_id` names the refund a refund call made."""

    id: str
    status: Literal["recorded", "partially_refunded", "refunded"]
    merchant_id: int
    terminal_id: int
    amount: int
    currency: str
    discount: int
    union_funded: int
    merchant_funded: int
    pay_amount: int
    offer_id: int
    card: str
    member: str
    receipt_ref: str
    occurred_at: datetime
    recorded_at: datetime
    refunded_amount: int
    remaining_amount: int
    refunds: list[RefundOut]
    refund_id: str | None = None


class Problem(msgspec.Struct, kw_only=True):
    """RFC 9457 problem details with a stable `code`."""

    type: str
    title: str
    status: int
    code: str
    detail: str | None = None
    reasons: list[str] | None = None
