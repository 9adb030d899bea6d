"""Claims: intake by JSON and CSV (three encodings, two header languages), set-based reconciliation, access."""

from __future__ import annotations

import csv
import io
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from settlement.service import import_claim_file
from tests.factories import World, add_card, add_merchant, make_world, ok, staff_token
from unioncard.errors import DomainError

SHANGHAI = ZoneInfo("Asia/Shanghai")
CLAIMS = "/api/settlement/v1/claims"
EN = ["redemption_id", "receipt_ref", "occurred_at", "amount", "union_funded"]
ZH = ["核销编号", "小票号", "交易时间", "消费金额", "工会补贴金额"]


def local(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=SHANGHAI)


def csv_bytes(header: list[str], lines: list[list[str]], encoding: str = "utf-8") -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(lines)
    return out.getvalue().encode(encoding)


@dataclass
class Sales:
    world: World
    ids: dict[str, str] = field(default_factory=dict)


@pytest.fixture
def api(client: AsyncTestClient) -> AsyncTestClient:
    """The whole app, settlement included."""
    return client


async def _sale(conn: asyncpg.Connection, world: World, merchant: str, amount: int, receipt: str, at: str) -> str:
    body = await conn.fetchval(
        "SELECT body::text FROM till_redeem($1, $2, NULL, $3, 'CNY', $4, $5, $6, '\\x00')",
        world.terminal_ids[merchant], world.cards["m"], amount, receipt, local(at), f"key-{merchant}-{receipt}",
    )  # fmt: skip
    return json.loads(body)["id"]  # type: ignore[no-any-return]


@pytest.fixture
async def sales(api: AsyncTestClient, dsn: str) -> Sales:
    """Merchants a and b, one card issued long ago, and sales around October 2026 (local time)."""
    world = await make_world(api, dsn)
    await add_card(api, world, "m")
    await add_merchant(api, world, "a")
    await add_merchant(api, world, "b")
    result = Sales(world)
    conn = await asyncpg.connect(dsn)
    try:
        # The till refuses a card before its issue; these sales are offline captures of a card issued in 2020.
        await conn.execute("UPDATE cards SET status_since = '2020-01-01'")
        await conn.execute("UPDATE card_status_history SET valid_from = '2020-01-01'")
        plan = [  # label, merchant, amount (fen), receipt, local time; 10% off, 60% of it union-funded
            ("s1", "a", 10000, "r1", "2026-10-05 10:00:00"),
            ("s2", "a", 20000, "r2", "2026-10-06 10:00:00"),
            ("s3", "a", 5000, "r3", "2026-10-07 10:00:00"),
            ("s4", "a", 10000, "r4", "2026-10-08 10:00:00"),
            ("s5", "a", 10000, "r5", "2026-10-09 10:00:00"),
            ("s6", "a", 10000, "r6", "2026-10-10 10:00:00"),
            ("s7", "a", 10000, "r7", "2026-10-11 10:00:00"),
            ("s8", "a", 10000, "r8", "2026-10-12 10:00:00"),
            ("s9", "a", 10000, "r9", "2026-09-30 23:30:00"),
            ("s10", "a", 10000, "r10", "2026-10-31 23:59:59"),
            ("s11", "a", 10000, "r11", "2026-11-01 00:00:00"),
            ("sb", "b", 10000, "rb1", "2026-10-10 10:00:00"),
        ]
        for label, merchant, amount, receipt, at in plan:
            result.ids[label] = await _sale(conn, world, merchant, amount, receipt, at)
        refund = "SELECT till_refund($1, $2::uuid, $3, $4, '\\x01')"
        await conn.execute(refund, world.terminal_ids["a"], result.ids["s7"], None, "refund-s7")
        await conn.execute(refund, world.terminal_ids["a"], result.ids["s8"], 5000, "refund-s8")
    finally:
        await conn.close()
    return result


def _main_claim_lines(ids: dict[str, str]) -> list[list[str]]:
    """Lines 2..14 of the file, one or more of every class."""
    return [
        [ids["s1"], "", "2026-10-05 10:00:00", "100.00", "6.00"],  # 2 matched
        ["", "r2", "2026-10-06T10:00:00+08:00", "200", "12"],  # 3 matched, by receipt, ISO time
        [ids["s3"], "r3", "2026-10-07 10:00:00", "50.00", "3.00"],  # 4 matched
        [ids["s4"], "", "2026-10-08 10:00:00", "100.01", "6.00"],  # 5 amount_mismatch: sale amount
        ["", "r5", "2026-10-09 10:00:00", "100.00", "6.50"],  # 6 amount_mismatch: union share +50 fen
        [ids["s6"], "", "2026-10-10 10:00:00", "100.00", "6.00"],  # 7 already_claimed (earlier claim)
        [ids["s7"], "", "2026-10-11 10:00:00", "100.00", "6.00"],  # 8 reversed: refunded in full
        [ids["s8"], "", "2026-10-12 10:00:00", "100.00", "3.00"],  # 9 matched: half refunded, net share
        [ids["s9"], "", "2026-09-30 23:30:00", "100.00", "6.00"],  # 10 out_of_period
        [str(uuid.uuid4()), "", "2026-10-13 10:00:00", "100.00", "6.00"],  # 11 not_found
        [ids["sb"], "", "2026-10-10 10:00:00", "100.00", "6.00"],  # 12 not_found: merchant b's sale
        ["", "r1", "2026-10-05 10:00:00", "100.00", "6.00"],  # 13 duplicate_line of line 2
        ["", "rb1", "2026-10-10 10:00:00", "100.00", "6.00"],  # 14 not_found: b's receipt
    ]


EXPECTED_CLASSES = {
    "matched": {"lines": 4, "amount_minor": 45000, "union_funded_minor": 2400},
    "amount_mismatch": {"lines": 2, "amount_minor": 20001, "union_funded_minor": 1250},
    "not_found": {"lines": 3, "amount_minor": 30000, "union_funded_minor": 1800},
    "duplicate_line": {"lines": 1, "amount_minor": 10000, "union_funded_minor": 600},
    "already_claimed": {"lines": 1, "amount_minor": 10000, "union_funded_minor": 600},
    "reversed": {"lines": 1, "amount_minor": 10000, "union_funded_minor": 600},
    "out_of_period": {"lines": 1, "amount_minor": 10000, "union_funded_minor": 600},
}


async def _submit_main_claim(api: AsyncTestClient, sales: Sales) -> dict[str, Any]:
    world, ids = sales.world, sales.ids
    earlier = {
        "period": "2026-10",
        "lines": [{"redemption_id": ids["s6"], "occurred_at": "2026-10-10T10:00:00+08:00", "amount": 10000,
                   "union_funded": 600}],
    }  # fmt: skip
    first = await ok(await api.post(CLAIMS, json=earlier, headers=world.terminals["a"]))
    assert first["classes"]["matched"]["lines"] == 1
    # finance takes it into a batch: from now on the sale is held, and another claim of it is already_claimed
    await ok(await api.post("/api/settlement/v1/batches", json={"claim_id": first["id"]}, headers=world.admin))
    data = csv_bytes(EN, _main_claim_lines(ids))
    headers = {**world.terminals["a"], "Content-Type": "text/csv"}
    return await ok(await api.post(CLAIMS, content=data, headers=headers))


async def test_a_month_with_every_class(api: AsyncTestClient, sales: Sales, dsn: str) -> None:
    world, ids = sales.world, sales.ids
    claim = await _submit_main_claim(api, sales)
    assert (claim["period"], claim["source"], claim["line_count"], claim["status"]) == (
        "2026-10",
        "csv",
        13,
        "reconciled",
    )
    assert claim["classes"] == EXPECTED_CLASSES
    assert claim["unclaimed"] == {"sales": 1, "union_funded_minor": 600}

    page = await ok(await api.get(f"{CLAIMS}/{claim['id']}/lines?class=not_found&limit=2", headers=world.admin), 200)
    assert [line["line_no"] for line in page["lines"]] == [11, 12]
    rest = await ok(
        await api.get(f"{CLAIMS}/{claim['id']}/lines?class=not_found&after_line=12&limit=2", headers=world.admin), 200
    )
    assert ([line["line_no"] for line in rest["lines"]], rest["next_after_line"]) == ([14], None)
    every = await ok(await api.get(f"{CLAIMS}/{claim['id']}/lines", headers=world.terminals["a"]), 200)
    assert [line["class"] for line in every["lines"]] == [
        "matched", "matched", "matched", "amount_mismatch", "amount_mismatch", "already_claimed", "reversed",
        "matched", "out_of_period", "not_found", "not_found", "duplicate_line", "not_found",
    ]  # fmt: skip
    assert every["lines"][1]["resolved_redemption_id"] == ids["s2"]

    unclaimed = await ok(await api.get(f"{CLAIMS}/{claim['id']}/unclaimed", headers=world.admin), 200)
    assert [sale["redemption_id"] for sale in unclaimed["sales"]] == [ids["s10"]]

    exported = await api.get(f"{CLAIMS}/{claim['id']}/results.csv", headers=world.terminals["a"])
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(exported.content.decode("utf-8-sig"))))
    assert rows[0][0] == "line" and len(rows) == 14
    assert rows[4][4:7] == ["100.01", "6.00", "amount_mismatch"]


async def test_reconciliation_is_rerunnable_with_the_same_digest(api: AsyncTestClient, sales: Sales) -> None:
    world = sales.world
    claim = await _submit_main_claim(api, sales)
    url = f"{CLAIMS}/{claim['id']}/reconcile"
    again = await ok(await api.post(url, headers=world.admin), 200)
    assert again["run"]["result_digest"] == claim["run"]["result_digest"]
    assert again["run"]["input_digest"] == claim["run"]["input_digest"]
    assert again["run"]["id"] != claim["run"]["id"]
    assert again["classes"] == EXPECTED_CLASSES

    tolerant = await ok(await api.post(f"{url}?tolerance_minor=50", headers=world.admin), 200)
    assert tolerant["classes"]["matched"]["lines"] == 5
    assert tolerant["classes"]["amount_mismatch"] == {"lines": 1, "amount_minor": 10001, "union_funded_minor": 600}
    assert tolerant["run"]["result_digest"] != claim["run"]["result_digest"]
    assert tolerant["run"]["input_digest"] != claim["run"]["input_digest"]

    strict = await ok(await api.post(f"{url}?tolerance_minor=0", headers=world.admin), 200)
    assert strict["run"]["result_digest"] == claim["run"]["result_digest"]
    assert strict["classes"] == EXPECTED_CLASSES

    forbidden = await api.post(url, headers=world.terminals["a"])
    assert forbidden.status_code == 403


async def test_a_claim_sent_again_or_a_line_held_back_can_be_claimed_again(api: AsyncTestClient, sales: Sales) -> None:
    world, ids = sales.world, sales.ids
    lines = [
        {
            "redemption_id": ids[label],
            "occurred_at": f"2026-10-0{day}T10:00:00+08:00",
            "amount": amount,
            "union_funded": union,
        }
        for label, day, amount, union in (("s1", 5, 10000, 600), ("s2", 6, 20000, 1200))
    ]
    first = await ok(await api.post(CLAIMS, json={"period": "2026-10", "lines": lines}, headers=world.terminals["a"]))
    again = await ok(await api.post(CLAIMS, json={"period": "2026-10", "lines": lines}, headers=world.terminals["a"]))
    assert again["classes"]["matched"]["lines"] == 2  # the first, corrected or not, has no batch: it holds nothing
    batch = {"claim_id": again["id"], "excluded_lines": [{"line_no": 1, "reason": "小票模糊"}]}  # s1 held back
    await ok(await api.post("/api/settlement/v1/batches", json=batch, headers=world.admin))
    rerun = await ok(await api.post(f"{CLAIMS}/{first['id']}/reconcile", json={}, headers=world.admin), 200)
    assert {name: c["lines"] for name, c in rerun["classes"].items() if c["lines"]} == {
        "already_claimed": 1,
        "matched": 1,
    }
    third = await ok(
        await api.post(CLAIMS, json={"period": "2026-10", "lines": lines[1:]}, headers=world.terminals["a"])
    )
    assert third["classes"]["already_claimed"]["lines"] == 1  # s2 is in the batch
    fourth = await ok(
        await api.post(CLAIMS, json={"period": "2026-10", "lines": lines[:1]}, headers=world.terminals["a"])
    )
    assert fourth["classes"]["matched"]["lines"] == 1  # s1 was held back from the batch: it may be claimed again


async def test_a_merchant_sees_only_its_own_claims(api: AsyncTestClient, sales: Sales, dsn: str) -> None:
    world = sales.world
    claim = await _submit_main_claim(api, sales)
    admin_b = await staff_token(dsn, "merchant_admin", world.merchants["b"])
    admin_a = await staff_token(dsn, "merchant_admin", world.merchants["a"])
    finance = await staff_token(dsn, "finance_officer")
    for suffix in ("", "/lines", "/unclaimed", "/results.csv"):
        for outsider in (admin_b, world.terminals["b"]):
            response = await api.get(f"{CLAIMS}/{claim['id']}{suffix}", headers=outsider)
            assert response.status_code == 404, (suffix, response.text)
            assert response.json()["code"] == "not_found"
        for insider in (admin_a, finance, world.admin, world.terminals["a"]):
            assert (await api.get(f"{CLAIMS}/{claim['id']}{suffix}", headers=insider)).status_code == 200
    assert (await api.get(f"{CLAIMS}/999999", headers=finance)).status_code == 404
    finance_submits = await api.post(CLAIMS, json={"lines": []}, headers=finance)
    assert finance_submits.status_code == 403


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk"])
@pytest.mark.parametrize("header", [EN, ZH], ids=["english", "chinese"])
async def test_three_encodings_and_both_header_languages(
    sales: Sales, dsn: str, encoding: str, header: list[str]
) -> None:
    ids, merchant_id = sales.ids, sales.world.merchants["a"]
    lines = [
        [ids["s1"], "", "2026-10-05 10:00:00", "100", "6"],
        ["", "r2", "2026-10-06T02:00:00Z", "200.00", "12.00"],
        ["", "小票-不存在", "2026-10-06 12:00:00", "1.5", "0.05"],
    ]
    conn = await asyncpg.connect(dsn)
    try:
        claim = await import_claim_file(conn, csv_bytes(header, lines, encoding), merchant_id=merchant_id, period=None)
        stored = await conn.fetch(
            "SELECT line_no, receipt_ref, occurred_at, amount_minor, union_funded_minor, class"
            " FROM claim_lines WHERE claim_id = $1 ORDER BY line_no",
            claim["id"],
        )
    finally:
        await conn.close()
    assert claim["period"] == "2026-10"
    assert [tuple(row) for row in stored] == [
        (2, None, local("2026-10-05 10:00:00"), 10000, 600, "matched"),
        (3, "r2", local("2026-10-06 10:00:00"), 20000, 1200, "matched"),
        (4, "小票-不存在", local("2026-10-06 12:00:00"), 150, 5, "not_found"),
    ]


async def test_local_times_are_read_in_the_unions_time_zone(sales: Sales, dsn: str) -> None:
    lines = [["", "r2", "2026-10-06 10:00:00", "200.00", "12.00"]]
    conn = await asyncpg.connect(dsn)
    try:
        claim = await import_claim_file(conn, csv_bytes(EN, lines), merchant_id=sales.world.merchants["a"],
                                        period="2026-10", timezone="Asia/Tokyo")  # fmt: skip
        stored = await conn.fetchval("SELECT occurred_at FROM claim_line_inputs WHERE claim_id = $1", claim["id"])
    finally:
        await conn.close()
    assert stored == datetime(2026, 10, 6, 1, 0, tzinfo=UTC)  # 10:00 in Tokyo, not 10:00 in Shanghai


async def test_a_run_stores_only_lines_not_matched_to_the_sale_they_name(sales: Sales, dsn: str) -> None:
    ids, merchant_id = sales.ids, sales.world.merchants["a"]
    lines = [
        [ids["s1"], "", "2026-10-05 10:00:00", "100", "6"],  # matched to the sale it names: no result row
        ["", "r2", "2026-10-06 10:00:00", "200.00", "12.00"],  # matched by receipt: stored, with the sale
        ["", "小票-不存在", "2026-10-06 12:00:00", "1.5", "0.05"],  # not found: stored
    ]
    conn = await asyncpg.connect(dsn)
    try:
        claim = await import_claim_file(conn, csv_bytes(EN, lines), merchant_id=merchant_id, period=None)
        stored = await conn.fetch(
            "SELECT x.line_no, x.class, x.resolved_redemption_id::text AS sale FROM claim_line_results x"
            " JOIN claims c ON c.run_id = x.run_id WHERE c.id = $1 ORDER BY x.line_no",
            claim["id"],
        )
        shown = await conn.fetch(
            "SELECT line_no, class, resolved_redemption_id::text AS sale FROM claim_lines"
            " WHERE claim_id = $1 ORDER BY line_no",
            claim["id"],
        )
    finally:
        await conn.close()
    assert [tuple(row) for row in stored] == [(3, "matched", ids["s2"]), (4, "not_found", None)]
    assert [tuple(row) for row in shown] == [
        (2, "matched", ids["s1"]),
        (3, "matched", ids["s2"]),
        (4, "not_found", None),
    ]


async def test_a_gbk_file_with_a_bad_line_731_is_rejected_whole(sales: Sales, dsn: str) -> None:
    lines = [["", f"小票{n:04d}", "2026-10-05 10:00:00", "100.00", "6.00"] for n in range(2, 801)]
    lines[731 - 2][3] = "12.345"
    data = csv_bytes(ZH, lines, "gbk")
    conn = await asyncpg.connect(dsn)
    try:
        with pytest.raises(DomainError) as caught:
            await import_claim_file(conn, data, merchant_id=sales.world.merchants["a"], period="2026-10")
        stored = await conn.fetchval("SELECT (SELECT count(*) FROM claims) + (SELECT count(*) FROM claim_lines)")
    finally:
        await conn.close()
    assert caught.value.code == "import_rejected"
    errors = caught.value.extra["errors"]
    assert [(e["line"], e["column"]) for e in errors] == [(731, "amount")]
    assert "two decimals" in errors[0]["message"]
    assert stored == 0


async def test_bad_lines_are_all_listed_and_nothing_is_stored(api: AsyncTestClient, sales: Sales, dsn: str) -> None:
    world = sales.world
    lines = [
        ["not-a-uuid", "", "2026-10-05 10:00:00", "100", "6"],
        ["", "", "2026-10-05 10:00:00", "100", "6"],
        ["", "r1", "yesterday", "100", "6"],
        ["", "r1", "2026-10-05 10:00:00", "1.00", "2.00"],
        ["", "r1", "2026-10-05 10:00:00", "abc", "-1"],
    ]
    headers = {**world.terminals["a"], "Content-Type": "text/csv"}
    response = await api.post(CLAIMS, content=csv_bytes(EN, lines), headers=headers)
    assert response.status_code == 422
    problem = response.json()
    assert problem["code"] == "import_rejected"
    assert [(e["line"], e["column"]) for e in problem["errors"]] == [
        (2, "redemption_id"), (3, "redemption_id"), (4, "occurred_at"), (5, "union_funded"), (6, "amount"),
        (6, "union_funded"),
    ]  # fmt: skip
    bad_period = await api.post(f"{CLAIMS}?period=2026-13", content=csv_bytes(EN, lines[:1]), headers=headers)
    assert bad_period.status_code == 422
    unknown = await api.post(CLAIMS, json={"lines": [], "extra": 1}, headers=world.terminals["a"])
    assert (unknown.status_code, unknown.json()["code"]) == (422, "malformed_request")
    floats = {"lines": [{"receipt_ref": "r1", "occurred_at": "2026-10-05T10:00:00+08:00", "amount": 100.0,
                         "union_funded": 6}]}  # fmt: skip
    assert (await api.post(CLAIMS, json=floats, headers=world.terminals["a"])).status_code == 422
    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM claims") == 0
    finally:
        await conn.close()


def test_the_claims_cli_rejects_a_bad_file_with_its_line(dsn: str, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    claim = tmp_path / "claim.csv"
    claim.write_bytes("核销编号,交易时间,消费金额,工会补贴金额\n,2026-11-02 10:00:00,12.345,1.00\n".encode("gbk"))
    result = subprocess.run(
        [sys.executable, "-m", "unioncard.cli", "claims", "import", "--merchant", "1", str(claim)],
        env={**os.environ, "DATABASE_URL": dsn}, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1 and "line 2" in result.stderr
