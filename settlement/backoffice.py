"""The merchant back office's overview, claims and statements: upload a claim file, read its reconciliation."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any

import asyncpg
from litestar import Controller, Response, get, post
from litestar.datastructures import State, UploadFile
from litestar.params import Parameter
from litestar.response import Redirect, Template

from merchants.backoffice import MERCHANT_ADMIN, SalesFilter, merchant_of, office_error, office_page, sales_totals
from settlement import rules, service
from settlement.model import CLASSES
from unioncard import clock, i18n
from unioncard.auth import Principal
from unioncard.db import Queries
from unioncard.errors import DomainError
from unioncard.pages import AnyRequest, field, lang_of, local_time, whole_number

queries = Queries(Path(__file__).parent / "backoffice_queries.sql")
LATEST = 5
CLAIMS_PAGE_SIZE = 20
LINES_PAGE_SIZE = 50
UNCLAIMED = "unclaimed"

i18n.extend(
    {
        "backoffice_this_month": ("本月（{month}）", "This month ({month})"),
        "backoffice_union_to_claim": ("可申报的工会补贴", "Union share to claim"),
        "backoffice_latest_claims": ("最近的申报", "Latest claims"),
        "backoffice_latest_batches": ("最近的结算与付款", "Latest settlements and payouts"),
        "backoffice_all_claims": ("全部申报", "All claims"),
        "backoffice_no_claims": ("还没有申报。", "No claims yet."),
        "backoffice_no_batches": ("还没有结算批次。", "No settlement batches yet."),
        "backoffice_claim": ("申报", "Claim"),
        "backoffice_period": ("申报月份", "Month"),
        "backoffice_lines": ("行数", "Lines"),
        "backoffice_submitted": ("提交时间", "Submitted"),
        "backoffice_matched_lines": ("已匹配", "Matched"),
        "backoffice_problem_lines": ("有问题", "With problems"),
        "backoffice_unclaimed_sales": ("未申报交易", "Unclaimed sales"),
        "backoffice_payable": ("应付金额", "Payable"),
        "backoffice_batch": ("结算批次", "Batch"),
        "backoffice_payout": ("付款", "Payout"),
        "backoffice_claim_received": ("已接收", "Received"),
        "backoffice_claim_reconciled": ("已对账", "Reconciled"),
        "backoffice_batch_draft": ("待审批", "Awaiting approval"),
        "backoffice_batch_approved": ("已审批", "Approved"),
        "backoffice_payout_approved": ("待付款", "To be paid"),
        "backoffice_payout_submitting": ("付款中", "Being paid"),
        "backoffice_payout_transferred": ("已转账", "Transferred"),
        "backoffice_payout_paid": ("已到账", "Paid"),
        "backoffice_payout_failed": ("付款失败", "Failed"),
        "backoffice_payout_retried": ("已重新付款", "Retried"),
        "backoffice_payout_canceled": ("已取消", "Canceled"),
        "backoffice_upload_title": ("上传申报文件", "Upload a claim file"),
        "backoffice_upload_help": (
            "从收银系统导出的 CSV（UTF-8 或 GBK，中文或英文表头）：核销编号或小票号、交易时间、消费金额、工会补贴金额。"
            "上传后立即对账。",
            "A CSV exported from your till system (UTF-8 or GBK, Chinese or English headers): sale ID or receipt no., "
            "time, amount, union share. It is reconciled as soon as it is uploaded.",
        ),
        "backoffice_file": ("申报文件（CSV）", "Claim file (CSV)"),
        "backoffice_upload": ("上传并对账", "Upload and reconcile"),
        "backoffice_file_missing": ("请选择要上传的 CSV 文件。", "Choose the CSV file to upload."),
        "backoffice_period_invalid": ("申报月份应为 YYYY-MM。", "The month is YYYY-MM."),
        "backoffice_rejected": (
            "文件未被接受，没有保存任何内容。请修改以下 {count} 处问题后重新上传：",
            "The file was not accepted and nothing was stored. Fix these {count} problem(s) and upload it again:",
        ),
        "backoffice_line_no": ("行号", "Line"),
        "backoffice_column": ("列", "Column"),
        "backoffice_problem": ("问题", "Problem"),
        "backoffice_uploaded": ("申报已保存并完成对账", "Claim stored and reconciled"),
        "backoffice_results_csv": ("下载对账结果 CSV", "Download the results as CSV"),
        "backoffice_class": ("类别", "Class"),
        "backoffice_claimed_amount": ("申报消费金额", "Claimed amount"),
        "backoffice_claimed_union": ("申报工会补贴", "Claimed union share"),
        "backoffice_recorded": ("系统记录（金额 / 补贴）", "Recorded (amount / union share)"),
        "backoffice_reference": ("核销编号 / 小票号", "Sale ID / receipt no."),
        "backoffice_lines_of": ("{name}：明细", "{name}: lines"),
        "backoffice_no_lines": ("这一类没有记录。", "Nothing in this class."),
        "backoffice_class_matched": ("已匹配", "Matched"),
        "backoffice_class_amount_mismatch": ("金额不符", "Amount mismatch"),
        "backoffice_class_not_found": ("找不到交易", "Not found"),
        "backoffice_class_duplicate_line": ("重复行", "Duplicate line"),
        "backoffice_class_already_claimed": ("已申报过", "Already claimed"),
        "backoffice_class_reversed": ("已全额退款", "Refunded"),
        "backoffice_class_out_of_period": ("不在申报月份", "Outside the month"),
        "backoffice_class_unclaimed": ("未申报的交易", "Unclaimed sales"),
        "backoffice_explain_matched": (
            "与收银记录一致，将计入结算。",
            "Agrees with the sale the till recorded; it will be settled.",
        ),
        "backoffice_explain_amount_mismatch": (
            "找到了这笔交易，但消费金额或工会补贴金额（扣除退款后）与系统记录不一致。",
            "The sale was found, but its amount or union share (after refunds) differs from what the till recorded.",
        ),
        "backoffice_explain_not_found": (
            "按核销编号或小票号找不到本店的这笔交易。",
            "No sale of your shop has this sale ID or receipt number.",
        ),
        "backoffice_explain_duplicate_line": (
            "文件中前面已有一行申报了同一笔交易，只计第一行。",
            "An earlier line of the file claims the same sale; only the first line counts.",
        ),
        "backoffice_explain_already_claimed": (
            "这笔交易已在之前的申报中匹配，不能重复申报。",
            "An earlier claim already matched this sale.",
        ),
        "backoffice_explain_reversed": (
            "这笔交易已全部退款，没有可申报的补贴。",
            "The sale was refunded in full; there is nothing to claim.",
        ),
        "backoffice_explain_out_of_period": (
            "交易不在本次申报的月份内，请随对应月份申报。",
            "The sale is not in this claim's month; claim it with its own month.",
        ),
        "backoffice_explain_unclaimed": (
            "本月有这些交易，但文件中没有任何一行申报了它们。",
            "Sales of the month that no line of the file names.",
        ),
        "backoffice_statements_help": (
            "每月一份对账单：当月交易、申报、结算与付款。",
            "One statement a month: its sales, claim, settlement and payout.",
        ),
        "backoffice_statement": ("对账单", "Statement"),
        "backoffice_open_statement": ("查看 / 打印", "View / print"),
        "backoffice_month_sales": ("当月交易", "Sales of the month"),
        "backoffice_no_months": ("还没有交易。", "No sales yet."),
        "backoffice_links": ("常用", "Shortcuts"),
    }
)


# A rejected file's problems as the parser words them (English), and how a Chinese page says each one.
PROBLEM_TEXT_ZH: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), text)
    for pattern, text in (
        (r"not an amount in yuan: (.*)", "不是有效的金额（元）：{0}"),
        (r"an amount is required", "缺少金额"),
        (r"a time is required", "缺少交易时间"),
        (r"not a time \(YYYY-MM-DD HH:MM:SS or ISO 8601\): (.*)", "不是有效的时间（应为 YYYY-MM-DD HH:MM:SS）：{0}"),
        (r"not a redemption id \(a UUID\): (.*)", "不是有效的核销编号：{0}"),
        (r"a receipt number has at most (\d+) characters", "小票号最多 {0} 个字符"),
        (r"redemption_id or receipt_ref is required", "核销编号和小票号至少要填一个"),
        (r"the sale amount must be positive", "消费金额必须大于零"),
        (r"no sale exceeds (.*) yuan", "单笔消费不能超过 {0} 元"),
        (r"the union share cannot be negative", "工会补贴金额不能为负数"),
        (r"the union share exceeds the sale amount", "工会补贴金额超过了消费金额"),
        (r"(\d+) values for (\d+) columns", "有 {0} 个值，但表头只有 {1} 列"),
        (r"not valid CSV: (.*)", "不是有效的 CSV 文件：{0}"),
        (r"the file has a header but no rows", "文件只有表头，没有数据行"),
        (r"the file is empty: line 1 must be the header", "文件是空的：第 1 行应为表头"),
        (r"the file is neither UTF-8 nor GBK text", "文件不是 UTF-8 或 GBK 编码的文本"),
        (r"unknown column", "无法识别的列名"),
        (r"the column (.*) appears twice", "列 {0} 出现了两次"),
        (r"required column missing", "缺少这一必需列"),
        (r"one of these columns is required", "这几列至少要有一列"),
        (r"a period is a month, YYYY-MM: (.*)", "申报月份应为 YYYY-MM：{0}"),
    )
)


def problem_text(message: str, lang: str) -> str:
    """A rejected line's problem in the page's language; a problem the table does not know stays as worded."""
    if lang == "en":
        return message
    for pattern, text in PROBLEM_TEXT_ZH:
        found = pattern.fullmatch(message)
        if found:
            return text.format(*found.groups())
    return message


def month_bounds(today: date) -> tuple[date, date]:
    """The first and the last day of the month of `today`."""
    first = today.replace(day=1)
    return first, rules.add_months(first, 1) - timedelta(days=1)


def upload_problem(data: bytes, period: str) -> str | None:
    """The i18n key of what keeps an upload from the service: no file, or a month that is not YYYY-MM."""
    if not data.strip():
        return "backoffice_file_missing"
    try:
        rules.parse_period(period)
    except ValueError:
        return "backoffice_period_invalid"
    return None


def column_label(column: str | None, lang: str) -> str | None:
    """A rejected line's column as the file would head it: the Chinese header on a Chinese page."""
    if lang == "en" or column not in rules.COLUMNS:
        return column
    return rules.COLUMNS[column][0]


def claim_rows(records: list[Any], timezone: str) -> list[dict[str, Any]]:
    """Claims for a list: lines matched, lines with a problem, unclaimed sales, local submission time."""
    rows = []
    for record in records:
        counts = json.loads(record["counts"]) if record["counts"] else {}
        matched = counts.get("matched", {}).get("lines", 0)
        problems = sum(value["lines"] for name, value in counts.items() if name != "matched")
        rows.append({**dict(record), "matched": matched, "problems": problems,
                     "time": local_time(record["created_at"], timezone, "%Y-%m-%d %H:%M")})  # fmt: skip
    return rows


async def claims_context(
    conn: asyncpg.Connection, merchant_id: int, timezone: str, before: int | None
) -> dict[str, Any]:
    """The claims list a page at a time, newest first, and the upload form's default month (last month)."""
    records = await conn.fetch(queries.claims_of, merchant_id, before or 2**62, CLAIMS_PAGE_SIZE + 1)
    claims = claim_rows(records[:CLAIMS_PAGE_SIZE], timezone)
    last_month = f"{rules.add_months(clock.local_today(timezone), -1):%Y-%m}"
    more = len(records) > CLAIMS_PAGE_SIZE
    return {"claims": claims, "next_before": claims[-1]["id"] if more else None, "period": last_month}


async def add_recorded(conn: asyncpg.Connection, merchant_id: int, rows: list[dict[str, Any]]) -> None:
    """Set each claim line's `recorded`: what the till recorded for the sale it names, or None."""
    named = [row["resolved_redemption_id"] for row in rows if row["resolved_redemption_id"]]
    found = await conn.fetch(queries.recorded_sales, merchant_id, named) if named else []
    recorded = {row["id"]: dict(row) for row in found}
    for row in rows:
        row["recorded"] = recorded.get(row["resolved_redemption_id"])


async def class_lines(
    conn: asyncpg.Connection, principal: Principal, claim_id: int, line_class: str, after: str, timezone: str
) -> dict[str, Any]:
    """A page of one class's lines (or of the unclaimed sales), with what the till recorded for each sale named."""
    if line_class == UNCLAIMED:
        found = await service.list_unclaimed(conn, principal, claim_id, after=after or None, limit=LINES_PAGE_SIZE)
        rows, after_next = found["sales"], found["next_after"]
    else:
        start = whole_number(after) or 0
        found = await service.list_lines(
            conn, principal, claim_id, line_class=line_class, after_line=start, limit=LINES_PAGE_SIZE
        )
        rows, after_next = found["lines"], found["next_after_line"]
        await add_recorded(conn, merchant_of(principal), rows)
    for row in rows:
        row["time"] = local_time(row["occurred_at"], timezone, "%Y-%m-%d %H:%M")
    return {"rows": rows, "next_after": after_next}


class MerchantOfficePages(Controller):
    path = "/merchant"
    include_in_schema = False
    guards = [MERCHANT_ADMIN]
    exception_handlers = {DomainError: office_error}

    @get("/")
    async def overview(self, request: AnyRequest, principal: Principal, state: State) -> Template:
        """This month's sales in figures, the latest claims and the latest batches with their payouts."""
        timezone, merchant_id = state.settings.timezone, merchant_of(principal)
        first, last = month_bounds(clock.local_today(timezone))
        async with state.pool.acquire() as conn:
            totals = await sales_totals(conn, merchant_id, SalesFilter(from_day=first, to_day=last), timezone)
            claims = claim_rows(await conn.fetch(queries.claims_of, merchant_id, 2**62, LATEST), timezone)
            batches = [dict(row) for row in await conn.fetch(queries.batches_of, merchant_id, LATEST)]
        context: dict[str, Any] = {
            "totals": totals, "claims": claims, "batches": batches, "month": first.strftime("%Y-%m"),
            "month_query": f"from={first.isoformat()}&to={last.isoformat()}",
        }  # fmt: skip
        return await office_page(request, state, principal, "backoffice/overview.html", "overview", **context)

    @get("/claims")
    async def claims(
        self, request: AnyRequest, principal: Principal, state: State, before: int | None = None
    ) -> Template:
        """The merchant's claims and the upload form."""
        async with state.pool.acquire() as conn:
            context = await claims_context(conn, merchant_of(principal), state.settings.timezone, before)
        return await office_page(request, state, principal, "backoffice/claims.html", "claims", **context)

    @post("/claims")
    async def upload(self, request: AnyRequest, principal: Principal, state: State) -> Response[Any]:
        """Store the file as a claim and reconcile it, then show its results; a rejected file stores nothing."""
        form = await request.form()
        upload, period, lang = form.get("file"), field(form, "period"), lang_of(request)
        data = await upload.read() if isinstance(upload, UploadFile) else b""
        problem = upload_problem(data, period)
        rejected: list[dict[str, Any]] = []
        async with state.pool.acquire() as conn:
            if problem is None:
                try:
                    claim = await service.import_claim_file(
                        conn, data, merchant_id=merchant_of(principal), period=period, timezone=state.settings.timezone
                    )
                except DomainError as error:
                    if error.code != "import_rejected":
                        raise
                    rejected = [
                        {
                            **line,
                            "column": column_label(line["column"], lang),
                            "message": problem_text(str(line["message"]), lang),
                        }
                        for line in error.extra["errors"]
                    ]
                else:
                    return Redirect(f"/merchant/claims/{claim['id']}?done=uploaded", status_code=303)
            context = await claims_context(conn, merchant_of(principal), state.settings.timezone, None)
        context.update(period=period or context["period"], rejected=rejected,
                       problem=i18n.t(lang, problem) if problem else None)  # fmt: skip
        return await office_page(request, state, principal, "backoffice/claims.html", "claims", status=422, **context)

    @get("/claims/{claim_id:int}")
    async def claim(
        self,
        request: AnyRequest,
        principal: Principal,
        state: State,
        claim_id: int,
        line_class: Annotated[str | None, Parameter(query="class")] = None,
        after: str = "",
        done: str = "",
    ) -> Template:
        """The claim's counts and amounts per class, and the lines of the class asked for; another's is not found."""
        timezone = state.settings.timezone
        async with state.pool.acquire() as conn:
            summary = await service.get_claim(conn, principal, claim_id)
            shown = line_class if line_class in (*CLASSES, UNCLAIMED) else None
            lines = await class_lines(conn, principal, claim_id, shown, after, timezone) if shown else None
        summary["time"] = local_time(summary["created_at"], timezone, "%Y-%m-%d %H:%M")
        context: dict[str, Any] = {"claim": summary, "classes": CLASSES, "shown": shown, "lines": lines, "done": done}
        return await office_page(request, state, principal, "backoffice/claim.html", "claims", **context)

    @get("/claims/{claim_id:int}/results.csv")
    async def results_csv(self, principal: Principal, state: State, claim_id: int) -> Response[bytes]:
        """Every line of the claim with its class, as the settlement API exports it."""
        async with state.pool.acquire() as conn:
            body = await service.export_results(conn, principal, claim_id)
        headers = {"Content-Disposition": f'attachment; filename="claim-{claim_id}-results.csv"',
                   "Cache-Control": "no-store"}  # fmt: skip
        return Response(body, media_type="text/csv; charset=utf-8", headers=headers)

    @get("/statements")
    async def statements(self, request: AnyRequest, principal: Principal, state: State) -> Template:
        """Every month since the first sale, each linking to its printable statement."""
        merchant_id = merchant_of(principal)
        months = [dict(row) for row in await state.pool.fetch(queries.statement_months, merchant_id)]
        for month in months:
            first, last = month_bounds(date.fromisoformat(month["period"] + "-01"))
            month["sales_query"] = f"from={first.isoformat()}&to={last.isoformat()}"
        context: dict[str, Any] = {"months": months, "merchant_id": merchant_id}
        return await office_page(request, state, principal, "backoffice/statements.html", "statements", **context)


def office_pages() -> list[Any]:
    return [MerchantOfficePages]
