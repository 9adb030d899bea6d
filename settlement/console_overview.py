"""The finance overview of a period: each chart with its SVG, its data table and its totals from SQL."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date
from pathlib import Path
from typing import Any

import asyncpg

from unioncard import charts
from unioncard.db import Queries
from unioncard.money import format_yuan_grouped as yuan

queries = Queries(Path(__file__).parent / "console_queries.sql")
Translate = Callable[..., str]
BUDGETS_SHOWN = 15


def category_name(t: Translate, slug: str) -> str:
    """A merchant category's name; the slug itself when it has none."""
    try:
        return t(f"console_category_{slug}")
    except KeyError:
        return slug


async def overview_charts(conn: asyncpg.Connection, t: Translate, month: date, currency: str) -> dict[str, Any]:
    """The four charts of the overview for `month`, each {id, title, svg, totals, head, rows, note}."""
    period = month.strftime("%Y-%m")
    merchants = await conn.fetch(queries.subsidy_by_merchant, month, currency)
    towns = summed((row["town_name"] or t("console_town_none"), row["union_funded_minor"]) for row in merchants)
    categories = summed((category_name(t, row["category"]), row["union_funded_minor"]) for row in merchants)
    budgets = [dict(row) for row in await conn.fetch(queries.budget_use, month, currency)]
    days = [dict(row) for row in await conn.fetch(queries.daily_sales, month, currency)]
    return {
        "charts": [
            subsidy_chart(t, "town", towns, period),
            subsidy_chart(t, "category", categories, period),
            budget_chart(t, budgets, period),
            daily_chart(t, days, period),
        ]
    }


def summed(pairs: Iterable[tuple[str, int]]) -> list[tuple[str, int]]:
    """Values added up by label, largest first (then by label)."""
    totals: dict[str, int] = {}
    for label, value in pairs:
        totals[label] = totals.get(label, 0) + value
    return sorted(totals.items(), key=lambda item: (-item[1], item[0]))


def subsidy_chart(t: Translate, kind: str, rows: list[tuple[str, int]], period: str) -> dict[str, Any]:
    """Union subsidy by town or by category as horizontal bars."""
    total = sum(value for _, value in rows)
    title = t(f"console_by_{kind}")
    desc = t(f"console_by_{kind}_desc", period=period, total=yuan(total))
    svg = charts.horizontal_bars(rows, chart_id=f"chart-{kind}", title=title, desc=desc, value_text=yuan,
                                 empty_text=t("console_no_data"), width=charts.NARROW)  # fmt: skip
    head = [t(f"console_{kind}"), t("console_union_share")]
    return {
        "id": kind, "title": title, "svg": svg, "note": t("console_net_note"),
        "totals": [("total", t("console_total"), "¥" + yuan(total))],
        "head": head, "rows": [(label, yuan(value)) for label, value in rows],
    }  # fmt: skip


def budget_chart(t: Translate, rows: list[dict[str, Any]], period: str) -> dict[str, Any]:
    """Each budgeted offer's monthly budget, used and left; the chart shows the most used, the totals cover all."""
    budget = sum(row["budget_minor"] for row in rows)
    used = sum(row["used_minor"] for row in rows)
    left = sum(max(row["budget_minor"] - row["used_minor"], 0) for row in rows)
    title = t("console_budget")
    desc = t("console_budget_desc", period=period, count=len(rows), budget=yuan(budget), used=yuan(used))
    shown = rows[:BUDGETS_SHOWN]
    svg = charts.used_of_budget(
        [(row["merchant_name"], row["used_minor"], row["budget_minor"]) for row in shown], chart_id="chart-budget",
        title=title, desc=desc, value_text=yuan, used_word=t("console_used"), left_word=t("console_left"),
        empty_text=t("console_no_data"),
    )  # fmt: skip
    note = t("console_budget_shown", shown=len(shown), count=len(rows)) if len(rows) > len(shown) else ""
    return {
        "id": "budget", "title": title, "svg": svg, "note": note,
        "totals": [("budget", t("console_budget_total"), "¥" + yuan(budget)),
                   ("used", t("console_used"), "¥" + yuan(used)), ("left", t("console_left"), "¥" + yuan(left))],
        "head": [t("console_merchant"), t("console_offer"), t("console_budget_total"), t("console_used"),
                 t("console_left")],
        "rows": [(row["merchant_name"], f"v{row['version']}", yuan(row["budget_minor"]),
                  yuan(row["used_minor"]), yuan(max(row["budget_minor"] - row["used_minor"], 0)))
                 for row in shown],
    }  # fmt: skip


def daily_chart(t: Translate, rows: list[dict[str, Any]], period: str) -> dict[str, Any]:
    """Union share per day as columns, and the number of sales per day as a line."""
    total = sum(row["union_funded_minor"] for row in rows)
    sales = sum(row["sales"] for row in rows)
    title = t("console_daily")
    desc = t("console_daily_desc", period=period, total=yuan(total), count=charts.grouped(sales))
    points = [(str(row["day"].day), row["union_funded_minor"], row["sales"]) for row in rows]
    svg = charts.columns(
        points if sales or total else [], chart_id="chart-daily", title=title, desc=desc, value_text=yuan,
        count_text=charts.grouped, value_word=t("console_union_share"), count_word=t("console_sales"),
        empty_text=t("console_no_data"),
    )  # fmt: skip
    return {
        "id": "daily", "title": title, "svg": svg, "note": t("console_net_note"),
        "totals": [("total", t("console_union_share"), "¥" + yuan(total)),
                   ("sales", t("console_sales"), charts.grouped(sales))],
        "head": [t("console_day"), t("console_union_share"), t("console_sales")],
        "rows": [(row["day"].isoformat(), yuan(row["union_funded_minor"]), charts.grouped(row["sales"]))
                 for row in rows],
    }  # fmt: skip
