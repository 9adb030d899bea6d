"""The federation's overview of the year: grants by kind, health checks against the quota, the loan fund,
and the service centres' use — inline SVG charts with their data tables, nothing loaded from the internet."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from litestar import Controller, get
from litestar.datastructures import State
from litestar.response import Template

from unioncard import charts, clock, i18n
from unioncard.auth import Principal, Role, requires
from unioncard.db import Queries
from unioncard.errors import DomainError
from unioncard.money import format_yuan_grouped as yuan
from unioncard.pages import AnyRequest, lang_of, page, page_error

queries = Queries(Path(__file__).parent / "federation_queries.sql")
Translate = Callable[..., str]

i18n.extend(
    {
        "fed_title": ("{year}年工会服务概览", "The union's year {year} at a glance"),
        "fed_nav": ("年度概览", "Year overview"),
        "fed_year": ("年度", "Year"),
        "fed_show": ("查看", "Show"),
        "fed_no_data": ("暂无数据", "No data yet"),
        "fed_data_table": ("数据表", "Data table"),
        "fed_grants": ("专项保障：按类别", "Special protection by kind"),
        "fed_grants_desc": (
            "{year}年批准的慰问救助，共{members}人、{total}元",
            "Grants approved in {year}: {members} members, {total} yuan",
        ),
        "fed_grants_members": ("受助会员", "Members helped"),
        "fed_grants_total": ("批准金额", "Approved"),
        "fed_grants_paid": ("已发放", "Paid"),
        "fed_benefit": ("项目", "Benefit"),
        "fed_applications": ("件数", "Applications"),
        "fed_members": ("人数", "Members"),
        "fed_by_month": ("专项保障：按月", "Grants by month"),
        "fed_by_month_desc": (
            "{year}年每月批准的金额（柱）与件数（线）",
            "Approved per month in {year} (columns) and applications (line)",
        ),
        "fed_month": ("月份", "Month"),
        "fed_health": ("免费体检：完成与名额", "Free health checks: done against the quota"),
        "fed_health_desc": (
            "{year}年已体检{attended}人，名额{places}个",
            "{attended} checks done in {year} of {places} places",
        ),
        "fed_health_done": ("已体检", "Done"),
        "fed_health_left": ("剩余名额", "Places left"),
        "fed_health_booked": ("已预约待检", "Booked, to come"),
        "fed_health_places": ("名额", "Places"),
        "fed_town": ("镇（街道）", "Town"),
        "fed_loans": ("创业贷款贴息基金", "The loan interest subsidy fund"),
        "fed_loans_desc": (
            "基金{total}元，已批准贴息{drawn}元",
            "A fund of {total} yuan; subsidies approved {drawn} yuan",
        ),
        "fed_loans_fund": ("基金总额", "Fund"),
        "fed_loans_drawn": ("已批准贴息", "Subsidies approved"),
        "fed_loans_left": ("基金余额", "Left in the fund"),
        "fed_loans_count": ("批准笔数", "Loans approved"),
        "fed_loans_principal": ("贷款本金合计", "Principal lent"),
        "fed_loans_waiting": ("待审核", "Waiting for review"),
        "fed_centres": ("职工服务中心：场地预约", "Service centres: room bookings"),
        "fed_centres_desc": ("{year}年各中心的场地预约次数", "Room bookings per centre in {year}"),
        "fed_centre": ("服务中心", "Centre"),
        "fed_bookings": ("预约次数", "Bookings"),
        "fed_hours": ("小时", "Hours"),
        "fed_waiting": ("待审核的申请", "Applications waiting for a decision"),
        "fed_waiting_none": ("没有待审核的申请。", "No application is waiting."),
        "fed_reviewing_org": ("审核单位", "Reviewed by"),
        "fed_oldest": ("最早提交", "Oldest"),
    }
)


async def overview(conn: asyncpg.Connection, t: Translate, lang: str, year: int, timezone: str) -> dict[str, Any]:
    """Every chart of the year, each {id, title, svg, totals, head, rows}; and the review queue."""
    start, end = date(year, 1, 1), date(year + 1, 1, 1)
    zone = ZoneInfo(timezone)
    grants = [dict(row) for row in await conn.fetch(queries.grants_by_benefit, start, end)]
    members = await conn.fetchval(queries.grant_members, start, end)
    months = [dict(row) for row in await conn.fetch(queries.grants_by_month, start, end)]
    towns = [dict(row) for row in await conn.fetch(queries.health_checks_by_town, year)]
    health = dict(await conn.fetchrow(queries.health_checks_total, year))
    fund = await conn.fetchrow(queries.loan_fund)
    bounds = (datetime.combine(start, time(), zone), datetime.combine(end, time(), zone))
    centres = [dict(row) for row in await conn.fetch(queries.centre_bookings, *bounds)]
    waiting = [dict(row) for row in await conn.fetch(queries.grants_waiting)]
    for row in waiting:
        row["oldest"] = row["oldest_at"].astimezone(zone).strftime("%Y-%m-%d")
    return {
        "charts": [
            _grants_chart(t, lang, grants, members, year),
            _months_chart(t, months, year),
            _health_chart(t, towns, health, year),
            _loans_chart(t, dict(fund) if fund else None),
            _centres_chart(t, lang, centres, year),
        ],
        "waiting": waiting,
    }


def _grants_chart(t: Translate, lang: str, rows: list[dict[str, Any]], members: int, year: int) -> dict[str, Any]:
    total = sum(row["approved_minor"] for row in rows)
    paid = sum(row["paid_minor"] for row in rows)
    title = t("fed_grants")
    name = "name_en" if lang == "en" else "name_zh"
    bars = [(f"{row[name]} · {row['applications']}", row["approved_minor"]) for row in rows]
    desc = t("fed_grants_desc", year=year, members=charts.grouped(members), total=yuan(total))
    svg = charts.horizontal_bars(bars, chart_id="chart-grants", title=title, desc=desc, value_text=yuan,
                                 empty_text=t("fed_no_data"))  # fmt: skip
    return {
        "id": "grants", "title": title, "svg": svg,
        "totals": [("members", t("fed_grants_members"), charts.grouped(members)),
                   ("approved", t("fed_grants_total"), "¥" + yuan(total)),
                   ("paid", t("fed_grants_paid"), "¥" + yuan(paid))],
        "head": [t("fed_benefit"), t("fed_applications"), t("fed_members"), t("fed_grants_total"),
                 t("fed_grants_paid")],
        "rows": [(row[name], charts.grouped(row["applications"]), charts.grouped(row["members"]),
                  yuan(row["approved_minor"]), yuan(row["paid_minor"])) for row in rows],
    }  # fmt: skip


def _months_chart(t: Translate, rows: list[dict[str, Any]], year: int) -> dict[str, Any]:
    title = t("fed_by_month")
    points = [(f"{row['month'].month}", row["approved_minor"], row["applications"]) for row in rows]
    svg = charts.columns(points, chart_id="chart-months", title=title, desc=t("fed_by_month_desc", year=year),
                         value_text=yuan, count_text=charts.grouped, value_word=t("fed_grants_total"),
                         count_word=t("fed_applications"), empty_text=t("fed_no_data"))  # fmt: skip
    return {
        "id": "months", "title": title, "svg": svg, "totals": [],
        "head": [t("fed_month"), t("fed_grants_total"), t("fed_applications")],
        "rows": [(row["month"].strftime("%Y-%m"), yuan(row["approved_minor"]), charts.grouped(row["applications"]))
                 for row in rows],
    }  # fmt: skip


def _health_chart(t: Translate, towns: list[dict[str, Any]], total: dict[str, Any], year: int) -> dict[str, Any]:
    title = t("fed_health")
    places, attended = int(total["places"]), int(total["attended"])
    desc = t("fed_health_desc", year=year, attended=charts.grouped(attended), places=charts.grouped(places))
    svg = charts.used_of_budget([(row["town_name"], row["attended"], row["places"]) for row in towns],
                                chart_id="chart-health", title=title, desc=desc, value_text=charts.grouped,
                                used_word=t("fed_health_done"), left_word=t("fed_health_left"),
                                empty_text=t("fed_no_data"))  # fmt: skip
    return {
        "id": "health", "title": title, "svg": svg,
        "totals": [("attended", t("fed_health_done"), charts.grouped(attended)),
                   ("places", t("fed_health_places"), charts.grouped(places)),
                   ("booked", t("fed_health_booked"), charts.grouped(int(total["booked"])))],
        "head": [t("fed_town"), t("fed_health_places"), t("fed_health_done"), t("fed_health_booked")],
        "rows": [(row["town_name"], charts.grouped(row["places"]), charts.grouped(row["attended"]),
                  charts.grouped(row["booked"])) for row in towns],
    }  # fmt: skip


def _loans_chart(t: Translate, fund: dict[str, Any] | None) -> dict[str, Any]:
    title = t("fed_loans")
    rows = [(t("fed_loans_fund"), fund["drawn_minor"], fund["total_minor"])] if fund else []
    total, drawn = (fund["total_minor"], fund["drawn_minor"]) if fund else (0, 0)
    svg = charts.used_of_budget(rows, chart_id="chart-loans", title=title, value_text=yuan,
                                desc=t("fed_loans_desc", total=yuan(total), drawn=yuan(drawn)),
                                used_word=t("fed_loans_drawn"), left_word=t("fed_loans_left"),
                                empty_text=t("fed_no_data"))  # fmt: skip
    facts = [] if fund is None else [
        (t("fed_loans_count"), charts.grouped(fund["approved"])),
        (t("fed_loans_principal"), yuan(fund["principal_minor"])),
        (t("fed_loans_waiting"), charts.grouped(fund["waiting"])),
    ]  # fmt: skip
    return {
        "id": "loans", "title": title, "svg": svg,
        "totals": [("drawn", t("fed_loans_drawn"), "¥" + yuan(drawn)),
                   ("left", t("fed_loans_left"), "¥" + yuan(total - drawn))],
        "head": [t("fed_benefit"), ""], "rows": facts,
    }  # fmt: skip


def _centres_chart(t: Translate, lang: str, rows: list[dict[str, Any]], year: int) -> dict[str, Any]:
    title = t("fed_centres")
    name = "name_en" if lang == "en" else "name_zh"
    svg = charts.horizontal_bars([(row[name], row["bookings"]) for row in rows], chart_id="chart-centres",
                                 title=title, desc=t("fed_centres_desc", year=year), value_text=charts.grouped,
                                 empty_text=t("fed_no_data"))  # fmt: skip
    return {
        "id": "centres", "title": title, "svg": svg,
        "totals": [("bookings", t("fed_bookings"), charts.grouped(sum(row["bookings"] for row in rows)))],
        "head": [t("fed_centre"), t("fed_bookings"), t("fed_hours")],
        "rows": [(row[name], charts.grouped(row["bookings"]), charts.grouped(row["hours"])) for row in rows],
    }  # fmt: skip


class FederationPages(Controller):
    path = "/federation"
    include_in_schema = False
    guards = [requires(Role.FEDERATION_ADMIN, Role.FINANCE_OFFICER)]
    exception_handlers = {DomainError: page_error("/login", "/federation/")}

    @get("/")
    async def home(self, request: AnyRequest, principal: Principal, state: State, year: int | None = None) -> Template:
        """The year at a glance (this year unless ?year=)."""
        settings = state.settings
        this_year = clock.now().astimezone(ZoneInfo(settings.timezone)).year
        shown = year if year is not None and 2000 <= year <= this_year + 1 else this_year
        lang = lang_of(request)
        async with state.pool.acquire() as conn:
            found = await overview(conn, i18n.translator(lang), lang, shown, settings.timezone)
        return page(request, "federation/overview.html", principal=principal, year=shown, this_year=this_year,
                    **found)  # fmt: skip
