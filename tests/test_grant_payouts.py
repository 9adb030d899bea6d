"""Grant payouts: finance disburses approved grants by bank file, confirms them paid or reads the bank's result;
the applications follow, the ledger stays balanced, and doing a step twice changes nothing."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import datetime
from typing import Any

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from cards import applications
from settlement import grant_payouts
from settlement.grant_payouts import DisburseIn
from settlement.rails import BankFileRail, Instruction, Payee, RailEvent
from tests.factories import add_staff_login, sign_in_staff, staff_token
from tests.test_applications import REVIEW, District, district_with_grants, hospital_application, on, submit
from unioncard.auth import Principal, Role
from unioncard.errors import DomainError

PAYOUTS = "/api/benefits/v1/grant-payouts"


@pytest.fixture
async def district(client: AsyncTestClient, dsn: str) -> District:
    return await district_with_grants(client, dsn)


async def approved(
    district: District, number: str, amount: int, label: str = "a", code: str = "illness"
) -> dict[str, Any]:
    """An application dated 8 Oct, approved by its town's reviewer through the API."""
    found = await submit(district, label, hospital_application(number, amount=amount, code=code), on("2026-10-08"))
    town = "east" if label == "a" else "west"
    answer = await district.api.post(f"{REVIEW}/{found['id']}/approve", json={"note": "ok"},
                                     headers=district.reviewers[town])  # fmt: skip
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


async def figures(dsn: str, member_id: int) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        balances = dict(await conn.fetch("SELECT account, sum(amount_minor)::bigint FROM ledger_postings"
                                         " GROUP BY account"))  # fmt: skip
        return {
            "unbalanced": await conn.fetchval("SELECT count(*) FROM ledger_unbalanced"),
            "grants_payable": balances.get(f"member:{member_id}:grants_payable", 0),
            "in_transit": balances.get("payouts:in_transit", 0),
            "cash": balances.get("union:cash", 0),
            "expense": balances.get("union:benefit_expense", 0),
            "postings": await conn.fetchval("SELECT count(*) FROM ledger_postings"),
        }
    finally:
        await conn.close()


def file_lines(body: bytes) -> list[dict[str, str]]:
    assert body.startswith("\ufeff".encode())
    return list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))


async def status_of(dsn: str, application_id: int) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval("SELECT status FROM applications WHERE id = $1", application_id)  # type: ignore[no-any-return]
    finally:
        await conn.close()


async def test_disburse_take_the_file_and_confirm_paid(district: District) -> None:
    api, finance = district.api, await staff_token(district.dsn, "finance_officer")
    member_id = district.world.member_ids["a"]
    grant = await approved(district, "P-1", 180_000)
    opened = await api.post(PAYOUTS, headers=finance)
    assert opened.status_code == 200, opened.text
    [payout] = opened.json()["opened"]
    assert payout["application_id"] == grant["id"] and payout["amount_minor"] == 180_000
    assert (await api.post(PAYOUTS, headers=finance)).json() == {"opened": [], "skipped": []}  # again: nothing
    assert (await figures(district.dsn, member_id))["grants_payable"] == 0
    assert await status_of(district.dsn, grant["id"]) == "approved"

    taken = await api.post(f"{PAYOUTS}/bank-file.csv", headers=finance)
    assert taken.status_code == 200, taken.text
    assert 'filename="grant-file-' in taken.headers["content-disposition"]
    [line] = file_lines(taken.content)
    assert line == {"payee_name": "张a", "payee_account": "6222020012345678", "payee_bank": "工商银行",
                    "amount": "1800.00", "currency": "CNY", "reference": f"G{payout['id']}"}  # fmt: skip
    assert await status_of(district.dsn, grant["id"]) == "disbursed"
    again = await api.post(f"{PAYOUTS}/bank-file.csv", headers=finance)
    assert again.status_code == 409 and again.json()["code"] == "conflict"
    file_id = (await api.get(PAYOUTS, headers=finance)).json()[0]["bank_file_id"]
    copy = await api.post(f"{PAYOUTS}/bank-files/{file_id}/copy.csv", headers=finance)
    assert file_lines(copy.content) == [line] and "-copy.csv" in copy.headers["content-disposition"]
    conn = await asyncpg.connect(district.dsn)
    try:  # a copy carries whole account numbers: who took one is on record
        audited = await conn.fetchrow("SELECT actor, detail FROM audit_log WHERE action = 'grants.bank_file_copied'")
    finally:
        await conn.close()
    assert audited["actor"].startswith("finance_officer:") and str(payout["id"]) in audited["detail"]

    confirmed = await api.post(f"{PAYOUTS}/confirm-paid", json={"bank_file_id": file_id}, headers=finance)
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["applied"] == [{"payout_id": payout["id"], "application_id": grant["id"],
                                            "status": "paid"}]  # fmt: skip
    twice = await api.post(f"{PAYOUTS}/confirm-paid", json={"payout_ids": [payout["id"]]}, headers=finance)
    assert twice.json() == {"applied": [], "unchanged": [payout["id"]], "unknown": []}
    assert await figures(district.dsn, member_id) == {"unbalanced": 0, "grants_payable": 0, "in_transit": 0,
                                                      "cash": -180_000, "expense": 180_000, "postings": 6}  # fmt: skip
    conn = await asyncpg.connect(district.dsn)
    try:
        mine = await applications.get_mine(conn, district.member("a"), grant["id"])
    finally:
        await conn.close()
    assert mine["status"] == "paid"
    assert [e["to_status"] for e in mine["events"]] == ["submitted", "approved", "disbursed", "paid"]


async def test_a_failed_payment_reverses_and_is_paid_again_when_named(district: District) -> None:
    api, finance = district.api, await staff_token(district.dsn, "finance_officer")
    member_id = district.world.member_ids["a"]
    grant = await approved(district, "F-1", 50_000)
    [payout] = (await api.post(PAYOUTS, headers=finance)).json()["opened"]
    await api.post(f"{PAYOUTS}/bank-file.csv", headers=finance)
    # A bare number is a merchant payout's reference, G999 no grant payout: neither is settled here.
    result = f"参考号,状态,原因\r\ng{payout['id']},失败,账户名不符\r\n999,成功,\r\nG999,成功,\r\n".encode("gbk")
    read = await api.post(f"{PAYOUTS}/bank-result", content=result, headers=finance)
    assert read.status_code == 200, read.text
    assert read.json()["applied"][0]["status"] == "failed" and read.json()["unknown"] == [999]
    assert await status_of(district.dsn, grant["id"]) == "failed"
    after = await figures(district.dsn, member_id)
    assert (after["grants_payable"], after["in_transit"], after["unbalanced"]) == (-50_000, 0, 0)
    # The same file again changes nothing.
    assert (await api.post(f"{PAYOUTS}/bank-result", content=result, headers=finance)).json()["applied"] == []
    assert await figures(district.dsn, member_id) == after

    assert (await api.post(PAYOUTS, headers=finance)).json()["opened"] == []  # not without being named
    retried = await api.post(PAYOUTS, json={"application_ids": [grant["id"]]}, headers=finance)
    [second] = retried.json()["opened"]
    named_again = await api.post(PAYOUTS, json={"application_ids": [grant["id"]]}, headers=finance)
    assert named_again.json() == {"opened": [], "skipped": [grant["id"]]}
    assert second["id"] != payout["id"]
    [line] = file_lines((await api.post(f"{PAYOUTS}/bank-file.csv", headers=finance)).content)
    assert line["reference"] == f"G{second['id']}"
    assert await status_of(district.dsn, grant["id"]) == "disbursed"
    paid = f"reference,status\r\nG{second['id']},paid\r\n".encode()
    assert (await api.post(f"{PAYOUTS}/bank-result", content=paid, headers=finance)).json()["applied"][0][
        "status"
    ] == "paid"
    assert await status_of(district.dsn, grant["id"]) == "paid"
    assert await figures(district.dsn, member_id) == {"unbalanced": 0, "grants_payable": 0, "in_transit": 0,
                                                      "cash": -50_000, "expense": 50_000, "postings": 10}  # fmt: skip


async def test_only_finance_disburses_and_a_bad_result_file_changes_nothing(district: District) -> None:
    api, finance = district.api, await staff_token(district.dsn, "finance_officer")
    await approved(district, "R-1", 10_000)
    for who in (district.reviewers["east"], district.reviewers["district"]):
        assert (await api.post(PAYOUTS, headers=who)).status_code == 403
    await api.post(PAYOUTS, headers=finance)
    await api.post(f"{PAYOUTS}/bank-file.csv", headers=finance)
    before = await figures(district.dsn, district.world.member_ids["a"])
    [payout] = (await api.get(PAYOUTS, headers=finance)).json()
    for body in (b"reference,status\r\nabc,paid\r\n", f"reference,status\r\nG{payout['id']},paid\r\nG²,paid\r\n",
                 f"reference,status\r\nG{payout['id']},paid\r\nG{payout['id']},failed\r\n"):  # fmt: skip
        bad = await api.post(f"{PAYOUTS}/bank-result", content=body, headers=finance)
        assert bad.status_code == 422 and bad.json()["code"] == "import_rejected", bad.text
    assert await figures(district.dsn, district.world.member_ids["a"]) == before


async def test_the_grants_page_refuses_an_application_number_it_cannot_read(district: District, dsn: str) -> None:
    await approved(district, "N-1", 10_000)
    await add_staff_login(dsn, "money@test", "finance_officer")
    await sign_in_staff(district.api, "money@test")
    for typed in ("²", "１２", "12x"):
        refused = await district.api.post("/finance/grants/disburse", data={"application_id": typed})
        assert refused.status_code == 422 and "申请编号应为数字" in refused.text, refused.text
    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM grant_payouts") == 0
    finally:
        await conn.close()


async def test_the_stripe_rail_refuses_grants(district: District, conn: asyncpg.Connection) -> None:
    class ConnectedAccountsOnly:
        name = "stripe_connect"
        currencies = frozenset({"EUR"})

        def onboard_payee(self, payee: Payee) -> str:
            return "ready"

        async def submit(self, instruction: Instruction) -> RailEvent:
            raise AssertionError("a grant must never reach this rail")

    await approved(district, "S-1", 10_000)
    finance = Principal(role=Role.FINANCE_OFFICER, staff_user_id=1)
    with pytest.raises(DomainError) as refused:
        await grant_payouts.disburse(conn, finance, DisburseIn(), ConnectedAccountsOnly(), on("2026-10-09"))  # type: ignore[arg-type]
    assert refused.value.code == "rail_unavailable"
    assert await conn.fetchval("SELECT count(*) FROM grant_payouts") == 0


async def test_concurrent_disbursements_pay_each_grant_once(district: District) -> None:
    grants = [await approved(district, f"C-{n}", 10_000 + n) for n in range(5)]
    finance = Principal(role=Role.FINANCE_OFFICER, staff_user_id=1)

    async def disburse() -> int:
        conn = await asyncpg.connect(district.dsn)
        try:
            found = await grant_payouts.disburse(
                conn, finance, DisburseIn(), BankFileRail(), datetime.now().astimezone()
            )
            return len(found["opened"])
        finally:
            await conn.close()

    assert sorted(await asyncio.gather(*(disburse() for _ in range(6)))) == [0, 0, 0, 0, 0, 5]
    conn = await asyncpg.connect(district.dsn)
    try:
        assert await conn.fetchval("SELECT count(DISTINCT application_id) FROM grant_payouts") == len(grants)
        assert await conn.fetchval("SELECT count(*) FROM grant_payouts") == len(grants)
    finally:
        await conn.close()
