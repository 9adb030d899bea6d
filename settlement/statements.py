"""Merchant statements: a month of what the union owes a merchant, read from the ledger, with the sales behind it."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from settlement import statement_text
from settlement.rules import add_months, parse_period
from unioncard import i18n
from unioncard.auth import Principal
from unioncard.db import Queries
from unioncard.errors import DomainError
from unioncard.jsonish import iso_values
from unioncard.money import format_yuan

queries = Queries(Path(__file__).parent / "statement_queries.sql")

# The ledger kinds that move a merchant's payable or its payouts in transit, in statement order.
MOVEMENT_KINDS = (
    "sale", "refund", "clawback", "settlement_approved", "payout_paid", "payout_failed", "payout_canceled",
)  # fmt: skip
FIGURES = ("payable_minor", "in_transit_minor", "total_minor")
DAY_FIGURES = (
    "sales", "amount_minor", "discount_minor", "union_funded_minor", "merchant_funded_minor",
    "refunds", "refund_amount_minor", "refund_union_funded_minor", "clawback_union_funded_minor",
)  # fmt: skip


class StatementDoesNotReconcile(RuntimeError):
    """A statement's figures disagree with each other or with the ledger: a bug, never an input error."""


@dataclass(frozen=True)
class Period:
    """A calendar month in the union's time zone: [start, end)."""

    month: date
    start: datetime
    end: datetime

    @property
    def name(self) -> str:
        return self.month.strftime("%Y-%m")


def statement_period(text: str, timezone: str) -> Period:
    """'2026-11' as the local month's bounds. Raises DomainError validation_failed."""
    try:
        month = parse_period(text)
    except ValueError as exc:
        raise DomainError("validation_failed", str(exc), errors=[{"field": "period", "message": str(exc)}]) from exc
    zone = ZoneInfo(timezone)
    following = add_months(month, 1)
    start = datetime(month.year, month.month, 1, tzinfo=zone)
    return Period(month, start, datetime(following.year, following.month, 1, tzinfo=zone))


def payable_account(merchant_id: int) -> str:
    """The ledger account of what the union owes a merchant, as till_redeem and the batches post to it."""
    return f"merchant:{merchant_id}:payable"


async def merchant_statement(
    conn: asyncpg.Connection, principal: Principal, merchant_id: int, period_text: str, *, currency: str, timezone: str
) -> dict[str, Any]:
    """The merchant's statement for a month: balances at its bounds and movements by kind from the ledger, the sales
    and refunds per booking day, and the batches of the period. Amounts are what the union owes the merchant (the
    postings' sign reversed). Read in one snapshot, so opening + movements = closing exactly.

    Raises DomainError validation_failed (period), not_found (no such merchant, or another merchant's);
    StatementDoesNotReconcile when the figures disagree.
    """
    period = statement_period(period_text, timezone)
    if not principal.may_see_merchant(merchant_id):
        raise DomainError("not_found", f"no merchant {merchant_id}")
    account = payable_account(merchant_id)
    bounds = (merchant_id, account, currency, period.start, period.end)
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        merchant = await conn.fetchrow(queries.statement_merchant, merchant_id)
        if merchant is None:
            raise DomainError("not_found", f"no merchant {merchant_id}")
        balances = await conn.fetchrow(queries.statement_balances, *bounds)
        moved = await conn.fetch(queries.statement_movements, *bounds)
        days = [
            dict(row)
            for row in await conn.fetch(
                queries.statement_days, merchant_id, currency, period.start, period.end, timezone
            )
        ]
        batches = await _batches(conn, merchant_id, period)
        generated_at = await conn.fetchval("SELECT now()")
    statement = {
        "merchant": {"id": merchant["id"], "name": merchant["name"]},
        "period": period.name,
        "currency": currency,
        "timezone": timezone,
        "from": period.start.isoformat(),
        "to": period.end.isoformat(),
        "complete": period.end <= generated_at,
        "generated_at": generated_at.isoformat(),
        "accounts": {"payable": account, "in_transit": "payouts:in_transit"},
        "opening": _owed(balances["opening_payable_minor"], balances["opening_in_transit_minor"]),
        "movements": _movements(moved),
        "closing": _owed(balances["closing_payable_minor"], balances["closing_in_transit_minor"]),
        "days": days,
        "days_total": {key: sum(day[key] for day in days) for key in DAY_FIGURES},
        "batches": batches,
    }
    check_statement(statement)
    return statement


def _owed(payable_postings: int, in_transit_postings: int) -> dict[str, int]:
    """Balances as owed to the merchant: the union's credit to it is a negative posting."""
    payable, in_transit = -payable_postings, -in_transit_postings
    return {"payable_minor": payable, "in_transit_minor": in_transit, "total_minor": payable + in_transit}


def _movements(rows: list[Any]) -> list[dict[str, Any]]:
    """Every known kind in order (zero when absent), then any other kind the ledger holds, so nothing is dropped."""
    found = {row["kind"]: row for row in rows}
    kinds = [*MOVEMENT_KINDS, *sorted(set(found) - set(MOVEMENT_KINDS))]
    movements = []
    for kind in kinds:
        row = found.get(kind)
        figures = _owed(row["payable_minor"], row["in_transit_minor"]) if row else _owed(0, 0)
        movements.append({
            "kind": kind, "transactions": row["transactions"] if row else 0, **figures,
            "batch_ids": list(row["batch_ids"]) if row else [],
        })  # fmt: skip
    return movements


def check_statement(statement: dict[str, Any]) -> None:
    """Opening + movements = closing on each account, and the sales and refunds add up to their ledger movements.

    Raises StatementDoesNotReconcile naming what disagrees.
    """
    by_kind = {movement["kind"]: movement for movement in statement["movements"]}
    problems = []
    for figure in FIGURES:
        moved = sum(movement[figure] for movement in statement["movements"])
        if statement["opening"][figure] + moved != statement["closing"][figure]:
            problems.append(f"{figure}: opening {statement['opening'][figure]} + movements {moved}"
                            f" != closing {statement['closing'][figure]}")  # fmt: skip
    total = statement["days_total"]
    expected = {
        "sales' union share": (total["union_funded_minor"], by_kind["sale"]["payable_minor"]),
        "refunds' union share": (
            total["refund_union_funded_minor"],
            -(by_kind["refund"]["payable_minor"] + by_kind["clawback"]["payable_minor"]),
        ),
        "clawbacks": (total["clawback_union_funded_minor"], -by_kind["clawback"]["payable_minor"]),
    }
    for name, (from_sales, from_ledger) in expected.items():
        if from_sales != from_ledger:
            problems.append(f"{name}: {from_sales} from the sales, {from_ledger} in the ledger")
    if problems:
        merchant, period = statement["merchant"]["id"], statement["period"]
        raise StatementDoesNotReconcile(f"statement of merchant {merchant} for {period}: {'; '.join(problems)}")


async def _batches(conn: asyncpg.Connection, merchant_id: int, period: Period) -> list[dict[str, Any]]:
    """Batches of the claim period or paid, failed or canceled during it, each with its instructions now."""
    rows = await conn.fetch(queries.statement_batches, merchant_id, period.start, period.end, period.month)
    batches = [{**iso_values(dict(row)), "instructions": []} for row in rows]
    by_id = {batch["id"]: batch for batch in batches}
    for row in await conn.fetch(queries.statement_instructions, list(by_id)):
        by_id[row["batch_id"]]["instructions"].append(iso_values(dict(row)))
    return batches


# ------------------------------------------------------------------ CSV


def local_time(value: str | None, timezone: str) -> str:
    """An ISO time from the statement as local 'YYYY-MM-DD HH:MM:SS', or '' for none."""
    if not value:
        return ""
    return datetime.fromisoformat(value).astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M:%S")


def statement_csv(statement: dict[str, Any], lang: str) -> bytes:
    """The statement as CSV for spreadsheets (UTF-8 with BOM, amounts in yuan): a head, the balances and
    movements, the sales per booking day, then the batches with their payout instructions.
    """
    t = i18n.translator(lang)
    zone = statement["timezone"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([t(key) for key in statement_text.CSV_HEAD])
    writer.writerow([
        statement["merchant"]["id"], statement["merchant"]["name"], statement["period"], statement["currency"],
        local_time(statement["from"], zone), local_time(statement["to"], zone),
        local_time(statement["generated_at"], zone),
    ])  # fmt: skip
    writer.writerow([])
    writer.writerow([t(key) for key in statement_text.CSV_SUMMARY])
    writer.writerow([t("statement_opening"), "", *_yuan(statement["opening"], FIGURES), ""])
    for movement in statement["movements"]:
        writer.writerow([statement_text.kind_label(lang, movement["kind"]), movement["transactions"],
                         *_yuan(movement, FIGURES), " ".join(str(n) for n in movement["batch_ids"])])  # fmt: skip
    writer.writerow([t("statement_closing"), "", *_yuan(statement["closing"], FIGURES), ""])
    writer.writerow([])
    writer.writerow([t(key) for key in statement_text.CSV_DAYS])
    for day in [*statement["days"], {**statement["days_total"], "day": t("statement_days_total")}]:
        writer.writerow([day["day"], *(format_yuan(day[key]) if key.endswith("_minor") else day[key]
                                       for key in DAY_FIGURES)])  # fmt: skip
    writer.writerow([])
    writer.writerow([t(key) for key in statement_text.CSV_BATCHES])
    for batch in statement["batches"]:
        head = [batch["id"], batch["period"], statement_text.status_label(lang, "batch", batch["status"]),
                *_yuan(batch, ("gross_minor", "clawback_minor", "payable_minor")),
                local_time(batch["approved_at"], zone)]  # fmt: skip
        for instruction in batch["instructions"] or [None]:
            tail = ["", "", ""] if instruction is None else [
                instruction["id"], statement_text.status_label(lang, "instruction", instruction["status"]),
                format_yuan(instruction["amount_minor"]),
            ]  # fmt: skip
            writer.writerow([*head, *tail])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def _yuan(figures: dict[str, Any], keys: tuple[str, ...]) -> list[str]:
    return [format_yuan(figures[key]) for key in keys]
