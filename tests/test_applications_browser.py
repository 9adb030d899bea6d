"""A grant from a phone to the bank in Chromium: the member applies for a hospitalization grant with its invoice,
the township reviewer approves it, finance pays it by bank file, and the member sees it paid."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from tests.browser import PHONE, TABLET_PORTRAIT, new_page
from tests.factories import World, add_benefit, add_card, add_staff_login, make_world, ok, staff_token

pytestmark = [pytest.mark.browser, pytest.mark.asyncio]

SHOTS_DIR = "/tmp/shots/applications"
SHANGHAI = ZoneInfo("Asia/Shanghai")
PAYOUTS = "/api/benefits/v1/grant-payouts"


@pytest.fixture
async def world(client: AsyncTestClient, dsn: str) -> World:
    """A member of the east town (PIN 123456), a hospitalization grant the town reviews, and its reviewer."""
    world = await make_world(client, dsn)
    await add_card(client, world, "a", org="east", pin="123456", joined_on="2020-01-01")
    conn = await asyncpg.connect(dsn)
    try:
        await add_benefit(
            conn, "hospitalization", "special_protection", review_levels={"2020-01-01": "town"},
            name_zh="住院慰问金", name_en="Hospitalization grant", summary_zh="住院 3 天以上的会员可申请。",
            summary_en="For members in hospital for 3 days or more.", amount_max_minor=300_000,
            needs_invoice=True, per_year_max=2,
        )  # fmt: skip
    finally:
        await conn.close()
    await add_staff_login(dsn, "east@test", "org_reviewer", org_id=world.org_ids["east"], name="东镇审核员")
    await add_staff_login(dsn, "money@test", "finance_officer", name="财务")
    return world


async def test_apply_approve_pay_and_see_it_paid(
    base_url: str, client: AsyncTestClient, dsn: str, world: World, shots: Path
) -> None:
    from playwright.async_api import Page, expect

    invoice_day = (datetime.now(SHANGHAI) - timedelta(days=3)).date().isoformat()
    async with new_page(base_url, PHONE) as member:
        assert isinstance(member, Page)
        await member.goto("/me/login")
        await member.get_by_label("卡号").fill(world.cards["a"])
        await member.get_by_label("密码").fill("123456")
        await member.get_by_role("button", name="登录").click()
        await expect(member).to_have_url(re.compile(r"/me/$"))
        await member.goto("/me/benefits")
        await member.get_by_test_id("benefit-hospitalization").click()
        await member.get_by_test_id("benefit-action").click()
        await expect(member).to_have_url(re.compile(r"/me/benefits/hospitalization/apply$"))
        await expect(member.get_by_test_id("invoice-fields")).to_be_visible()
        await member.screenshot(path=shots / "ap-01-form-phone.png", full_page=True)

        await member.get_by_label("申请金额（元）").fill("1800")
        await member.get_by_label("开票单位").fill("杭州市第一人民医院")
        await member.get_by_label("发票号码").fill("33010012345678")
        await member.get_by_label("发票金额（元）").fill("3,826.50")
        await member.get_by_label("开票日期").fill(invoice_day)
        await member.get_by_label("医院").fill("杭州市第一人民医院")
        await member.get_by_label("住院天数").fill("6")
        await member.get_by_label("诊断").fill("急性阑尾炎，手术治疗")
        await member.get_by_label("开户银行").fill("中国工商银行杭州分行")
        await member.get_by_label("银行卡号").fill("6222 02")  # too short, and too much asked: each field says so
        await member.get_by_label("申请金额（元）").fill("4000")
        await member.get_by_role("button", name="提交申请").click()
        await expect(member.get_by_test_id("error-amount")).to_have_text("超过了该补助的最高金额。")
        await expect(member.get_by_test_id("error-payee_account")).to_have_text("银行卡号为 8–30 位数字。")
        await expect(member.get_by_label("开票单位")).to_have_value("杭州市第一人民医院")  # what was typed stays
        await member.screenshot(path=shots / "ap-02-field-error-phone.png", full_page=True)
        await member.get_by_label("银行卡号").fill("6222 0212 3456 7890")
        await member.get_by_label("申请金额（元）").fill("1800")
        await member.get_by_role("button", name="提交申请").click()
        await expect(member.get_by_test_id("done")).to_have_text("申请已提交，请等待审核。")
        await expect(member.get_by_test_id("status")).to_have_text("已提交")
        application_path = member.url.split("?")[0].removeprefix(base_url)
        await member.screenshot(path=shots / "ap-03-submitted-phone.png", full_page=True)

        async with new_page(base_url, TABLET_PORTRAIT, accept_dialogs=True) as reviewer:
            assert isinstance(reviewer, Page)
            await reviewer.goto("/login")
            await reviewer.get_by_label("邮箱").fill("east@test")
            await reviewer.get_by_label("密码").fill("s3cret")
            await reviewer.get_by_role("button", name="登录").click()
            await expect(reviewer).to_have_url(re.compile(r"/review/$"))
            await expect(reviewer.get_by_test_id("review-list").locator("tbody tr")).to_have_count(1)
            await reviewer.screenshot(path=shots / "ap-04-review-inbox-tablet.png", full_page=True)
            await reviewer.get_by_role("link", name="张a").click()
            await expect(reviewer.get_by_test_id("invoice")).to_contain_text("33010012345678")
            await expect(reviewer.get_by_test_id("masked-card")).to_have_text(re.compile(r"^6217 \*{4} \*{4} \d{4}$"))
            await reviewer.get_by_role("button", name="开始审核").click()
            await expect(reviewer.get_by_test_id("status")).to_have_text("审核中")
            await reviewer.get_by_role("link", name="返回审核列表").click()  # under review still waits: listed
            await expect(reviewer.get_by_test_id("chip-waiting")).to_have_attribute("aria-current", "true")
            await expect(reviewer.get_by_test_id("review-list").locator("tbody tr")).to_contain_text("审核中")
            await reviewer.get_by_role("link", name="张a").click()
            await reviewer.get_by_label("核准金额（元）").fill("1500")
            await reviewer.get_by_label("审核意见（可选）").fill("住院 6 天，按标准核定 1500 元")
            await reviewer.screenshot(path=shots / "ap-05-review-detail-tablet.png", full_page=True)
            await reviewer.get_by_role("button", name="批准", exact=True).click()
            await expect(reviewer.get_by_test_id("done")).to_have_text("已批准，等待财务发放。")
            await expect(reviewer.get_by_test_id("approved")).to_have_text("¥1,500.00")
            await reviewer.screenshot(path=shots / "ap-06-approved-tablet.png", full_page=True)

        async with new_page(base_url, TABLET_PORTRAIT, accept_dialogs=True) as desk:
            assert isinstance(desk, Page)
            await desk.goto("/login")
            await desk.get_by_label("邮箱").fill("money@test")
            await desk.get_by_label("密码").fill("s3cret")
            await desk.get_by_role("button", name="登录").click()
            await desk.goto("/finance/grants")
            await expect(desk.get_by_test_id("waiting")).to_contain_text("¥1,500.00")
            await desk.screenshot(path=shots / "ap-07-finance-waiting-tablet.png", full_page=True)
            await desk.get_by_test_id("disburse").click()
            await expect(desk.get_by_test_id("done")).to_have_text("已为 1 笔补助生成付款。")
            await expect(desk.get_by_test_id("unfiled")).to_contain_text("共 1 笔，合计 ¥1,500.00")
            await desk.screenshot(path=shots / "ap-08-finance-disbursed-tablet.png", full_page=True)

        finance = await staff_token(dsn, "finance_officer")
        [payout] = await ok(await client.get(PAYOUTS, headers=finance), 200)
        taken = await client.post(f"{PAYOUTS}/bank-file.csv", headers=finance)
        assert taken.status_code == 200 and "1500.00" in taken.content.decode("utf-8-sig")
        await member.goto(application_path)
        await expect(member.get_by_test_id("status")).to_have_text("发放中")
        paid = await ok(await client.post(f"{PAYOUTS}/confirm-paid", json={"payout_ids": [payout["id"]]},
                                          headers=finance), 200)  # fmt: skip
        assert paid["applied"][0]["status"] == "paid"

        await member.get_by_role("link", name="我的申请").first.click()
        await expect(member).to_have_url(re.compile(r"/me/applications$"))
        await expect(member.get_by_test_id("applications").get_by_test_id("status")).to_have_text("已到账")
        await member.screenshot(path=shots / "ap-09-my-applications-phone.png", full_page=True)
        await member.goto(application_path)
        await expect(member.get_by_test_id("paid")).to_have_text("补助已发放到您的银行卡。")
        steps = member.get_by_test_id("history").locator("li")
        await expect(steps).to_have_count(5)
        await expect(steps.last).to_have_attribute("data-status", "paid")
        await member.screenshot(path=shots / "ap-10-paid-phone.png", full_page=True)
        await member.get_by_role("link", name="English").click()
        await expect(member.get_by_test_id("paid")).to_have_text("The grant has been paid into your bank account.")
        await member.screenshot(path=shots / "ap-11-paid-phone-en.png", full_page=True)
