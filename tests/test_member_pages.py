"""The member's pages: PIN sign-in, the card and its dynamic code at the till, savings, the catalog, the
benefit detail and the shop directory; each member sees their own data only."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from cards import member_auth
from merchants.directory import offer_words
from tests.factories import World, add_benefit, add_card, add_merchant, make_world, ok
from unioncard import clock

pytestmark = pytest.mark.asyncio

PIN = "123456"
MEMBER_PAGES = ("/me/", "/me/savings", "/me/benefits", "/me/benefits/anything", "/me/merchants")


@pytest.fixture
async def world(client: AsyncTestClient, dsn: str) -> World:
    """Member a (east, 普通职工, joined 2020) and member b (west); a shop selling at 10% off, union 60%."""
    w = await make_world(client, dsn)
    await add_card(client, w, "a", pin=PIN, joined_on="2020-01-01")
    await add_card(client, w, "b", org="west", pin="654321", joined_on="2020-01-01")
    await add_merchant(client, w, "shop")
    return w


async def sign_in(client: AsyncTestClient, number: str, pin: str = PIN) -> None:
    client.cookies.clear()
    response = await client.post("/me/login", data={"card_number": number, "pin": pin}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/me/", response.text


async def get_page(client: AsyncTestClient, path: str, status: int = 200) -> str:
    response = await client.get(path, follow_redirects=False)
    assert response.status_code == status, response.text
    return response.text


def texts(html: str) -> str:
    """The page's words without tags or runs of blanks, to match sentences against."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


async def quote(client: AsyncTestClient, world: World, code: str) -> Any:
    return await client.post(
        "/api/till/v1/quote",
        json={"member_code": code, "amount": 10000, "currency": "CNY"},
        headers=world.terminals["shop"],
    )


async def sell(client: AsyncTestClient, world: World, card: str, amount: int, key: str) -> str:
    body = {"card": card, "amount": amount, "currency": "CNY", "receipt_ref": key}
    headers = {**world.terminals["shop"], "Idempotency-Key": key}
    return (await ok(await client.post("/api/till/v1/redemptions", json=body, headers=headers)))["id"]  # type: ignore[no-any-return]


# ------------------------------------------------------------------ sign-in


async def test_sign_in_right_wrong_and_locked(client: AsyncTestClient, world: World) -> None:
    number = world.cards["a"]
    await sign_in(client, number)
    assert "张a" in await get_page(client, "/me/")

    client.cookies.clear()
    wrong = await client.post("/me/login", data={"card_number": number, "pin": "000000"}, follow_redirects=False)
    assert wrong.status_code == 401
    assert f"还可以再试 {member_auth.FAILURES_MAX - 1} 次" in wrong.text
    assert number in wrong.text  # the card number stays in the form
    for _ in range(member_auth.FAILURES_MAX - 2):
        await client.post("/me/login", data={"card_number": number, "pin": "000000"})
    locked = await client.post("/me/login", data={"card_number": number, "pin": "000000"})
    assert locked.status_code == 429 and "15 分钟后再试" in locked.text
    # Locked: even the right PIN waits; the English page says so too.
    right = await client.post("/me/login?lang=en", data={"card_number": number, "pin": PIN})
    assert right.status_code == 429 and "try again in" in right.text

    malformed = await client.post("/me/login", data={"card_number": "12", "pin": "abc"})
    assert malformed.status_code == 422
    unknown = await client.post("/me/login", data={"card_number": "6217000000000000000", "pin": PIN})
    assert unknown.status_code == 401 and "more tries" not in unknown.text  # never says whether a card exists


async def test_sign_out_ends_the_session(client: AsyncTestClient, world: World) -> None:
    await sign_in(client, world.cards["a"])
    cookie = client.cookies.get("uc_session")
    response = await client.post("/me/logout", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/me/login"
    client.cookies.set("uc_session", cookie)  # the old cookie no longer opens anything
    assert (await client.get("/me/", follow_redirects=False)).headers["location"] == "/me/login"


async def test_member_pages_redirect_when_signed_out(client: AsyncTestClient, world: World) -> None:
    for path in MEMBER_PAGES:
        response = await client.get(path, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == "/me/login", path
    code = await client.get("/me/code")
    assert code.status_code == 401 and code.json()["code"] == "unauthorized"
    # A till's session is not a member's.
    await client.post("/till/login", data={"key": world.terminals["shop"]["Authorization"][7:]})
    assert (await client.get("/me/", follow_redirects=False)).headers["location"] == "/me/login"
    assert (await client.get("/me/login")).status_code == 200


# ------------------------------------------------------------------ the card and its code


async def test_dynamic_code_is_taken_by_the_till_until_it_expires(
    client: AsyncTestClient, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    await sign_in(client, world.cards["a"])
    fresh = (await client.get("/me/code")).json()
    assert fresh["code"].startswith(f"MC1-{world.card_ids['a']}-") and "<svg" in fresh["svg"]
    assert 0 < fresh["expires_in_s"] <= 60
    card_page = await get_page(client, "/me/")
    shown = re.search(r'data-testid="member-code">([^<]+)<', card_page)
    assert shown is not None and "<svg" in card_page
    for code in (fresh["code"], shown[1]):
        answer = await ok(await quote(client, world, code), 200)
        assert answer["eligible"] is True and answer["discount"] == 1000

    tampered = fresh["code"][:-1] + ("A" if fresh["code"][-1] != "A" else "B")
    refused = await quote(client, world, tampered)
    assert refused.status_code == 422 and refused.json()["code"] == "member_code_invalid"
    later = clock.now() + timedelta(seconds=61)
    monkeypatch.setattr(clock, "now", lambda: later)
    expired = await quote(client, world, fresh["code"])
    assert expired.status_code == 422 and expired.json()["code"] == "member_code_expired"


async def test_a_frozen_card_shows_why_and_has_no_code(client: AsyncTestClient, world: World) -> None:
    await ok(
        await client.post(
            f"/api/admin/v1/cards/{world.card_ids['a']}/status", json={"status": "frozen"}, headers=world.admin
        ),
        200,
    )
    await sign_in(client, world.cards["a"])
    card_page = await get_page(client, "/me/")
    assert "卡已冻结" in card_page and "member-code" not in card_page and "member-qr" not in card_page
    refused = await client.get("/me/code")
    assert refused.status_code == 409 and refused.json()["code"] == "card_inactive"


async def test_savings_are_discounts_net_of_refunds_and_only_ones_own(client: AsyncTestClient, world: World) -> None:
    await sell(client, world, world.cards["a"], 10000, "s1")  # discount 10.00
    second = await sell(client, world, world.cards["a"], 5000, "s2")  # discount 5.00
    refund = {**world.terminals["shop"], "Idempotency-Key": "r1"}
    await ok(await client.post(f"/api/till/v1/redemptions/{second}/refunds", json={"amount": 2500}, headers=refund))
    await sign_in(client, world.cards["a"])
    card_page = await get_page(client, "/me/")
    for figure in ("saved-month", "saved-year", "saved-total"):
        assert re.search(rf'data-testid="{figure}">¥12\.50<', card_page), figure
    assert world.cards["a"][-4:] in card_page and world.cards["a"] not in card_page  # masked
    savings = texts(await get_page(client, "/me/savings"))
    assert "shop超市" in savings and "省 ¥10.00" in savings and "省 ¥2.50" in savings and "已退 ¥25.00" in savings
    assert "2 笔，消费 ¥125.00" in savings  # the month: 100 + 50 − 25 refunded

    await sign_in(client, world.cards["b"], "654321")
    other = await get_page(client, "/me/")
    assert "张b" in other and "张a" not in other and re.search(r'data-testid="saved-total">¥0\.00<', other)
    assert "shop超市" not in await get_page(client, "/me/savings")


# ------------------------------------------------------------------ the catalog


@pytest.fixture
async def catalog(conn: asyncpg.Connection, world: World) -> dict[str, int]:
    """Benefits open to everyone, or only to a tier, a tag, the west town, or after two years of membership."""
    ids = {
        "open": await add_benefit(conn, "open", "special_protection", amount_max_minor=80_000, sort_order=1),
        "model": await add_benefit(conn, "model", "custom", eligible_tiers=["劳动模范"], amount_minor=50_000),
        "migrant": await add_benefit(conn, "migrant", "custom", eligible_tags=["外来务工"]),
        "west": await add_benefit(conn, "west", "custom", eligible_org_ids=[world.org_ids["west"]]),
        "veteran": await add_benefit(conn, "veteran", "custom", membership_months_min=24),
        "checkup": await add_benefit(conn, "checkup", "health_check", yearly_quota=20_000, per_year_max=1),
        "gone": await add_benefit(conn, "gone", "custom", valid_until=date(2020, 12, 31), valid_from=date(2020, 1, 1)),
    }
    return ids


def codes_on(html: str) -> list[str]:
    return re.findall(r'data-testid="benefit-([a-z0-9_-]+)"', html)


async def test_catalog_shows_only_what_the_member_may_have(
    client: AsyncTestClient, world: World, catalog: dict[str, int]
) -> None:
    await add_card(client, world, "new", pin=PIN, joined_on=date.today().isoformat(), tags=["外来务工"])
    await add_card(client, world, "model", pin=PIN, org="west", tier="劳动模范", joined_on="2010-01-01")

    await sign_in(client, world.cards["a"])
    mine = await get_page(client, "/me/benefits")
    assert codes_on(mine) == ["open", "veteran", "checkup"]
    assert "1 家商户凭卡可享折扣" in mine and 'href="/me/merchants?category=supermarket"' in mine
    everything = await get_page(client, "/me/benefits?all=1")
    # By kind, and within a kind the ones they may have first.
    assert codes_on(everything) == ["open", "veteran", "model", "migrant", "west", "checkup"]
    words = texts(everything)
    assert "仅限劳动模范" in words and "仅限外来务工会员" in words and "仅限指定工会的会员" in words
    assert codes_on(await get_page(client, "/me/benefits?kind=health_check")) == ["checkup"]
    only_offers = await get_page(client, "/me/benefits?kind=merchant_offer")
    assert codes_on(only_offers) == [] and 'data-testid="offers"' in only_offers
    assert 'data-testid="offers"' not in await get_page(client, "/me/benefits?kind=custom")

    await sign_in(client, world.cards["new"])
    fresh = await get_page(client, "/me/benefits")
    assert codes_on(fresh) == ["open", "migrant", "checkup"]
    assert "入会满 24 个月后可享受" in texts(await get_page(client, "/me/benefits?all=1"))
    await sign_in(client, world.cards["model"])
    assert codes_on(await get_page(client, "/me/benefits")) == ["open", "model", "west", "veteran", "checkup"]


async def test_benefit_detail_says_amount_who_caps_reviewer_and_the_way_in(
    client: AsyncTestClient, conn: asyncpg.Connection, world: World, catalog: dict[str, int]
) -> None:
    await conn.execute(
        "INSERT INTO benefit_review_levels (benefit_id, effective_from, org_kind) VALUES ($1, '2020-01-01', 'town')",
        catalog["open"],
    )
    for code, kind in (("loan", "loan_subsidy"), ("rooms", "service_centre")):
        await add_benefit(conn, code, kind)
    await sign_in(client, world.cards["a"])
    detail = texts(await get_page(client, "/me/benefits/open"))
    assert "福利open" in detail and "最高 ¥800" in detail and "全体会员" in detail
    assert "east镇" in detail  # the member's town reviews it now
    english = texts(await get_page(client, "/me/benefits/open?lang=en"))
    assert "Benefit open" in english and "up to ¥800" in english and "Every member" in english
    client.cookies.delete("lang")
    actions = {
        "open": "/me/benefits/open/apply",
        "checkup": "/me/health-checks",
        "loan": "/me/loans",
        "rooms": "/me/centres",
    }
    for code, href in actions.items():
        assert f'href="{href}" data-testid="benefit-action"' in await get_page(client, f"/me/benefits/{code}"), code
    checkup = texts(await get_page(client, "/me/benefits/checkup"))
    assert "全年名额 20,000 个" in checkup and "每年最多 1 次" in checkup and "免费" in checkup
    locked = await get_page(client, "/me/benefits/model")
    assert "benefit-action" not in locked and "仅限劳动模范" in locked and "卡等级：劳动模范" in locked
    missing = await get_page(client, "/me/benefits/nothing-here", 404)
    assert "没有这项福利" in missing and 'class="m-tabs"' in missing  # in the member layout, with its tabs


# ------------------------------------------------------------------ the shop directory


async def add_shop(
    client: AsyncTestClient, world: World, name: str, category: str, at: tuple[float, float], org: str | None = "east",
    **terms: Any,
) -> int:  # fmt: skip
    body: dict[str, Any] = {"name": name, "category": category, "latitude": at[0], "longitude": at[1],
                            "address": f"{name}路1号"}  # fmt: skip
    if org:
        body["org_id"] = world.org_ids[org]
    merchant = await ok(await client.post("/api/admin/v1/merchants", headers=world.admin, json=body))
    contract = {"kind": "percent", "rate_bps": 1000, "valid_from": "2020-01-01", "union_share_bps": 6000, **terms}
    await ok(
        await client.post(f"/api/admin/v1/merchants/{merchant['id']}/contracts", headers=world.admin, json=contract)
    )
    return merchant["id"]  # type: ignore[no-any-return]


def shops_on(html: str) -> list[str]:
    return re.findall(r"<strong>([^<]+)</strong>\s*(?:<span class=\"m-distance\"|</span>)", html)


async def test_directory_filters_by_category_and_sorts_by_distance(client: AsyncTestClient, world: World) -> None:
    today = date.today()
    await add_shop(client, world, "近面馆", "restaurant", (30.2495, 120.1600), min_spend_minor=5000,
                   per_card_daily_sales_max=1)  # fmt: skip
    await add_shop(client, world, "中饭店", "restaurant", (30.2600, 120.1600))
    await add_shop(client, world, "远药房", "pharmacy", (30.3000, 120.2000), org="west")
    await add_shop(client, world, "模范店", "restaurant", (30.2501, 120.1601), eligible_tiers=["劳动模范"])
    await add_shop(client, world, "西镇店", "restaurant", (30.2502, 120.1602), eligible_org_ids=[world.org_ids["west"]])
    await add_shop(client, world, "过期店", "restaurant", (30.2503, 120.1603), valid_until="2021-01-01")
    await add_shop(client, world, "未开始", "restaurant", (30.2504, 120.1604),
                   valid_from=(today + timedelta(days=3)).isoformat())  # fmt: skip
    stopped = await add_shop(client, world, "停业店", "restaurant", (30.2505, 120.1605))
    await ok(
        await client.post(
            f"/api/admin/v1/merchants/{stopped}/status", json={"status": "suspended"}, headers=world.admin
        )
    )
    await sign_in(client, world.cards["a"])

    here = await get_page(client, "/me/merchants?place=here&lat=30.2490&lon=120.1600")
    assert shops_on(here) == ["近面馆", "shop超市", "中饭店", "远药房"]  # shop超市 (no org) is at 30.25, 120.16
    assert "60 米" in here and "1.2 公里" in here
    assert "9折，工会补贴60%，满50元可用，每日1次" in here
    restaurants = await get_page(client, "/me/merchants?category=restaurant&place=here&lat=30.249&lon=120.16")
    assert shops_on(restaurants) == ["近面馆", "中饭店"] and 'data-testid="merchant-total">共 2 家' in restaurants
    # From the west town's shops (its centre is the pharmacy), the pharmacy comes first.
    west = await get_page(client, f"/me/merchants?place={world.org_ids['west']}")
    assert shops_on(west)[0] == "远药房"
    # By default: from the centre of the shops of the member's own town (east), and the select says so.
    default = await get_page(client, "/me/merchants")
    assert shops_on(default)[-1] == "远药房" and "我的工会附近（east镇）" in default
    odd = await get_page(client, "/me/merchants?place=zzz&lat=abc&page=x")  # the defaults, no error
    assert shops_on(odd) == shops_on(default)
    assert "没有符合条件的商户" in await get_page(client, "/me/merchants?category=nope")


async def test_directory_pages_through_many_shops(client: AsyncTestClient, world: World) -> None:
    for n in range(22):
        await add_shop(client, world, f"店{n:02d}", "bakery", (30.25 + n * 0.001, 120.16))
    await sign_in(client, world.cards["a"])
    first = await get_page(client, "/me/merchants?category=bakery&place=here&lat=30.25&lon=120.16")
    assert shops_on(first)[:2] == ["店00", "店01"] and len(shops_on(first)) == 20
    link = re.search(r'href="(/me/merchants\?[^"]*page=2)"', first)
    assert link is not None
    second = await get_page(client, link[1].replace("&amp;", "&"))
    assert shops_on(second) == ["店20", "店21"]


def test_offers_in_words() -> None:
    offer: dict[str, Any] = {
        "kind": "percent", "rate_bps": 1500, "amount_minor": None, "union_share_bps": 5000, "min_spend_minor": 0,
        "discount_minor_max": 2000, "per_card_daily_sales_max": None, "per_card_monthly_sales_max": 4,
        "per_card_daily_discount_minor_max": None, "per_card_monthly_discount_minor_max": None,
        "days_of_week": [6, 7], "hours_start": None, "hours_end": None, "valid_until": None,
    }  # fmt: skip
    assert offer_words(offer, "zh-CN") == "8.5折，工会补贴50%，最高优惠20元，每月4次，仅周六、日"
    assert offer_words(offer, "en") == "15% off, union pays 50%, at most 20 yuan off, 4× a month, Sat, Sun only"
    fixed = {**offer, "kind": "fixed", "rate_bps": None, "amount_minor": 500, "union_share_bps": 0,
             "discount_minor_max": None, "per_card_monthly_sales_max": None, "days_of_week": None}  # fmt: skip
    assert offer_words(fixed, "zh-CN") == "立减5元"
