"""The entrepreneurship-loan interest subsidy (DESIGN.md, Benefits catalog): the rule and its monthly schedule.

For a principal P of at most 300,000 yuan at base rate r, the yearly subsidy is
min(P, 100,000)·r + max(P − 100,000, 0)·r·50%, for at most 24 months. All in fen and basis points: the total is
rounded half-up once, and the months share it so that the schedule adds up to the total exactly.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from unioncard.money import BPS, round_half_up_div

PRINCIPAL_MAX_MINOR = 300_000_00
FULL_RATE_PART_MINOR = 100_000_00  # the part of the principal subsidised at the whole base rate; above it, half
MONTHS_MAX = 24
RATE_BPS_MAX = 2_000  # a base rate above 20% a year is a typing error, not a loan


class SubsidyMonth(msgspec.Struct, frozen=True):
    month: int
    subsidy_minor: int


class LoanSubsidy(msgspec.Struct, frozen=True, kw_only=True):
    principal_minor: int
    rate_bps: int
    months: int
    yearly_minor: int
    """The subsidy of a whole year at this principal and rate, rounded half-up to the fen."""
    total_minor: int
    schedule: list[SubsidyMonth]


PrincipalMinor = Annotated[int, msgspec.Meta(gt=0, le=PRINCIPAL_MAX_MINOR, description="fen, at most 300,000 yuan")]
RateBps = Annotated[int, msgspec.Meta(gt=0, le=RATE_BPS_MAX, description="yearly base rate, basis points")]
Months = Annotated[int, msgspec.Meta(ge=1, le=MONTHS_MAX, description="months subsidised, at most 24")]


def loan_subsidy(principal_minor: int, rate_bps: int, months: int) -> LoanSubsidy:
    """The subsidy of a loan and its monthly schedule. Raises ValueError outside the rule's bounds."""
    if not 0 < principal_minor <= PRINCIPAL_MAX_MINOR:
        raise ValueError(f"the principal is more than 0 and at most {PRINCIPAL_MAX_MINOR // 100:,} yuan")
    if not 0 < rate_bps <= RATE_BPS_MAX:
        raise ValueError(f"the base rate is more than 0 and at most {RATE_BPS_MAX} basis points")
    if not 1 <= months <= MONTHS_MAX:
        raise ValueError(f"the subsidy runs 1 to {MONTHS_MAX} months")
    # twice the subsidised principal: the full part counts twice, the rest once (half the rate)
    doubled = 2 * min(principal_minor, FULL_RATE_PART_MINOR) + max(principal_minor - FULL_RATE_PART_MINOR, 0)
    yearly = round_half_up_div(doubled * rate_bps, 2 * BPS)
    total = round_half_up_div(doubled * rate_bps * months, 2 * BPS * 12)
    base, extra = divmod(total, months)
    # the fen that do not share evenly go to the first months
    schedule = [SubsidyMonth(month=n, subsidy_minor=base + (1 if n <= extra else 0)) for n in range(1, months + 1)]
    return LoanSubsidy(principal_minor=principal_minor, rate_bps=rate_bps, months=months, yearly_minor=yearly,
                       total_minor=total, schedule=schedule)  # fmt: skip
