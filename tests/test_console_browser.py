"""The finance console in Chromium: sign in, claim → batch → approve → bank file → paid, then the overview charts."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from tests.browser import DESKTOP, new_page
from tests.browser import TABLET_PORTRAIT as TABLET
from tests.factories import World, add_card, add_merchant, add_staff_login, make_world, ok
from tests.test_console import MONTH, PERIOD, SHANGHAI

pytestmark = [pytest.mark.browser, pytest.mark.asyncio]

SHOTS_DIR = "/tmp/shots/console"  # unless $UNIONCARD_SCREENSHOTS says otherwise
SHOPS = {"a": ("east", "supermarket", 300_000), "b": ("west", "restaurant", 200_000), "c": ("east", "pharmacy", None)}


async def setup_month(client: AsyncTestClient, dsn: str) -> tuple[World, dict[str, Any]]:
    """Three shops in two towns sell through last month; shop a claims its sales (plus one unknown line)."""
    world = await make_world(client, dsn)
    await add_card(client, world, "m")
    for label, (_, _, budget) in SHOPS.items():
        await add_merchant(client, world, label, monthly_budget_minor=budget)
    sales: dict[str, list[dict[str, Any]]] = {label: [] for label in SHOPS}
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("UPDATE cards SET status_since = '2020-01-01'")
        await conn.execute("UPDATE card_status_history SET valid_from = '2020-01-01'")
        await conn.execute("UPDATE merchants SET payee_name = name || '有限公司', payee_account = '6222 0210 ' || id,"
                           " payee_bank = '工商银行东镇支行'")  # fmt: skip
        for label, (town, category, _) in SHOPS.items():
            await conn.execute("UPDATE merchants SET org_id = $1, category = $2 WHERE id = $3",
                               world.org_ids[town], category, world.merchants[label])  # fmt: skip
        for n in range(45):
            label = "abcab"[n % 5]
            at = datetime.combine(PERIOD + timedelta(days=(n * 11) % 28), datetime.min.time(), SHANGHAI)
            body = await conn.fetchval(
                "SELECT body::text FROM till_redeem($1, $2, NULL, $3, 'CNY', $4, $5, $6, '\\x00')",
                world.terminal_ids[label], world.cards["m"], 5_000 + 1_733 * n, f"R{n:04d}",
                at + timedelta(hours=9 + n % 10), f"key-{n}",
            )  # fmt: skip
            sales[label].append(json.loads(body))
    finally:
        await conn.close()
    await add_staff_login(dsn, "cw@union", "finance_officer", name="李会计")
    lines = [{"redemption_id": s["id"], "occurred_at": s["occurred_at"], "amount": s["amount"],
              "union_funded": s["union_funded"]} for s in sales["a"]]  # fmt: skip
    lines.append({**lines[0], "redemption_id": str(uuid.uuid4())})
    claim = await ok(await client.post("/api/settlement/v1/claims", json={"period": MONTH, "lines": lines},
                                       headers=world.terminals["a"]))  # fmt: skip
    return world, claim


@pytest.fixture
async def browser_page(base_url: str) -> AsyncIterator[Any]:
    # accept_dialogs: the approve / confirm-paid "are you sure?"
    async with new_page(base_url, DESKTOP, accept_dialogs=True, accept_downloads=True) as tab:
        yield tab


async def test_claim_to_paid_and_the_overview_in_the_browser(
    browser_page: Any, client: AsyncTestClient, dsn: str, shots: Path
) -> None:
    from playwright.async_api import Page, expect

    page: Page = browser_page
    world, claim = await setup_month(client, dsn)
    await page.goto("/finance/")
    await page.get_by_label("邮箱").fill("cw@union")
    await page.get_by_label("密码").fill("s3cret")
    await page.get_by_role("button", name="登录").click()
    await expect(page).to_have_url(re.compile(r"/finance/$"))  # a finance officer lands on the console
    row = page.locator(f'tr[data-claim-id="{claim["id"]}"]')
    await expect(row).to_contain_text("a超市")
    await expect(row.get_by_test_id("stage")).to_have_text("已对账")
    await page.screenshot(path=shots / "01-inbox-zh.png", full_page=True)

    await row.get_by_role("link", name=f"#{claim['id']}").click()
    await expect(page.get_by_test_id("count-not_found")).to_have_text("1")
    await page.locator('tr[data-class="not_found"]').get_by_role("link").click()
    await expect(page.locator("tr[data-line]")).to_have_count(1)
    await page.get_by_label("剔除的匹配行").fill("2 小票模糊，无法核对")
    await page.screenshot(path=shots / "02-claim-zh.png", full_page=True)
    await page.get_by_role("button", name="生成结算批次").click()

    await expect(page.get_by_test_id("done")).to_contain_text("结算批次已生成")
    await expect(page.locator('tr[data-line="2"]')).to_contain_text("已剔除：小票模糊，无法核对")
    await page.get_by_role("button", name="审批通过").click()
    await expect(page.get_by_test_id("done")).to_contain_text("已审批")
    await expect(page.get_by_test_id("batch-status")).to_have_text("已审批")
    await page.screenshot(path=shots / "03-batch-approved-zh.png", full_page=True)

    async with page.expect_download() as download_info:
        await page.get_by_role("button", name="下载银行付款文件").click()
    download = await download_info.value
    text = await asyncio.to_thread(Path(await download.path()).read_text, encoding="utf-8-sig")
    [line] = list(csv.DictReader(io.StringIO(text)))
    assert line["payee_name"] == "a超市有限公司" and line["currency"] == "CNY"
    await page.reload()
    item = page.locator(f'tr[data-instruction-id="{line["reference"]}"]')
    await expect(item).to_have_attribute("data-status", "transferred")
    await page.get_by_role("button", name="确认已付款").click()
    await expect(page.get_by_test_id("done")).to_contain_text("已确认付款")
    await expect(item.get_by_test_id("payout-status")).to_have_text("已付款")
    await page.screenshot(path=shots / "04-batch-paid-zh.png", full_page=True)

    await page.get_by_role("link", name="本月概览").click()  # the month so far
    await expect(page.locator("svg.chart")).to_have_count(4)
    await page.goto(f"/finance/overview?period={MONTH}")  # the month the claim is for
    await expect(page.locator("svg.chart")).to_have_count(4)
    await expect(page.get_by_role("img", name="各镇（街道）工会补贴")).to_be_visible()
    await page.screenshot(path=shots / "05-overview-zh.png", full_page=True)
    await page.set_viewport_size(TABLET)
    await page.screenshot(path=shots / "06-overview-tablet-zh.png", full_page=True)
    await page.get_by_role("link", name="English").click()
    await expect(page.get_by_role("heading", name=f"Overview of {MONTH}")).to_be_visible()
    await page.screenshot(path=shots / "07-overview-tablet-en.png", full_page=True)
    await page.goto(f"/finance/?period={MONTH}&status=paid")
    await expect(page.locator("tr[data-claim-id]")).to_have_count(1)
    await page.set_viewport_size(DESKTOP)
    await page.screenshot(path=shots / "08-inbox-paid-en.png", full_page=True)
