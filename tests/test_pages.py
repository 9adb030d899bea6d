"""The web till and staff sign-in pages over plain HTTP: forms in, HTML and redirects out."""

from __future__ import annotations

import re

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from tests.factories import World, add_card, add_merchant, add_staff_login, card_number, make_world, ok, sign_in_staff

pytestmark = pytest.mark.asyncio


@pytest.fixture
async def world(client: AsyncTestClient, dsn: str) -> World:
    w = await make_world(client, dsn)
    await add_card(client, w, "a")
    await add_merchant(client, w, "shop", min_spend_minor=1000)
    await add_merchant(client, w, "other")
    return w


def key_of(world: World, shop: str) -> str:
    return world.terminals[shop]["Authorization"].removeprefix("Bearer ")


async def sign_in_till(client: AsyncTestClient, key: str) -> None:
    client.cookies.clear()
    response = await client.post("/till/login", data={"key": key}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/till", response.text


def hidden(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found, f"no hidden {name} in the page"
    return found[1]


async def quote(client: AsyncTestClient, card: str, amount: str) -> str:
    response = await client.post("/till/quote", data={"card": card, "amount": amount})
    assert response.status_code == 200, response.text
    return response.text


async def count(dsn: str, table: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(f"SELECT count(*) FROM {table}")  # type: ignore[no-any-return]
    finally:
        await conn.close()


async def test_till_sign_in_sets_a_strict_http_only_session(client: AsyncTestClient, world: World) -> None:
    form = await client.get("/till/login")
    assert form.status_code == 200 and 'name="key"' in form.text and "收银台登录" in form.text
    response = await client.post("/till/login", data={"key": key_of(world, "shop")}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/till"
    cookie = response.headers["set-cookie"].lower()
    assert cookie.startswith("uc_session=ucs_")
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
    till = await client.get("/till")
    assert till.status_code == 200 and "shop超市" in till.text and "查询优惠" in till.text
    assert till.headers["cache-control"] == "no-store"


async def test_bad_and_revoked_keys_are_refused_on_the_form(client: AsyncTestClient, world: World) -> None:
    for key in ("uct_not-a-key", "nonsense", ""):
        response = await client.post("/till/login", data={"key": key}, follow_redirects=False)
        assert response.status_code == 401 and "终端密钥无效或已被吊销" in response.text
        assert "set-cookie" not in response.headers and "Traceback" not in response.text
    await ok(
        await client.post(f"/api/admin/v1/terminals/{world.terminal_ids['shop']}/revoke", headers=world.admin), 200
    )
    revoked = await client.post("/till/login", data={"key": key_of(world, "shop")}, follow_redirects=False)
    assert revoked.status_code == 401 and "终端密钥无效或已被吊销" in revoked.text


async def test_a_revoked_terminal_loses_its_open_session(client: AsyncTestClient, world: World) -> None:
    await sign_in_till(client, key_of(world, "shop"))
    await ok(
        await client.post(f"/api/admin/v1/terminals/{world.terminal_ids['shop']}/revoke", headers=world.admin), 200
    )
    response = await client.get("/till", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/till/login"


@pytest.mark.parametrize("path", ["/till", "/till/sales/00000000-0000-0000-0000-000000000000"])
async def test_unauthenticated_till_pages_redirect_to_sign_in(client: AsyncTestClient, path: str) -> None:
    response = await client.get(path, follow_redirects=False)
    assert response.status_code in (302, 303) and response.headers["location"] == "/till/login"
    posted = await client.post("/till/sales", data={"card": "1", "amount": "1"}, follow_redirects=False)
    assert posted.status_code in (302, 303) and posted.headers["location"] == "/till/login"


async def test_quote_then_confirm_twice_records_one_sale(client: AsyncTestClient, world: World, dsn: str) -> None:
    await sign_in_till(client, key_of(world, "shop"))
    number = world.cards["a"]
    page = await quote(client, " ".join(number[i : i + 4] for i in range(0, len(number), 4)), "123.45")
    assert "¥12.35" in page and "¥7.41" in page and "¥111.10" in page  # discount, union share, to charge
    assert page.count(number) == 1 and hidden(page, "card") == number  # full number only in the confirm form
    assert f"{number[:4]} **** **** {number[-4:]}" in page
    assert await count(dsn, "redemptions") == 0
    form = {
        "card": hidden(page, "card"),
        "amount": hidden(page, "amount"),
        "idempotency_key": hidden(page, "idempotency_key"),
    }
    first = await client.post("/till/sales", data=form, follow_redirects=False)
    second = await client.post("/till/sales", data=form, follow_redirects=False)
    assert first.status_code == second.status_code == 303
    assert first.headers["location"] == second.headers["location"]
    assert await count(dsn, "redemptions") == 1
    receipt = await client.get(first.headers["location"])
    assert "收款成功" in receipt.text and "¥111.10" in receipt.text and "已收款" in receipt.text
    sale_id = first.headers["location"].split("/")[3].split("?")[0]
    assert sale_id in receipt.text
    till = await client.get("/till")
    assert f'data-sale-id="{sale_id}"' in till.text


async def test_refund_by_form_partial_then_the_rest(client: AsyncTestClient, world: World, dsn: str) -> None:
    await sign_in_till(client, key_of(world, "shop"))
    page = await quote(client, world.cards["a"], "100")
    sold = await client.post(
        "/till/sales",
        data={"card": world.cards["a"], "amount": "100.00", "idempotency_key": hidden(page, "idempotency_key")},
        follow_redirects=False,
    )
    sale_path = sold.headers["location"].split("?")[0]
    till = await client.get("/till")
    refund_key = hidden(till.text, "idempotency_key")
    part = await client.post(f"{sale_path}/refunds", data={"amount": "40", "idempotency_key": refund_key})
    assert part.status_code == 200 and "退款成功" in part.text and "部分退款" in part.text
    replay = await client.post(f"{sale_path}/refunds", data={"amount": "40", "idempotency_key": refund_key})
    assert replay.status_code == 200 and await count(dsn, "refunds") == 1
    too_much = await client.post(f"{sale_path}/refunds", data={"amount": "60.01", "idempotency_key": "web-x"})
    assert too_much.status_code == 409 and "退款金额超过可退金额（60.00 元）" in too_much.text
    rest = await client.post(f"{sale_path}/refunds", data={"amount": "", "idempotency_key": "web-y"})
    assert rest.status_code == 200 and "已退款" in rest.text
    assert await count(dsn, "refunds") == 2
    till = await client.get("/till")
    assert 'data-status="refunded"' in till.text


async def test_friendly_errors_on_the_till(client: AsyncTestClient, world: World, dsn: str) -> None:
    await sign_in_till(client, key_of(world, "shop"))
    cases = [
        (world.cards["a"], "12.345", "最多两位小数"),
        (world.cards["a"], "-1", "金额必须大于 0"),
        ("12345", "10", "16–19 位卡号"),
        (world.cards["a"][:-1] + str((int(world.cards["a"][-1]) + 1) % 10), "10", "校验位"),
        (card_number("621799"), "10", "找不到这张卡"),
        ("MC1-1-1234567890-AAAAAAAAAAAAAAAA", "20", "动态码无效"),
    ]
    for card, amount, text in cases:
        response = await client.post("/till/quote", data={"card": card, "amount": amount})
        assert response.status_code in (404, 422), response.text
        assert response.headers["content-type"].startswith("text/html") and text in response.text
        assert '"code"' not in response.text
    below = await quote(client, world.cards["a"], "9.99")
    assert "本次不享受优惠" in below and "未达到最低消费" in below and "确认收款" not in below
    assert await count(dsn, "redemptions") == 0


async def test_a_terminal_never_sees_another_merchants_sales(client: AsyncTestClient, world: World, dsn: str) -> None:
    await sign_in_till(client, key_of(world, "shop"))
    page = await quote(client, world.cards["a"], "50")
    sold = await client.post(
        "/till/sales",
        data={"card": world.cards["a"], "amount": "50.00", "idempotency_key": hidden(page, "idempotency_key")},
        follow_redirects=False,
    )
    sale_path = sold.headers["location"].split("?")[0]
    sale_id = sale_path.rsplit("/", 1)[1]
    await sign_in_till(client, key_of(world, "other"))
    till = await client.get("/till")
    assert till.status_code == 200 and sale_id not in till.text and "暂无交易" in till.text
    peek = await client.get(sale_path)
    assert peek.status_code == 404 and "找不到这笔交易" in peek.text and sale_id not in peek.text
    refund = await client.post(f"{sale_path}/refunds", data={"idempotency_key": "web-z"})
    assert refund.status_code == 404 and await count(dsn, "refunds") == 0


async def test_till_sign_out_ends_the_session(client: AsyncTestClient, world: World, dsn: str) -> None:
    await sign_in_till(client, key_of(world, "shop"))
    assert await count(dsn, "sessions") == 1
    response = await client.post("/till/logout", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/till/login"
    assert await count(dsn, "sessions") == 0
    assert (await client.get("/till", follow_redirects=False)).status_code == 303


async def test_staff_sign_in_good_and_bad(client: AsyncTestClient, world: World) -> None:
    client.cookies.clear()
    assert (await client.get("/staff", follow_redirects=False)).headers["location"] == "/login"
    bad = await client.post("/login", data={"email": "admin@test", "password": "nope"})
    assert bad.status_code == 401 and "邮箱或密码错误" in bad.text
    good = await client.post("/login", data={"email": "admin@test", "password": "pw"}, follow_redirects=False)
    assert good.status_code == 303 and good.headers["location"] == "/federation/"
    assert "httponly" in good.headers["set-cookie"].lower()
    home = await client.get("/staff")
    assert "总工会管理员" in home.text and "全部（总工会）" in home.text and 'href="/schema"' in home.text
    assert (await client.post("/logout", follow_redirects=False)).headers["location"] == "/login"
    assert (await client.get("/staff", follow_redirects=False)).status_code == 303


@pytest.mark.parametrize(
    ("role", "home"),
    [("merchant_admin", "/merchant/"), ("finance_officer", "/finance/"), ("federation_admin", "/federation/")],
)
async def test_staff_land_on_their_roles_home(
    client: AsyncTestClient, world: World, dsn: str, role: str, home: str
) -> None:
    merchant_id = world.merchants["shop"] if role == "merchant_admin" else None
    await add_staff_login(dsn, f"{role}@test", role, merchant_id=merchant_id)
    assert await sign_in_staff(client, f"{role}@test") == home
    again = await client.get("/login", follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"] == home
    assert (await client.get(home)).status_code == 200


async def test_staff_sign_in_is_refused_after_five_failures(client: AsyncTestClient, world: World) -> None:
    for _ in range(5):
        assert (await client.post("/login", data={"email": "Admin@test", "password": "x"})).status_code == 401
    refused = await client.post("/login", data={"email": "admin@test", "password": "pw"}, follow_redirects=False)
    assert refused.status_code == 429 and "尝试次数过多" in refused.text and "set-cookie" not in refused.headers


async def test_a_merchant_admin_sees_only_their_merchants_sales(
    client: AsyncTestClient, world: World, dsn: str
) -> None:
    sale_ids = {}
    for shop in ("shop", "other"):
        await sign_in_till(client, key_of(world, shop))
        page = await quote(client, world.cards["a"], "80")
        sold = await client.post(
            "/till/sales",
            data={"card": world.cards["a"], "amount": "80.00", "idempotency_key": hidden(page, "idempotency_key")},
            follow_redirects=False,
        )
        sale_ids[shop] = sold.headers["location"].split("/")[3].split("?")[0]
    await add_staff_login(dsn, "boss@shop", "merchant_admin", merchant_id=world.merchants["shop"], name="王店长")
    assert await sign_in_staff(client, "boss@shop") == "/merchant/"
    home = await client.get("/staff")
    assert "商户管理员" in home.text and "shop超市" in home.text
    assert sale_ids["shop"] in home.text and sale_ids["other"] not in home.text
    assert "/refunds" not in home.text
    assert (await client.get("/till", follow_redirects=False)).headers["location"] == "/till/login"


async def test_english_switch_is_remembered(client: AsyncTestClient, world: World) -> None:
    zh = await client.get("/till/login")
    assert 'href="/till/login?lang=en"' in zh.text and "English" in zh.text
    en = await client.get("/till/login?lang=en")
    assert "Till sign-in" in en.text and 'lang="en"' in en.text and "lang=en" in en.headers["set-cookie"]
    await sign_in_till(client, key_of(world, "shop"))
    client.cookies.set("lang", "en")
    till = await client.get("/till")
    assert "Check discount" in till.text and "查询优惠" not in till.text and 'href="/till?lang=zh-CN"' in till.text
    below = await quote(client, world.cards["a"], "5")
    assert "Below the minimum spend" in below
    staff = await client.get("/login")
    assert "Staff sign-in" in staff.text
    back = await client.get("/login?lang=zh-CN")
    assert "工作人员登录" in back.text
