"""The benefits API v1: what a member, a reviewer or anyone may ask of the catalog's rules."""

from __future__ import annotations

from litestar import Controller, get

from cards.loan_subsidy import LoanSubsidy, loan_subsidy
from unioncard.errors import DomainError


class BenefitsController(Controller):
    path = "/api/benefits/v1"
    tags = ["benefits"]

    @get("/loan-subsidy", operation_id="loanSubsidy")
    async def loan_subsidy(self, principal_minor: int, rate_bps: int, months: int) -> LoanSubsidy:
        """The entrepreneurship-loan interest subsidy and its monthly schedule: 100% of the base rate on the first
        100,000 yuan, 50% above, principal at most 300,000 yuan, at most 24 months. A calculator: it needs no
        sign-in and reads nothing. Out of bounds: 422 validation_failed."""
        try:
            return loan_subsidy(principal_minor, rate_bps, months)
        except ValueError as exc:
            raise DomainError("validation_failed", str(exc), errors=[{"message": str(exc)}]) from exc
