"""The web till in Chromium against the real server: sign in, quote, confirm, refund, in both languages."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

from tests.browser import PHONE, TABLET, new_page
from tests.factories import World, add_card, add_merchant, add_staff_login, make_world

pytestmark = [pytest.mark.browser, pytest.mark.asyncio]


@pytest.fixture
async def world(client: AsyncTestClient, dsn: str) -> World:
    w = await make_world(client, dsn)
    await add_card(client, w, "a")
    await add_merchant(client, w, "shop", min_spend_minor=1000)
    return w


@pytest.fixture
async def page(base_url: str) -> AsyncIterator[object]:
    async with new_page(base_url, TABLET, accept_dialogs=True) as tab:  # the refund's "are you sure?"
        yield tab


async def test_sell_and_refund_in_the_browser(page: object, world: World, shots: Path) -> None:
    from playwright.async_api import Page, expect

    assert isinstance(page, Page)
    number = world.cards["a"]
    await page.goto("/till")
    await expect(page).to_have_url(re.compile(r"/till/login$"))
    await page.screenshot(path=shots / "01-login-zh.png", full_page=True)

    await page.get_by_label("终端密钥").fill(world.terminals["shop"]["Authorization"].removeprefix("Bearer "))
    await page.get_by_role("button", name="登录").click()
    await expect(page.get_by_role("heading", name="收银台")).to_be_visible()
    await page.screenshot(path=shots / "02-till-zh.png", full_page=True)

    await page.get_by_label("卡号或会员动态码").fill(" ".join(number[i : i + 4] for i in range(0, len(number), 4)))
    await page.get_by_label("消费金额（元）").fill("123.45")
    await page.get_by_role("button", name="查询优惠").click()
    await expect(page.get_by_test_id("pay-amount")).to_have_text("¥111.10")
    await expect(page.get_by_test_id("discount")).to_have_text("−¥12.35")
    await expect(page.get_by_test_id("union-funded")).to_have_text("¥7.41")
    await expect(page.get_by_test_id("card")).to_have_text(f"{number[:4]} **** **** {number[-4:]}")
    await page.screenshot(path=shots / "03-quote-zh.png", full_page=True)

    await page.get_by_role("button", name="确认收款").click()
    await expect(page.get_by_test_id("done")).to_contain_text("收款成功")
    sale_id = (await page.get_by_test_id("sale-id").inner_text()).strip()
    await page.screenshot(path=shots / "04-receipt-zh.png", full_page=True)

    await page.get_by_role("link", name="下一笔").click()
    row = page.locator(f'tr[data-sale-id="{sale_id}"]')
    await expect(row).to_contain_text("已收款")
    await expect(page.locator("tr[data-sale-id]")).to_have_count(1)
    await page.screenshot(path=shots / "05-recent-zh.png", full_page=True)

    await row.get_by_role("button", name="退款").click()
    await expect(page.get_by_test_id("done")).to_contain_text("退款成功")
    await expect(page.get_by_test_id("status")).to_have_text("已退款")
    await page.screenshot(path=shots / "06-refunded-zh.png", full_page=True)
    await page.get_by_role("link", name="下一笔").click()
    await expect(page.locator(f'tr[data-sale-id="{sale_id}"]')).to_have_attribute("data-status", "refunded")

    await english_round(page, number, shots)


async def english_round(page: object, number: str, shots: Path) -> None:
    """Switch to English; a quote below the minimum, then a sale and a partial refund."""
    from playwright.async_api import Page, expect

    assert isinstance(page, Page)
    await page.get_by_role("link", name="English").click()
    await expect(page.get_by_role("heading", name="Till")).to_be_visible()
    await page.screenshot(path=shots / "07-till-en.png", full_page=True)

    await page.get_by_label("Card number or member code").fill(number)
    await page.get_by_label("Amount (yuan)").fill("5")
    await page.get_by_role("button", name="Check discount").click()
    await expect(page.get_by_role("status")).to_contain_text("Below the minimum spend")
    await expect(page.get_by_role("button", name="Confirm sale")).to_have_count(0)
    await page.screenshot(path=shots / "08-not-eligible-en.png", full_page=True)

    await page.get_by_role("link", name="Start over").click()
    await page.get_by_label("Card number or member code").fill(number)
    await page.get_by_label("Amount (yuan)").fill("88")
    await page.get_by_role("button", name="Check discount").click()
    await page.screenshot(path=shots / "09-quote-en.png", full_page=True)
    await page.get_by_role("button", name="Confirm sale").dblclick()  # one sale, however eager the finger
    await expect(page.get_by_test_id("done")).to_contain_text("Sale recorded")
    await page.get_by_label("Refund at list price (yuan)").fill("8.80")
    await page.get_by_role("button", name="Refund").click()
    await expect(page.get_by_test_id("status")).to_have_text("Partly refunded")
    await page.screenshot(path=shots / "10-partial-refund-en.png", full_page=True)

    await page.goto("/till")
    await expect(page.locator("tr[data-sale-id]")).to_have_count(2)
    await page.set_viewport_size(PHONE)
    await page.screenshot(path=shots / "11-till-phone-en.png", full_page=True)


async def test_staff_sign_in_in_the_browser(
    page: object, world: World, shots: Path, client: AsyncTestClient, dsn: str
) -> None:
    """A merchant admin: a wrong password first, then their back office, then the staff home with their sales."""
    from playwright.async_api import Page, expect

    assert isinstance(page, Page)
    sale = {"card": world.cards["a"], "amount": 4560, "currency": "CNY"}
    headers = {**world.terminals["shop"], "Idempotency-Key": "s1"}
    assert (await client.post("/api/till/v1/redemptions", json=sale, headers=headers)).status_code == 201
    await add_staff_login(dsn, "boss@shop", "merchant_admin", merchant_id=world.merchants["shop"], name="王店长")

    await page.goto("/staff")
    await page.get_by_label("邮箱").fill("boss@shop")
    await page.get_by_label("密码").fill("wrong")
    await page.get_by_role("button", name="登录").click()
    await expect(page.get_by_role("alert")).to_contain_text("邮箱或密码错误")
    await page.screenshot(path=shots / "12-staff-login-error-zh.png", full_page=True)

    await page.get_by_label("密码").fill("s3cret")
    await page.get_by_role("button", name="登录").click()
    await expect(page).to_have_url(re.compile(r"/merchant/$"))  # a merchant admin lands on the back office
    await expect(page.get_by_test_id("month-sales")).to_have_text("1")
    await page.goto("/staff")
    await expect(page.get_by_test_id("role")).to_have_text("商户管理员")
    await expect(page.locator("tr[data-sale-id]")).to_have_count(1)
    await page.screenshot(path=shots / "13-staff-home-zh.png", full_page=True)
    await page.get_by_role("link", name="English").click()
    await expect(page.get_by_test_id("role")).to_have_text("Merchant admin")
    await page.screenshot(path=shots / "14-staff-home-en.png", full_page=True)
