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
