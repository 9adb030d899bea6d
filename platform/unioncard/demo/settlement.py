"""The demo's settlement month: merchants' claims, reconciled, batched, approved and partly paid.

Everything goes through the settlement code a merchant and finance use (claims import, batches,
the bank-file rail), so the console and the back office open on a month that looks lived in:
most claims clean, a few typed amounts wrong, a duplicated line, a receipt nobody sold, a
refunded sale claimed anyway, some sales never claimed, one payment the bank returned.
"""

from __future__ import annotations

import csv
import io
import random
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from settlement import batches, service
from settlement.batches import BatchIn, ConfirmPaidIn, ExcludedLineIn
from settlement.rails import BankFileRail
from settlement.rules import add_months
from unioncard.auth import Principal, Role
from unioncard.errors import DomainError
from unioncard.money import format_yuan

CLAIMING_MERCHANTS = 40
HEADER = ["核销编号", "小票号", "交易时间", "消费金额", "工会补贴金额"]
BY_RECEIPT_SHARE = 0.3  # lines a till system names by its own receipt number only
UNCLAIMED_SHARE = 0.02
TYPO_SHARE = 0.01

# The period's sales of a merchant with what was refunded of each, in time order.
SALES_SQL = """
SELECT r.id::text AS id, r.receipt_ref, r.occurred_at, r.amount_minor,
       (r.union_funded_minor - coalesce(f.union_funded_minor, 0))::bigint AS union_net_minor,
       coalesce(f.amount_minor, 0)::bigint AS refunded_minor
  FROM redemptions r
  LEFT JOIN (SELECT redemption_id, sum(amount_minor) AS amount_minor, sum(union_funded_minor) AS union_funded_minor
               FROM refunds GROUP BY redemption_id) f ON f.redemption_id = r.id
 WHERE r.merchant_id = $1 AND r.occurred_at >= $2 AND r.occurred_at < $3
 ORDER BY r.occurred_at, r.id
"""
# The active merchants that sold most in the period, after those with a demo login.
CLAIMANTS_SQL = """
SELECT r.merchant_id
  FROM redemptions r JOIN merchants m ON m.id = r.merchant_id
 WHERE r.occurred_at >= $1 AND r.occurred_at < $2 AND m.status = 'active'
 GROUP BY r.merchant_id
 ORDER BY r.merchant_id = ANY($3::bigint[]) DESC, count(*) DESC, r.merchant_id
 LIMIT $4
"""
FINANCE_SQL = "SELECT id, display_name FROM staff_users WHERE role = 'finance_officer' ORDER BY id LIMIT 1"
MATCHED_LINE_SQL = """
SELECT line_no FROM claim_lines WHERE claim_id = $1 AND class = 'matched' ORDER BY line_no OFFSET $2 LIMIT 1
"""


def claim_period(window: list[date]) -> date:
    """The month most of the demo's window falls in."""
    middle = window[len(window) // 2]
    return date(middle.year, middle.month, 1)


async def load_settlement(
    conn: asyncpg.Connection, rng: random.Random, period: date, timezone: str, login_merchant_ids: list[int]
) -> dict[str, Any]:
    """Claims of the period for the merchants that sold most; batches approved for most, paid for some.

    Returns what was made, for the manifest. Raises DomainError if the settlement code refuses the demo's data.
    """
    zone = ZoneInfo(timezone)
    starts = _midnight(period, zone)
    ends = _midnight(add_months(period, 1), zone)
    merchant_ids = [row["merchant_id"] for row in await conn.fetch(
        CLAIMANTS_SQL, starts, ends, login_merchant_ids, CLAIMING_MERCHANTS)]  # fmt: skip
    finance_row = await conn.fetchrow(FINANCE_SQL)
    if finance_row is None:
        raise DomainError("not_found", "the demo has no finance officer")
    finance = Principal(role=Role.FINANCE_OFFICER, staff_user_id=finance_row["id"], name=finance_row["display_name"])
    rail = BankFileRail()
    claims, approved, paid, failed = [], [], [], []
    for number, merchant_id in enumerate(merchant_ids):
        sales = await conn.fetch(SALES_SQL, merchant_id, starts, ends)
        data = _claim_file(rng, sales, zone)
        summary = await service.import_claim_file(
            conn, data, merchant_id=merchant_id, period=f"{period:%Y-%m}", timezone=timezone
        )
        claims.append(summary["id"])
        if number % 4 == 3:
            continue  # a quarter wait for finance
        excluded = await _exclusion(conn, rng, summary) if number % 7 == 1 else []
        batch = await batches.create_batch(conn, finance, BatchIn(claim_id=summary["id"], excluded_lines=excluded))
        if number % 4 == 2:
            continue  # drafts finance has not approved yet
        await batches.approve_batch(conn, finance, batch["id"], rail.name)
        approved.append(batch["id"])
        if number % 3 == 0:
            continue  # approved, the bank file not yet taken
        await batches.export_bank_file(conn, finance, batch["id"], rail)
        if number % 11 == 5:
            live = [item["id"] for item in (await batches.get_batch(conn, finance, batch["id"]))["instructions"]]
            result = f"参考号,状态,原因\r\n{live[-1]},失败,收款账号户名不符\r\n".encode("gbk")
            await batches.import_bank_result(conn, finance, result, rail)
            failed.append(batch["id"])
        else:
            await batches.confirm_paid(conn, finance, batch["id"], ConfirmPaidIn(), rail)
            paid.append(batch["id"])
    return {
        "period": f"{period:%Y-%m}",
        "claims": len(claims),
        "batches_approved": len(approved),
        "batches_paid": len(paid),
        "batches_failed": len(failed),
    }


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(), tzinfo=zone)


def _claim_file(rng: random.Random, sales: list[asyncpg.Record], zone: ZoneInfo) -> bytes:
    """The merchant's till export for the month as a spreadsheet saves it: GBK, Chinese headers."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADER)
    for index, sale in enumerate(sales):
        if sale["refunded_minor"] >= sale["amount_minor"] and rng.random() < 0.7:
            continue  # most tills leave a sale refunded in full out of the export; the rest claim it: reversed
        if rng.random() < UNCLAIMED_SHARE:
            continue  # lost from the export: the period's unclaimed sales
        by_receipt = bool(sale["receipt_ref"]) and rng.random() < BY_RECEIPT_SHARE
        amount = sale["amount_minor"] + (100 if rng.random() < TYPO_SHARE else 0)
        row = [
            "" if by_receipt else sale["id"],
            sale["receipt_ref"] or "",
            sale["occurred_at"].astimezone(zone).strftime("%Y-%m-%d %H:%M:%S"),
            format_yuan(amount),
            format_yuan(sale["union_net_minor"]),
        ]
        writer.writerow(row)
        if index == 3:
            writer.writerow(row)  # keyed in twice: duplicate_line
    if sales:
        last = sales[-1]["occurred_at"].astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")
        # a hand-written slip no till sold: not_found
        writer.writerow(["", f"手工单-{rng.randrange(1000, 9999)}", last, "58.00", "5.80"])
    return out.getvalue().encode("gbk")


async def _exclusion(conn: asyncpg.Connection, rng: random.Random, summary: dict[str, Any]) -> list[ExcludedLineIn]:
    """Finance holds back one matched line of some claims."""
    matched = summary["classes"].get("matched", {}).get("lines", 0)
    line_no = await conn.fetchval(MATCHED_LINE_SQL, summary["id"], rng.randrange(matched)) if matched else None
    return [ExcludedLineIn(line_no=line_no, reason="小票模糊，待商户补交凭证")] if line_no is not None else []
