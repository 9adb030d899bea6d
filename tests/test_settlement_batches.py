"""Settlement batches: approve once, pay through the bank file, claw back late refunds, retry failures."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from settlement.rails import BankFileRail, RailUnavailable, rail_for
from tests.factories import World, add_card, add_merchant, make_world, ok, staff_token
from unioncard.settings import Settings

SHANGHAI = ZoneInfo("Asia/Shanghai")
V1 = "/api/settlement/v1"


@dataclass
class Shop:
    api: AsyncTestClient
    dsn: str
    world: World
    finance: dict[str, str]
    sales: dict[str, str] = field(default_factory=dict)
    shares: dict[str, int] = field(default_factory=dict)


@pytest.fixture
def api(client: AsyncTestClient) -> AsyncTestClient:
    """The whole app, settlement batches included."""
    return client


@pytest.fixture
async def shop(api: AsyncTestClient, dsn: str) -> Shop:
    """Merchants a and b with payee details, one card issued long ago; sales are made per test."""
    world = await make_world(api, dsn)
    await add_card(api, world, "m")
    await add_merchant(api, world, "a")
    await add_merchant(api, world, "b")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("UPDATE cards SET status_since = '2020-01-01'")
        await conn.execute("UPDATE card_status_history SET valid_from = '2020-01-01'")
        await conn.execute(
            "UPDATE merchants SET payee_name = name || '有限公司', payee_account = '6222' || id,"
            " payee_bank = '工商银行'"
        )
    finally:
        await conn.close()
    return Shop(api, dsn, world, await staff_token(dsn, "finance_officer"))


async def _sell(shop: Shop, label: str, amount: int, at: str, merchant: str = "a") -> str:
    conn = await asyncpg.connect(shop.dsn)
    try:
        body = await conn.fetchval(
            "SELECT body::text FROM till_redeem($1, $2, NULL, $3, 'CNY', $4, $5, $6, '\\x00')",
            shop.world.terminal_ids[merchant], shop.world.cards["m"], amount, label,
            datetime.fromisoformat(at).replace(tzinfo=SHANGHAI), f"key-{label}",
        )  # fmt: skip
    finally:
        await conn.close()
    sale = json.loads(body)
    shop.sales[label], shop.shares[label] = sale["id"], sale["union_funded"]
    return sale["id"]  # type: ignore[no-any-return]


async def _refund(shop: Shop, label: str, merchant: str = "a") -> None:
    conn = await asyncpg.connect(shop.dsn)
    try:
        await conn.execute(
            "SELECT till_refund($1, $2::uuid, NULL, $3, '\\x01')",
            shop.world.terminal_ids[merchant], shop.sales[label], f"refund-{label}",
        )  # fmt: skip
    finally:
        await conn.close()


async def _claim(shop: Shop, period: str, labels: list[str], merchant: str = "a") -> dict[str, Any]:
    conn = await asyncpg.connect(shop.dsn)
    try:
        rows = await conn.fetch(
            "SELECT id::text AS id, occurred_at, amount_minor, union_funded_minor FROM redemptions"
            " WHERE id = ANY($1::uuid[])",
            [shop.sales[label] for label in labels],
        )
    finally:
        await conn.close()
    by_id = {row["id"]: row for row in rows}
    lines = [
        {"redemption_id": shop.sales[label], "occurred_at": by_id[shop.sales[label]]["occurred_at"].isoformat(),
         "amount": by_id[shop.sales[label]]["amount_minor"], "union_funded": shop.shares[label]}
        for label in labels
    ]  # fmt: skip
    headers = shop.world.terminals[merchant]
    claim = await ok(await shop.api.post(f"{V1}/claims", json={"period": period, "lines": lines}, headers=headers))
    assert claim["classes"]["matched"]["lines"] == len(labels), claim
    return claim


async def _batch(shop: Shop, claim: dict[str, Any], excluded: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    body = {"claim_id": claim["id"], "excluded_lines": excluded or []}
    return await ok(await shop.api.post(f"{V1}/batches", json=body, headers=shop.finance))


async def _approve(shop: Shop, batch_id: int) -> dict[str, Any]:
    return await ok(await shop.api.post(f"{V1}/batches/{batch_id}/approve", headers=shop.finance), 200)


async def _pay_by_bank_file(shop: Shop, batch_id: int) -> dict[str, Any]:
    """Finance takes the bank file, pays it at the bank, and confirms: the batch's instructions paid."""
    taken = await shop.api.post(f"{V1}/batches/{batch_id}/bank-file.csv", headers=shop.finance)
    assert taken.status_code == 200, taken.text
    confirmed = await ok(await shop.api.post(f"{V1}/batches/{batch_id}/confirm-paid", headers=shop.finance), 200)
    assert confirmed["applied"], confirmed
    return confirmed


async def _ledger(shop: Shop, merchant: str = "a") -> dict[str, int]:
    conn = await asyncpg.connect(shop.dsn)
    try:
        row = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM ledger_unbalanced) AS unbalanced,"
            " ledger_balance('merchant:' || $1::bigint || ':payable') AS payable,"
            " ledger_balance('payouts:in_transit') AS in_transit, ledger_balance('union:cash') AS cash,"
            " (SELECT count(*) FROM ledger_transactions WHERE kind = 'settlement_approved') AS approvals,"
            " (SELECT count(*) FROM ledger_transactions WHERE kind = 'payout_paid') AS paid,"
            " (SELECT count(*) FROM ledger_transactions WHERE kind = 'payout_failed') AS failed",
            shop.world.merchants[merchant],
        )
    finally:
        await conn.close()
    return dict(row)


def _bank_rows(content: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(content.decode("utf-8-sig"))))


def _result_file(rows: list[tuple[int, str, str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["reference", "status", "reason"])
    writer.writerows(rows)
    return out.getvalue().encode()


async def _bank_result(shop: Shop, rows: list[tuple[int, str, str]]) -> dict[str, Any]:
    headers = {**shop.finance, "Content-Type": "text/csv"}
    return await ok(await shop.api.post(f"{V1}/payouts/bank-result", content=_result_file(rows), headers=headers), 200)


async def test_claim_to_paid_through_the_bank_file(shop: Shop) -> None:
    await _sell(shop, "s1", 10000, "2026-10-05T10:00:00")
    await _sell(shop, "s2", 20000, "2026-10-06T10:00:00")
    await _sell(shop, "s3", 5000, "2026-10-07T10:00:00")
    claim = await _claim(shop, "2026-10", ["s1", "s2", "s3"])
    batch = await _batch(shop, claim, [{"line_no": 3, "reason": "receipt illegible"}])
    assert (batch["status"], batch["gross_minor"], batch["payable_minor"]) == ("draft", 1800, 1800)
    assert [line["excluded_reason"] for line in batch["lines"]] == [None, None, "receipt illegible"]
    assert (await _ledger(shop))["approvals"] == 0

    approved = await _approve(shop, batch["id"])
    again = await _approve(shop, batch["id"])
    assert approved == again
    assert (approved["status"], approved["payable_minor"]) == ("approved", 1800)
    [instruction] = approved["instructions"]
    assert (instruction["status"], instruction["amount_minor"]) == ("approved", 1800)
    assert (await _ledger(shop))["approvals"] == 1

    exported = await shop.api.post(f"{V1}/batches/{batch['id']}/bank-file.csv", headers=shop.finance)
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    [row] = _bank_rows(exported.content)
    assert row == {"payee_name": "a超市有限公司", "payee_account": f"6222{shop.world.merchants['a']}",
                   "payee_bank": "工商银行", "amount": "18.00", "currency": "CNY",
                   "reference": str(instruction["id"])}  # fmt: skip
    read = await ok(await shop.api.get(f"{V1}/batches/{batch['id']}", headers=shop.finance), 200)
    assert read["instructions"][0]["status"] == "transferred"
    assert 'filename="batch-' in exported.headers["content-disposition"] and "-copy" not in exported.headers[
        "content-disposition"]  # fmt: skip
    again = await shop.api.post(f"{V1}/batches/{batch['id']}/bank-file.csv", headers=shop.finance)
    assert "-copy.csv" in again.headers["content-disposition"] and _bank_rows(again.content) == [row]
    looked = await shop.api.get(f"{V1}/batches/{batch['id']}/bank-file.csv", headers=shop.finance)
    assert looked.status_code == 405  # taking the file moves instructions: never on a GET (a prefetch, a crawler)

    confirmed = await ok(await shop.api.post(f"{V1}/batches/{batch['id']}/confirm-paid", headers=shop.finance), 200)
    assert confirmed["applied"] == [{"instruction_id": instruction["id"], "batch_id": batch["id"], "status": "paid"}]
    twice = await ok(await shop.api.post(f"{V1}/batches/{batch['id']}/confirm-paid", json={
        "instruction_ids": [instruction["id"]]}, headers=shop.finance), 200)  # fmt: skip
    assert (twice["applied"], twice["unchanged"]) == ([], [instruction["id"]])
    assert await _approve(shop, batch["id"]) == {k: v for k, v in twice["batch"].items()}

    ledger = await _ledger(shop)
    assert ledger["unbalanced"] == 0
    assert ledger["payable"] == -shop.shares["s3"]  # the settled sales are square; the excluded one is still owed
    assert (ledger["in_transit"], ledger["cash"]) == (0, -1800)
    assert (ledger["approvals"], ledger["paid"]) == (1, 1)


async def test_access_to_batches(shop: Shop) -> None:
    await _sell(shop, "s1", 10000, "2026-10-05T10:00:00")
    batch = await _batch(shop, await _claim(shop, "2026-10", ["s1"]))
    url = f"{V1}/batches/{batch['id']}"
    own = await staff_token(shop.dsn, "merchant_admin", shop.world.merchants["a"])
    other = await staff_token(shop.dsn, "merchant_admin", shop.world.merchants["b"])
    assert (await shop.api.get(url, headers=own)).status_code == 200
    assert (await shop.api.get(url, headers=other)).status_code == 404
    assert [b["id"] for b in await ok(await shop.api.get(f"{V1}/batches", headers=own), 200)] == [batch["id"]]
    assert await ok(await shop.api.get(f"{V1}/batches", headers=other), 200) == []
    assert (await shop.api.post(f"{url}/approve", headers=own)).status_code == 403
    assert (await shop.api.get(url, headers=shop.world.terminals["a"])).status_code == 403
    assert (await shop.api.post(f"{url}/bank-file.csv", headers=shop.finance)).status_code == 409  # a draft


async def test_batch_input_is_checked(shop: Shop) -> None:
    await _sell(shop, "s1", 10000, "2026-10-05T10:00:00")
    claim = await _claim(shop, "2026-10", ["s1"])
    for excluded in ([{"line_no": 9, "reason": "x"}], [{"line_no": 1, "reason": " "}]):
        body = {"claim_id": claim["id"], "excluded_lines": excluded}
        response = await shop.api.post(f"{V1}/batches", json=body, headers=shop.finance)
        assert (response.status_code, response.json()["code"]) == (422, "validation_failed")
    await _batch(shop, claim)
    second = await shop.api.post(f"{V1}/batches", json={"claim_id": claim["id"]}, headers=shop.finance)
    assert (second.status_code, second.json()["code"]) == (409, "conflict")
    missing = await shop.api.post(f"{V1}/batches", json={"claim_id": 999999}, headers=shop.finance)
    assert missing.status_code == 404


async def test_two_concurrent_approvals_approve_once(shop: Shop) -> None:
    await _sell(shop, "s1", 10000, "2026-10-05T10:00:00")
    await _sell(shop, "s2", 20000, "2026-10-06T10:00:00")
    batch = await _batch(shop, await _claim(shop, "2026-10", ["s1", "s2"]))
    other_officer = await staff_token(shop.dsn, "finance_officer")
    url = f"{V1}/batches/{batch['id']}/approve"
    first, second = await asyncio.gather(
        shop.api.post(url, headers=shop.finance), shop.api.post(url, headers=other_officer)
    )
    assert (first.status_code, second.status_code) == (200, 200), (first.text, second.text)
    assert len(first.json()["instructions"]) == 1 and first.json() == second.json()
    ledger = await _ledger(shop)
    assert (ledger["approvals"], ledger["unbalanced"], ledger["payable"], ledger["in_transit"]) == (1, 0, 0, -1800)


async def test_a_sale_is_never_settled_in_two_batches(shop: Shop) -> None:
    await _sell(shop, "s1", 10000, "2026-10-05T10:00:00")
    await _sell(shop, "s2", 20000, "2026-10-06T10:00:00")
    first = await _batch(shop, await _claim(shop, "2026-10", ["s1"]))
    second = await _batch(shop, await _claim(shop, "2026-10", ["s2"]))
    conn = await asyncpg.connect(shop.dsn)
    try:  # as if a line had slipped past reconciliation: the settled_sales key is the last guard
        await conn.execute(
            "INSERT INTO settlement_batch_lines (batch_id, line_no, redemption_id, union_funded_minor)"
            " VALUES ($1, 99, $2, 600)",
            second["id"], shop.sales["s1"],
        )  # fmt: skip
    finally:
        await conn.close()
    await _approve(shop, first["id"])
    refused = await shop.api.post(f"{V1}/batches/{second['id']}/approve", headers=shop.finance)
    assert (refused.status_code, refused.json()["code"]) == (409, "conflict")
    ledger = await _ledger(shop)
    assert (ledger["approvals"], ledger["payable"], ledger["unbalanced"]) == (1, -1200, 0)
    still = await ok(await shop.api.get(f"{V1}/batches/{second['id']}", headers=shop.finance), 200)
    assert (still["status"], still["instructions"]) == ("draft", [])


async def test_a_refund_after_settlement_is_clawed_back_in_the_next_batch(shop: Shop) -> None:
    await _sell(shop, "s1", 10000, "2026-10-05T10:00:00")
    await _sell(shop, "s2", 20000, "2026-10-06T10:00:00")
    october = await _batch(shop, await _claim(shop, "2026-10", ["s1", "s2"]))
    await _approve(shop, october["id"])
    await _pay_by_bank_file(shop, october["id"])
    await _refund(shop, "s1")  # refunded after it was paid: the union paid 600 it did not owe
    assert (await _ledger(shop))["payable"] == 600

    await _sell(shop, "s3", 20000, "2026-11-03T10:00:00")
    await _sell(shop, "s4", 5000, "2026-11-04T10:00:00")
    november = await _batch(shop, await _claim(shop, "2026-11", ["s3", "s4"]))
    assert (november["gross_minor"], november["clawback_pending_minor"]) == (1500, 600)
    approved = await _approve(shop, november["id"])
    assert (approved["gross_minor"], approved["clawback_minor"], approved["payable_minor"]) == (1500, 600, 900)
    assert [c["redemption_id"] for c in approved["clawbacks"]] == [shop.sales["s1"]]
    assert approved["instructions"][0]["amount_minor"] == 900
    await _pay_by_bank_file(shop, november["id"])
    ledger = await _ledger(shop)
    assert (ledger["unbalanced"], ledger["payable"], ledger["in_transit"], ledger["cash"]) == (0, 0, 0, -2700)


async def test_a_refund_before_approval_is_netted(shop: Shop) -> None:
    await _sell(shop, "s1", 10000, "2026-10-05T10:00:00")
    await _sell(shop, "s2", 20000, "2026-10-06T10:00:00")
    batch = await _batch(shop, await _claim(shop, "2026-10", ["s1", "s2"]))
    await _refund(shop, "s1")  # after the batch was drafted, before approval
    approved = await _approve(shop, batch["id"])
    assert (approved["gross_minor"], approved["clawback_minor"], approved["payable_minor"]) == (1200, 0, 1200)
    assert (await _ledger(shop))["payable"] == 0


async def test_a_failed_line_is_reversed_and_retried_forward_only(shop: Shop) -> None:
    await _sell(shop, "s1", 10000, "2026-10-05T10:00:00")
    batch = await _batch(shop, await _claim(shop, "2026-10", ["s1"]))
    await _approve(shop, batch["id"])
    exported = await shop.api.post(f"{V1}/batches/{batch['id']}/bank-file.csv", headers=shop.finance)
    first_id = int(_bank_rows(exported.content)[0]["reference"])

    failed = await _bank_result(shop, [(first_id, "failed", "账号不存在")])
    assert failed["applied"] == [{"instruction_id": first_id, "batch_id": batch["id"], "status": "failed"}]
    ledger = await _ledger(shop)
    assert (ledger["failed"], ledger["payable"], ledger["in_transit"], ledger["unbalanced"]) == (1, -600, 0, 0)
    assert (await _bank_result(shop, [(first_id, "paid", "")]))["unchanged"] == [first_id]

    retried = await ok(await shop.api.post(f"{V1}/payouts/{first_id}/retry", headers=shop.finance), 200)
    old, new = retried["instructions"]
    assert (old["id"], old["status"], old["failure_reason"]) == (first_id, "retried", "账号不存在")
    assert (new["status"], new["retry_of"], new["amount_minor"]) == ("approved", first_id, 600)
    again = await shop.api.post(f"{V1}/payouts/{first_id}/retry", headers=shop.finance)
    assert again.status_code == 409

    exported = await shop.api.post(f"{V1}/batches/{batch['id']}/bank-file.csv", headers=shop.finance)
    assert [row["reference"] for row in _bank_rows(exported.content)] == [str(new["id"])]
    paid = await _bank_result(shop, [(new["id"], "paid", ""), (999999, "paid", "")])
    assert (paid["applied"][0]["status"], paid["unknown"]) == ("paid", [999999])
    late = await _bank_result(shop, [(new["id"], "failed", "late")])
    assert (late["applied"], late["unchanged"]) == ([], [new["id"]])
    final = await ok(await shop.api.get(f"{V1}/batches/{batch['id']}", headers=shop.finance), 200)
    assert [i["status"] for i in final["instructions"]] == ["retried", "paid"]
    ledger = await _ledger(shop)
    assert (ledger["approvals"], ledger["failed"], ledger["paid"]) == (2, 1, 1)
    assert (ledger["unbalanced"], ledger["payable"], ledger["in_transit"], ledger["cash"]) == (0, 0, 0, -600)


async def test_a_bad_result_file_is_rejected_whole(shop: Shop) -> None:
    headers = {**shop.finance, "Content-Type": "text/csv"}
    data = _result_file([(1, "paid", ""), (2, "maybe", "")]) + b"abc,paid,\r\n"
    response = await shop.api.post(f"{V1}/payouts/bank-result", content=data, headers=headers)
    assert (response.status_code, response.json()["code"]) == (422, "import_rejected")
    assert [(e["line"], e["column"]) for e in response.json()["errors"]] == [(3, "status"), (4, "reference")]


async def test_canceling_an_instruction_reverses_the_approval(shop: Shop) -> None:
    await _sell(shop, "s1", 10000, "2026-10-05T10:00:00")
    batch = await _batch(shop, await _claim(shop, "2026-10", ["s1"]))
    [instruction] = (await _approve(shop, batch["id"]))["instructions"]
    canceled = await ok(await shop.api.post(f"{V1}/payouts/{instruction['id']}/cancel", headers=shop.finance), 200)
    assert canceled["applied"][0]["status"] == "canceled"
    assert (await shop.api.post(f"{V1}/payouts/{instruction['id']}/cancel", headers=shop.finance)).status_code == 409
    ledger = await _ledger(shop)
    assert (ledger["unbalanced"], ledger["payable"], ledger["in_transit"]) == (0, -600, 0)


async def test_a_canceled_instruction_is_paid_by_a_retry(shop: Shop) -> None:
    await _sell(shop, "s1", 10000, "2026-10-05T10:00:00")
    batch = await _batch(shop, await _claim(shop, "2026-10", ["s1"]))
    [instruction] = (await _approve(shop, batch["id"]))["instructions"]
    await ok(await shop.api.post(f"{V1}/payouts/{instruction['id']}/cancel", headers=shop.finance), 200)
    nothing = await shop.api.post(f"{V1}/batches/{batch['id']}/bank-file.csv", headers=shop.finance)
    assert (nothing.status_code, nothing.json()["code"]) == (409, "conflict")
    retried = await ok(await shop.api.post(f"{V1}/payouts/{instruction['id']}/retry", headers=shop.finance), 200)
    assert [(i["status"], i["retry_of"]) for i in retried["instructions"]] == [
        ("retried", None), ("approved", instruction["id"])]  # fmt: skip
    await _pay_by_bank_file(shop, batch["id"])
    ledger = await _ledger(shop)
    assert (ledger["unbalanced"], ledger["payable"], ledger["in_transit"], ledger["cash"]) == (0, 0, 0, -600)


async def test_only_what_went_to_the_bank_can_be_confirmed_paid(shop: Shop) -> None:
    await _sell(shop, "s1", 10000, "2026-10-05T10:00:00")
    batch = await _batch(shop, await _claim(shop, "2026-10", ["s1"]))
    [instruction] = (await _approve(shop, batch["id"]))["instructions"]
    early = await ok(await shop.api.post(f"{V1}/batches/{batch['id']}/confirm-paid", json={
        "instruction_ids": [instruction["id"]]}, headers=shop.finance), 200)  # fmt: skip
    assert (early["applied"], early["unchanged"]) == ([], [instruction["id"]])
    assert (await _ledger(shop))["cash"] == 0
    await _pay_by_bank_file(shop, batch["id"])
    assert (await _ledger(shop))["cash"] == -600


def test_the_rail_must_pay_the_currency() -> None:
    assert isinstance(rail_for(Settings()), BankFileRail)
    with pytest.raises(RailUnavailable, match="cannot pay USD"):
        rail_for(Settings(currency="USD"))
    with pytest.raises(RailUnavailable, match="unknown payout rail"):
        rail_for(Settings(payout_rail="carrier_pigeon"))


async def test_a_draft_batch_is_discarded_and_the_claim_batched_again(shop: Shop) -> None:
    await _sell(shop, "s1", 10000, "2026-10-05T10:00:00")
    claim = await _claim(shop, "2026-10", ["s1"])
    wrong = await _batch(shop, claim, [{"line_no": 1, "reason": "看错了行"}])
    assert wrong["gross_minor"] == 0
    own = await staff_token(shop.dsn, "merchant_admin", shop.world.merchants["a"])
    assert (await shop.api.post(f"{V1}/batches/{wrong['id']}/discard", headers=own)).status_code == 403
    gone = await ok(await shop.api.post(f"{V1}/batches/{wrong['id']}/discard", headers=shop.finance), 200)
    assert gone == {"discarded": wrong["id"], "claim_id": claim["id"]}
    assert (await shop.api.get(f"{V1}/batches/{wrong['id']}", headers=shop.finance)).status_code == 404
    right = await _batch(shop, claim)
    await _approve(shop, right["id"])
    refused = await shop.api.post(f"{V1}/batches/{right['id']}/discard", headers=shop.finance)
    assert (refused.status_code, refused.json()["code"]) == (409, "conflict")
    ledger = await _ledger(shop)
    assert (ledger["unbalanced"], ledger["approvals"], ledger["payable"]) == (0, 1, 0)
