"""Grant applications: routing by the review level in force on the date, scope of reviewers, one claim per
invoice, caps under concurrent submissions, and approval posted to the ledger."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from litestar.testing import AsyncTestClient

from cards import applications, member_auth
from cards.application_rules import normalize_account, normalize_invoice_number
from cards.applications import ApplicationIn, ApproveIn, InvoiceIn, PayeeIn, RejectIn
from tests.factories import World, add_benefit, add_card, add_staff_login, make_world, sign_in_staff, staff_token
from unioncard.auth import Principal, Role
from unioncard.errors import DomainError

SHANGHAI = ZoneInfo("Asia/Shanghai")
TZ = "Asia/Shanghai"
REVIEW = "/api/benefits/v1/review/applications"
HOSPITAL_LEVELS = {"2026-01-01": "district", "2026-10-01": "town"}


def on(day: str, hour: int = 10) -> datetime:
    """A moment of a local day (Asia/Shanghai)."""
    return datetime.fromisoformat(f"{day}T{hour:02d}:00:00").replace(tzinfo=SHANGHAI)


@dataclass
class District:
    api: AsyncTestClient
    dsn: str
    world: World
    reviewers: dict[str, dict[str, str]]
    benefits: dict[str, int]

    def member(self, label: str) -> Principal:
        return Principal(role=Role.MEMBER, member_id=self.world.member_ids[label])


async def district_with_grants(api: AsyncTestClient, dsn: str) -> District:
    """Members a (east) and w (west) with PIN 123456; hospitalization reviewed by the district until 30 Sep
    and by the town from 1 Oct; an API reviewer for the district and each town."""
    world = await make_world(api, dsn)
    await add_card(api, world, "a", org="east", pin="123456", joined_on="2020-01-01")
    await add_card(api, world, "w", org="west", pin="123456", joined_on="2020-01-01")
    conn = await asyncpg.connect(dsn)
    try:
        benefits = {
            "hospital": await add_benefit(conn, "hospital", "special_protection", review_levels=HOSPITAL_LEVELS,
                                          name_zh="住院慰问", name_en="Hospitalization grant",
                                          amount_max_minor=300_000, needs_invoice=True, per_year_max=2),
            "illness": await add_benefit(conn, "illness", "special_protection", review_levels=HOSPITAL_LEVELS,
                                         name_zh="大病救助", name_en="Serious illness grant",
                                         amount_max_minor=1_000_000, needs_invoice=True),
            "wedding": await add_benefit(conn, "wedding", "custom", review_levels={"2020-01-01": "town"},
                                         amount_minor=50_000, per_lifetime_max=3),
        }  # fmt: skip
    finally:
        await conn.close()
    reviewers = {
        org: await staff_token(dsn, "org_reviewer", org_id=world.org_ids[org]) for org in ("district", "east", "west")
    }
    return District(api, dsn, world, reviewers, benefits)


@pytest.fixture
async def district(client: AsyncTestClient, dsn: str) -> District:
    return await district_with_grants(client, dsn)


def hospital_application(number: str = "NO-001", issuer: str = "杭州市第一人民医院", amount: int = 200_000,
                         code: str = "hospital", invoice_amount: int = 380_000) -> ApplicationIn:  # fmt: skip
    return ApplicationIn(
        benefit_code=code,
        amount_minor=amount,
        invoice=InvoiceIn(
            issuer=issuer, number=number, amount_minor=invoice_amount, issued_on=datetime(2026, 9, 20).date()
        ),  # fmt: skip
        details={"hospital": issuer, "days_in_hospital": 6, "diagnosis": "阑尾炎"},
        payee=PayeeIn(name="张a", account="6222 0200 1234 5678", bank="工商银行"),
    )


async def submit(district: District, label: str, data: ApplicationIn, when: datetime, **kw: Any) -> dict[str, Any]:
    conn = await asyncpg.connect(district.dsn)
    try:
        found, _ = await applications.submit(conn, district.member(label), data, now=when, timezone=TZ, **kw)
    finally:
        await conn.close()
    return found


async def snapshot(dsn: str, application_id: int) -> tuple[Any, ...]:
    """What a refused step must leave as it was: the application, its history, the ledger, the audit log."""
    conn = await asyncpg.connect(dsn)
    try:
        return (
            await conn.fetchrow(
                "SELECT status, approved_minor, updated_at FROM applications WHERE id = $1", application_id
            ),  # fmt: skip
            await conn.fetchval("SELECT count(*) FROM application_events WHERE application_id = $1", application_id),
            await conn.fetchval("SELECT count(*) FROM ledger_postings"),
            await conn.fetchval("SELECT count(*) FROM audit_log WHERE subject = $1", f"application:{application_id}"),
        )
    finally:
        await conn.close()


async def test_routed_by_the_level_in_force_on_its_date(district: District) -> None:
    api, ids = district.api, district.world.org_ids
    september = await submit(district, "a", hospital_application("NO-930"), on("2026-09-30", 23))
    october = await submit(district, "a", hospital_application("NO-1001"), on("2026-10-01", 0))
    assert (september["applied_on"], september["org_id"], september["org_kind"]) == ("2026-09-30", ids["district"],
                                                                                     "district")  # fmt: skip
    assert (october["applied_on"], october["org_id"], october["org_kind"]) == ("2026-10-01", ids["east"], "town")
    # 1 Oct 00:30 in Shanghai is still 30 Sep in UTC: the local date decides.
    late = await submit(district, "a", hospital_application("NO-X", code="illness"), on("2026-10-01", 0))
    assert late["org_id"] == ids["east"]

    def listed(answer: Any) -> set[int]:
        assert answer.status_code == 200, answer.text
        return {item["id"] for item in answer.json()["applications"]}

    assert listed(await api.get(REVIEW, headers=district.reviewers["east"])) == {october["id"], late["id"]}
    assert listed(await api.get(REVIEW, headers=district.reviewers["west"])) == set()
    assert listed(await api.get(REVIEW, headers=district.reviewers["district"])) >= {september["id"], october["id"]}
    east_view = await api.get(f"{REVIEW}/{september['id']}", headers=district.reviewers["east"])
    assert east_view.status_code == 403
    seen = await api.get(f"{REVIEW}/{october['id']}", headers=district.reviewers["east"])
    assert seen.status_code == 200 and seen.json()["masked_card"].startswith("6217 **** ****")
    assert district.world.cards["a"] not in seen.text and "5678" in seen.json()["payee_account"]


async def test_a_reviewer_of_another_town_can_neither_see_nor_act(district: District) -> None:
    api, west = district.api, district.reviewers["west"]
    found = await submit(district, "a", hospital_application(), on("2026-10-08"))
    before = await snapshot(district.dsn, found["id"])
    assert (await api.get(f"{REVIEW}/{found['id']}", headers=west)).status_code == 403
    for step, body in (("open", None), ("approve", {"amount_minor": 100_000}), ("reject", {"reason": "不符"})):
        answer = await api.post(f"{REVIEW}/{found['id']}/{step}", json=body, headers=west)
        assert answer.status_code == 403, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert answer.json()["code"] == "forbidden"
    assert await snapshot(district.dsn, found["id"]) == before
    # Its own town's reviewer may: open, then approve.
    east = district.reviewers["east"]
    assert (await api.post(f"{REVIEW}/{found['id']}/open", headers=east)).json()["status"] == "under_review"
    approved = await api.post(f"{REVIEW}/{found['id']}/approve", json={"amount_minor": 150_000, "note": "核实"},
                              headers=east)  # fmt: skip
    assert approved.status_code == 200, approved.text
    assert (approved.json()["status"], approved.json()["approved_minor"]) == ("approved", 150_000)
    steps = [(e["from_status"], e["to_status"], e["note"]) for e in approved.json()["events"]]
    assert steps == [(None, "submitted", None), ("submitted", "under_review", None),
                     ("under_review", "approved", "核实")]  # fmt: skip


async def test_approval_posts_balanced_ledger_entries(district: District, conn: asyncpg.Connection) -> None:
    found = await submit(district, "a", hospital_application(amount=120_000), on("2026-10-08"))
    reviewer = Principal(role=Role.ORG_REVIEWER, staff_user_id=1, org_id=district.world.org_ids["east"],
                         org_path=found["org_path"])  # fmt: skip
    approved = await applications.approve(conn, reviewer, found["id"], ApproveIn(note="ok"), on("2026-10-09"))
    member_id = district.world.member_ids["a"]
    assert approved["approved_minor"] == 120_000
    balances = dict(await conn.fetch("SELECT account, sum(amount_minor) FROM ledger_postings GROUP BY account"))
    assert balances == {"union:benefit_expense": 120_000, f"member:{member_id}:grants_payable": -120_000}
    assert await conn.fetchval("SELECT count(*) FROM ledger_unbalanced") == 0
    assert approved["events"][-1]["ledger_transaction_id"] is not None
    assert await conn.fetchval("SELECT action FROM audit_log WHERE subject = $1", f"application:{found['id']}") == (
        "application.approved"
    )
    # Decided is decided: approving or rejecting again changes nothing.
    with pytest.raises(DomainError) as again:
        await applications.approve(conn, reviewer, found["id"], ApproveIn(), on("2026-10-09"))
    assert again.value.code == "application_status_conflict"
    with pytest.raises(DomainError):
        await applications.reject(conn, reviewer, found["id"], RejectIn(reason="x"), on("2026-10-09"))
    assert await conn.fetchval("SELECT count(*) FROM ledger_postings") == 2


async def test_review_rules_amount_and_reason(district: District, conn: asyncpg.Connection) -> None:
    found = await submit(district, "a", hospital_application(amount=100_000), on("2026-10-08"))
    admin = Principal(role=Role.FEDERATION_ADMIN, staff_user_id=1)
    with pytest.raises(DomainError) as over:
        await applications.approve(conn, admin, found["id"], ApproveIn(amount_minor=100_001), on("2026-10-09"))
    assert over.value.code == "validation_failed" and over.value.extra["errors"][0]["field"] == "amount"
    with pytest.raises(DomainError) as blank:
        await applications.reject(conn, admin, found["id"], RejectIn(reason="  "), on("2026-10-09"))
    assert blank.value.code == "validation_failed"
    finance = Principal(role=Role.FINANCE_OFFICER, staff_user_id=2)
    with pytest.raises(DomainError) as not_a_reviewer:
        await applications.approve(conn, finance, found["id"], ApproveIn(), on("2026-10-09"))
    assert not_a_reviewer.value.code == "forbidden"
    rejected = await applications.reject(conn, admin, found["id"], RejectIn(reason="发票不清晰"), on("2026-10-09"))
    assert rejected["status"] == "rejected" and rejected["decision_note"] == "发票不清晰"
    assert await conn.fetchval("SELECT count(*) FROM ledger_postings") == 0


async def test_one_invoice_is_claimed_once_across_benefits(district: District) -> None:
    first = await submit(district, "a", hospital_application("NO 77", issuer="杭州市第一人民医院（总院）"),
                         on("2026-10-08"))  # fmt: skip
    # The same invoice typed otherwise, for another benefit reviewed at another level: refused.
    again = hospital_application("no77", issuer="杭州市 第一人民医院(总院)", code="illness")
    with pytest.raises(DomainError) as refused:
        await submit(district, "a", again, on("2026-10-09"))
    assert refused.value.code == "invoice_already_claimed" and refused.value.status == 409
    with pytest.raises(DomainError):
        await submit(district, "w", again, on("2026-09-09"))  # nor by another member, nor at the district
    # Another amount is another invoice.
    await submit(district, "a", hospital_application("NO 77", invoice_amount=10_000, amount=10_000, code="illness"),
                 on("2026-10-09"))  # fmt: skip
    # A rejected claim frees its invoice.
    conn = await asyncpg.connect(district.dsn)
    try:
        admin = Principal(role=Role.FEDERATION_ADMIN, staff_user_id=1)
        await applications.reject(conn, admin, first["id"], RejectIn(reason="重复"), on("2026-10-10"))
    finally:
        await conn.close()
    assert (await submit(district, "a", again, on("2026-10-11")))["status"] == "submitted"


async def test_the_api_answers_a_claimed_invoice_with_409(district: District) -> None:
    conn = await asyncpg.connect(district.dsn)
    try:
        token = await member_auth.sign_in(conn, district.world.cards["a"], "123456", datetime.now(SHANGHAI), 3600)
    finally:
        await conn.close()
    district.api.cookies.set("uc_session", token)
    body = {"benefit_code": "wedding", "payee": {"name": "张a", "account": "6222020012345678", "bank": "工商银行"}}
    created = await district.api.post("/api/benefits/v1/applications", json=body, headers={"Idempotency-Key": "k1"})
    assert created.status_code == 201, created.text
    assert "idempotent-replayed" not in created.headers
    replay = await district.api.post("/api/benefits/v1/applications", json=body, headers={"Idempotency-Key": "k1"})
    assert replay.status_code == 201 and replay.json() == created.json()  # as the first answer, marked a replay
    assert replay.headers["idempotent-replayed"] == "true"
    other = await district.api.post("/api/benefits/v1/applications", json={**body, "amount_minor": 50_000},
                                    headers={"Idempotency-Key": "k1"})  # fmt: skip
    assert other.status_code == 409 and other.json()["code"] == "idempotency_key_reused"
    invoice = {"issuer": "医院", "number": "A1", "amount_minor": 90_000, "issued_on": "2026-01-02"}
    claim = {**body, "benefit_code": "hospital", "amount_minor": 90_000, "invoice": invoice}
    assert (await district.api.post("/api/benefits/v1/applications", json=claim)).status_code == 201
    twice = await district.api.post("/api/benefits/v1/applications", json={**claim, "benefit_code": "illness"})
    assert twice.status_code == 409 and twice.json()["code"] == "invoice_already_claimed"
    mine = await district.api.get("/api/benefits/v1/applications")
    assert [item["benefit_code"] for item in mine.json()] == ["hospital", "wedding"]
    # Another member's application is not found for this one.
    assert (await district.api.get(f"/api/benefits/v1/applications/{created.json()['id']}")).status_code == 200
    district.api.cookies.clear()
    assert (await district.api.get("/api/benefits/v1/applications")).status_code == 401


async def test_lifetime_cap_of_3_holds_under_10_concurrent_submissions(district: District) -> None:
    async def one(n: int) -> str:
        conn = await asyncpg.connect(district.dsn)
        try:
            data = ApplicationIn(benefit_code="wedding", payee=PayeeIn(name="张a", account=f"62220200{n:08d}",
                                                                       bank="工商银行"))  # fmt: skip
            await applications.submit(conn, district.member("a"), data, now=on("2026-10-08"), timezone=TZ)
            return "accepted"
        except DomainError as error:
            assert error.extra == {"cap": "per_lifetime_max", "limit": 3}
            return error.code
        finally:
            await conn.close()

    outcomes = await asyncio.gather(*(one(n) for n in range(10)))
    assert sorted(outcomes) == ["accepted"] * 3 + ["benefit_cap_reached"] * 7
    conn = await asyncpg.connect(district.dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM applications") == 3
    finally:
        await conn.close()


async def test_yearly_cap_counts_the_year_of_the_date(district: District) -> None:
    await submit(district, "a", hospital_application("Y1"), on("2026-10-02"))
    await submit(district, "a", hospital_application("Y2"), on("2026-12-31", 23))
    with pytest.raises(DomainError) as capped:
        await submit(district, "a", hospital_application("Y3"), on("2026-12-31", 23))
    assert capped.value.code == "benefit_cap_reached" and capped.value.extra["cap"] == "per_year_max"
    assert (await submit(district, "a", hospital_application("Y3"), on("2027-01-01", 0)))["applied_on"] == "2027-01-01"


async def test_bad_input_is_refused_with_its_fields_and_changes_nothing(district: District) -> None:
    no_invoice = ApplicationIn(benefit_code="hospital", amount_minor=400_000,
                               payee=PayeeIn(name=" ", account="12ab", bank="工商银行"))  # fmt: skip
    with pytest.raises(DomainError) as refused:
        await submit(district, "a", no_invoice, on("2026-10-08"))
    fields = {problem["field"] for problem in refused.value.extra["errors"]}
    assert refused.value.code == "validation_failed"
    assert fields == {"amount", "invoice", "payee_name", "payee_account"}
    fixed = ApplicationIn(benefit_code="wedding", amount_minor=1, payee=PayeeIn(name="a", account="62220200123",
                                                                                bank="b"))  # fmt: skip
    with pytest.raises(DomainError) as not_fixed:
        await submit(district, "a", fixed, on("2026-10-08"))
    assert not_fixed.value.extra["errors"][0]["key"] == "appl_err_amount_fixed"
    conn = await asyncpg.connect(district.dsn)
    try:
        await conn.execute("UPDATE benefits SET eligible_tiers = '{优秀职工}' WHERE code = 'wedding'")
        assert await conn.fetchval("SELECT count(*) FROM applications") == 0
    finally:
        await conn.close()
    with pytest.raises(DomainError) as not_eligible:
        await submit(district, "a", ApplicationIn(benefit_code="wedding", payee=fixed.payee), on("2026-10-08"))
    assert not_eligible.value.code == "benefit_not_eligible" and not_eligible.value.extra["reasons"] == ["tier"]


async def test_limits_hold_for_input_built_in_code(district: District, conn: asyncpg.Connection) -> None:
    """msgspec checks lengths and ranges only when it decodes: a struct constructed in code is checked by the
    service, each field at fault named."""
    data = hospital_application("L-1")
    data.payee = PayeeIn(name="张" * 201, account="6222020012345678", bank="工商银行")
    data.details = {"hospital": "医" * 501, "days_in_hospital": 20_000, "k" * 41: "x"}
    with pytest.raises(DomainError) as refused:
        await submit(district, "a", data, on("2026-10-08"))
    assert refused.value.code == "validation_failed"
    assert [(p["field"], p["key"]) for p in refused.value.extra["errors"]] == [
        ("payee_name", "appl_err_too_long"), ("details.hospital", "appl_err_too_long"),
        ("details.days_in_hospital", "appl_err_not_valid"), ("details", "appl_err_too_long"),
    ]  # fmt: skip
    assert await conn.fetchval("SELECT count(*) FROM applications") == 0
    found = await submit(district, "a", hospital_application("L-2"), on("2026-10-08"))
    admin = Principal(role=Role.FEDERATION_ADMIN, staff_user_id=1)
    before = await snapshot(district.dsn, found["id"])
    with pytest.raises(DomainError) as long_note:
        await applications.approve(conn, admin, found["id"], ApproveIn(note="意" * 501), on("2026-10-09"))
    with pytest.raises(DomainError) as long_reason:
        await applications.reject(conn, admin, found["id"], RejectIn(reason="因" * 501), on("2026-10-09"))
    for refusal in (long_note, long_reason):
        assert refusal.value.extra["errors"][0]["key"] == "review_err_too_long"
    assert await snapshot(district.dsn, found["id"]) == before


@given(st.text())
def test_invoice_numbers_and_accounts_normalize_once(typed: str) -> None:
    """Normal is normal: a number or an account already normalized stays as it is (as stored, as compared)."""
    number, account = normalize_invoice_number(typed), normalize_account(typed)
    assert normalize_invoice_number(number) == number and normalize_account(account) == account
    assert not any(char.isspace() for char in number + account)


# ------------------------------------------------------------------ the pages


async def member_cookie(district: District, label: str) -> None:
    conn = await asyncpg.connect(district.dsn)
    try:
        token = await member_auth.sign_in(conn, district.world.cards[label], "123456", datetime.now(SHANGHAI), 3600)
    finally:
        await conn.close()
    district.api.cookies.clear()
    district.api.cookies.set("uc_session", token)


def form_of(**changes: str) -> dict[str, str]:
    form = {"amount": "1500", "invoice_issuer": "杭州市第一人民医院", "invoice_number": "W-1", "invoice_amount": "3800",
            "invoice_date": "2020-01-02", "hospital": "杭州市第一人民医院", "days_in_hospital": "6",
            "diagnosis": "阑尾炎", "note": "", "payee_name": "张a", "payee_bank": "工商银行",
            "payee_account": "6222 0200 1234 5678", "form_key": "web-form-1"}  # fmt: skip
    return {**form, **changes}


async def test_the_member_applies_on_the_form_and_a_resubmit_lands_on_the_same(district: District) -> None:
    api = district.api
    await member_cookie(district, "a")
    shown = await api.get("/me/benefits/hospital/apply")
    assert shown.status_code == 200 and 'name="invoice_number"' in shown.text and "住院慰问" in shown.text
    assert 'value="张a"' in shown.text  # the holder's name, prefilled
    assert 'name="invoice_number"' not in (await api.get("/me/benefits/wedding/apply")).text
    bad = await api.post("/me/benefits/hospital/apply", data=form_of(amount="abc", invoice_date="", payee_account="1"))
    assert bad.status_code == 422
    assert 'id="e-amount"' in bad.text and 'id="e-invoice_date"' in bad.text and "请修改标红的项目" in bad.text
    squared = await api.post("/me/benefits/hospital/apply", data=form_of(days_in_hospital="²"))
    assert squared.status_code == 422 and 'id="e-days_in_hospital"' in squared.text and 'value="²"' in squared.text
    # Longer than the input allows, past the browser's maxlength: said on its field, kept, and nothing stored.
    long_name, long_note = "张" * 201, "很长的说明" * 101
    too_long = await api.post("/me/benefits/hospital/apply", data=form_of(payee_name=long_name, note=long_note))
    assert too_long.status_code == 422, too_long.text
    assert 'id="e-payee_name"' in too_long.text and 'id="e-note"' in too_long.text and "内容太长" in too_long.text
    assert f'value="{long_name}"' in too_long.text and f">{long_note}</textarea>" in too_long.text
    conn = await asyncpg.connect(district.dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM applications") == 0
    finally:
        await conn.close()
    over = await api.post("/me/benefits/hospital/apply", data=form_of(amount="3900"))
    assert over.status_code == 422 and "超过了该补助的最高金额" in over.text and 'id="e-payee_account"' not in over.text
    sent = await api.post("/me/benefits/hospital/apply", data=form_of(), follow_redirects=False)
    assert sent.status_code == 303, sent.text
    again = await api.post("/me/benefits/hospital/apply", data=form_of(), follow_redirects=False)
    assert again.headers["location"] == sent.headers["location"]
    claimed = await api.post("/me/benefits/illness/apply", data=form_of(form_key="web-form-2"))
    assert claimed.status_code == 409 and 'id="e-invoice_number"' in claimed.text
    page = await api.get(sent.headers["location"])
    assert page.status_code == 200 and "申请已提交" in page.text and "6222020012345678" not in page.text
    listed = await api.get("/me/applications?lang=en")
    assert "Hospitalization grant" in listed.text and "Submitted" in listed.text and "1,500.00" in listed.text
    # Another member's application is no page of this one.
    await member_cookie(district, "w")
    assert (await api.get(sent.headers["location"])).status_code == 404
    # Next time, the bank account comes from the latest application.
    await member_cookie(district, "a")
    assert 'value="6222020012345678"' in (await api.get("/me/benefits/illness/apply")).text


async def test_the_reviewer_decides_on_the_pages(district: District, dsn: str) -> None:
    api = district.api
    found = await submit(district, "a", hospital_application(), on("2026-10-08"))
    elsewhere = await submit(district, "w", hospital_application("W-9"), on("2026-10-08"))
    await add_staff_login(dsn, "east@test", "org_reviewer", org_id=district.world.org_ids["east"], name="东镇审核员")
    assert await sign_in_staff(api, "east@test") == "/review/"
    inbox = await api.get("/review/")
    assert inbox.status_code == 200 and f'data-application-id="{found["id"]}"' in inbox.text
    assert f'data-application-id="{elsewhere["id"]}"' not in inbox.text
    before = await snapshot(dsn, elsewhere["id"])
    refused = await api.get(f"/review/applications/{elsewhere['id']}")
    assert refused.status_code == 403 and "不在您的审核范围内" in refused.text
    acted = await api.post(f"/review/applications/{elsewhere['id']}/approve", data={"amount": "1"})
    assert acted.status_code == 403 and await snapshot(dsn, elsewhere["id"]) == before
    detail = await api.get(f"/review/applications/{found['id']}")
    assert "6217 **** ****" in detail.text and district.world.cards["a"] not in detail.text
    assert 'value="2000.00"' in detail.text and "NO-001" in detail.text
    empty = await api.post(f"/review/applications/{found['id']}/reject", data={"reason": " "})
    assert empty.status_code == 422 and "请填写不予批准的理由" in empty.text
    before = await snapshot(dsn, found["id"])
    long_note = "核" * 501
    too_long = await api.post(f"/review/applications/{found['id']}/approve", data={"amount": "1800", "note": long_note})
    assert (
        too_long.status_code == 422 and "最多 500 字" in too_long.text and f">{long_note}</textarea>" in too_long.text
    )
    assert await snapshot(dsn, found["id"]) == before
    # Under review still waits for a decision: the inbox opens on it, beside the submitted ones.
    opened = await api.post(f"/review/applications/{found['id']}/open", follow_redirects=False)
    assert opened.status_code == 303
    second = await submit(district, "a", hospital_application("NO-002"), on("2026-10-09"))
    waiting = await api.get("/review/")
    assert all(f'data-application-id="{item["id"]}"' in waiting.text for item in (found, second))
    assert 'aria-current="true" data-testid="chip-waiting"' in waiting.text
    assert (await api.get("/review/?after=²")).status_code == 422  # a page number it cannot read: never a 500
    only_submitted = await api.get("/review/?status=submitted")
    assert f'data-application-id="{second["id"]}"' in only_submitted.text
    assert f'data-application-id="{found["id"]}"' not in only_submitted.text
    decision = {"amount": "1800", "note": "核实无误"}
    approved = await api.post(f"/review/applications/{found['id']}/approve", data=decision, follow_redirects=False)
    assert approved.status_code == 303 and approved.headers["location"].endswith("done=approved")
    after = await api.get(approved.headers["location"])
    assert "已批准，等待财务发放" in after.text and "¥1,800.00" in after.text and "核实无误" in after.text
    assert "开始审核" not in after.text
    assert f'data-application-id="{found["id"]}"' not in (await api.get("/review/")).text  # decided: not waiting
    english = await api.get(approved.headers["location"] + "&lang=en")
    assert "Approved: finance pays it next." in english.text and "Applicant" in english.text
    assert "Grant review" in (await api.get("/review/?status=all")).text
    await member_cookie(district, "a")
    assert "仅供审核人员" in (await api.get("/review/")).text


async def test_finance_sees_the_grants_page(district: District, dsn: str) -> None:
    found = await submit(district, "a", hospital_application(), on("2026-10-08"))
    admin = Principal(role=Role.FEDERATION_ADMIN, staff_user_id=1)
    conn = await asyncpg.connect(dsn)
    try:
        await applications.approve(conn, admin, found["id"], ApproveIn(), on("2026-10-09"))
    finally:
        await conn.close()
    await add_staff_login(dsn, "money@test", "finance_officer")
    await sign_in_staff(district.api, "money@test")
    desk = await district.api.get("/finance/grants")
    assert desk.status_code == 200 and f'data-application-id="{found["id"]}"' in desk.text
    done = await district.api.post("/finance/grants/disburse", follow_redirects=False)
    assert done.headers["location"] == "/finance/grants?done=disbursed&n=1"
    taken = await district.api.post("/finance/grants/bank-file.csv")
    assert taken.status_code == 200 and "张a" in taken.content.decode("utf-8-sig")
    page = await district.api.get("/finance/grants?lang=en")
    assert "Confirm this file paid" in page.text and "reference is G and its number" in page.text
