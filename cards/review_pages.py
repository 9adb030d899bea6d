"""Reviewers' pages: the applications routed into their org subtree, one with its member, invoice and history, and
the steps open, approve (an amount, a note) and reject (a reason). A federation admin may use them too."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Response, get, post
from litestar.datastructures import State
from litestar.params import Parameter
from litestar.response import Redirect, Template

from cards import applications
from cards.application_pages import actor_words
from cards.application_rules import ApproveIn, RejectIn
from unioncard import clock, i18n
from unioncard.auth import Principal, Role, requires
from unioncard.errors import DomainError
from unioncard.money import AMOUNT_MINOR_MAX, format_yuan, parse_yuan
from unioncard.pages import AnyRequest, field, lang_of, local_time, page, staff_page_error

HOME = "/review/"
PAGE_SIZE = 50
# Errors the detail page cannot show beside its forms: sign-in, another org's application, none at all.
NOT_FOR_THE_FORM = ("unauthorized", "forbidden", "application_not_found")

i18n.extend(
    {
        "review_title": ("补助审核", "Grant review"),
        "review_all": ("全部", "All"),
        "review_waiting": ("待处理", "Waiting"),
        "review_none": ("没有这一状态的申请。", "No applications with this status."),
        "review_id": ("编号", "No."),
        "review_member": ("会员", "Member"),
        "review_benefit": ("补助", "Grant"),
        "review_applied_on": ("申请日期", "Applied on"),
        "review_requested": ("申请金额", "Asked for"),
        "review_approved": ("核准金额", "Approved"),
        "review_status": ("状态", "Status"),
        "review_routed_to": ("受理单位", "Reviewed by"),
        "review_more": ("下一页", "Next page"),
        "review_back": ("返回审核列表", "Back to the list"),
        "review_application": ("申请 #{id}", "Application #{id}"),
        "review_card": ("卡号", "Card"),
        "review_tier": ("卡等级", "Tier"),
        "review_member_org": ("所属工会", "Union"),
        "review_invoice": ("发票", "Invoice"),
        "review_invoice_issuer": ("开票单位", "Issued by"),
        "review_invoice_number": ("发票号码", "Number"),
        "review_invoice_amount": ("发票金额", "Amount"),
        "review_invoice_date": ("开票日期", "Date"),
        "review_no_invoice": ("该补助无需发票", "This grant needs no invoice"),
        "review_details": ("情况说明", "What happened"),
        "review_payee": ("收款账户", "Paid to"),
        "review_history": ("办理记录", "History"),
        "review_when": ("时间", "When"),
        "review_who": ("经办", "Who"),
        "review_step": ("环节", "Step"),
        "review_note": ("说明", "Note"),
        "review_open": ("开始审核", "Start review"),
        "review_approve": ("批准", "Approve"),
        "review_approve_amount": ("核准金额（元）", "Amount approved (yuan)"),
        "review_approve_note": ("审核意见（可选）", "Note (optional)"),
        "review_approve_confirm": ("确认批准？批准后将记入补助支出。", "Approve? The grant is booked as an expense."),
        "review_reject": ("不予批准", "Reject"),
        "review_reject_reason": ("不予批准的理由（必填）", "Why not (required)"),
        "review_reject_confirm": ("确认不予批准？", "Reject this application?"),
        "review_decided": ("已办结，无需再审。", "Decided: nothing more to review."),
        "review_done_opened": ("已开始审核。", "Review started."),
        "review_done_approved": ("已批准，等待财务发放。", "Approved: finance pays it next."),
        "review_done_rejected": ("已不予批准。", "Rejected."),
        "review_forbidden": ("这份申请不在您的审核范围内。", "This application is not yours to review."),
        "review_forbidden_role": ("补助审核仅供审核人员使用。", "Grant review is for reviewers."),
        "review_err_amount_invalid": ("请输入金额，如 1200 或 1200.50。", "Enter an amount, like 1200 or 1200.50."),
        "review_err_amount_over_requested": ("核准金额不能超过申请金额。", "No more than the amount asked for."),
        "review_err_reason_missing": ("请填写不予批准的理由。", "Say why it is rejected."),
        "review_err_too_long": (
            "审核意见或理由太长，最多 500 字。",
            "The note or reason is too long: 500 characters at most.",
        ),
        "review_err_not_valid": ("填写有误，请检查。", "Something typed is not valid: please check."),
        "error_application_status_conflict": (
            "申请已办结或已在后续环节，不能再审。",
            "The application is already decided or further on.",
        ),
        "error_benefit_not_applicable": ("该福利不通过申请办理。", "This benefit is not applied for here."),
    }
)


def review_alert(lang: str, error: DomainError) -> dict[str, Any]:
    keys = [problem["key"] for problem in error.extra.get("errors", []) if "key" in problem]
    if keys:
        return {"text": i18n.t(lang, keys[0]), "reasons": []}
    return {"text": i18n.error_text(lang, error), "reasons": []}


async def detail_page(
    request: AnyRequest, principal: Principal, state: State, application_id: int, *,
    error: DomainError | None = None, **context: Any,
) -> Template:  # fmt: skip
    lang, timezone = lang_of(request), state.settings.timezone
    async with state.pool.acquire() as conn:
        item = await applications.get_for_review(conn, principal, application_id)
    steps = [{**event, "time": local_time(event["created_at"], timezone, "%Y-%m-%d %H:%M"),
              "who": actor_words(lang, event["actor"], own=False)} for event in item["events"]]  # fmt: skip
    typed = {"amount": format_yuan(item["requested_minor"]), "note": "", "reason": "", **context}
    return page(
        request, "review/application.html", status=error.status if error else 200,
        here=f"/review/applications/{application_id}", principal=principal, item=item, steps=steps,
        reviewable=item["status"] in applications.REVIEWABLE,
        submitted=local_time(item["submitted_at"], timezone, "%Y-%m-%d %H:%M"),
        error=review_alert(lang, error) if error else None, **typed,
    )  # fmt: skip


class ReviewPages(Controller):
    path = "/review"
    include_in_schema = False
    guards = [requires(Role.ORG_REVIEWER, Role.FEDERATION_ADMIN)]
    exception_handlers = {
        DomainError: staff_page_error(HOME, applications.REVIEWERS, "review_forbidden", "review_forbidden_role")
    }

    @get("/")
    async def inbox(
        self, request: AnyRequest, principal: Principal, state: State, status: str | None = None,
        after: Annotated[int, Parameter(ge=0)] = 0,
    ) -> Template:  # fmt: skip
        """The applications routed into the reviewer's subtree; by default those waiting for a decision (submitted
        or under review), oldest first."""
        chosen = status if status in (*applications.STATUSES, "all") else applications.WAITING
        async with state.pool.acquire() as conn:
            found = await applications.list_for_review(conn, principal, None if chosen == "all" else chosen, after,
                                                       PAGE_SIZE)  # fmt: skip
        counts = found["counts"]
        waiting = sum(counts.get(name, 0) for name in applications.REVIEWABLE)
        return page(
            request, "review/applications.html", here=HOME, principal=principal, chosen=chosen,
            statuses=applications.STATUSES, counts=counts, waiting=waiting, items=found["applications"],
            next_after=found["next_after"],
        )  # fmt: skip

    @get("/applications/{application_id:int}")
    async def application(
        self, request: AnyRequest, principal: Principal, state: State, application_id: int, done: str = ""
    ) -> Template:
        return await detail_page(request, principal, state, application_id, done=done)

    @post("/applications/{application_id:int}/open")
    async def open(self, request: AnyRequest, principal: Principal, state: State, application_id: int) -> Response[Any]:
        return await self._step(request, principal, state, application_id, "opened", None)

    @post("/applications/{application_id:int}/approve")
    async def approve(
        self, request: AnyRequest, principal: Principal, state: State, application_id: int
    ) -> Response[Any]:
        """Approve the amount typed (none: as asked for) with a note."""
        form = await request.form()
        typed, note = field(form, "amount"), field(form, "note")
        try:
            amount = parse_yuan(typed) if typed else None
            if amount is not None and not 0 < amount <= AMOUNT_MINOR_MAX:
                raise ValueError(typed)
        except ValueError:
            problem = {"field": "amount", "key": "review_err_amount_invalid", "message": "not an amount"}
            error = DomainError("validation_failed", "not an amount", errors=[problem])
            return await detail_page(request, principal, state, application_id, error=error, amount=typed, note=note)
        body = ApproveIn(amount_minor=amount, note=note)
        return await self._step(request, principal, state, application_id, "approved", body, amount=typed, note=note)

    @post("/applications/{application_id:int}/reject")
    async def reject(
        self, request: AnyRequest, principal: Principal, state: State, application_id: int
    ) -> Response[Any]:
        reason = field(await request.form(), "reason")
        return await self._step(request, principal, state, application_id, "rejected", RejectIn(reason=reason),
                                reason=reason)  # fmt: skip

    async def _step(
        self, request: AnyRequest, principal: Principal, state: State, application_id: int, done: str,
        body: ApproveIn | RejectIn | None, **typed: Any,
    ) -> Response[Any]:  # fmt: skip
        now = clock.now()
        try:
            async with state.pool.acquire() as conn:
                if isinstance(body, ApproveIn):
                    await applications.approve(conn, principal, application_id, body, now)
                elif isinstance(body, RejectIn):
                    await applications.reject(conn, principal, application_id, body, now)
                else:
                    await applications.open_review(conn, principal, application_id, now)
        except DomainError as error:
            if error.code in NOT_FOR_THE_FORM:
                raise
            return await detail_page(request, principal, state, application_id, error=error, **typed)
        return Redirect(f"/review/applications/{application_id}?done={done}", status_code=303)
