"""The finance console: claims inbox, a claim's exceptions, a batch from approval to payout, and the overview."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import asyncpg
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State, UploadFile
from litestar.params import Parameter
from litestar.response import Redirect, Template

from settlement import batches, rules, service
from settlement.backoffice import add_recorded
from settlement.batch_api import app_rail, bank_file_response
from settlement.batches import BatchIn, ConfirmPaidIn, ExcludedLineIn
from settlement.console_overview import overview_charts
from settlement.console_text import MESSAGES
from settlement.model import CLASSES
from settlement.rails import BankFileRail
from settlement.rules import add_months
from unioncard import charts, clock, i18n
from unioncard.auth import Principal, Role, requires
from unioncard.db import Queries
from unioncard.errors import DomainError
from unioncard.pages import lang_of, local_time, page, whole_number

i18n.extend(MESSAGES)
queries = Queries(Path(__file__).parent / "console_queries.sql")

AnyRequest = Request[Any, Any, Any]
HOME = "/finance/"
PAGE_SIZE = 50
BATCH_LINES_SHOWN = 200
STAGES = ("received", "reconciled", "batched", "approved", "in_payment", "paid", "failed", "canceled")
LISTED_CLASSES = (*CLASSES, "unclaimed")
# Errors a page cannot show beside its form: they go to the controller's handler (sign-in, 403, 404).
NOT_FOR_THE_FORM = ("unauthorized", "forbidden", "not_found")
EXCLUSION_ROW = re.compile(r"\s*(\d+)\s*[:：,，、\s]?\s*(.*)")
SERVICE_MESSAGES = {
    "not a matched line of the claim": "console_not_matched",
    "excluded twice": "console_excluded_twice",
    "an exclusion needs a reason": "console_reason_missing",
}


# ------------------------------------------------------------------ helpers


def period_of(text: str | None, timezone: str, default: date | None = None) -> date:
    """The first day of a YYYY-MM period; none means `default`, else last month. Raises validation_failed."""
    if not text:
        return default or add_months(clock.local_today(timezone), -1)
    try:
        return rules.parse_period(text)
    except ValueError as exc:
        raise DomainError("validation_failed", "period is YYYY-MM", errors=[{"key": "console_period_invalid"}]) from exc


def shift(period: date, months: int) -> str:
    """The period `months` after (or before) this one, as YYYY-MM."""
    return f"{add_months(period, months):%Y-%m}"


def exclusions_of(text: str) -> list[ExcludedLineIn]:
    """Rows of "line-number reason" typed into the batch form. Raises DomainError validation_failed."""
    excluded, errors = [], []
    for row, typed in enumerate(text.splitlines(), start=1):
        if not typed.strip():
            continue
        match = EXCLUSION_ROW.fullmatch(typed)
        if match is None:
            errors.append({"key": "console_exclusion_format", "row": row})
            continue
        excluded.append(ExcludedLineIn(line_no=int(match[1]), reason=match[2].strip()))
    if errors:
        raise DomainError("validation_failed", "exclusions are rows of: line-number reason", errors=errors)
    return excluded


def console_alert(lang: str, error: DomainError) -> dict[str, Any]:
    """A failed step as the console shows it: a sentence, and one reason per listed problem."""
    t = i18n.translator(lang)
    reasons = []
    for problem in error.extra.get("errors", []):
        if "key" in problem:
            reasons.append(t(problem["key"], **{k: v for k, v in problem.items() if k != "key"}))
        elif "line_no" in problem:
            message = problem["message"]
            message = t(SERVICE_MESSAGES[message]) if message in SERVICE_MESSAGES else message
            reasons.append(t("console_exclusion_problem", line=problem["line_no"], message=message))
        elif "line" in problem:
            column = problem.get("column") or "—"
            reasons.append(t("console_file_problem", line=problem["line"], column=column, message=problem["message"]))
        else:
            reasons.append(str(problem.get("message", problem)))
    if not reasons and error.detail and error.code == "conflict":
        reasons.append(error.detail)
    text = t("console_file_rejected") if error.code == "import_rejected" else i18n.error_text(lang, error)
    return {"text": text, "reasons": reasons}


def on_error(request: AnyRequest, error: DomainError) -> Response[Any]:
    """Not signed in: to /login. Another role: a friendly 403. The rest: a friendly page with the problem."""
    if error.code == "unauthorized":
        return Redirect("/login", status_code=303)
    lang = lang_of(request)
    shown = console_alert(lang, error)
    if error.code == "forbidden":
        shown = {"text": i18n.t(lang, "console_forbidden"), "reasons": []}
    principal = request.scope.get("unioncard.principal")  # type: ignore[call-overload]
    return page(request, "error.html", status=error.status, error=shown, back="/staff", principal=principal)


def finance_page(request: AnyRequest, template: str, principal: Principal, **context: Any) -> Template:
    return page(request, template, principal=principal, count=charts.grouped, **context)


# ------------------------------------------------------------------ pages


async def inbox_page(
    request: AnyRequest,
    principal: Principal,
    state: State,
    period: date,
    stage: str | None,
    exceptions: bool,
    after: int,
) -> Template:
    """The claims of a period at a stage, with how many claims each stage holds."""
    async with state.pool.acquire() as conn:
        rows = await conn.fetch(queries.inbox, period, stage, exceptions, after, PAGE_SIZE)
        stages = {row["stage"]: dict(row) for row in await conn.fetch(queries.inbox_stages, period)}
    claims = [dict(row) for row in rows]
    return finance_page(
        request, "console/inbox.html", principal, here=HOME, claims=claims, stages=stages, stage_names=STAGES,
        stage=stage, exceptions=exceptions, period=period.strftime("%Y-%m"), previous=shift(period, -1),
        next=shift(period, 1), next_after=claims[-1]["id"] if len(claims) == PAGE_SIZE else None, after=after,
    )  # fmt: skip


async def listing(
    conn: asyncpg.Connection, principal: Principal, claim_id: int, line_class: str | None, after: str
) -> dict[str, Any] | None:
    """A page of the claim's lines of one class, or of the period's unclaimed sales; None for no class."""
    if line_class == "unclaimed":
        found = await service.list_unclaimed(conn, principal, claim_id, after=after or None, limit=PAGE_SIZE)
        return {"rows": found["sales"], "next_after": found["next_after"]}
    if line_class not in CLASSES:
        return None
    start = whole_number(after) or 0
    found = await service.list_lines(conn, principal, claim_id, line_class=line_class, after_line=start,
                                     limit=PAGE_SIZE)  # fmt: skip
    return {"rows": found["lines"], "next_after": found["next_after_line"]}


async def claim_page(
    request: AnyRequest,
    principal: Principal,
    state: State,
    claim_id: int,
    *,
    line_class: str | None = None,
    after: str = "",
    error: DomainError | None = None,
    **context: Any,
) -> Template:
    """A claim: per-class counts and amounts, the lines of a chosen class, and what finance can do next."""
    async with state.pool.acquire() as conn:
        claim = await service.get_claim(conn, principal, claim_id)
        about = await conn.fetchrow(queries.claim_context, claim_id)
        lines = await listing(conn, principal, claim_id, line_class, after)
        if lines is not None and line_class != "unclaimed":
            await add_recorded(conn, claim["merchant_id"], lines["rows"])
    timezone = state.settings.timezone
    for row in lines["rows"] if lines else []:
        row["time"] = local_time(row["occurred_at"], timezone)
    for key in ("created_at", "reconciled_at"):
        claim[key] = local_time(claim[key], timezone, "%Y-%m-%d %H:%M") if claim[key] else ""
    return finance_page(
        request, "console/claim.html", principal, here=f"/finance/claims/{claim_id}", claim=claim, about=about,
        classes=LISTED_CLASSES, line_class=line_class if lines is not None else None, lines=lines,
        error=console_alert(lang_of(request), error) if error else None,
        status=error.status if error else 200, **context,
    )  # fmt: skip


async def batch_page(
    request: AnyRequest, principal: Principal, state: State, batch_id: int, error: DomainError | None = None,
    **context: Any,
) -> Template:  # fmt: skip
    """A batch: totals, lines (excluded with reasons), approval, and its payout instructions with their actions."""
    async with state.pool.acquire() as conn:
        batch = await batches.get_batch(conn, principal, batch_id)
        about = await conn.fetchrow(queries.batch_context, batch_id)
    timezone = state.settings.timezone
    for item in batch["instructions"]:
        item["time"] = local_time(item["updated_at"], timezone, "%Y-%m-%d %H:%M")
    excluded = [line for line in batch["lines"] if line["excluded_reason"] is not None]
    included = [line for line in batch["lines"] if line["excluded_reason"] is None]
    rail = app_rail(state)
    return finance_page(
        request, "console/batch.html", principal, here=f"/finance/batches/{batch_id}", batch=batch, about=about,
        excluded=excluded, included=included[:BATCH_LINES_SHOWN], included_count=len(included), rail=rail.name,
        pays=not isinstance(rail, BankFileRail),
        live=any(item["status"] in batches.LIVE for item in batch["instructions"]),
        created=local_time(batch["created_at"], timezone, "%Y-%m-%d %H:%M"),
        approved=local_time(batch["approved_at"], timezone, "%Y-%m-%d %H:%M") if batch["approved_at"] else "",
        error=console_alert(lang_of(request), error) if error else None,
        status=error.status if error else 200, **context,
    )  # fmt: skip


# ------------------------------------------------------------------ routes


FinanceOnly = requires(Role.FINANCE_OFFICER, Role.FEDERATION_ADMIN)
ClassQuery = Annotated[str | None, Parameter(query="class")]


class FinancePages(Controller):
    path = "/finance"
    include_in_schema = False
    guards = [FinanceOnly]
    exception_handlers = {DomainError: on_error}

    @get("/")
    async def inbox(
        self, request: AnyRequest, principal: Principal, state: State, period: str | None = None,
        status: str | None = None, exceptions: str | None = None, after: Annotated[int, Parameter(ge=0)] = 0,
    ) -> Template:  # fmt: skip
        stage = status if status in STAGES else None
        # with no period asked for, the inbox opens on the latest month claimed
        latest = None if period else await state.pool.fetchval(queries.latest_claim_period)
        month = period_of(period, state.settings.timezone, latest)
        return await inbox_page(request, principal, state, month, stage, bool(exceptions), after)

    @get("/claims/{claim_id:int}")
    async def claim(
        self, request: AnyRequest, principal: Principal, state: State, claim_id: int, line_class: ClassQuery = None,
        after: str = "", done: str = "",
    ) -> Template:  # fmt: skip
        return await claim_page(request, principal, state, claim_id, line_class=line_class, after=after, done=done)

    @post("/claims/{claim_id:int}/reconcile")
    async def reconcile(self, principal: Principal, state: State, claim_id: int) -> Redirect:
        async with state.pool.acquire() as conn:
            await service.reconcile_claim(conn, principal, claim_id, None)
        return Redirect(f"/finance/claims/{claim_id}?done=reconciled", status_code=303)

    @post("/claims/{claim_id:int}/batch")
    async def create_batch(
        self, request: AnyRequest, principal: Principal, state: State, claim_id: int
    ) -> Response[Any]:
        """A draft batch of the claim's matched lines, minus those typed as excluded with their reasons."""
        typed = str((await request.form()).get("exclusions") or "")
        try:
            body = BatchIn(claim_id=claim_id, excluded_lines=exclusions_of(typed))
            async with state.pool.acquire() as conn:
                batch = await batches.create_batch(conn, principal, body)
        except DomainError as error:
            if error.code in NOT_FOR_THE_FORM:
                raise
            return await claim_page(request, principal, state, claim_id, error=error, exclusions=typed)
        return Redirect(f"/finance/batches/{batch['id']}?done=created", status_code=303)

    @get("/batches/{batch_id:int}")
    async def batch(
        self, request: AnyRequest, principal: Principal, state: State, batch_id: int, done: str = "",
        applied: int = 0, unchanged: int = 0, unknown: int = 0,
    ) -> Template:  # fmt: skip
        counts = {"applied": applied, "unchanged": unchanged, "unknown": unknown}
        return await batch_page(request, principal, state, batch_id, done=done, counts=counts)

    @post("/batches/{batch_id:int}/approve")
    async def approve(self, request: AnyRequest, principal: Principal, state: State, batch_id: int) -> Response[Any]:
        """Approve once; approving again posts nothing, and the page says it was already approved."""
        try:
            async with state.pool.acquire() as conn:
                before = await batches.get_batch(conn, principal, batch_id)
                await batches.approve_batch(conn, principal, batch_id, app_rail(state).name)
        except DomainError as error:
            if error.code in NOT_FOR_THE_FORM:
                raise
            return await batch_page(request, principal, state, batch_id, error=error)
        done = "already_approved" if before["status"] == "approved" else "approved"
        return Redirect(f"/finance/batches/{batch_id}?done={done}", status_code=303)

    @post("/batches/{batch_id:int}/discard")
    async def discard(self, request: AnyRequest, principal: Principal, state: State, batch_id: int) -> Response[Any]:
        """Discard a draft batch and go back to its claim, which may be batched again."""
        try:
            async with state.pool.acquire() as conn:
                gone = await batches.discard_batch(conn, principal, batch_id)
        except DomainError as error:
            if error.code in NOT_FOR_THE_FORM:
                raise
            return await batch_page(request, principal, state, batch_id, error=error)
        return Redirect(f"/finance/claims/{gone['claim_id']}?done=discarded", status_code=303)

    @post("/batches/{batch_id:int}/bank-file.csv", status_code=200)
    async def bank_file(self, principal: Principal, state: State, batch_id: int) -> Response[bytes]:
        """Take the bank's bulk-payment file of the batch's live instructions (they move on to transferred)."""
        async with state.pool.acquire() as conn:
            taken = await batches.export_bank_file(conn, principal, batch_id, bank_rail(state))
        return bank_file_response(taken)

    @post("/batches/{batch_id:int}/confirm-paid")
    async def confirm_paid(
        self, request: AnyRequest, principal: Principal, state: State, batch_id: int
    ) -> Response[Any]:
        try:
            async with state.pool.acquire() as conn:
                await batches.confirm_paid(conn, principal, batch_id, ConfirmPaidIn(), bank_rail(state))
        except DomainError as error:
            if error.code in NOT_FOR_THE_FORM:
                raise
            return await batch_page(request, principal, state, batch_id, error=error)
        return Redirect(f"/finance/batches/{batch_id}?done=paid", status_code=303)

    @post("/batches/{batch_id:int}/bank-result")
    async def bank_result(
        self, request: AnyRequest, principal: Principal, state: State, batch_id: int
    ) -> Response[Any]:
        """The bank's result file; a rejected file changes nothing and the page lists its bad lines."""
        upload = (await request.form()).get("file")
        try:
            data = await upload.read() if isinstance(upload, UploadFile) else b""
            if not data:
                raise DomainError("validation_failed", "no file", errors=[{"key": "console_no_file"}])
            async with state.pool.acquire() as conn:
                result = await batches.import_bank_result(conn, principal, data, bank_rail(state))
        except DomainError as error:
            if error.code in NOT_FOR_THE_FORM:
                raise
            return await batch_page(request, principal, state, batch_id, error=error)
        counts = "&".join(f"{key}={len(result[key])}" for key in ("applied", "unchanged", "unknown"))
        return Redirect(f"/finance/batches/{batch_id}?done=result&{counts}", status_code=303)

    @post("/batches/{batch_id:int}/pay")
    async def pay(self, request: AnyRequest, principal: Principal, state: State, batch_id: int) -> Response[Any]:
        """Hand the batch to an API rail (Stripe Connect); the bank-file rail refuses (conflict)."""
        try:
            async with state.pool.acquire() as conn:
                await batches.pay_batch(conn, principal, batch_id, app_rail(state))
        except DomainError as error:
            if error.code in NOT_FOR_THE_FORM:
                raise
            return await batch_page(request, principal, state, batch_id, error=error)
        return Redirect(f"/finance/batches/{batch_id}?done=submitted", status_code=303)

    @post("/payouts/{instruction_id:int}/retry")
    async def retry(self, principal: Principal, state: State, instruction_id: int) -> Redirect:
        async with state.pool.acquire() as conn:
            batch = await batches.retry_instruction(conn, principal, instruction_id, app_rail(state).name)
        return Redirect(f"/finance/batches/{batch['id']}?done=retried", status_code=303)

    @post("/payouts/{instruction_id:int}/cancel")
    async def cancel(self, principal: Principal, state: State, instruction_id: int) -> Redirect:
        async with state.pool.acquire() as conn:
            result = await batches.cancel_instruction(conn, principal, instruction_id)
        return Redirect(f"/finance/batches/{result['applied'][0]['batch_id']}?done=canceled", status_code=303)

    @get("/overview")
    async def overview(
        self, request: AnyRequest, principal: Principal, state: State, period: str | None = None
    ) -> Template:
        month = period_of(period, state.settings.timezone, clock.local_today(state.settings.timezone).replace(day=1))
        async with state.pool.acquire() as conn:
            found = await overview_charts(conn, i18n.translator(lang_of(request)), month, state.settings.currency)
        return finance_page(
            request, "console/overview.html", principal, here="/finance/overview", period=month.strftime("%Y-%m"),
            previous=shift(month, -1), next=shift(month, 1), **found,
        )  # fmt: skip


def bank_rail(state: State) -> BankFileRail:
    """The bank-file rail, when it is the configured one. Raises DomainError conflict."""
    rail = app_rail(state)
    if not isinstance(rail, BankFileRail):
        raise DomainError("conflict", f"the payout rail is {rail.name}, not a bank file")
    return rail


def console_routes() -> list[Any]:
    return [FinancePages]
