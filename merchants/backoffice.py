"""The merchant back office: its frame, and a merchant admin's sales, filtered, paged, totalled and exported."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from uuid import UUID
from zoneinfo import ZoneInfo

import asyncpg
import msgspec
from litestar import Controller, Response, get
from litestar.datastructures import State
from litestar.response import Redirect, Template

from merchants.repository import queries as merchant_queries
from unioncard import i18n
from unioncard.auth import Principal, Role, requires
from unioncard.db import Queries
from unioncard.errors import DomainError
from unioncard.money import format_yuan
from unioncard.pages import AnyRequest, alert, lang_of, local_time, page, whole_number

queries = Queries(Path(__file__).parent / "backoffice_queries.sql")
MERCHANT_ADMIN = requires(Role.MERCHANT_ADMIN)
SALES_PAGE_SIZE = 50
CSV_BATCH = 5000
STATUSES = ("recorded", "partially_refunded", "refunded")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

i18n.extend(
    {
        "backoffice_title": ("商户后台", "Merchant back office"),
        "backoffice_tab_overview": ("概览", "Overview"),
        "backoffice_tab_sales": ("交易明细", "Sales"),
        "backoffice_tab_claims": ("补贴申报", "Claims"),
        "backoffice_tab_statements": ("对账单", "Statements"),
        "backoffice_forbidden": (
            "商户后台仅供商户管理员使用。",
            "The merchant back office is for merchant admins only.",
        ),
        "backoffice_not_found": ("找不到该记录，或它不属于本商户。", "Not found, or not your shop's."),
        "backoffice_back_office": ("返回商户后台", "Back to the back office"),
        "backoffice_back_staff": ("返回工作台", "Back to staff home"),
        "backoffice_filters": ("筛选", "Filter"),
        "backoffice_from": ("开始日期", "From"),
        "backoffice_to": ("结束日期", "To"),
        "backoffice_terminal": ("终端", "Terminal"),
        "backoffice_all": ("全部", "All"),
        "backoffice_card_last4": ("卡号后四位", "Card, last 4 digits"),
        "backoffice_receipt_ref": ("小票号", "Receipt no."),
        "backoffice_search": ("查询", "Search"),
        "backoffice_reset": ("清除筛选", "Clear"),
        "backoffice_download_csv": ("下载 CSV", "Download CSV"),
        "backoffice_sales_count": ("交易笔数", "Sales"),
        "backoffice_gross": ("消费金额", "Gross"),
        "backoffice_union_share": ("工会补贴", "Union share"),
        "backoffice_refunded": ("已退款", "Refunded"),
        "backoffice_union_net": ("工会补贴净额", "Union share, net"),
        "backoffice_next_page": ("下一页", "Next page"),
        "backoffice_first_page": ("回到第一页", "First page"),
        "backoffice_no_match": ("没有符合条件的交易。", "No sales match these filters."),
        "backoffice_totals_of_filter": ("筛选结果合计", "Totals of the filtered sales"),
        "backoffice_bad_date": ("日期格式应为 YYYY-MM-DD。", "A date is YYYY-MM-DD."),
        "backoffice_bad_range": ("开始日期不能晚于结束日期。", "The start date is after the end date."),
        "backoffice_bad_last4": ("卡号后四位应为 4 位数字。", "The card's last 4 digits are 4 digits."),
        "backoffice_bad_terminal": ("没有这个终端。", "No such terminal."),
        "backoffice_bad_status": ("没有这种状态。", "No such status."),
        "backoffice_bad_cursor": (
            "翻页链接已失效，已回到第一页。",
            "The page link is not valid; back to the first page.",
        ),
        "backoffice_sale_back": ("返回交易明细", "Back to sales"),
        "backoffice_merchant_funded": ("商户让利", "Shop's share"),
        "backoffice_refund_time": ("退款时间", "Refunded at"),
        "backoffice_no_refunds": ("没有退款。", "No refunds."),
    }
)

CSV_COLUMNS = ("time", "redemption_id", "backoffice_terminal", "backoffice_receipt_ref", "backoffice_card_last4",
               "amount", "discount", "backoffice_union_share", "backoffice_merchant_funded", "backoffice_refunded",
               "backoffice_union_net", "status")  # fmt: skip


# ------------------------------------------------------------------ the frame of every back office page


def merchant_of(principal: Principal) -> int:
    """The merchant a merchant admin works for. Raises DomainError forbidden for a principal without one."""
    if principal.merchant_id is None:
        raise DomainError("forbidden", "the back office is a merchant's")
    return principal.merchant_id


def office_error(request: AnyRequest, error: DomainError) -> Response[Any]:
    """Not signed in: to /login. Another role: a friendly 403. Not found or not theirs: a friendly 404."""
    if error.code == "unauthorized":
        return Redirect("/login", status_code=303)
    lang = lang_of(request)
    principal: Principal | None = request.scope.get("unioncard.principal")  # type: ignore[call-overload]
    shown = alert(lang, error)
    if error.code == "forbidden":
        shown["text"] = i18n.t(lang, "backoffice_forbidden")
    elif error.status == 404:
        shown["text"] = i18n.t(lang, "backoffice_not_found")
    office = principal is not None and principal.role == Role.MERCHANT_ADMIN
    back, label = ("/merchant/", "backoffice_back_office") if office else ("/staff", "backoffice_back_staff")
    context = {"error": shown, "error_status": error.status, "back": back, "back_label": label, "principal": principal}
    return page(request, "backoffice/error.html", status=error.status, **context)


async def office_page(
    request: AnyRequest,
    state: State,
    principal: Principal,
    template: str,
    tab: str,
    *,
    status: int = 200,
    **context: Any,
) -> Template:
    """A back office page with the merchant's name and tabs."""
    merchant = await state.pool.fetchrow(merchant_queries.merchant_list, principal.merchant_id, None, 0, 1)
    return page(
        request, template, status=status, principal=principal, merchant_name=merchant["name"] if merchant else "",
        tab=tab, timezone=state.settings.timezone, **context,
    )  # fmt: skip


# ------------------------------------------------------------------ filters and the cursor


@dataclass(frozen=True)
class SalesFilter:
    """Which sales: local dates (both ends included), terminal, card's last 4 digits, receipt, status."""

    from_day: date | None = None
    to_day: date | None = None
    terminal_id: int | None = None
    card_last4: str | None = None
    receipt_ref: str | None = None
    status: str | None = None

    def arguments(self, timezone: str) -> tuple[Any, ...]:
        """$2..$7 of sales_page and sales_totals: the local days as instants, then the other filters."""
        zone = ZoneInfo(timezone)
        starts = datetime.combine(self.from_day, datetime.min.time(), zone) if self.from_day else None
        ends = datetime.combine(self.to_day + timedelta(days=1), datetime.min.time(), zone) if self.to_day else None
        return starts, ends, self.terminal_id, self.card_last4, self.receipt_ref, self.status

    def query(self) -> dict[str, str]:
        """The filter as query parameters, for links that keep it."""
        values = {
            "from": self.from_day.isoformat() if self.from_day else "",
            "to": self.to_day.isoformat() if self.to_day else "",
            "terminal": str(self.terminal_id or ""),
            "card": self.card_last4 or "",
            "receipt": self.receipt_ref or "",
            "status": self.status or "",
        }
        return {key: value for key, value in values.items() if value}


def parse_filter(params: Any, terminal_ids: set[int]) -> tuple[SalesFilter, list[str]]:
    """The filter typed into the form, and the i18n keys of what is wrong with it (those fields are dropped)."""
    errors: list[str] = []

    def text(name: str) -> str:
        return str(params.get(name) or "").strip()

    def day(name: str) -> date | None:
        try:
            return date.fromisoformat(text(name)) if text(name) else None
        except ValueError:
            errors.append("backoffice_bad_date")
            return None

    from_day, to_day = day("from"), day("to")
    if from_day and to_day and from_day > to_day:
        errors.append("backoffice_bad_range")
        from_day = to_day = None
    terminal = whole_number(text("terminal"))
    if (text("terminal") and terminal is None) or (terminal is not None and terminal not in terminal_ids):
        errors.append("backoffice_bad_terminal")
        terminal = None
    last4 = text("card") or None
    if last4 is not None and not (len(last4) == 4 and last4.isascii() and last4.isdigit()):
        errors.append("backoffice_bad_last4")
        last4 = None
    status = text("status") or None
    if status is not None and status not in STATUSES:
        errors.append("backoffice_bad_status")
        status = None
    found = SalesFilter(from_day, to_day, terminal, last4, text("receipt") or None, status)
    return found, errors


def encode_cursor(occurred_at: datetime, sale_id: str) -> str:
    """The position after a sale: its time in microseconds since the epoch, and its id."""
    return f"{(occurred_at - EPOCH) // timedelta(microseconds=1)}_{sale_id}"


def decode_cursor(text: str) -> tuple[datetime, str] | None:
    """(time, id) of a cursor; None for a cursor not made by encode_cursor."""
    micros, _, sale_id = text.partition("_")
    try:
        return EPOCH + timedelta(microseconds=int(micros)), str(UUID(sale_id))
    except (ValueError, OverflowError):
        return None


# ------------------------------------------------------------------ reading sales


async def sales_page(
    conn: asyncpg.Connection, merchant_id: int, filters: SalesFilter, timezone: str,
    after: tuple[datetime, str] | None, limit: int,
) -> list[dict[str, Any]]:  # fmt: skip
    """Up to `limit` of the merchant's sales under the filter, newest first, after the cursor."""
    cursor = after or (None, None)
    async with conn.transaction():
        await conn.execute(queries.custom_plans)
        rows = await conn.fetch(queries.sales_page, merchant_id, *filters.arguments(timezone), *cursor, limit)
    return [dict(row) for row in rows]


async def sales_totals(
    conn: asyncpg.Connection, merchant_id: int, filters: SalesFilter, timezone: str
) -> dict[str, Any]:
    """Count, gross, discount, union share, refunds and the union share net of refunds of the filtered sales."""
    async with conn.transaction():
        await conn.execute(queries.custom_plans)
        row = await conn.fetchrow(queries.sales_totals, merchant_id, *filters.arguments(timezone))
    return dict(row)


async def sales_csv(
    conn: asyncpg.Connection, merchant_id: int, filters: SalesFilter, timezone: str, lang: str
) -> bytes:
    """Every filtered sale as CSV, UTF-8 with a BOM for spreadsheets; headers in `lang`; cards by last 4 only."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([i18n.t(lang, key) for key in CSV_COLUMNS])
    after = None
    while True:
        rows = await sales_page(conn, merchant_id, filters, timezone, after, CSV_BATCH)
        for row in rows:
            writer.writerow([
                local_time(row["occurred_at"], timezone), row["id"], row["terminal_name"], row["receipt_ref"],
                row["card"][-4:], format_yuan(row["amount_minor"]), format_yuan(row["discount_minor"]),
                format_yuan(row["union_funded_minor"]), format_yuan(row["merchant_funded_minor"]),
                format_yuan(row["refunded_minor"]), format_yuan(row["union_funded_net_minor"]),
                i18n.t(lang, f"status_{row['status']}"),
            ])  # fmt: skip
        if len(rows) < CSV_BATCH:
            return ("\ufeff" + out.getvalue()).encode("utf-8")
        after = (rows[-1]["occurred_at"], rows[-1]["id"])


async def sale_of(conn: asyncpg.Connection, merchant_id: int, sale_id: str, timezone: str) -> dict[str, Any]:
    """One of the merchant's sales with its refunds, times local. Raises DomainError not_found."""
    try:
        found = await conn.fetchval(queries.sale_get, UUID(sale_id), merchant_id)
    except ValueError:
        found = None
    if found is None:
        raise DomainError("not_found", f"no sale {sale_id}")
    sale: dict[str, Any] = msgspec.json.decode(found)
    sale["time"] = local_time(sale["occurred_at"], timezone)
    for refund in sale["refunds"]:
        refund["time"] = local_time(refund["created_at"], timezone)
    return sale


# ------------------------------------------------------------------ pages


class MerchantSalesPages(Controller):
    path = "/merchant/sales"
    include_in_schema = False
    guards = [MERCHANT_ADMIN]
    exception_handlers = {DomainError: office_error}

    @get("/")
    async def sales(self, request: AnyRequest, principal: Principal, state: State) -> Template:
        """The filtered sales, a page at a time, with the totals of all of them."""
        timezone, merchant_id = state.settings.timezone, merchant_of(principal)
        async with state.pool.acquire() as conn:
            terminals = [dict(row) for row in await conn.fetch(queries.terminals_of, merchant_id)]
            filters, errors = parse_filter(request.query_params, {row["id"] for row in terminals})
            cursor = request.query_params.get("after") or ""
            after = decode_cursor(cursor) if cursor else None
            if cursor and after is None:
                errors.append("backoffice_bad_cursor")
            rows = await sales_page(conn, merchant_id, filters, timezone, after, SALES_PAGE_SIZE + 1)
            totals = await sales_totals(conn, merchant_id, filters, timezone)
        more = len(rows) > SALES_PAGE_SIZE
        rows = rows[:SALES_PAGE_SIZE]
        for row in rows:
            row["day"], row["clock"] = local_time(row["occurred_at"], timezone, "%Y-%m-%d %H:%M").split()
        query = filters.query()
        next_href = None
        if more:
            next_href = "?" + urlencode({**query, "after": encode_cursor(rows[-1]["occurred_at"], rows[-1]["id"])})
        lang = lang_of(request)
        context: dict[str, Any] = {
            "form": {key: str(request.query_params.get(key) or "") for key in ("from", "to", "terminal", "card",
                                                                              "receipt", "status")},
            "errors": [i18n.t(lang, key) for key in dict.fromkeys(errors)],
            "terminals": terminals, "statuses": STATUSES, "sales": rows, "totals": totals,
            "next_href": next_href, "first_href": "?" + urlencode(query) if after else None,
            "csv_href": "/merchant/sales/export.csv" + ("?" + urlencode(query) if query else ""),
        }  # fmt: skip
        return await office_page(request, state, principal, "backoffice/sales.html", "sales", **context)

    @get("/export.csv")
    async def export(self, request: AnyRequest, principal: Principal, state: State) -> Response[bytes]:
        """The filtered sales as CSV; headers in Chinese unless the page is in English."""
        async with state.pool.acquire() as conn:
            terminals = {row["id"] for row in await conn.fetch(queries.terminals_of, merchant_of(principal))}
            filters, _ = parse_filter(request.query_params, terminals)
            body = await sales_csv(conn, merchant_of(principal), filters, state.settings.timezone, lang_of(request))
        headers = {"Content-Disposition": f'attachment; filename="sales-{principal.merchant_id}.csv"',
                   "Cache-Control": "no-store"}  # fmt: skip
        return Response(body, media_type="text/csv; charset=utf-8", headers=headers)

    @get("/{sale_id:str}")
    async def sale(self, request: AnyRequest, principal: Principal, state: State, sale_id: str) -> Template:
        """One sale and its refunds; another merchant's sale is not found."""
        async with state.pool.acquire() as conn:
            sale = await sale_of(conn, merchant_of(principal), sale_id, state.settings.timezone)
        return await office_page(request, state, principal, "backoffice/sale.html", "sales", sale=sale)


def sales_pages() -> list[Any]:
    return [MerchantSalesPages]
