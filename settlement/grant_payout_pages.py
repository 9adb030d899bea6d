"""Finance's grants page: approved grants to disburse, the bank file to take, its payouts to confirm paid or to
read back from the bank's result file."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Response, get, post
from litestar.datastructures import State, UploadFile
from litestar.response import Redirect, Template

from settlement import grant_payouts
from settlement.batch_api import app_rail, bank_file_response
from settlement.console import console_alert, finance_page, on_error
from settlement.grant_payouts import DisburseIn, GrantConfirmIn
from settlement.rails import BankFileRail
from unioncard import clock, i18n
from unioncard.auth import Principal, Role, requires
from unioncard.errors import DomainError
from unioncard.pages import AnyRequest, lang_of, local_time, whole_number

HOME = "/finance/grants"
NOT_FOR_THE_FORM = ("unauthorized", "forbidden")

i18n.extend(
    {
        "grant_title": ("补助发放", "Grant payouts"),
        "grant_waiting": ("待发放的补助", "Approved grants to pay"),
        "grant_waiting_none": ("没有待发放的补助。", "No approved grant waits for payment."),
        "grant_application": ("申请", "Application"),
        "grant_member": ("会员", "Member"),
        "grant_benefit": ("补助", "Grant"),
        "grant_org": ("审核单位", "Reviewed by"),
        "grant_amount": ("金额", "Amount"),
        "grant_bank": ("开户银行", "Bank"),
        "grant_status": ("状态", "Status"),
        "grant_total": ("共 {count} 笔，合计 ¥{total}", "{count} grants, ¥{total} in all"),
        "grant_disburse_all": ("发放全部已批准的补助", "Pay every approved grant"),
        "grant_disburse_confirm": ("为这些补助生成付款并记账？", "Open payouts for these grants and post them?"),
        "grant_pay_again": ("重新发放", "Pay again"),
        "grant_failed_before": ("上次失败：{reason}", "Failed before: {reason}"),
        "grant_unfiled": ("待下载银行文件的付款", "Payouts waiting for the bank file"),
        "grant_unfiled_none": ("没有等待银行文件的付款。", "No payout waits for a bank file."),
        "grant_take_file": ("下载银行付款文件", "Download the bank file"),
        "grant_take_hint": (
            "下载后在网银中批量代付，然后确认已付款或上传银行回单。",
            "Pay the file in online banking, then confirm it paid or upload the bank's result file.",
        ),
        "grant_files": ("银行付款文件", "Bank files"),
        "grant_files_none": ("还没有银行付款文件。", "No bank file yet."),
        "grant_file": ("文件", "File"),
        "grant_created": ("生成时间", "Taken"),
        "grant_payouts": ("笔数", "Payouts"),
        "grant_progress": ("已发出 / 已付款 / 失败", "Sent / paid / failed"),
        "grant_copy": ("再次下载", "Download again"),
        "grant_confirm_file": ("确认本文件已付款", "Confirm this file paid"),
        "grant_confirm_file_confirm": ("确认银行已付出本文件中已发出的款项？", "Did the bank pay this file's payouts?"),
        "grant_failed": ("付款失败记录", "Failed payouts so far"),
        "grant_result_hint": (
            "补助付款的参考号为 G 加编号（如 G900000001）；商户结算的回单请在结算页面上传。",
            "A grant payout's reference is G and its number (G900000001); upload merchants' results on settlement.",
        ),
        "grant_reason": ("原因", "Reason"),
        "grant_rail_unavailable": (
            "补助只能通过银行文件发放；当前付款方式为 {rail}，会员没有该通道的收款账户。",
            "Grants are paid by bank file only; the payout rail is {rail}, where members have no accounts.",
        ),
        "grant_err_application_id": ("申请编号应为数字。", "An application number is digits."),
        "grant_done_disbursed": ("已为 {n} 笔补助生成付款。", "{n} payouts opened."),
        "grant_done_nothing": ("没有需要发放的补助。", "Nothing to pay."),
        "grant_done_paid": ("已确认 {n} 笔付款。", "{n} payouts confirmed paid."),
        "grant_done_result": (
            "回单已读取：{applied} 笔更新，{unchanged} 笔无变化，{unknown} 笔不是补助付款。",
            "Result read: {applied} updated, {unchanged} unchanged, {unknown} not grant payouts.",
        ),
    }
)


async def grants_page(
    request: AnyRequest, principal: Principal, state: State, error: DomainError | None = None, **context: Any
) -> Template:
    async with state.pool.acquire() as conn:
        found = await grant_payouts.desk(conn, principal)
    timezone = state.settings.timezone
    for row in found["files"]:
        row["time"] = local_time(row["created_at"], timezone, "%Y-%m-%d %H:%M")
    rail = app_rail(state)
    return finance_page(
        request, "console/grants.html", principal, here=HOME, section="grants", rail=rail.name,
        by_file=isinstance(rail, BankFileRail), waiting_total=sum(row["approved_minor"] for row in found["waiting"]),
        error=console_alert(lang_of(request), error) if error else None, status=error.status if error else 200,
        **found, **context,
    )  # fmt: skip


class GrantPayoutPages(Controller):
    path = HOME
    include_in_schema = False
    guards = [requires(Role.FINANCE_OFFICER, Role.FEDERATION_ADMIN)]
    exception_handlers = {DomainError: on_error}

    @get("/")
    async def desk(
        self, request: AnyRequest, principal: Principal, state: State, done: str = "", n: int = 0,
        applied: int = 0, unchanged: int = 0, unknown: int = 0,
    ) -> Template:  # fmt: skip
        counts = {"n": n, "applied": applied, "unchanged": unchanged, "unknown": unknown}
        return await grants_page(request, principal, state, done=done, counts=counts)

    @post("/disburse")
    async def disburse(self, request: AnyRequest, principal: Principal, state: State) -> Response[Any]:
        """Every approved grant, or the one named (a failed one is paid again only so)."""
        named = str((await request.form()).get("application_id") or "").strip()
        number = whole_number(named)
        try:
            if named and number is None:
                problem = {"field": "application_id", "key": "grant_err_application_id", "message": "not a number"}
                raise DomainError("validation_failed", "not an application number", errors=[problem])
            body = DisburseIn(application_ids=[number] if number is not None else None)
            async with state.pool.acquire() as conn:
                found = await grant_payouts.disburse(conn, principal, body, app_rail(state), clock.now())
        except DomainError as error:
            if error.code in NOT_FOR_THE_FORM:
                raise
            return await grants_page(request, principal, state, error)
        opened = len(found["opened"])
        return Redirect(f"{HOME}?done={'disbursed' if opened else 'nothing'}&n={opened}", status_code=303)

    @post("/bank-file.csv", status_code=200)
    async def bank_file(self, principal: Principal, state: State) -> Response[bytes]:
        async with state.pool.acquire() as conn:
            taken = await grant_payouts.take_bank_file(conn, principal, app_rail(state), clock.now())
        return bank_file_response(taken)

    @post("/files/{file_id:int}/copy.csv", status_code=200)
    async def bank_file_copy(self, principal: Principal, state: State, file_id: int) -> Response[bytes]:
        async with state.pool.acquire() as conn:
            taken = await grant_payouts.copy_bank_file(conn, principal, file_id, app_rail(state))
        return bank_file_response(taken)

    @post("/files/{file_id:int}/confirm-paid")
    async def confirm_paid(
        self, request: AnyRequest, principal: Principal, state: State, file_id: int
    ) -> Response[Any]:
        try:
            async with state.pool.acquire() as conn:
                found = await grant_payouts.confirm_paid(conn, principal, GrantConfirmIn(bank_file_id=file_id),
                                                         app_rail(state), clock.now())  # fmt: skip
        except DomainError as error:
            if error.code in NOT_FOR_THE_FORM:
                raise
            return await grants_page(request, principal, state, error)
        return Redirect(f"{HOME}?done=paid&n={len(found['applied'])}", status_code=303)

    @post("/bank-result")
    async def bank_result(self, request: AnyRequest, principal: Principal, state: State) -> Response[Any]:
        """The bank's result file; a rejected file changes nothing and the page lists its bad lines."""
        upload = (await request.form()).get("file")
        try:
            data = await upload.read() if isinstance(upload, UploadFile) else b""
            if not data:
                raise DomainError("validation_failed", "no file", errors=[{"key": "console_no_file"}])
            async with state.pool.acquire() as conn:
                found = await grant_payouts.import_bank_result(conn, principal, data, app_rail(state), clock.now())
        except DomainError as error:
            if error.code in NOT_FOR_THE_FORM:
                raise
            return await grants_page(request, principal, state, error)
        counts = "&".join(f"{key}={len(found[key])}" for key in ("applied", "unchanged", "unknown"))
        return Redirect(f"{HOME}?done=result&{counts}", status_code=303)
