"""The finance console over HTTP with a signed-in finance session: inbox, exceptions, batches, payouts, charts."""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from tests.factories import World, add_card, add_merchant, add_staff_login, make_world, ok, sign_in_staff, staff_token
from unioncard import clock

pytestmark = pytest.mark.asyncio

SHANGHAI = ZoneInfo("Asia/Shanghai")
V1 = "/api/settlement/v1"


def last_month() -> date:
    today = clock.now().astimezone(SHANGHAI).date()
    return (today.replace(day=1) - timedelta(days=1)).replace(day=1)


PERIOD = last_month()
MONTH = PERIOD.strftime("%Y-%m")
BEFORE = (PERIOD - timedelta(days=1)).replace(day=10)  # a day of the month before the period


@dataclass
class Desk:
    client: AsyncTestClient
    dsn: str
    world: World
    sales: dict[str, dict[str, Any]] = field(default_factory=dict)


async def sql(dsn: str, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(query, *args)  # type: ignore[no-any-return]
    finally:
        await conn.close()


@pytest.fixture
async def desk(client: AsyncTestClient, dsn: str) -> Desk:
    """Merchant a (east town, supermarket, with a monthly budget) and b (west town, restaurant); finance signed in."""
    world = await make_world(client, dsn)
    await add_card(client, world, "m")
    await add_merchant(client, world, "a", monthly_budget_minor=500_000)
    await add_merchant(client, world, "b")
    await sql(dsn, "UPDATE cards SET status_since = '2020-01-01'")
    await sql(dsn, "UPDATE card_status_history SET valid_from = '2020-01-01'")
    await sql(
        dsn,
        "UPDATE merchants SET payee_name = name || '有限公司', payee_account = '6222' || id, payee_bank = '工商银行'",
    )
    await sql(dsn, "UPDATE merchants SET org_id = $1 WHERE id = $2", world.org_ids["east"], world.merchants["a"])
    await sql(dsn, "UPDATE merchants SET org_id = $1, category = 'restaurant' WHERE id = $2", world.org_ids["west"],
              world.merchants["b"])  # fmt: skip
    await add_staff_login(dsn, "cw@test", "finance_officer", name="李会计")
    assert await sign_in_staff(client, "cw@test") == "/finance/"
    return Desk(client, dsn, world)


async def sell(desk: Desk, label: str, amount: int, day: date, merchant: str = "a") -> dict[str, Any]:
    at = datetime(day.year, day.month, day.day, 10, 0, tzinfo=SHANGHAI)
    [row] = await sql(
        desk.dsn, "SELECT body::text FROM till_redeem($1, $2, NULL, $3, 'CNY', $4, $5, $6, '\\x00')",
        desk.world.terminal_ids[merchant], desk.world.cards["m"], amount, label, at, f"key-{label}",
    )  # fmt: skip
    desk.sales[label] = json.loads(row[0])
    return desk.sales[label]


async def refund(desk: Desk, label: str, merchant: str = "a") -> None:
    await sql(desk.dsn, "SELECT till_refund($1, $2::uuid, NULL, $3, '\\x01')", desk.world.terminal_ids[merchant],
              desk.sales[label]["id"], f"refund-{label}")  # fmt: skip


def line(sale: dict[str, Any], **change: Any) -> dict[str, Any]:
    body = {"redemption_id": sale["id"], "occurred_at": sale["occurred_at"], "amount": sale["amount"],
            "union_funded": sale["union_funded"]}  # fmt: skip
    return {**body, **change}


async def claim(desk: Desk, lines: list[dict[str, Any]], merchant: str = "a") -> dict[str, Any]:
    body = {"period": MONTH, "lines": lines}
    return await ok(await desk.client.post(f"{V1}/claims", json=body, headers=desk.world.terminals[merchant]))


def ids(html: str, attribute: str) -> list[str]:
    return re.findall(rf'{attribute}="([^"]+)"', html)


async def simple_claim(desk: Desk) -> dict[str, Any]:
    """Merchant a sells three times in the period and claims all three, matched."""
    for n in (1, 2, 3):
        await sell(desk, f"s{n}", 10_000 * n, PERIOD + timedelta(days=n))
    return await claim(desk, [line(desk.sales[f"s{n}"]) for n in (1, 2, 3)])


async def ledger(dsn: str) -> dict[str, int]:
    [row] = await sql(
        dsn, "SELECT (SELECT count(*) FROM ledger_unbalanced) AS unbalanced,"
        " (SELECT count(*) FROM ledger_transactions WHERE kind = 'settlement_approved') AS approvals,"
        " (SELECT count(*) FROM ledger_transactions WHERE kind = 'payout_paid') AS paid",
    )  # fmt: skip
    return dict(row)


async def instruction(dsn: str, batch_id: int) -> dict[str, Any]:
    rows = await sql(dsn, "SELECT id, status FROM payout_instructions WHERE batch_id = $1 ORDER BY id DESC", batch_id)
    return dict(rows[0])


# ------------------------------------------------------------------ the inbox


async def test_inbox_filters_by_stage_and_exceptions(desk: Desk) -> None:
    clean = await simple_claim(desk)
    sale = await sell(desk, "b1", 8_000, PERIOD + timedelta(days=4), merchant="b")
    messy = await claim(desk, [line(sale), line(sale, redemption_id=str(uuid.uuid4()))], merchant="b")
    await ok(await desk.client.post(f"{V1}/batches", json={"claim_id": clean["id"]}, headers=await finance(desk)))

    everything = await desk.client.get(f"/finance/?period={MONTH}")
    assert everything.status_code == 200
    assert ids(everything.text, "data-claim-id") == [str(clean["id"]), str(messy["id"])]
    batched = await desk.client.get(f"/finance/?period={MONTH}&status=batched")
    assert ids(batched.text, "data-claim-id") == [str(clean["id"])]
    assert re.findall(r'data-claim-id="\d+" data-stage="(\w+)"', batched.text) == ["batched"]
    reconciled = await desk.client.get(f"/finance/?period={MONTH}&status=reconciled")
    assert ids(reconciled.text, "data-claim-id") == [str(messy["id"])]
    flagged = await desk.client.get(f"/finance/?period={MONTH}&exceptions=1")
    assert ids(flagged.text, "data-claim-id") == [str(messy["id"])]
    assert "b超市" in flagged.text and "a超市" not in flagged.text
    default = await desk.client.get("/finance/")
    assert f'value="{MONTH}"' in default.text and ids(default.text, "data-claim-id") == ids(
        everything.text, "data-claim-id"
    )
    empty = await desk.client.get(f"/finance/?period={(PERIOD - timedelta(days=1)).strftime('%Y-%m')}")
    assert ids(empty.text, "data-claim-id") == [] and "没有符合条件" in empty.text
    bad = await desk.client.get("/finance/?period=2026-13")
    assert bad.status_code == 422 and "YYYY-MM" in bad.text


async def finance(desk: Desk) -> dict[str, str]:
    return await staff_token(desk.dsn, "finance_officer")


# ------------------------------------------------------------------ a claim


async def test_each_exception_filter_lists_exactly_the_lines_of_its_class(desk: Desk) -> None:
    made = (("early", 3_000, 1), ("ok", 10_000, 2), ("off", 20_000, 3), ("back", 5_000, 4), ("left", 7_000, 5))
    s = {n: await sell(desk, n, amount, PERIOD + timedelta(days=day)) for n, amount, day in made}
    s["old"] = await sell(desk, "old", 9_000, BEFORE)
    await refund(desk, "back")
    earlier = await claim(desk, [line(s["early"])])  # an earlier claim, taken into a batch, holds this sale
    await ok(await desk.client.post(f"{V1}/batches", json={"claim_id": earlier["id"]},
                                    headers=await finance(desk)))  # fmt: skip
    lines = [
        line(s["ok"]), line(s["off"], union_funded=s["off"]["union_funded"] + 1), line(s["ok"]),
        line(s["ok"], redemption_id=str(uuid.uuid4())), line(s["back"]), line(s["old"]), line(s["early"]),
    ]  # fmt: skip
    found = await claim(desk, lines)
    expected = {row["class"]: [] for row in await sql(desk.dsn, "SELECT DISTINCT class FROM claim_lines")}
    for row in await sql(desk.dsn, "SELECT line_no, class FROM claim_lines WHERE claim_id = $1 ORDER BY line_no",
                         found["id"]):  # fmt: skip
        expected[row["class"]].append(str(row["line_no"]))
    assert set(expected) == {"matched", "amount_mismatch", "duplicate_line", "not_found", "reversed", "out_of_period",
                             "already_claimed"}  # fmt: skip

    page = await desk.client.get(f"/finance/claims/{found['id']}")
    assert page.status_code == 200 and "data-line=" not in page.text
    for name, numbers in expected.items():
        listed = await desk.client.get(f"/finance/claims/{found['id']}?class={name}")
        assert ids(listed.text, "data-line") == numbers, name
        assert re.search(rf'data-testid="count-{name}">{len(numbers)}<', listed.text), name
    unclaimed = await desk.client.get(f"/finance/claims/{found['id']}?class=unclaimed")
    assert ids(unclaimed.text, "data-sale") == [s["left"]["id"]]
    assert f"/api/settlement/v1/claims/{found['id']}/results.csv" in page.text


async def test_reconcile_again_from_the_claim_page(desk: Desk) -> None:
    found = await simple_claim(desk)
    response = await desk.client.post(f"/finance/claims/{found['id']}/reconcile", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].endswith("?done=reconciled")
    runs = await sql(desk.dsn, "SELECT count(*) FROM reconciliation_runs WHERE claim_id = $1", found["id"])
    assert runs[0][0] == 2
    assert "已重新对账" in (await desk.client.get(response.headers["location"])).text


# ------------------------------------------------------------------ a batch


async def test_create_a_batch_excluding_a_line_then_approve_twice(desk: Desk) -> None:
    found = await simple_claim(desk)
    url = f"/finance/claims/{found['id']}/batch"
    refused = await desk.client.post(url, data={"exclusions": "9 没有这一行\n2"})
    assert refused.status_code == 422
    assert "申请第 9 行：不是匹配行" in refused.text and "申请第 2 行：需要填写原因" in refused.text
    assert (await sql(desk.dsn, "SELECT count(*) FROM settlement_batches"))[0][0] == 0

    created = await desk.client.post(url, data={"exclusions": "2 小票模糊"}, follow_redirects=False)
    assert created.status_code == 303 and created.headers["location"].endswith("?done=created")
    batch_id = int(created.headers["location"].split("/")[3].split("?")[0])
    page = await desk.client.get(created.headers["location"])
    assert "已剔除：小票模糊" in page.text and 'data-testid="batch-status">待审批' in page.text
    share = desk.sales["s1"]["union_funded"] + desk.sales["s3"]["union_funded"]
    assert f'data-testid="payable">¥{share // 100}.{share % 100:02d}<' in page.text

    first = await desk.client.post(f"/finance/batches/{batch_id}/approve", follow_redirects=False)
    second = await desk.client.post(f"/finance/batches/{batch_id}/approve", follow_redirects=False)
    assert first.headers["location"].endswith("?done=approved")
    assert second.headers["location"].endswith("?done=already_approved")
    assert "该批次早已审批，未重复记账" in (await desk.client.get(second.headers["location"])).text
    assert await ledger(desk.dsn) == {"unbalanced": 0, "approvals": 1, "paid": 0}


async def approved_batch(desk: Desk) -> int:
    found = await simple_claim(desk)
    created = await desk.client.post(f"/finance/claims/{found['id']}/batch", data={"exclusions": ""},
                                     follow_redirects=False)  # fmt: skip
    batch_id = int(created.headers["location"].split("/")[3].split("?")[0])
    assert (await desk.client.post(f"/finance/batches/{batch_id}/approve", follow_redirects=False)).status_code == 303
    return batch_id


async def test_bank_file_then_confirm_paid(desk: Desk) -> None:
    batch_id = await approved_batch(desk)
    item = await instruction(desk.dsn, batch_id)
    page = await desk.client.get(f"/finance/batches/{batch_id}")
    assert f"/finance/batches/{batch_id}/bank-file.csv" in page.text and "确认已付款" in page.text
    assert f"/finance/batches/{batch_id}/pay" not in page.text  # the bank-file rail has no pay button
    assert f"/statements/{desk.world.merchants['a']}/{MONTH}" in page.text

    download = await desk.client.post(f"/finance/batches/{batch_id}/bank-file.csv")
    assert download.status_code == 200 and "attachment" in download.headers["content-disposition"]
    [row] = list(csv.DictReader(io.StringIO(download.content.decode("utf-8-sig"))))
    assert row["reference"] == str(item["id"]) and row["payee_bank"] == "工商银行"
    assert (await instruction(desk.dsn, batch_id))["status"] == "transferred"

    paid = await desk.client.post(f"/finance/batches/{batch_id}/confirm-paid", follow_redirects=False)
    assert paid.status_code == 303 and paid.headers["location"].endswith("?done=paid")
    assert (await instruction(desk.dsn, batch_id))["status"] == "paid"
    after = await desk.client.get(paid.headers["location"])
    assert 'data-status="paid"' in after.text and "已确认付款" in after.text
    assert await ledger(desk.dsn) == {"unbalanced": 0, "approvals": 1, "paid": 1}


def result_file(rows: list[tuple[str, str, str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["reference", "status", "reason"])
    writer.writerows(rows)
    return out.getvalue().encode()


async def test_bank_result_file_rejected_then_failed_retried_and_canceled(desk: Desk) -> None:
    batch_id = await approved_batch(desk)
    first = await instruction(desk.dsn, batch_id)
    assert (await desk.client.post(f"/finance/batches/{batch_id}/bank-file.csv")).status_code == 200
    url = f"/finance/batches/{batch_id}/bank-result"
    bad = result_file([(str(first["id"]), "paid", ""), ("abc", "paid", ""), (str(first["id"]), "maybe", "")])
    rejected = await desk.client.post(url, files={"file": ("result.csv", bad, "text/csv")})
    assert rejected.status_code == 422 and "文件被拒绝" in rejected.text
    assert "第 3 行（reference）" in rejected.text and "第 4 行（status）" in rejected.text
    assert "第 2 行" not in rejected.text
    assert (await instruction(desk.dsn, batch_id))["status"] == "transferred"

    failed = result_file([(str(first["id"]), "失败", "账户已冻结")])
    imported = await desk.client.post(url, files={"file": ("result.csv", failed, "text/csv")}, follow_redirects=False)
    assert imported.headers["location"].endswith("?done=result&applied=1&unchanged=0&unknown=0")
    page = await desk.client.get(imported.headers["location"])
    assert (
        "更新 1 条" in page.text and "账户已冻结" in page.text and f"/finance/payouts/{first['id']}/retry" in page.text
    )

    retried = await desk.client.post(f"/finance/payouts/{first['id']}/retry", follow_redirects=False)
    assert retried.headers["location"] == f"/finance/batches/{batch_id}?done=retried"
    second = await instruction(desk.dsn, batch_id)
    assert second["id"] != first["id"] and second["status"] == "approved"
    canceled = await desk.client.post(f"/finance/payouts/{second['id']}/cancel", follow_redirects=False)
    assert canceled.headers["location"] == f"/finance/batches/{batch_id}?done=canceled"
    assert (await instruction(desk.dsn, batch_id))["status"] == "canceled"
    assert (await ledger(desk.dsn))["unbalanced"] == 0
    inbox = await desk.client.get(f"/finance/?period={MONTH}&status=canceled")
    assert len(ids(inbox.text, "data-claim-id")) == 1


# ------------------------------------------------------------------ the overview


def shown(html: str, testid: str) -> int:
    """A total as the page prints it ("¥1,234.56" or "1,234") back in minor units (or a count)."""
    found = re.search(rf'data-testid="{testid}">¥?([\d,]+)(?:\.(\d\d))?<', html)
    assert found, f"no {testid} on the page"
    whole = int(found[1].replace(",", ""))
    return whole * 100 + int(found[2]) if found[2] is not None else whole


async def test_chart_totals_equal_the_sql_sums(desk: Desk) -> None:
    for n in range(1, 13):
        await sell(desk, f"a{n}", 123_456 * n, PERIOD + timedelta(days=n % 27), merchant="a" if n % 3 else "b")
    await sell(desk, "old", 50_000, BEFORE)
    await refund(desk, "a1")
    page = await desk.client.get(f"/finance/overview?period={MONTH}")
    assert page.status_code == 200
    [sums] = await sql(
        desk.dsn,
        "WITH s AS (SELECT id, merchant_id, union_funded_minor FROM redemptions"
        "  WHERE to_char(occurred_at AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM') = $1)"
        " SELECT (SELECT sum(union_funded_minor) FROM s) - (SELECT coalesce(sum(f.union_funded_minor), 0)"
        "   FROM refunds f JOIN s ON s.id = f.redemption_id) AS net,"
        " (SELECT count(*) FROM s) AS sales,"
        " (SELECT sum(monthly_budget_minor) FROM contract_versions WHERE monthly_budget_minor IS NOT NULL) AS budget,"
        " (SELECT sum(used_minor) FROM merchant_budget_months WHERE month = $2) AS used",
        MONTH, PERIOD,
    )  # fmt: skip
    assert sums["net"] > 100_000  # over 1,000 yuan: big enough for thousands separators
    assert shown(page.text, "town-total") == shown(page.text, "category-total") == sums["net"]
    assert shown(page.text, "daily-total") == sums["net"] and shown(page.text, "daily-sales") == sums["sales"] == 12
    assert shown(page.text, "budget-budget") == sums["budget"] == 500_000
    assert shown(page.text, "budget-used") == sums["used"]
    assert shown(page.text, "budget-left") == sums["budget"] - sums["used"]
    assert re.search(r'data-testid="town-total">¥\d{1,3}(,\d{3})+\.\d\d<', page.text)
    assert page.text.count("<svg") == 4 and "east镇" in page.text and "west镇" in page.text and "餐饮" in page.text
    empty = await desk.client.get(f"/finance/overview?period={BEFORE.replace(month=1).strftime('%Y-%m')}")
    assert empty.status_code == 200 and "本月暂无数据" in empty.text


# ------------------------------------------------------------------ access


async def test_access_anonymous_redirects_and_other_roles_are_refused(desk: Desk) -> None:
    batch_id = await approved_batch(desk)
    paths = ["/finance/", "/finance/overview", f"/finance/batches/{batch_id}", f"/finance/claims/{batch_id}"]
    desk.client.cookies.clear()
    for path in paths:
        response = await desk.client.get(path, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == "/login", path
    posted = await desk.client.post(f"/finance/batches/{batch_id}/confirm-paid", follow_redirects=False)
    assert posted.status_code == 303 and posted.headers["location"] == "/login"

    await add_staff_login(desk.dsn, "boss@a", "merchant_admin", merchant_id=desk.world.merchants["a"])
    assert await sign_in_staff(desk.client, "boss@a") == "/merchant/"
    for path in paths:
        refused = await desk.client.get(path, follow_redirects=False)
        assert refused.status_code == 403 and "仅限财务人员" in refused.text, path
    posted = await desk.client.post(f"/finance/batches/{batch_id}/confirm-paid", follow_redirects=False)
    assert posted.status_code == 403
    assert (await instruction(desk.dsn, batch_id))["status"] == "approved"

    desk.client.cookies.clear()
    token = await staff_token(desk.dsn, "federation_admin")
    assert (await desk.client.get("/finance/", headers=token)).status_code == 200
    assert (await desk.client.get("/finance/claims/999999", headers=token)).status_code == 404


class ApiRail:
    """A rail paid through an API (as Stripe Connect is): every instruction is transferred at once."""

    name = "api_rail"
    currencies = frozenset({"CNY"})

    def onboard_payee(self, payee: Any) -> str:
        return "ready"

    async def submit(self, instruction: Any) -> Any:
        from settlement.rails import RailEvent

        return RailEvent(instruction_id=instruction.id, status="transferred", reference=f"tr_{instruction.id}")


async def test_an_api_rail_gets_a_pay_button_instead_of_the_bank_file(desk: Desk) -> None:
    desk.client.app.state.payout_rail = ApiRail()
    batch_id = await approved_batch(desk)
    page = await desk.client.get(f"/finance/batches/{batch_id}")
    assert f"/finance/batches/{batch_id}/pay" in page.text and "bank-file.csv" not in page.text
    paid = await desk.client.post(f"/finance/batches/{batch_id}/pay", follow_redirects=False)
    assert paid.headers["location"] == f"/finance/batches/{batch_id}?done=submitted"
    assert (await instruction(desk.dsn, batch_id))["status"] == "transferred"
    refused = await desk.client.post(f"/finance/batches/{batch_id}/bank-file.csv")
    assert refused.status_code == 409


async def test_a_draft_batch_is_discarded_from_its_page(desk: Desk) -> None:
    claim_id = (await simple_claim(desk))["id"]
    created = await desk.client.post(f"/finance/claims/{claim_id}/batch", data={"exclusions": ""},
                                     follow_redirects=False)  # fmt: skip
    batch_id = int(created.headers["location"].split("/")[-1].split("?")[0])
    page = await desk.client.get(f"/finance/batches/{batch_id}")
    assert f"/finance/batches/{batch_id}/discard" in page.text
    gone = await desk.client.post(f"/finance/batches/{batch_id}/discard", follow_redirects=False)
    assert gone.status_code == 303 and gone.headers["location"] == f"/finance/claims/{claim_id}?done=discarded"
    assert "草稿批次已作废" in (await desk.client.get(gone.headers["location"])).text
    assert (await desk.client.get(f"/finance/batches/{batch_id}")).status_code == 404
