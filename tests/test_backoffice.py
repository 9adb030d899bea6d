"""The merchant back office over HTTP: sales filters, paging, totals, masking, CSV; claim upload; access."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from merchants import backoffice
from tests.factories import World, add_card, add_merchant, add_staff_login, make_world, ok, sign_in_staff, staff_token

pytestmark = pytest.mark.asyncio

SHANGHAI = ZoneInfo("Asia/Shanghai")
ZH = ["核销编号", "小票号", "交易时间", "消费金额", "工会补贴金额"]


@pytest.fixture
async def world(client: AsyncTestClient, dsn: str) -> World:
    w = await make_world(client, dsn)
    await add_card(client, w, "a")
    await add_card(client, w, "b")
    await add_merchant(client, w, "shop")  # 10 % off, 60 % of it funded by the union
    await add_merchant(client, w, "other")
    second = await ok(
        await client.post(
            f"/api/admin/v1/merchants/{w.merchants['shop']}/terminals", headers=w.admin, json={"name": "till 2"}
        )
    )
    w.terminals["shop2"] = {"Authorization": f"Bearer {second['key']}"}
    w.terminal_ids["shop2"] = second["id"]
    await issued_long_ago(dsn)
    return w


async def issued_long_ago(dsn: str) -> None:
    """The cards were active 60 days ago, so the till takes sales captured offline in the past weeks."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("UPDATE cards SET status_since = status_since - interval '60 days'")
        await conn.execute("UPDATE card_status_history SET valid_from = valid_from - interval '60 days'")
    finally:
        await conn.close()


async def sell(
    client: AsyncTestClient, world: World, terminal: str, card: str, amount: int, receipt: str, at: datetime
) -> str:
    body = {"card": world.cards[card], "amount": amount, "currency": "CNY", "receipt_ref": receipt,
            "occurred_at": at.isoformat()}  # fmt: skip
    headers = {**world.terminals[terminal], "Idempotency-Key": f"sale-{terminal}-{receipt}"}
    return (await ok(await client.post("/api/till/v1/redemptions", json=body, headers=headers)))["id"]  # type: ignore[no-any-return]


async def refund(client: AsyncTestClient, world: World, terminal: str, sale_id: str, amount: int | None) -> None:
    headers = {**world.terminals[terminal], "Idempotency-Key": f"refund-{sale_id}"}
    body = {"amount": amount} if amount else {}
    await ok(await client.post(f"/api/till/v1/redemptions/{sale_id}/refunds", json=body, headers=headers))


def sale_ids(html: str) -> list[str]:
    return re.findall(r'data-sale-id="([^"]+)"', html)


def figure(html: str, testid: str) -> str:
    found = re.search(rf'data-testid="{testid}">([^<]*)<', html)
    assert found, f"no {testid} in the page"
    return found[1]


def days_ago(days: int, hour: int = 10) -> datetime:
    return (datetime.now(SHANGHAI) - timedelta(days=days)).replace(hour=hour, minute=0, second=0, microsecond=0)


@pytest.fixture
async def sales(client: AsyncTestClient, world: World, dsn: str) -> dict[str, str]:
    """Three sales of the shop on two terminals and two cards, one partly and one fully refunded; one elsewhere."""
    ids = {
        "s1": await sell(client, world, "shop", "a", 10000, "R-1", days_ago(10)),
        "s2": await sell(client, world, "shop2", "b", 20000, "R-2", days_ago(5)),
        "s3": await sell(client, world, "shop", "a", 5000, "R-3", days_ago(1)),
        "elsewhere": await sell(client, world, "other", "a", 7000, "R-1", days_ago(5)),
    }
    await refund(client, world, "shop2", ids["s2"], 5000)
    await refund(client, world, "shop", ids["s3"], None)
    await add_staff_login(dsn, "boss@shop", "merchant_admin", merchant_id=world.merchants["shop"], name="王店长")
    assert await sign_in_staff(client, "boss@shop") == "/merchant/"
    return ids


async def test_filters_return_the_right_sales_and_totals(
    client: AsyncTestClient, world: World, sales: dict[str, str]
) -> None:
    every = await client.get("/merchant/sales")
    assert every.status_code == 200 and every.headers["cache-control"] == "no-store"
    assert sale_ids(every.text) == [sales["s3"], sales["s2"], sales["s1"]]  # newest first; the other shop's absent
    assert figure(every.text, "total-sales") == "3"
    assert figure(every.text, "total-amount") == "¥350.00"
    assert figure(every.text, "total-discount") == "¥35.00"
    assert figure(every.text, "total-refunded") == "¥100.00"
    assert figure(every.text, "total-union-net") == "¥15.00"  # 6.00 + 12.00 − 3.00 + 3.00 − 3.00

    day = days_ago(5).date().isoformat()
    cases: list[tuple[dict[str, Any], list[str], str]] = [
        ({"from": day, "to": day}, ["s2"], "¥200.00"),
        ({"from": days_ago(6).date().isoformat()}, ["s3", "s2"], "¥250.00"),
        ({"to": days_ago(2).date().isoformat()}, ["s2", "s1"], "¥300.00"),
        ({"terminal": world.terminal_ids["shop2"]}, ["s2"], "¥200.00"),
        ({"status": "recorded"}, ["s1"], "¥100.00"),
        ({"status": "partially_refunded"}, ["s2"], "¥200.00"),
        ({"status": "refunded"}, ["s3"], "¥50.00"),
        ({"card": world.cards["a"][-4:]}, ["s3", "s1"], "¥150.00"),
        ({"receipt": "R-1"}, ["s1"], "¥100.00"),
        ({"card": world.cards["b"][-4:], "status": "refunded"}, [], "¥0.00"),
    ]
    for params, expected, gross in cases:
        found = await client.get("/merchant/sales", params=params)
        assert found.status_code == 200, found.text
        assert sale_ids(found.text) == [sales[name] for name in expected], params
        assert figure(found.text, "total-sales") == str(len(expected)), params
        assert figure(found.text, "total-amount") == gross, params
    partial = await client.get("/merchant/sales", params={"status": "partially_refunded"})
    assert figure(partial.text, "total-union-net") == "¥9.00" and figure(partial.text, "total-refunded") == "¥50.00"


async def test_bad_filters_are_named_and_dropped(client: AsyncTestClient, world: World, sales: dict[str, str]) -> None:
    other_terminal = world.terminal_ids["other"]
    page = await client.get("/merchant/sales", params={"card": "12a", "from": "2026-13-01", "terminal": other_terminal})
    assert page.status_code == 200
    assert "卡号后四位应为 4 位数字" in page.text and "日期格式应为" in page.text and "没有这个终端" in page.text
    assert len(sale_ids(page.text)) == 3  # the other shop's terminal shows nothing of the other shop


async def test_card_numbers_show_only_their_last_four_digits(
    client: AsyncTestClient, world: World, sales: dict[str, str]
) -> None:
    listing = await client.get("/merchant/sales")
    detail = await client.get(f"/merchant/sales/{sales['s2']}")
    assert detail.status_code == 200
    for html in (listing.text, detail.text):
        for number in (world.cards["a"], world.cards["b"]):
            assert number[:6] not in html and number not in html
    assert f"**** {world.cards['b'][-4:]}" in detail.text
    assert listing.text.count(f"**** {world.cards['a'][-4:]}") == 2


async def test_a_sale_shows_its_refunds(client: AsyncTestClient, sales: dict[str, str]) -> None:
    detail = await client.get(f"/merchant/sales/{sales['s2']}")
    assert "部分退款" in detail.text and "−¥50.00" in detail.text and "−¥3.00" in detail.text
    assert "R-2" in detail.text and "till 2" in detail.text
    listing = await client.get("/merchant/sales")
    assert f'href="/merchant/sales/{sales["s2"]}"' in listing.text


async def test_keyset_paging_walks_every_sale_once(
    client: AsyncTestClient, world: World, dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backoffice, "SALES_PAGE_SIZE", 2)
    tied = days_ago(3)
    made = [
        await sell(client, world, "shop", "a", 1000 + n, f"P-{n}", tied if n < 3 else days_ago(n + 1)) for n in range(6)
    ]
    await sell(client, world, "shop2", "b", 999, "P-x", days_ago(4))  # filtered out by terminal below
    await add_staff_login(dsn, "boss@shop", "merchant_admin", merchant_id=world.merchants["shop"], name="王店长")
    assert await sign_in_staff(client, "boss@shop") == "/merchant/"
    seen: list[str] = []
    url: str | None = f"/merchant/sales?terminal={world.terminal_ids['shop']}"
    pages = 0
    while url:
        response = await client.get(url)
        assert response.status_code == 200
        ids = sale_ids(response.text)
        assert len(ids) <= 2 and figure(response.text, "total-sales") == "6"
        seen += ids
        pages += 1
        found = re.search(r'href="(\?[^"]+)" rel="next"', response.text)
        url = "/merchant/sales" + found[1].replace("&amp;", "&") if found else None
        if url:
            assert f"terminal={world.terminal_ids['shop']}" in url  # the filter travels with the cursor
    assert pages == 3 and sorted(seen) == sorted(made) and len(set(seen)) == 6
    assert seen[:3] == sorted(made[:3], reverse=True)  # sales at one moment: by id, none lost at a page break
    broken = await client.get("/merchant/sales?after=nonsense")
    assert "翻页链接已失效" in broken.text and len(sale_ids(broken.text)) == 2


async def test_csv_lists_the_filtered_sales_with_chinese_headers(
    client: AsyncTestClient, world: World, sales: dict[str, str]
) -> None:
    response = await client.get("/merchant/sales/export.csv", params={"card": world.cards["a"][-4:]})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert response.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0][:3] == ["时间", "交易编号", "终端"] and "卡号后四位" in rows[0]
    assert [row[1] for row in rows[1:]] == [sales["s3"], sales["s1"]]
    card_column = rows[0].index("卡号后四位")
    assert {row[card_column] for row in rows[1:]} == {world.cards["a"][-4:]}
    assert rows[1][rows[0].index("消费金额")] == "50.00" and rows[1][rows[0].index("状态")] == "已退款"
    assert world.cards["a"][:6] not in response.text
    english = await client.get("/merchant/sales/export.csv?lang=en")
    header = next(csv.reader(io.StringIO(english.content.decode("utf-8-sig"))))
    assert header[:2] == ["Time", "Sale ID"] and len(english.content.decode("utf-8-sig").splitlines()) == 4


def claim_file(lines: list[list[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(ZH)
    writer.writerows(lines)
    return out.getvalue().encode("gbk")


async def count_claims(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval("SELECT count(*) FROM claims")  # type: ignore[no-any-return]
    finally:
        await conn.close()


async def test_an_uploaded_claim_is_reconciled_and_its_classes_shown(
    client: AsyncTestClient, world: World, dsn: str
) -> None:
    at = datetime.now(SHANGHAI).replace(microsecond=0) - timedelta(minutes=2)
    ids = [await sell(client, world, "shop", "a", 10000, f"C-{n}", at) for n in range(4)]
    await add_staff_login(dsn, "boss@shop", "merchant_admin", merchant_id=world.merchants["shop"], name="王店长")
    assert await sign_in_staff(client, "boss@shop") == "/merchant/"
    when = at.strftime("%Y-%m-%d %H:%M:%S")
    data = claim_file([
        [ids[0], "", when, "100.00", "6.00"],
        ["", "C-1", when, "100", "6"],
        [ids[2], "", when, "100.00", "7.50"],  # the till recorded 6.00
        ["", "无此小票", when, "88.00", "5.28"],
    ])  # fmt: skip
    period = at.strftime("%Y-%m")
    form = await client.get("/merchant/claims")
    assert 'type="file"' in form.text and 'enctype="multipart/form-data"' in form.text
    uploaded = await client.post(
        "/merchant/claims", files={"file": ("对账.csv", data, "text/csv")}, data={"period": period},
        follow_redirects=False,
    )  # fmt: skip
    assert uploaded.status_code == 303, uploaded.text
    location = uploaded.headers["location"]
    claim_id = int(re.search(r"/merchant/claims/(\d+)", location)[1])  # type: ignore[index]
    page = await client.get(location)
    assert page.status_code == 200 and "申报已保存并完成对账" in page.text
    counts = dict(re.findall(r'data-class="([a-z_]+)" data-lines="(\d+)"', page.text))
    assert counts == {"matched": "2", "amount_mismatch": "1", "not_found": "1", "duplicate_line": "0",
                      "already_claimed": "0", "reversed": "0", "out_of_period": "0", "unclaimed": "1"}  # fmt: skip
    assert "找到了这笔交易，但消费金额或工会补贴金额" in page.text  # each class is explained

    mismatch = await client.get(f"/merchant/claims/{claim_id}?class=amount_mismatch")
    assert 'data-line="4"' in mismatch.text and "¥7.50" in mismatch.text and "¥100.00 / ¥6.00" in mismatch.text
    unclaimed = await client.get(f"/merchant/claims/{claim_id}?class=unclaimed")
    assert sale_ids(unclaimed.text) == [ids[3]]
    results = await client.get(f"/merchant/claims/{claim_id}/results.csv")
    assert results.status_code == 200 and results.content.startswith(b"\xef\xbb\xbf")
    assert results.text.count(",matched,") == 2 and ",amount_mismatch," in results.text
    listing = await client.get("/merchant/claims")
    assert f'data-claim-id="{claim_id}"' in listing.text and period in listing.text
    overview = await client.get("/merchant/")
    assert f'href="/merchant/claims/{claim_id}"' in overview.text
    assert figure(overview.text, "month-sales") == "4" and figure(overview.text, "month-union") == "¥24.00"

    finance = await staff_token(dsn, "finance_officer")
    batch = await ok(await client.post("/api/settlement/v1/batches", json={"claim_id": claim_id}, headers=finance))
    await ok(await client.post(f"/api/settlement/v1/batches/{batch['id']}/approve", headers=finance), 200)
    overview = await client.get("/merchant/")
    row = re.search(rf'<tr data-batch-id="{batch["id"]}">(.*?)</tr>', overview.text, re.S)
    assert row and "¥12.00" in row[1] and "已审批" in row[1] and "待付款" in row[1]
    statements = await client.get("/merchant/statements")
    month = re.search(rf'<tr data-period="{period}">(.*?)</tr>', statements.text, re.S)
    assert month and f'href="/merchant/claims/{claim_id}"' in month[1] and "¥12.00" in month[1]


async def test_a_rejected_file_lists_every_bad_line_and_stores_nothing(
    client: AsyncTestClient, world: World, dsn: str
) -> None:
    await add_staff_login(dsn, "boss@shop", "merchant_admin", merchant_id=world.merchants["shop"], name="王店长")
    assert await sign_in_staff(client, "boss@shop") == "/merchant/"
    data = claim_file([
        ["", "C-1", "2026-05-03 10:00:00", "100.00", "6.00"],
        ["", "C-2", "2026-05-03 10:00:00", "一百", "6.00"],
        ["", "C-3", "2026-05-03 10:00:00", "100.00", "6.00"],
        ["", "", "昨天", "100.00", "6.00"],
    ])  # fmt: skip
    rejected = await client.post("/merchant/claims", files={"file": ("c.csv", data, "text/csv")},
                                 data={"period": "2026-05"})  # fmt: skip
    assert rejected.status_code == 422
    assert "文件未被接受，没有保存任何内容" in rejected.text
    assert re.findall(r'<tr data-line="(\d+)"', rejected.text) == ["3", "5", "5"]
    line_3 = re.search(r'<tr data-line="3">(.*?)</tr>', rejected.text, re.S)
    assert line_3 and "消费金额" in line_3[1] and "一百" in line_3[1]  # the column as the file heads it
    assert await count_claims(dsn) == 0
    missing = await client.post("/merchant/claims", files={"file": ("c.csv", b"", "text/csv")},
                                data={"period": "2026-05"})  # fmt: skip
    assert missing.status_code == 422 and "请选择要上传的 CSV 文件" in missing.text
    bad_month = await client.post("/merchant/claims", files={"file": ("c.csv", data, "text/csv")},
                                  data={"period": "May"})  # fmt: skip
    assert bad_month.status_code == 422 and "申报月份应为 YYYY-MM" in bad_month.text
    assert await count_claims(dsn) == 0


async def test_access_is_the_merchant_admins_own(
    client: AsyncTestClient, world: World, dsn: str, sales: dict[str, str]
) -> None:
    theirs = claim_file([["", "R-1", days_ago(5).strftime("%Y-%m-%d %H:%M:%S"), "70.00", "4.20"]])
    other_admin = await staff_token(dsn, "merchant_admin", world.merchants["other"])
    submitted = await client.post(
        "/api/settlement/v1/claims", content=theirs, headers={**other_admin, "Content-Type": "text/csv"}
    )
    other_claim = (await ok(submitted))["id"]
    for path in (
        f"/merchant/claims/{other_claim}",
        f"/merchant/claims/{other_claim}/results.csv",
        f"/merchant/sales/{sales['elsewhere']}",
        "/merchant/sales/not-a-uuid",
        "/merchant/claims/999999",
    ):
        response = await client.get(path)
        assert response.status_code == 404, path
        assert "找不到该记录，或它不属于本商户" in response.text and "4.20" not in response.text
    finance = await staff_token(dsn, "finance_officer")
    for path in ("/merchant/", "/merchant/sales", "/merchant/claims", "/merchant/statements"):
        refused = await client.get(path, headers=finance)
        assert refused.status_code == 403 and "商户后台仅供商户管理员使用" in refused.text, path
        client.cookies.clear()
        anonymous = await client.get(path, follow_redirects=False)
        assert anonymous.status_code == 303 and anonymous.headers["location"] == "/login", path
    posted = await client.post("/merchant/claims", files={"file": ("c.csv", theirs, "text/csv")},
                               follow_redirects=False)  # fmt: skip
    assert posted.status_code == 303 and posted.headers["location"] == "/login"


async def test_statements_list_every_month_with_a_link(
    client: AsyncTestClient, world: World, sales: dict[str, str]
) -> None:
    page = await client.get("/merchant/statements")
    assert page.status_code == 200
    months = re.findall(r'data-period="(\d{4}-\d{2})"', page.text)
    this_month = datetime.now(SHANGHAI).strftime("%Y-%m")
    assert months[0] == this_month and days_ago(10).strftime("%Y-%m") == months[-1]
    assert f'href="/statements/{world.merchants["shop"]}/{this_month}"' in page.text
    english = await client.get("/merchant/statements?lang=en")
    assert "Statements" in english.text and "View / print" in english.text
