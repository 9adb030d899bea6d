"""Who may have a benefit on a date: a pure rule over the catalog row and the member's facts.

The member pages apply it to a catalog cached for a few seconds; every path that changes something
(applying, booking, approving) applies it to rows read fresh in its own transaction.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

# Why a member may not have a benefit, in the order they are said.
REASONS = ("tier", "tags", "org", "membership_months")


def add_months(day: date, months: int) -> date:
    """`day` plus whole months, on the last day of a shorter month (31 Jan + 1 month = 28 or 29 Feb), as
    PostgreSQL's date + interval does."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def in_force(benefit: Mapping[str, Any], on: date) -> bool:
    return benefit["valid_from"] <= on and (benefit["valid_until"] is None or on <= benefit["valid_until"])


def unmet(benefit: Mapping[str, Any], member: Mapping[str, Any], on: date) -> list[str]:
    """What the member lacks for the benefit on `on` (empty: they may have it).

    benefit: eligible_tiers, eligible_tags, eligible_org_paths (the subtree roots' paths), membership_months_min
    (None in a list column means no restriction of that kind); member: tier (None without a card), tags,
    org_path, joined_on.
    """
    reasons = []
    tiers = benefit["eligible_tiers"]
    if tiers is not None and member["tier"] not in tiers:
        reasons.append("tier")
    tags = benefit["eligible_tags"]
    if tags is not None and not set(member["tags"] or ()) & set(tags):
        reasons.append("tags")
    roots: Sequence[str] | None = benefit["eligible_org_paths"]
    if roots is not None and not any(member["org_path"].startswith(root) for root in roots):
        reasons.append("org")
    if add_months(member["joined_on"], benefit["membership_months_min"]) > on:
        reasons.append("membership_months")
    return reasons
