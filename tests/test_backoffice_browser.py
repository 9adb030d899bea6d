"""The merchant back office in Chromium: sign in, upload a GBK claim file, read its reconciliation."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from litestar.testing import AsyncTestClient

from tests.browser import DESKTOP, new_page
from tests.browser import TABLET_PORTRAIT as TABLET
from tests.factories import World, add_card, add_merchant, add_staff_login, make_world, ok
from tests.test_backoffice import issued_long_ago

pytestmark = [pytest.mark.browser, pytest.mark.asyncio]

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture
async def page(base_url: str) -> AsyncIterator[object]:
    async with new_page(base_url, DESKTOP) as tab:
        yield tab


@pytest.fixture
async def shop(client: AsyncTestClient, dsn: str) -> tuple[World, list[str], datetime]:
    """A shop with four sales two minutes ago and its admin, 王店长 (boss@shop, s3cret)."""
    world = await make_world(client, dsn)
    await add_card(client, world, "a")
    await add_merchant(client, world, "shop")
    await issued_long_ago(dsn)
    at = datetime.now(SHANGHAI).replace(microsecond=0) - timedelta(minutes=2)
    ids = []
    for n, amount in enumerate((10000, 10000, 10000, 8800)):
        body = {"card": world.cards["a"], "amount": amount, "currency": "CNY", "receipt_ref": f"XP-{n}",
                "occurred_at": at.isoformat()}  # fmt: skip
        headers = {**world.terminals["shop"], "Idempotency-Key": f"k{n}"}
        ids.append((await ok(await client.post("/api/till/v1/redemptions", json=body, headers=headers)))["id"])
    await add_staff_login(dsn, "boss@shop", "merchant_admin", merchant_id=world.merchants["shop"], name="王店长")
    return world, ids, at


def claim_file(folder: Path, ids: list[str], at: datetime) -> Path:
    """Two lines that match, one whose union share is off by 1.50, one naming no sale; GBK, Chinese headers."""
    when = at.strftime("%Y-%m-%d %H:%M:%S")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["核销编号", "小票号", "交易时间", "消费金额", "工会补贴金额"])
    writer.writerows([
        [ids[0], "", when, "100.00", "6.00"],
        ["", "XP-1", when, "100.00", "6.00"],
        [ids[2], "", when, "100.00", "7.50"],
        ["", "XP-404", when, "66.00", "3.96"],
    ])  # fmt: skip
    path = folder / "十一月申报.csv"
    path.write_bytes(out.getvalue().encode("gbk"))
    return path


async def test_upload_a_claim_and_read_its_results(
    page: object, shop: tuple[World, list[str], datetime], shots: Path, tmp_path: Path
) -> None:
    from playwright.async_api import Page, expect

    assert isinstance(page, Page)
    world, ids, at = shop
    await page.goto("/merchant/claims")
    await expect(page).to_have_url(re.compile(r"/login$"))
    await page.get_by_label("邮箱").fill("boss@shop")
    await page.get_by_label("密码").fill("s3cret")
    await page.get_by_role("button", name="登录").click()
    await expect(page).to_have_url(re.compile(r"/merchant/$"))  # a merchant admin lands on the back office
    await expect(page.get_by_test_id("month-sales")).to_have_text("4")
    await expect(page.get_by_test_id("month-union")).to_have_text("¥23.28")
    await page.screenshot(path=shots / "bo-01-overview-desktop.png", full_page=True)

    await page.get_by_role("link", name="补贴申报").click()
    await page.get_by_label("申报文件（CSV）").set_input_files(claim_file(tmp_path, ids, at))
    await page.get_by_label("申报月份").fill(at.strftime("%Y-%m"))
    await page.screenshot(path=shots / "bo-02-claims-desktop.png", full_page=True)
    await page.get_by_role("button", name="上传并对账").click()

    await expect(page.get_by_test_id("done")).to_contain_text("申报已保存并完成对账")
    classes = page.get_by_test_id("classes")
    await expect(classes.locator('tr[data-class="matched"] .count')).to_have_text("2")
    await expect(classes.locator('tr[data-class="amount_mismatch"] .count')).to_have_text("1")
    await expect(classes.locator('tr[data-class="not_found"] .count')).to_have_text("1")
    await expect(classes.locator('tr[data-class="unclaimed"] .count')).to_have_text("1")
    await page.screenshot(path=shots / "bo-03-results-desktop.png", full_page=True)

    await classes.get_by_role("link", name="金额不符").click()
    mismatch = page.get_by_test_id("lines").locator('tr[data-line="4"]')
    await expect(mismatch).to_contain_text("¥7.50")
    await expect(mismatch).to_contain_text("¥100.00 / ¥6.00")
    await expect(page.get_by_test_id("lines").locator("tbody tr")).to_have_count(1)
    await page.screenshot(path=shots / "bo-04-mismatch-desktop.png", full_page=True)

    await page.set_viewport_size(TABLET)
    await page.screenshot(path=shots / "bo-05-mismatch-tablet.png", full_page=True)
    await page.get_by_role("link", name="English").click()
    await expect(page.get_by_test_id("lines").locator('tr[data-line="4"]')).to_contain_text("¥7.50")
    await expect(page.get_by_role("heading", name="Amount mismatch: lines")).to_be_visible()
    await page.screenshot(path=shots / "bo-06-mismatch-tablet-en.png", full_page=True)
    await page.get_by_role("link", name="中文").click()

    await page.get_by_role("link", name="交易明细").click()
    await expect(page.locator("tr[data-sale-id]")).to_have_count(4)
    await expect(page.get_by_test_id("total-amount")).to_have_text("¥388.00")
    await page.screenshot(path=shots / "bo-07-sales-tablet.png", full_page=True)
    await page.set_viewport_size(DESKTOP)
    await page.screenshot(path=shots / "bo-08-sales-desktop.png", full_page=True)

    await page.get_by_role("link", name="补贴申报").click()
    bad = tmp_path / "bad.csv"
    bad.write_bytes(
        "小票号,交易时间,消费金额,工会补贴金额\r\nXP-1,昨天,100,6\r\nXP-2,2026-11-02 10:00:00,一百,6\r\n".encode("gbk")
    )
    await page.get_by_label("申报文件（CSV）").set_input_files(bad)
    await page.get_by_role("button", name="上传并对账").click()
    await expect(page.get_by_test_id("rejected-lines").locator("tr[data-line]")).to_have_count(2)
    await expect(page.get_by_test_id("rejected")).to_contain_text("没有保存任何内容")
    await page.screenshot(path=shots / "bo-09-rejected-desktop.png", full_page=True)
    await page.set_viewport_size(TABLET)
    await page.get_by_role("link", name="概览").click()
    await page.screenshot(path=shots / "bo-10-overview-tablet.png", full_page=True)
    await page.goto("/merchant/claims/999999")
    await expect(page.get_by_test_id("office-error")).to_contain_text("找不到该记录，或它不属于本商户")
    await page.screenshot(path=shots / "bo-11-not-found-tablet.png", full_page=True)
