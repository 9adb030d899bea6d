"""The eligibility rule is pure; its month arithmetic agrees with PostgreSQL's, which the old SQL rule used."""

from __future__ import annotations

from datetime import date

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cards.eligibility import add_months, unmet

MEMBER = {"tier": "普通职工", "tags": ["农民工"], "org_path": "/1/2/7/", "joined_on": date(2026, 1, 31)}
OPEN = {"eligible_tiers": None, "eligible_tags": None, "eligible_org_paths": None, "membership_months_min": 0}


def test_each_restriction_names_its_reason() -> None:
    assert unmet(OPEN, MEMBER, date(2026, 2, 1)) == []
    assert unmet({**OPEN, "eligible_tiers": ["优秀职工"]}, MEMBER, date(2026, 2, 1)) == ["tier"]
    assert unmet({**OPEN, "eligible_tiers": ["优秀职工"]}, {**MEMBER, "tier": None}, date(2026, 2, 1)) == ["tier"]
    assert unmet({**OPEN, "eligible_tags": ["农民工", "劳模"]}, MEMBER, date(2026, 2, 1)) == []
    assert unmet({**OPEN, "eligible_tags": []}, MEMBER, date(2026, 2, 1)) == ["tags"]
    assert unmet({**OPEN, "eligible_org_paths": ["/1/2/"]}, MEMBER, date(2026, 2, 1)) == []
    assert unmet({**OPEN, "eligible_org_paths": ["/1/3/"]}, MEMBER, date(2026, 2, 1)) == ["org"]
    assert unmet({**OPEN, "eligible_org_paths": []}, MEMBER, date(2026, 2, 1)) == ["org"]  # its orgs are gone
    # joined 31 Jan: one month of membership is complete on 28 Feb, not before
    assert unmet({**OPEN, "membership_months_min": 1}, MEMBER, date(2026, 2, 27)) == ["membership_months"]
    assert unmet({**OPEN, "membership_months_min": 1}, MEMBER, date(2026, 2, 28)) == []


# The connection only reads, so one for every example is right.
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(day=st.dates(min_value=date(1990, 1, 1), max_value=date(2060, 12, 31)), months=st.integers(0, 600))
async def test_add_months_is_postgresqls(conn: asyncpg.Connection, day: date, months: int) -> None:
    expected = await conn.fetchval("SELECT ($1::date + make_interval(months => $2))::date", day, months)
    assert add_months(day, months) == expected
