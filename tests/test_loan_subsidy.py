"""The loan interest subsidy: DESIGN.md's rule to the fen, a schedule that adds up, and the API's bounds."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from litestar.testing import AsyncTestClient

from cards.loan_subsidy import MONTHS_MAX, PRINCIPAL_MAX_MINOR, RATE_BPS_MAX, loan_subsidy

URL = "/api/benefits/v1/loan-subsidy"


def test_the_districts_examples() -> None:
    most = loan_subsidy(300_000_00, 345, 24)
    assert (most.yearly_minor, most.total_minor) == (6_900_00, 13_800_00)  # 3,450 + 200,000 × 3.45% × 50%, twice
    assert [m.subsidy_minor for m in most.schedule] == [575_00] * 24
    small = loan_subsidy(50_000_00, 345, 12)
    assert small.total_minor == 1_725_00 and len(small.schedule) == 12


def test_the_fen_that_do_not_share_evenly_go_to_the_first_months() -> None:
    odd = loan_subsidy(123_456_78, 317, 7)
    assert sum(m.subsidy_minor for m in odd.schedule) == odd.total_minor
    assert max(m.subsidy_minor for m in odd.schedule) - min(m.subsidy_minor for m in odd.schedule) <= 1
    assert [m.subsidy_minor for m in odd.schedule] == sorted((m.subsidy_minor for m in odd.schedule), reverse=True)


@given(st.integers(1, PRINCIPAL_MAX_MINOR), st.integers(1, RATE_BPS_MAX), st.integers(1, MONTHS_MAX))
def test_the_schedule_adds_up_to_the_rule(principal: int, rate: int, months: int) -> None:
    result = loan_subsidy(principal, rate, months)
    assert sum(m.subsidy_minor for m in result.schedule) == result.total_minor
    assert [m.month for m in result.schedule] == list(range(1, months + 1))
    # the rule in exact rationals (fen × bps / 10000 / 12 per month), rounded half-up once
    exact = (min(principal, 100_000_00) + max(principal - 100_000_00, 0) / 2) * rate / 10_000 * months / 12
    assert abs(result.total_minor - exact) <= 0.5 + 1e-6
    assert result.total_minor <= result.yearly_minor * 2 + 1


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("principal_minor=30000001&rate_bps=345&months=24", "300,000 yuan"),
        ("principal_minor=0&rate_bps=345&months=24", "300,000 yuan"),
        ("principal_minor=100000&rate_bps=345&months=25", "24 months"),
        ("principal_minor=100000&rate_bps=0&months=12", "base rate"),
    ],
)
async def test_out_of_bounds_is_422(client: AsyncTestClient, query: str, message: str) -> None:
    response = await client.get(f"{URL}?{query}")
    assert response.status_code == 422 and response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "validation_failed" and message in response.json()["detail"]


async def test_the_api_answers_anyone(client: AsyncTestClient) -> None:
    client.cookies.clear()
    body = (await client.get(f"{URL}?principal_minor=30000000&rate_bps=345&months=24")).json()
    assert (body["total_minor"], body["yearly_minor"], len(body["schedule"])) == (1_380_000, 690_000, 24)
    typo = await client.get(f"{URL}?principal_minor=abc&rate_bps=345&months=24")
    assert (typo.status_code, typo.json()["code"]) == (422, "malformed_request")
