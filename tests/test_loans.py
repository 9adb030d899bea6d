"""The loan interest subsidy: the calculator page, applications, approvals that draw the fund and never overdraw it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from cards import loans, member_auth
from cards.loans import LoanApplicationIn
from tests.factories import add_benefit, add_card, add_staff_login, make_world, ok, sign_in_staff, staff_token
from unioncard import clock
from unioncard.auth import Principal, Role
from unioncard.errors import DomainError

API = "/api/benefits/v1"
TZ = "Asia/Shanghai"
FUND_MINOR = 10_000_000_00
LOAN = {"lender": "农商银行", "principal_minor": 300_000_00, "rate_bps": 345, "months": 24}


def today_iso() -> str:
    return clock.local_today(TZ).isoformat()


async def loan_benefit(conn: asyncpg.Connection, total_minor: int = FUND_MINOR, **columns: object) -> int:
    benefit_id = await add_benefit(conn, "loan_subsidy", "loan_subsidy", **columns)
    await loans.create_fund(conn, benefit_id, total_minor)
    return benefit_id


async def sign_in_member(client: AsyncTestClient, conn: asyncpg.Connection, number: str) -> None:
    client.cookies.clear()
    client.cookies.set("uc_session", await member_auth.sign_in(conn, number, "123456", clock.now(), 3600))


async def apply_by_api(client: AsyncTestClient, **changes: object) -> dict:
    response = await client.post(f"{API}/loan-applications", json={**LOAN, "loan_start_on": today_iso(), **changes})
    assert response.status_code == 201, response.text
    return response.json()


async def fund_state(conn: asyncpg.Connection) -> tuple[int, int, int]:
    """(drawn, the fund account's ledger balance, approved subsidies) — three views of one figure."""
    drawn = await conn.fetchval("SELECT drawn_minor FROM loan_funds")
    ledger = await conn.fetchval("SELECT ledger_balance('union:loan_fund')")
    approved = await conn.fetchval(
        "SELECT coalesce(sum(subsidy_total_minor), 0) FROM loan_applications WHERE status = 'approved'"
    )
    return drawn, ledger, approved


# ---------------------------------------------------------------- the calculator page


async def test_calculator_page_shows_the_total_and_the_schedule(client: AsyncTestClient) -> None:
    client.cookies.clear()
    page = await client.get("/loan-subsidy?principal=300000&rate=3.45&months=24")
    assert page.status_code == 200
    assert "13,800.00" in page.text and "6,900.00" in page.text  # total and yearly
    assert page.text.count("575.00") >= 24 and "第24个月" in page.text
    english = await client.get("/loan-subsidy?principal=50000&rate=3.45&months=12&lang=en")
    assert "1,725.00" in english.text and "Month 12" in english.text and "Month 13" not in english.text
    example = await client.get("/loan-subsidy")  # no input yet: an example, worked out
    assert example.status_code == 200 and 'data-testid="loan-total"' in example.text


@pytest.mark.parametrize(
    ("query", "sentence"),
    [
        ("principal=300000.01&rate=3.45&months=24", "不超过300,000元"),
        ("principal=abc&rate=3.45&months=24", "请输入贷款本金"),
        ("principal=100000&rate=25&months=24", "不超过20%"),
        ("principal=100000&rate=3.45&months=25", "1至24个月"),
        ("principal=100000&rate=3.45&months=²", "1至24个月"),  # str.isdigit() says yes; int() says no
    ],
)
async def test_calculator_page_says_what_is_out_of_bounds(client: AsyncTestClient, query: str, sentence: str) -> None:
    page = await client.get(f"/loan-subsidy?{query}")
    assert page.status_code == 422 and sentence in page.text and 'data-testid="loan-total"' not in page.text


# ---------------------------------------------------------------- applications and the fund


async def test_an_approved_application_draws_the_fund_and_posts_it(client, dsn, conn) -> None:
    world = await make_world(client, dsn)
    await loan_benefit(conn)
    number = await add_card(client, world, "a", pin="123456")
    await sign_in_member(client, conn, number)

    applied = await apply_by_api(client)
    assert (applied["status"], applied["subsidy_total_minor"], applied["subsidy_yearly_minor"]) == (
        "submitted", 13_800_00, 6_900_00,
    )  # fmt: skip
    assert await fund_state(conn) == (0, 0, 0)
    mine = (await client.get(f"{API}/loan-applications/mine")).json()
    assert [a["id"] for a in mine] == [applied["id"]]

    approved = await client.post(f"{API}/loan-applications/{applied['id']}/approve", json={}, headers=world.admin)
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved"
    assert await fund_state(conn) == (13_800_00, 13_800_00, 13_800_00)
    payable = f"member:{world.member_ids['a']}:loan_subsidy_payable"
    assert await conn.fetchval("SELECT ledger_balance($1)", payable) == -13_800_00
    assert await conn.fetchval("SELECT count(*) FROM ledger_unbalanced") == 0
    fund = (await client.get(f"{API}/loan-fund")).json()  # the member may see what remains
    assert fund["remaining_minor"] == FUND_MINOR - 13_800_00
    steps = await conn.fetch("SELECT status, actor FROM loan_application_events ORDER BY id")
    assert [s["status"] for s in steps] == ["submitted", "approved"]
    assert steps[0]["actor"] == f"member:{world.member_ids['a']}" and steps[1]["actor"].startswith("federation_admin:")
    assert await conn.fetchval("SELECT count(*) FROM audit_log WHERE action = 'loan_application.approved'") == 1

    again = await client.post(f"{API}/loan-applications/{applied['id']}/approve", json={}, headers=world.admin)
    assert again.status_code == 409 and again.json()["code"] == "loan_application_status_conflict"
    assert await fund_state(conn) == (13_800_00, 13_800_00, 13_800_00)


async def test_a_rejection_needs_a_reason_and_leaves_the_fund_untouched(client, dsn, conn) -> None:
    world = await make_world(client, dsn)
    await loan_benefit(conn)
    await sign_in_member(client, conn, await add_card(client, world, "a", pin="123456"))
    applied = await apply_by_api(client, principal_minor=80_000_00)
    assert applied["subsidy_total_minor"] == 5_520_00  # 80,000 × 3.45% × 2 years, all at the full rate

    url = f"{API}/loan-applications/{applied['id']}/reject"
    silent = await client.post(url, json={"note": "  "}, headers=world.admin)
    assert silent.status_code == 422 and silent.json()["code"] == "validation_failed"
    assert [e["field"] for e in silent.json()["errors"]] == ["note"] and "field" not in silent.json()
    rejected = await client.post(url, json={"note": "营业执照未提供"}, headers=world.admin)
    assert rejected.status_code == 200 and rejected.json()["decision_note"] == "营业执照未提供"
    assert await fund_state(conn) == (0, 0, 0)
    assert await conn.fetchval("SELECT count(*) FROM ledger_transactions WHERE kind = 'loan_subsidy_approved'") == 0
    late = await client.post(f"{API}/loan-applications/{applied['id']}/approve", json={}, headers=world.admin)
    assert late.status_code == 409 and await fund_state(conn) == (0, 0, 0)
    # the database keeps a decision final too
    with pytest.raises(asyncpg.CheckViolationError, match="cannot go from rejected to approved"):
        await conn.execute("UPDATE loan_applications SET status = 'approved' WHERE id = $1", applied["id"])


async def test_bad_input_and_the_lifetime_cap_change_nothing(client, dsn, conn) -> None:
    world = await make_world(client, dsn)
    await loan_benefit(conn, per_lifetime_max=1)
    await sign_in_member(client, conn, await add_card(client, world, "a", pin="123456"))
    too_big = await client.post(
        f"{API}/loan-applications", json={**LOAN, "principal_minor": 300_000_01, "loan_start_on": today_iso()}
    )
    assert too_big.status_code == 422
    too_old = await client.post(f"{API}/loan-applications", json={**LOAN, "loan_start_on": "2001-01-01"})
    assert too_old.status_code == 422 and too_old.json()["code"] == "validation_failed"
    assert too_old.json()["errors"] == [
        {"field": "loan_start_on", "key": "loan_start_out_of_range", "message": too_old.json()["detail"]}
    ]
    blank = await client.post(f"{API}/loan-applications", json={**LOAN, "lender": "  ", "loan_start_on": today_iso()})
    assert blank.status_code == 422 and [e["field"] for e in blank.json()["errors"]] == ["lender"]
    first = await client.post(f"{API}/loan-applications", json={**LOAN, "loan_start_on": today_iso()},
                              headers={"Idempotency-Key": "k1"})  # fmt: skip
    assert first.status_code == 201 and "idempotent-replayed" not in first.headers
    # a replay answers as the first did, and says so; the key may come in the body too
    for headers, in_body in (({"Idempotency-Key": "k1"}, {}), ({}, {"idempotency_key": "k1"})):
        body = {**LOAN, "loan_start_on": today_iso(), **in_body}
        again = await client.post(f"{API}/loan-applications", json=body, headers=headers)
        assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
        assert again.json() == first.json()
    other = await client.post(f"{API}/loan-applications", json={**LOAN, "months": 12, "loan_start_on": today_iso()},
                              headers={"Idempotency-Key": "k1"})  # fmt: skip
    assert other.status_code == 409 and other.json()["code"] == "idempotency_key_reused"
    second = await client.post(f"{API}/loan-applications", json={**LOAN, "loan_start_on": today_iso()})
    assert second.status_code == 409 and second.json()["code"] == "benefit_cap_reached"
    assert (second.json()["cap"], second.json()["limit"]) == ("per_lifetime_max", 1)
    assert await conn.fetchval("SELECT count(*) FROM loan_applications") == 1


async def test_a_reviewer_of_another_town_gets_403_and_changes_nothing(client, dsn, conn) -> None:
    world = await make_world(client, dsn)
    await loan_benefit(conn, review_levels={"2000-01-01": "town"})
    await sign_in_member(client, conn, await add_card(client, world, "a", org="east", pin="123456"))
    applied = await apply_by_api(client)
    assert applied["reviewing_org_name"] == "east镇"
    west = await staff_token(dsn, "org_reviewer", org_id=world.org_ids["west"])
    east = await staff_token(dsn, "org_reviewer", org_id=world.org_ids["east"])

    refused = await client.post(f"{API}/loan-applications/{applied['id']}/approve", json={}, headers=west)
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
    refused = await client.post(f"{API}/loan-applications/{applied['id']}/reject", json={"note": "x"}, headers=west)
    assert refused.status_code == 403
    assert (await client.get(f"{API}/loan-applications", headers=west)).json() == []
    assert await conn.fetchval("SELECT status FROM loan_applications") == "submitted"
    assert await fund_state(conn) == (0, 0, 0)
    assert await conn.fetchval("SELECT count(*) FROM loan_application_events") == 1

    listed = (await client.get(f"{API}/loan-applications?status=submitted", headers=east)).json()
    assert [a["id"] for a in listed] == [applied["id"]]
    done = await client.post(f"{API}/loan-applications/{applied['id']}/approve", json={}, headers=east)
    assert done.status_code == 200 and await fund_state(conn) == (13_800_00,) * 3


async def test_concurrent_approvals_never_overdraw_the_fund(client, dsn, conn) -> None:
    """A fund big enough for k of n equal subsidies, n approvals at once: exactly k go through."""
    n, k, subsidy = 12, 5, 13_800_00
    world = await make_world(client, dsn)
    await loan_benefit(conn, total_minor=k * subsidy + subsidy - 1)
    admin_id = await conn.fetchval("SELECT id FROM staff_users WHERE email = 'admin@test'")
    admin = Principal(role=Role.FEDERATION_ADMIN, staff_user_id=admin_id)
    now = datetime.now(UTC)
    pool = await asyncpg.create_pool(dsn, min_size=n, max_size=n)
    try:
        ids = []
        for i in range(n):
            await add_card(client, world, f"m{i}")
            data = LoanApplicationIn(**LOAN, loan_start_on=now.date())
            ids.append((await loans.apply(pool, world.member_ids[f"m{i}"], data, now, TZ))[0]["id"])
        outcomes = await asyncio.gather(*(loans.approve(pool, admin, i, "", now) for i in ids), return_exceptions=True)
    finally:
        await pool.close()
    refused = [o for o in outcomes if isinstance(o, DomainError)]
    assert not [o for o in outcomes if isinstance(o, BaseException) and not isinstance(o, DomainError)]
    assert len(outcomes) - len(refused) == k and {e.code for e in refused} == {"loan_fund_exhausted"}
    assert all(0 <= e.extra["remaining_minor"] < subsidy for e in refused)
    assert await fund_state(conn) == (k * subsidy,) * 3
    assert await conn.fetchval("SELECT total_minor - drawn_minor FROM loan_funds") == subsidy - 1
    assert await conn.fetchval("SELECT count(*) FROM loan_applications WHERE status = 'submitted'") == n - k


# ---------------------------------------------------------------- the pages


async def test_member_applies_on_the_page_and_a_reviewer_approves_on_theirs(client, dsn, conn) -> None:
    world = await make_world(client, dsn)
    await loan_benefit(conn, review_levels={"2000-01-01": "town"})
    number = await add_card(client, world, "a", org="east", pin="123456")
    await sign_in_member(client, conn, number)

    mine = await client.get("/me/loans?principal=150000&rate=3.45&months=24")
    assert mine.status_code == 200 and "8,625.00" in mine.text  # (100,000 + 50,000 × 50%) × 3.45% × 2
    form = {"lender": "建设银行", "principal": "150000", "rate": "3.45", "months": "24",
            "loan_start_on": today_iso(), "idempotency_key": "web-1"}  # fmt: skip
    sent = await client.post("/me/loans/applications", data=form, follow_redirects=False)
    assert sent.status_code == 303 and sent.headers["location"].startswith("/me/loans?done=applied")
    again = await client.post("/me/loans/applications", data=form, follow_redirects=False)  # a double tap
    assert again.status_code == 303 and await conn.fetchval("SELECT count(*) FROM loan_applications") == 1
    bad = await client.post("/me/loans/applications", data={**form, "principal": "400000", "idempotency_key": "2"})
    assert bad.status_code == 422 and "不超过300,000元" in bad.text
    far = await client.post(
        "/me/loans/applications", data={**form, "loan_start_on": "2001-01-01", "idempotency_key": "3"}
    )
    assert far.status_code == 422 and "放款日期须在一年以内" in far.text and 'class="m-tabs"' in far.text
    odd = await client.post("/me/loans/applications", data={**form, "months": "²", "idempotency_key": "4"})
    assert odd.status_code == 422 and "1至24个月" in odd.text
    assert await conn.fetchval("SELECT count(*) FROM loan_applications") == 1
    page = await client.get("/me/loans")
    assert "建设银行" in page.text and "待审核" in page.text
    application_id = await conn.fetchval("SELECT id FROM loan_applications")

    await add_staff_login(dsn, "west@test", "org_reviewer", org_id=world.org_ids["west"])
    await sign_in_staff(client, "west@test")
    assert "建设银行" not in (await client.get("/review/loans")).text
    refused = await client.post(f"/review/loans/{application_id}/approve", data={"note": ""})
    assert refused.status_code == 403 and await fund_state(conn) == (0, 0, 0)

    await add_staff_login(dsn, "east@test", "org_reviewer", org_id=world.org_ids["east"])
    await sign_in_staff(client, "east@test")
    review = await client.get("/review/loans")
    assert review.status_code == 200 and "建设银行" in review.text and "8,625.00" in review.text
    done = await client.post(f"/review/loans/{application_id}/approve", data={"note": "同意"}, follow_redirects=False)
    assert done.status_code == 303 and await fund_state(conn) == (8_625_00,) * 3

    await sign_in_member(client, conn, number)
    page = await client.get("/me/loans?lang=en")
    assert "Approved" in page.text and "同意" in page.text and "9,999,991,375.00" not in page.text
    assert "9,991,375.00" in page.text  # what remains of the fund


async def test_member_pages_need_a_member(client: AsyncTestClient) -> None:
    client.cookies.clear()
    response = await client.get("/me/loans", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/me/login"
    assert (await client.get("/review/loans", follow_redirects=False)).headers["location"] == "/login"


async def test_a_benefit_out_of_its_dates_says_so_in_the_member_layout(client, dsn, conn) -> None:
    world = await make_world(client, dsn)
    await loan_benefit(conn, valid_until=datetime(2001, 1, 1).date())
    await sign_in_member(client, conn, await add_card(client, world, "a", pin="123456"))
    page = await client.get("/me/loans")
    assert page.status_code == 200 and "该福利目前不在开放期内" in page.text and 'class="m-tabs"' in page.text
    assert 'action="/me/loans/applications"' not in page.text


# ---------------------------------------------------------------- the admin API


def problem(response: Any, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == code, body
    return body


async def test_the_admin_opens_and_adjusts_the_fund_never_below_what_is_drawn(client, dsn, conn) -> None:
    world = await make_world(client, dsn)
    benefit_id = await add_benefit(conn, "loan_subsidy", "loan_subsidy")
    await add_benefit(conn, "checkup", "health_check")
    url = "/api/admin/v1/loan-funds"
    good = {"benefit_code": "loan_subsidy", "total_minor": 20_000_00}
    problem(await client.post(url, json={**good, "total_minor": 0}, headers=world.admin), 422, "malformed_request")
    problem(await client.post(url, json={**good, "extra": 1}, headers=world.admin), 422, "malformed_request")
    wrong = problem(
        await client.post(url, json={**good, "benefit_code": "checkup"}, headers=world.admin), 422, "validation_failed"
    )
    assert [e["field"] for e in wrong["errors"]] == ["benefit_code"]
    problem(await client.post(url, json={**good, "benefit_code": "none"}, headers=world.admin), 404,
                  "benefit_not_found")  # fmt: skip
    reviewer = await staff_token(dsn, "org_reviewer", org_id=world.org_ids["east"])
    problem(await client.post(url, json=good, headers=reviewer), 403, "forbidden")
    assert await conn.fetchval("SELECT count(*) FROM loan_funds") == 0
    assert await conn.fetchval("SELECT count(*) FROM audit_log WHERE action LIKE 'loan_fund.%'") == 0

    opened = await ok(await client.post(url, json=good, headers=world.admin))
    assert (opened["benefit_id"], opened["total_minor"], opened["drawn_minor"], opened["remaining_minor"]) == (
        benefit_id, 20_000_00, 0, 20_000_00,
    )  # fmt: skip
    problem(await client.post(url, json=good, headers=world.admin), 409, "loan_fund_exists")

    await sign_in_member(client, conn, await add_card(client, world, "a", pin="123456"))
    applied = await apply_by_api(client)
    await ok(await client.post(f"{API}/loan-applications/{applied['id']}/approve", headers=world.admin), 200)
    total = f"{url}/{benefit_id}/total"
    below = problem(
        await client.post(total, json={"total_minor": 13_800_00 - 1}, headers=world.admin), 409, "loan_fund_below_drawn"
    )
    assert below["drawn_minor"] == 13_800_00
    problem(await client.post(total, json={"total_minor": -5}, headers=world.admin), 422, "malformed_request")
    problem(await client.post(total, json={"total_minor": 1}, headers=reviewer), 403, "forbidden")
    problem(await client.post(f"{url}/999999/total", json={"total_minor": 1}, headers=world.admin), 404,
                  "loan_fund_not_found")  # fmt: skip
    assert await conn.fetchval("SELECT total_minor FROM loan_funds") == 20_000_00

    exact = await ok(await client.post(total, json={"total_minor": 13_800_00}, headers=world.admin), 200)
    assert exact["remaining_minor"] == 0
    raised = await client.post(total, json={"total_minor": 10_000_000_00, "note": "追加拨款"}, headers=world.admin)
    assert (await ok(raised, 200))["remaining_minor"] == 10_000_000_00 - 13_800_00
    trail = await conn.fetch("SELECT action, detail FROM audit_log WHERE action LIKE 'loan_fund.%' ORDER BY id")
    assert [row["action"] for row in trail] == ["loan_fund.create", "loan_fund.adjust", "loan_fund.adjust"]
    assert '"note": "追加拨款"' in trail[-1]["detail"] and '"from_minor": 1380000' in trail[-1]["detail"]
