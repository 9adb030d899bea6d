"""Merchant statements: opening + movements = closing = the ledger, to the fen, as JSON, CSV and a printable page."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from settlement.statements import StatementDoesNotReconcile, check_statement
from tests.browser import PHONE, TABLET, new_page
from tests.factories import add_staff_login, ok, sign_in_staff, staff_token
from tests.test_settlement_batches import (
    SHANGHAI,
    V1,
    Shop,
    _approve,
    _bank_result,
    _batch,
    _claim,
    _pay_by_bank_file,
    _sell,
    api,
    shop,
)
from unioncard.money import parse_yuan

STATEMENTS = f"{V1}/statements"
SHARED_FIXTURES = (api, shop)  # pytest finds them here by name: the batch tests' shop
SHOTS_DIR = "/tmp/shots/statements"  # unless $UNIONCARD_SCREENSHOTS says otherwise


@dataclass
class Month:
    """The booking month the test ran in, the one before, and what the ledger should say at its end (owed, fen)."""

    period: str
    previous: str
    following: str
    batch_ids: list[int]
    payable_minor: int = 600  # the sale booked last month, never claimed
    in_transit_minor: int = 180  # the second batch, retried after its payout failed


async def _sql(shop: Shop, query: str, *args: Any) -> Any:
    conn = await asyncpg.connect(shop.dsn)
    try:
        return await conn.fetchval(query, *args)
    finally:
        await conn.close()


async def _refund(shop: Shop, label: str, amount_minor: int | None) -> None:
    await _sql(shop, "SELECT till_refund($1, $2::uuid, $3, $4, '\\x01')::text",
               shop.world.terminal_ids["a"], shop.sales[label], amount_minor, f"refund-{label}")  # fmt: skip


async def _book_last_month(shop: Shop, template: str, at: datetime) -> None:
    """A sale of 100 yuan booked at `at` (last month), as the till would have written it then: redemption and legs."""
    await _sql(shop, """
        WITH sale AS (
            INSERT INTO redemptions (id, merchant_id, terminal_id, card_id, contract_version_id, amount_minor,
                discount_minor, union_funded_minor, merchant_funded_minor, currency, receipt_ref, occurred_at,
                recorded_at)
            SELECT gen_random_uuid(), merchant_id, terminal_id, card_id, contract_version_id, 10000, 1000, 600,
                   400, currency, 'late', $2, $2
              FROM redemptions WHERE id = $1::uuid
            RETURNING id, merchant_id, union_funded_minor, currency
        ), tx AS (
            INSERT INTO ledger_transactions (kind, merchant_id, redemption_id, occurred_at, recorded_at)
            SELECT 'sale', merchant_id, id, $2, $2 FROM sale
            RETURNING id
        )
        INSERT INTO ledger_postings (transaction_id, account, amount_minor, currency, recorded_at)
        SELECT tx.id, leg.account, leg.amount_minor, sale.currency, $2
          FROM tx, sale,
               LATERAL (VALUES ('union:subsidy_expense', sale.union_funded_minor),
                               ('merchant:' || sale.merchant_id || ':payable', -sale.union_funded_minor))
               AS leg (account, amount_minor)
    """, shop.sales[template], at)  # fmt: skip


async def build_month(shop: Shop) -> Month:
    """Last month one unclaimed sale; this month four sales, a refund netted in the first batch (paid), a refund
    after it clawed back by the second batch, whose payout fails and is retried.
    """
    now = await _sql(shop, "SELECT now()")
    local = now.astimezone(SHANGHAI)
    start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    period, previous = start.strftime("%Y-%m"), (start - timedelta(days=1)).strftime("%Y-%m")
    following = (start + timedelta(days=32)).strftime("%Y-%m")
    at = max(local - timedelta(minutes=30), start).replace(tzinfo=None)
    for n, amount in enumerate((10000, 20000, 5000, 8000), start=1):
        await _sell(shop, f"s{n}", amount, (at + timedelta(seconds=n)).isoformat())
    await _book_last_month(shop, "s1", start - timedelta(days=2))
    await _refund(shop, "s2", 5000)  # before settlement: netted
    shop.shares["s2"] -= 300
    first = await _batch(shop, await _claim(shop, period, ["s1", "s2", "s3"]))
    await _approve(shop, first["id"])
    await _pay_by_bank_file(shop, first["id"])
    await _refund(shop, "s3", None)  # after settlement: clawed back by the next batch
    second = await _batch(shop, await _claim(shop, period, ["s4"]))
    approved = await _approve(shop, second["id"])
    assert (approved["gross_minor"], approved["clawback_minor"], approved["payable_minor"]) == (480, 300, 180)
    failing = approved["instructions"][0]["id"]
    await _bank_result(shop, [(failing, "failed", "账号已销户")])
    await ok(await shop.api.post(f"{V1}/payouts/{failing}/retry", headers=shop.finance), 200)
    return Month(period, previous, following, [first["id"], second["id"]])


async def _ledger_owed(shop: Shop) -> tuple[int, int]:
    """(payable, in transit) owed to merchant a now, straight from ledger_balance and the postings."""
    merchant = shop.world.merchants["a"]
    payable = await _sql(shop, "SELECT ledger_balance('merchant:' || $1::bigint || ':payable')", merchant)
    in_transit = await _sql(shop, """
        SELECT coalesce(sum(p.amount_minor), 0) FROM ledger_postings p
          JOIN ledger_transactions t ON t.id = p.transaction_id
         WHERE p.account = 'payouts:in_transit' AND t.merchant_id = $1""", merchant)  # fmt: skip
    return -payable, -in_transit


def _adds_up(statement: dict[str, Any]) -> None:
    for figure in ("payable_minor", "in_transit_minor", "total_minor"):
        moved = sum(movement[figure] for movement in statement["movements"])
        assert statement["opening"][figure] + moved == statement["closing"][figure], figure


async def test_statement_totals_equal_the_ledger(shop: Shop) -> None:
    month = await build_month(shop)
    url = f"{STATEMENTS}/{shop.world.merchants['a']}"
    body = await ok(await shop.api.get(f"{url}/{month.period}", headers=shop.finance), 200)
    _adds_up(body)
    payable, in_transit = await _ledger_owed(shop)
    assert (payable, in_transit) == (month.payable_minor, month.in_transit_minor)
    assert body["opening"] == {"payable_minor": 600, "in_transit_minor": 0, "total_minor": 600}
    assert body["closing"] == {"payable_minor": payable, "in_transit_minor": in_transit,
                               "total_minor": payable + in_transit}  # fmt: skip
    moved = {m["kind"]: (m["transactions"], m["payable_minor"], m["in_transit_minor"]) for m in body["movements"]}
    assert moved == {
        "sale": (4, 2580, 0), "refund": (1, -300, 0), "clawback": (1, -300, 0),
        "settlement_approved": (3, -2160, 2160), "payout_paid": (1, 0, -1800), "payout_failed": (1, 180, -180),
        "payout_canceled": (0, 0, 0),
    }  # fmt: skip
    by_kind = {m["kind"]: m for m in body["movements"]}
    assert by_kind["settlement_approved"]["batch_ids"] == month.batch_ids
    assert by_kind["payout_paid"]["batch_ids"] == month.batch_ids[:1]
    [day] = body["days"]
    assert {key: day[key] for key in ("sales", "amount_minor", "discount_minor", "union_funded_minor",
                                      "merchant_funded_minor", "refunds", "refund_amount_minor",
                                      "refund_union_funded_minor", "clawback_union_funded_minor")} == {
        "sales": 4, "amount_minor": 43000, "discount_minor": 4300, "union_funded_minor": 2580,
        "merchant_funded_minor": 1720, "refunds": 2, "refund_amount_minor": 10000, "refund_union_funded_minor": 600,
        "clawback_union_funded_minor": 300,
    }  # fmt: skip
    statuses = {b["id"]: [i["status"] for i in b["instructions"]] for b in body["batches"]}
    assert statuses == {month.batch_ids[0]: ["paid"], month.batch_ids[1]: ["retried", "approved"]}

    before = await ok(await shop.api.get(f"{url}/{month.previous}", headers=shop.finance), 200)
    after = await ok(await shop.api.get(f"{url}/{month.following}", headers=shop.finance), 200)
    assert before["opening"]["total_minor"] == 0 and before["closing"] == body["opening"]
    assert after["opening"] == after["closing"] == body["closing"]
    assert [(day["sales"], day["union_funded_minor"]) for day in before["days"]] == [(1, 600)]
    assert before["batches"] == [] and after["days"] == []
    assert all(movement["transactions"] == 0 for movement in after["movements"])


def _csv_blocks(content: bytes) -> list[list[list[str]]]:
    """The CSV's blocks (separated by empty lines) as rows of cells."""
    assert content.startswith(b"\xef\xbb\xbf")  # the BOM that makes Excel and WPS read UTF-8
    rows = list(csv.reader(io.StringIO(content.decode("utf-8-sig"), newline="")))
    blocks: list[list[list[str]]] = [[]]
    for row in rows:
        if row:
            blocks[-1].append(row)
        else:
            blocks.append([])
    return blocks


async def test_the_csv_reads_back_to_the_ledger(shop: Shop) -> None:
    month = await build_month(shop)
    merchant = shop.world.merchants["a"]
    response = await shop.api.get(f"{STATEMENTS}/{merchant}/{month.period}.csv", headers=shop.finance)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"] == f'attachment; filename="statement-{merchant}-{month.period}.csv"'
    head, summary, days, batches = _csv_blocks(response.content)
    assert head[0][:3] == ["商户编号", "商户", "账期"] and head[1][:4] == [str(merchant), "a超市", month.period, "CNY"]
    assert summary[0][:5] == ["项目", "笔数", "待结算（元）", "付款在途（元）", "应付商户合计（元）"]
    opening, *movements, closing = summary[1:]
    assert (opening[0], closing[0], movements[0][0]) == ("期初余额", "期末余额", "销售工会补贴")
    for column in (2, 3, 4):
        assert parse_yuan(opening[column]) + sum(parse_yuan(row[column]) for row in movements) == parse_yuan(
            closing[column]
        )
    payable, in_transit = await _ledger_owed(shop)
    assert [parse_yuan(cell) for cell in closing[2:5]] == [payable, in_transit, payable + in_transit]
    assert all(re.fullmatch(r"-?\d+\.\d\d", cell) for row in summary[1:] for cell in row[2:5])
    assert days[0][0] == "记账日期" and days[-1][0] == "合计" and parse_yuan(days[-1][4]) == 2580
    assert [row[0] for row in batches[1:]] == [str(month.batch_ids[0]), str(month.batch_ids[1]),
                                               str(month.batch_ids[1])]  # fmt: skip
    assert "已付款" in batches[1]

    english = await shop.api.get(f"{STATEMENTS}/{merchant}/{month.period}.csv?lang=en", headers=shop.finance)
    head, summary, days, _ = _csv_blocks(english.content)
    assert head[0][:3] == ["Merchant ID", "Merchant", "Period"] and summary[1][0] == "Opening balance"
    assert summary[-1][0] == "Closing balance" and days[0][0] == "Booking day"


async def test_who_may_read_a_statement(shop: Shop) -> None:
    month = await build_month(shop)
    a, b = shop.world.merchants["a"], shop.world.merchants["b"]
    url = f"{STATEMENTS}/{a}/{month.period}"
    own = await staff_token(shop.dsn, "merchant_admin", a)
    other = await staff_token(shop.dsn, "merchant_admin", b)
    assert (await shop.api.get(url, headers=own)).status_code == 200
    assert (await shop.api.get(f"{url}.csv", headers=own)).status_code == 200
    for headers in (other, {**other, "Accept": "text/csv"}):
        refused = await shop.api.get(url, headers=headers)
        assert (refused.status_code, refused.json()["code"]) == (404, "not_found")
    assert (await shop.api.get(f"{url}.csv", headers=other)).status_code == 404
    assert (await shop.api.get(f"{STATEMENTS}/{b}/{month.period}", headers=other)).status_code == 200
    assert (await shop.api.get(url, headers=shop.finance)).status_code == 200
    assert (await shop.api.get(url, headers=shop.world.admin)).status_code == 200
    assert (await shop.api.get(url, headers=shop.world.terminals["a"])).status_code == 403
    assert (await shop.api.get(url)).status_code == 401
    assert (await shop.api.get(f"{STATEMENTS}/999999/{month.period}", headers=shop.finance)).status_code == 404


@pytest.mark.parametrize("period", ["2026-13", "2026-00", "2026-1", "26-11", "2026-11-01", "2026-11.xlsx", "now"])
async def test_a_bad_period_is_refused(shop: Shop, period: str) -> None:
    response = await shop.api.get(f"{STATEMENTS}/{shop.world.merchants['a']}/{period}", headers=shop.finance)
    assert (response.status_code, response.json()["code"]) == (422, "validation_failed")


def test_a_statement_that_does_not_add_up_is_a_bug() -> None:
    zero = {"payable_minor": 0, "in_transit_minor": 0, "total_minor": 0}
    kinds = ("sale", "refund", "clawback")
    movements = [{"kind": kind, **zero, "transactions": 0, "batch_ids": []} for kind in kinds]
    totals = {"union_funded_minor": 0, "refund_union_funded_minor": 0, "clawback_union_funded_minor": 0}
    statement = {"merchant": {"id": 1}, "period": "2026-11", "opening": zero, "closing": zero,
                 "movements": movements, "days_total": totals}  # fmt: skip
    check_statement(statement)
    with pytest.raises(StatementDoesNotReconcile, match="closing"):
        check_statement({**statement, "closing": {**zero, "payable_minor": 1}})
    with pytest.raises(StatementDoesNotReconcile, match="sales' union share"):
        check_statement({**statement, "days_total": {**totals, "union_funded_minor": 5}})


# ------------------------------------------------------------------ the page


async def test_the_printable_page(shop: Shop, api: AsyncTestClient) -> None:
    month = await build_month(shop)
    a, b = shop.world.merchants["a"], shop.world.merchants["b"]
    api.cookies.clear()
    signed_out = await api.get(f"/statements/{a}/{month.period}", follow_redirects=False)
    assert (signed_out.status_code, signed_out.headers["location"]) == (303, "/login")
    await add_staff_login(shop.dsn, "boss@a", "merchant_admin", merchant_id=a, name="王店长")
    assert await sign_in_staff(api, "boss@a") == "/merchant/"
    page = await api.get(f"/statements/{a}/{month.period}")
    assert page.status_code == 200 and "商户对账单" in page.text and "a超市" in page.text
    assert 'href="/static/statement.css"' in page.text and "window.print()" in page.text
    assert f'href="/api/settlement/v1/statements/{a}/{month.period}.csv?lang=zh-CN"' in page.text
    assert 'data-testid="closing-total">7.80<' in page.text  # 6.00 owed + 1.80 in transit
    english = await api.get(f"/statements/{a}/{month.period}?lang=en")
    assert "Merchant statement" in english.text and "Clawbacks" in english.text
    other = await api.get(f"/statements/{b}/{month.period}?lang=zh-CN")
    assert other.status_code == 404 and other.headers["content-type"].startswith("text/html")
    assert "未找到" in other.text and "a超市" not in other.text
    assert (await api.get(f"/statements/{a}/2026-13")).status_code == 422


# ------------------------------------------------------------------ in Chromium


@pytest.mark.browser
async def test_the_statement_prints(shop: Shop, base_url: str, shots: Path) -> None:
    from playwright.async_api import expect

    month = await build_month(shop)
    a = shop.world.merchants["a"]
    await add_staff_login(shop.dsn, "boss@a", "merchant_admin", merchant_id=a, name="王店长")
    async with new_page(base_url, {"width": 1280, "height": 900}) as page:
        await page.goto(f"/statements/{a}/{month.period}")
        await expect(page).to_have_url(re.compile(r"/login$"))
        await page.locator("input[name=email]").fill("boss@a")
        await page.locator("input[name=password]").fill("s3cret")
        await page.locator("form[action='/login'] button[type=submit]").click()
        await page.goto(f"/statements/{a}/{month.period}")
        await expect(page.get_by_role("heading", name="商户对账单")).to_be_visible()
        await expect(page.get_by_test_id("closing-total")).to_have_text("7.80")
        await expect(page.get_by_role("button", name="打印")).to_be_visible()
        await page.screenshot(path=shots / "01-statement-desktop-zh.png", full_page=True)
        await page.set_viewport_size(TABLET)
        await page.screenshot(path=shots / "02-statement-tablet-zh.png", full_page=True)
        async with page.expect_download() as download:
            await page.get_by_test_id("csv-link").click()
        assert (await download.value).suggested_filename == f"statement-{a}-{month.period}.csv"

        await page.emulate_media(media="print")
        await expect(page.locator(".topbar")).to_be_hidden()
        await expect(page.get_by_role("button", name="打印")).to_be_hidden()
        await page.screenshot(path=shots / "03-statement-print-zh.png", full_page=True)
        pdf = await page.pdf(path=str(shots / "statement-zh.pdf"), format="A4")
        assert pdf.startswith(b"%PDF")

        await page.emulate_media(media="screen")
        await page.get_by_role("link", name="English").click()
        await expect(page.get_by_role("heading", name="Merchant statement")).to_be_visible()
        await page.set_viewport_size(PHONE)
        await page.screenshot(path=shots / "04-statement-phone-en.png", full_page=True)
