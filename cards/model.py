"""What the admin API accepts about orgs, members and cards."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

import msgspec

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
CardStatus = Literal["active", "frozen", "lost", "cancelled", "expired"]


class OrgIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    kind: Literal["federation", "district", "town", "village", "enterprise"]
    name: Name
    parent_id: int | None = None
    code: Annotated[str, msgspec.Meta(max_length=50)] | None = None


class CardIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    number: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{16,19}$")]
    expires_on: date
    tier: Name = "普通职工"
    pin: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{6}$")] | None = None
    """Six digits the member signs in with; kept only as an argon2 hash."""


class MemberIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    org_id: int
    name: Name
    national_id: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{17}[0-9Xx]$")]
    card: CardIn
    phone: Annotated[str, msgspec.Meta(max_length=20)] | None = None
    tags: list[Name] = []
    joined_on: date | None = None


class CardStatusIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    status: CardStatus
    reason: Annotated[str, msgspec.Meta(max_length=200)] = ""


BenefitKind = Literal["special_protection", "health_check", "loan_subsidy", "service_centre", "custom"]
OrgKind = Literal["federation", "district", "town", "village"]
Text = Annotated[str, msgspec.Meta(max_length=4000)]


class ReviewLevelIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    effective_from: date
    org_kind: OrgKind


class BenefitIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A catalog entry; the review levels say which level of the tree reviews it from which date."""

    code: Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_-]{1,39}$")]
    kind: BenefitKind
    name_zh: Name
    name_en: Name
    summary_zh: Text = ""
    summary_en: Text = ""
    details_zh: Text = ""
    details_en: Text = ""
    amount_minor: Annotated[int, msgspec.Meta(gt=0)] | None = None
    amount_max_minor: Annotated[int, msgspec.Meta(gt=0)] | None = None
    currency: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")] = "CNY"
    eligible_tiers: list[Name] | None = None
    eligible_tags: list[Name] | None = None
    eligible_org_ids: list[int] | None = None
    membership_months_min: Annotated[int, msgspec.Meta(ge=0, le=600)] = 0
    per_year_max: Annotated[int, msgspec.Meta(gt=0)] | None = None
    per_lifetime_max: Annotated[int, msgspec.Meta(gt=0)] | None = None
    yearly_quota: Annotated[int, msgspec.Meta(gt=0)] | None = None
    needs_invoice: bool = False
    valid_from: date = date(2000, 1, 1)
    valid_until: date | None = None
    sort_order: int = 100
    review_levels: list[ReviewLevelIn] = []
