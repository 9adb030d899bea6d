"""The member's pages in Chromium on a phone: sign in, show the card's code (it refreshes by itself), find
shops of a category nearby, read the catalog and a benefit."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from tests.browser import PHONE, new_page
from tests.factories import World, add_benefit, add_card, add_merchant, make_world, ok
from tests.test_member_pages import PIN, add_shop, sell

pytestmark = [pytest.mark.browser, pytest.mark.asyncio]

SHOTS_DIR = "/tmp/shots/member"
CODE_TTL_S = 8  # short, so the page must fetch a new code while the test watches


@pytest.fixture
def short_codes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server the browser talks to issues codes that live a few seconds (set before it starts)."""
    monkeypatch.setenv("UNIONCARD_MEMBER_CODE_TTL_S", str(CODE_TTL_S))


@pytest.fixture
async def page(short_codes: None, base_url: str) -> AsyncIterator[object]:
    async with new_page(base_url, PHONE, is_mobile=True, has_touch=True, device_scale_factor=2) as tab:
        yield tab


@pytest.fixture
async def district(client: AsyncTestClient, dsn: str) -> World:
    """张a of the east town, with two sales; shops of three kinds around the east town; a small catalog."""
    world = await make_world(client, dsn)
    await add_card(client, world, "a", pin=PIN, joined_on="2019-03-01", tier="优秀职工")
    await add_merchant(client, world, "shop")
    await add_shop(client, world, "老街手工面馆", "restaurant", (30.2495, 120.1600), min_spend_minor=3000,
                   per_card_daily_sales_max=1)  # fmt: skip
    await add_shop(client, world, "湖滨小厨（文化路店）", "restaurant", (30.2560, 120.1655), rate_bps=1200)
    await add_shop(client, world, "仁和大药房", "pharmacy", (30.2610, 120.1700), rate_bps=500, union_share_bps=8000)
    await add_shop(client, world, "新华书店", "bookshop", (30.2700, 120.1500), kind="fixed", rate_bps=None,
                   amount_minor=500, min_spend_minor=5000)  # fmt: skip
    await sell(client, world, world.cards["a"], 12800, "b1")
    await sell(client, world, world.cards["a"], 3650, "b2")
    conn = await asyncpg.connect(dsn)
    try:
        await add_benefit(
            conn, "hospitalization", "special_protection", name_zh="住院慰问金", name_en="Hospitalization grant",
            summary_zh="会员住院治疗，凭住院发票申请慰问金，每年最多两次。",
            summary_en="A grant when a member is treated in hospital, against the invoice; twice a year at most.",
            details_zh="住院满3天可申请，按住院天数给予300–800元慰问金。同一张发票只能申请一次。",
            details_en="For a stay of 3 days or more: 300–800 yuan. One invoice can be claimed once.",
            amount_max_minor=80_000, per_year_max=2, needs_invoice=True, sort_order=10,
            review_levels={"2015-01-01": "district", "2026-10-01": "town"},
        )  # fmt: skip
        await add_benefit(
            conn, "health_check", "health_check", name_zh="免费体检", name_en="Free health check",
            summary_zh="每年一次免费体检，全区名额20,000个。", summary_en="A free health check once a year.",
            per_year_max=1, yearly_quota=20_000, sort_order=40,
        )  # fmt: skip
        await add_benefit(
            conn, "model_worker", "custom", name_zh="劳模疗休养", name_en="Model workers' rest leave",
            summary_zh="劳动模范每年可参加一次疗休养。", summary_en="Model workers may go on rest leave once a year.",
            eligible_tiers=["劳动模范"], sort_order=60,
        )  # fmt: skip
    finally:
        await conn.close()
    return world


async def test_a_member_on_a_phone(
    page: object, district: World, client: AsyncTestClient, shots: Path
) -> None:  # fmt: skip
    from playwright.async_api import Page, expect

    assert isinstance(page, Page)
    world = district
    await page.goto("/me/")
    await expect(page).to_have_url(re.compile(r"/me/login$"))
    await page.get_by_label("卡号").fill(world.cards["a"])
    await page.get_by_label("密码").fill("000000")
    await page.get_by_role("button", name="登录").click()
    await expect(page.get_by_role("alert")).to_contain_text("还可以再试 4 次")
    await page.screenshot(path=shots / "01-login-wrong-pin.png")
    await page.get_by_label("密码").fill(PIN)
    await page.get_by_role("button", name="登录").click()
    await expect(page).to_have_url(re.compile(r"/me/$"))

    qr = page.get_by_test_id("member-qr")
    await expect(qr).to_be_visible()
    box = await qr.bounding_box()
    assert box is not None and box["width"] >= 180  # big enough for a till's scanner
    await expect(page.get_by_test_id("saved-total")).to_have_text("¥16.45")
    first = await page.get_by_test_id("member-code").inner_text()
    await page.screenshot(path=shots / "02-card.png")
    await page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    await page.screenshot(path=shots / "02-card-savings.png")
    # The page fetches a fresh code before this one runs out, without reloading.
    await expect(page.get_by_test_id("member-code")).not_to_have_text(first, timeout=(CODE_TTL_S + 5) * 1000)
    fresh = await page.get_by_test_id("member-code").inner_text()
    body = {"member_code": fresh, "amount": 10000, "currency": "CNY"}
    answer = await ok(await client.post("/api/till/v1/quote", json=body, headers=world.terminals["shop"]), 200)
    assert answer["eligible"] is True

    await page.get_by_role("link", name="优惠商户", exact=True).click()
    await expect(page).to_have_url(re.compile(r"/me/merchants$"))
    await expect(page.get_by_test_id("merchants").locator("li")).to_have_count(5)
    await page.screenshot(path=shots / "03-merchants.png")
    await page.get_by_test_id("categories").get_by_role("link", name=re.compile("餐饮")).click()
    await expect(page).to_have_url(re.compile(r"category=restaurant"))
    shops = page.get_by_test_id("merchants").locator("li")
    await expect(shops).to_have_count(2)
    await expect(shops.filter(has_text="老街手工面馆")).to_contain_text("9折，工会补贴60%，满30元可用，每日1次")
    await page.screenshot(path=shots / "04-merchants-restaurants.png")

    await page.get_by_role("link", name="福利", exact=True).click()
    await expect(page).to_have_url(re.compile(r"/me/benefits$"))
    await expect(page.get_by_test_id("benefit-hospitalization")).to_be_visible()
    await expect(page.get_by_test_id("benefit-model_worker")).to_have_count(0)
    await page.screenshot(path=shots / "05-benefits.png", full_page=True)
    await page.get_by_role("link", name="也显示暂不符合条件的").click()
    await expect(page.get_by_test_id("benefit-model_worker")).to_contain_text("仅限劳动模范")
    await page.screenshot(path=shots / "06-benefits-all.png", full_page=True)
    await page.get_by_test_id("benefit-hospitalization").click()
    await expect(page.get_by_role("heading", name="住院慰问金")).to_be_visible()
    await expect(page.get_by_test_id("benefit-reviewer")).to_have_text("east镇")
    await expect(page.get_by_test_id("benefit-action")).to_have_attribute("href", "/me/benefits/hospitalization/apply")
    await page.screenshot(path=shots / "07-benefit.png", full_page=True)

    await page.get_by_role("link", name="English").click()
    await expect(page.get_by_role("heading", name="Hospitalization grant")).to_be_visible()
    await page.screenshot(path=shots / "08-benefit-en.png", full_page=True)
    await page.goto("/me/")
    await expect(page.get_by_test_id("member-qr")).to_be_visible()
    await page.screenshot(path=shots / "09-card-en.png")
    await page.goto("/me/savings")
    await page.screenshot(path=shots / "10-savings-en.png", full_page=True)
