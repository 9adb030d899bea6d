"""The loan subsidy pages: the public calculator, the member's applications, and the reviewers' list."""

from __future__ import annotations

from datetime import date
from typing import Any

from litestar import Controller, Response, get, post
from litestar.datastructures import State
from litestar.response import Redirect, Template

from cards import catalog, loans
from cards.loan_subsidy import MONTHS_MAX, PRINCIPAL_MAX_MINOR, RATE_BPS_MAX, LoanSubsidy, loan_subsidy
from cards.loans import LoanApplicationIn
from cards.member_pages import member_page_error, unmet_words
from unioncard import clock, i18n
from unioncard.auth import Principal, Role, requires, resolve_principal
from unioncard.errors import DomainError
from unioncard.money import parse_yuan
from unioncard.pages import (
    AnyRequest,
    FormError,
    alert,
    field,
    lang_of,
    new_key,
    page,
    page_error,
    status_of,
    whole_number,
)

DEFAULTS = {"principal": "100000", "rate": "3.45", "months": "24"}
REVIEW_STATUSES = ("submitted", "approved", "rejected")
REVIEW_ROWS = 200

i18n.extend(
    {
        "loan_calculator_title": ("创业贷款贴息计算器", "Start-up loan subsidy calculator"),
        "loan_rule": (
            "贷款本金最高30万元，贴息最长24个月：10万元以内按基准利率全额贴息，超出部分贴息50%。",
            "Loans up to 300,000 yuan, subsidised for up to 24 months: the whole base rate on the first "
            "100,000 yuan, half of it above.",
        ),
        "loan_principal": ("贷款本金（元）", "Principal (yuan)"),
        "loan_rate": ("基准利率（年，%）", "Base rate (% a year)"),
        "loan_months": ("贴息月数", "Months subsidised"),
        "loan_calculate": ("计算贴息", "Calculate"),
        "loan_total": ("贴息总额", "Subsidy in total"),
        "loan_yearly": ("每年贴息", "Subsidy a year"),
        "loan_monthly": ("每月约", "About a month"),
        "loan_schedule": ("按月贴息明细", "Month by month"),
        "loan_month_n": ("第{n}个月", "Month {n}"),
        "loan_month": ("月份", "Month"),
        "loan_months_n": ("{n}个月", "{n} months"),
        "loan_amount": ("贴息金额", "Subsidy"),
        "loan_sum": ("合计", "Total"),
        "loan_principal_invalid": ("请输入贷款本金，如 100000 或 85000.50", "Type the principal, e.g. 100000"),
        "loan_principal_out_of_bounds": (
            "贷款本金须大于0元，且不超过300,000元。",
            "The principal is more than 0 and at most 300,000 yuan.",
        ),
        "loan_rate_invalid": ("请输入年利率，如 3.45（最多两位小数）", "Type the yearly rate, e.g. 3.45"),
        "loan_rate_out_of_bounds": (
            "基准利率须大于0%，且不超过20%。",
            "The base rate is more than 0% and at most 20%.",
        ),
        "loan_months_invalid": ("贴息月数为1至24个月。", "The subsidy runs 1 to 24 months."),
        "loan_apply_hint": ("会员登录后可在线申请贴息。", "Members can apply once signed in."),
        "loan_sign_in_to_apply": ("会员登录申请", "Sign in to apply"),
        # the member's page
        "loan_my_title": ("创业贷款贴息", "Loan interest subsidy"),
        "loan_fund": ("贴息专项基金", "The subsidy fund"),
        "loan_fund_total": ("基金总额", "Fund"),
        "loan_fund_drawn": ("已批贴息", "Approved so far"),
        "loan_fund_remaining": ("剩余可用", "Remaining"),
        "loan_no_fund": ("暂未设立贷款贴息基金。", "There is no loan subsidy fund at present."),
        "loan_apply_title": ("申请贴息", "Apply for the subsidy"),
        "loan_lender": ("贷款银行", "Lender (bank)"),
        "loan_start_on": ("放款日期", "Loan start date"),
        "loan_apply": ("提交申请", "Submit application"),
        "loan_applied": ("申请已提交，请等待审核。", "Application submitted; it will be reviewed."),
        "loan_not_eligible": ("您暂不符合申请条件：", "You may not apply yet:"),
        "loan_mine": ("我的贴息申请", "My subsidy applications"),
        "loan_status_submitted": ("待审核", "Waiting for review"),
        "loan_status_approved": ("已批准", "Approved"),
        "loan_status_rejected": ("未通过", "Rejected"),
        "loan_reviewed_by": ("审核单位", "Reviewed by"),
        "loan_submitted_at": ("提交时间", "Submitted"),
        "loan_decision_note": ("审核意见", "Reviewer's note"),
        "loan_terms": ("{principal}元 · 年利率{rate}% · {months}个月", "{principal} yuan · {rate}% · {months} months"),
        "loan_tab_calculator": ("计算器", "Calculator"),
        # the reviewers' page
        "loan_review_title": ("贷款贴息审核", "Loan subsidy review"),
        "loan_review_waiting": ("待审核", "Waiting"),
        "loan_review_approved_sum": ("已批贴息（本范围）", "Approved in your scope"),
        "loan_review_all": ("全部", "All"),
        "loan_review_empty": ("没有符合条件的申请", "No applications here"),
        "loan_review_member": ("会员", "Member"),
        "loan_review_loan": ("贷款", "Loan"),
        "loan_approve": ("批准", "Approve"),
        "loan_reject": ("驳回", "Reject"),
        "loan_note": ("意见", "Note"),
        "loan_reject_note_hint": ("驳回须填写原因", "A rejection needs a reason"),
        "loan_done_approved": ("已批准，贴息已从基金中划拨。", "Approved: the subsidy is drawn from the fund."),
        "loan_done_rejected": ("已驳回。", "Rejected."),
        "loan_approve_confirm": ("确定批准并从基金划拨贴息吗？", "Approve and draw the subsidy from the fund?"),
        "error_loan_fund_exhausted": (
            "贴息基金余额不足，无法批准该申请。",
            "The fund has too little left to approve this application.",
        ),
        "loan_lender_invalid": ("请填写贷款银行（100字以内）", "Name the lender (at most 100 characters)"),
        "loan_start_out_of_range": (
            "放款日期须在一年以内，且不晚于半年后。",
            "The loan starts at most a year ago and at most half a year ahead.",
        ),
        "loan_cap_reached": (
            "您的贴息申请次数已达上限。",
            "You have made as many subsidy applications as allowed.",
        ),
        "loan_not_open": ("该福利目前不在开放期内。", "This benefit is not open at present."),
    }
)

# Domain errors these pages word themselves (the API's codes are shared with grants).
PAGE_WORDS = {"benefit_cap_reached": "loan_cap_reached"}


def page_alert(lang: str, error: Exception) -> dict[str, Any]:
    """What the page says about a failed step: its own words for some codes (PAGE_WORDS), for validation_failed
    the sentence its first problem names (the problem's key); else pages.alert's."""
    if isinstance(error, DomainError):
        keys = [problem.get("key", "") for problem in error.extra.get("errors", [])]
        key = PAGE_WORDS.get(error.code) or next((k for k in keys if k in i18n.MESSAGES), None)
        if key:
            return {"text": i18n.t(lang, key), "reasons": []}
    return alert(lang, error)


# ------------------------------------------------------------------ form input


def principal_minor_of(text: str) -> int:
    """Yuan as typed to fen. Raises FormError."""
    try:
        principal = parse_yuan(text)
    except ValueError:
        raise FormError("loan_principal_invalid") from None
    if not 0 < principal <= PRINCIPAL_MAX_MINOR:
        raise FormError("loan_principal_out_of_bounds")
    return principal


def rate_bps_of(text: str) -> int:
    """A yearly rate in percent as typed ("3.45") to basis points (345): a percent's two decimals are bps.

    Raises FormError."""
    try:
        rate = parse_yuan(text.strip().removesuffix("%"))
    except ValueError:
        raise FormError("loan_rate_invalid") from None
    if not 0 < rate <= RATE_BPS_MAX:
        raise FormError("loan_rate_out_of_bounds")
    return rate


def months_of(text: str) -> int:
    months = whole_number(text, MONTHS_MAX)
    if not months:
        raise FormError("loan_months_invalid")
    return months


def calculate(entry: dict[str, str]) -> LoanSubsidy:
    """The subsidy of the loan typed in the calculator. Raises FormError."""
    return loan_subsidy(principal_minor_of(entry["principal"]), rate_bps_of(entry["rate"]), months_of(entry["months"]))


def calculator_entry(request: AnyRequest) -> dict[str, str]:
    query = request.query_params
    return {name: (query.get(name) or "").strip() or default for name, default in DEFAULTS.items()}


def calculator_context(request: AnyRequest) -> dict[str, Any]:
    """The calculator's input (the query, else an example), its result, or what is wrong with it."""
    entry = calculator_entry(request)
    try:
        return {"entry": entry, "result": calculate(entry), "calc_error": None}
    except FormError as error:
        return {"entry": entry, "result": None, "calc_error": alert(lang_of(request), error)}


# ------------------------------------------------------------------ the public calculator


@get("/loan-subsidy", include_in_schema=False)
async def calculator_page(request: AnyRequest) -> Template:
    """Anyone may try the calculator; a signed-in member keeps their tabs."""
    principal = await resolve_principal(request)
    context = calculator_context(request)
    member = principal if principal is not None and principal.role == Role.MEMBER else None
    status = 422 if context["calc_error"] else 200
    return page(request, "loan_calculator.html", status=status, principal=member, tab="benefits", **context)


# ------------------------------------------------------------------ the member's page


async def member_page(
    request: AnyRequest, principal: Principal, state: State, error: Exception | None = None, **context: Any
) -> Template:
    lang = lang_of(request)
    today = clock.local_today(state.settings.timezone)
    member_id = principal.member_id or 0
    calc = calculator_context(request)
    try:
        fund = await loans.fund(state.pool)
    except DomainError:
        fund = None
    unmet: list[str] = []
    if fund is not None:
        try:
            unmet = unmet_words(await catalog.benefit_for_member(state.pool, member_id, fund["code"], today), lang)
        except DomainError:  # benefit_not_found: out of its validity now
            unmet = [i18n.t(lang, "loan_not_open")]
    apply_entry = context.pop("apply_entry", None) or {
        **calc["entry"], "lender": "", "loan_start_on": today.isoformat(),
    }  # fmt: skip
    return page(
        request,
        "member/loans.html",
        status=status_of(error) if error else 200,
        here="/me/loans",
        principal=principal,
        tab="benefits",
        fund=fund,
        unmet=unmet,
        apply_entry=apply_entry,
        key=new_key(),
        applications=await loans.member_applications(state.pool, member_id),
        error=page_alert(lang, error) if error else None,
        **calc,
        **context,
    )


class MemberLoanPages(Controller):
    path = "/me/loans"
    include_in_schema = False
    guards = [requires(Role.MEMBER)]
    exception_handlers = {DomainError: member_page_error}

    @get("/")
    async def index(self, request: AnyRequest, principal: Principal, state: State, done: str = "") -> Template:
        return await member_page(request, principal, state, done=done)

    @post("/applications")
    async def apply(self, request: AnyRequest, principal: Principal, state: State) -> Response[Any]:
        form = await request.form()
        entry = {name: field(form, name) for name in ("principal", "rate", "months", "lender", "loan_start_on")}
        try:
            data = LoanApplicationIn(
                lender=entry["lender"],
                principal_minor=principal_minor_of(entry["principal"]),
                rate_bps=rate_bps_of(entry["rate"]),
                months=months_of(entry["months"]),
                loan_start_on=_date_of(entry["loan_start_on"]),
                idempotency_key=field(form, "idempotency_key") or None,
            )
            await loans.apply(state.pool, principal.member_id or 0, data, clock.now(), state.settings.timezone)
        except (FormError, DomainError) as error:
            return await member_page(request, principal, state, error, apply_entry=entry)
        return Redirect("/me/loans?done=applied#mine", status_code=303)


def _date_of(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise FormError("loan_start_invalid") from None


i18n.extend({"loan_start_invalid": ("请选择放款日期", "Pick the date the loan started")})


# ------------------------------------------------------------------ the reviewers' page


async def review_page(
    request: AnyRequest, principal: Principal, state: State, status: str, error: Exception | None = None, **context: Any
) -> Template:
    shown = status if status in REVIEW_STATUSES else None
    try:
        fund = await loans.fund(state.pool)
    except DomainError:
        fund = None
    return page(
        request,
        "review/loan_review.html",
        status=status_of(error) if error else 200,
        here="/review/loans",
        principal=principal,
        fund=fund,
        counts=await loans.review_counts(state.pool, principal),
        rows=await loans.applications_to_review(state.pool, principal, shown, REVIEW_ROWS),
        shown=shown or "all",
        statuses=REVIEW_STATUSES,
        error=page_alert(lang_of(request), error) if error else None,
        **context,
    )


class LoanReviewPages(Controller):
    path = "/review/loans"
    include_in_schema = False
    guards = [requires(Role.FEDERATION_ADMIN, Role.ORG_REVIEWER)]
    exception_handlers = {DomainError: page_error("/login", "/staff")}

    @get("/")
    async def index(
        self, request: AnyRequest, principal: Principal, state: State, status: str = "submitted", done: str = ""
    ) -> Template:
        return await review_page(request, principal, state, status, done=done)

    @post("/{application_id:int}/approve")
    async def approve(self, request: AnyRequest, application_id: int, principal: Principal, state: State) -> Any:
        note = field(await request.form(), "note")
        try:
            await loans.approve(state.pool, principal, application_id, note, clock.now())
        except DomainError as error:  # another org's application says 403 here, not "sign in again"
            return await review_page(request, principal, state, "submitted", error)
        return Redirect("/review/loans?done=approved", status_code=303)

    @post("/{application_id:int}/reject")
    async def reject(self, request: AnyRequest, application_id: int, principal: Principal, state: State) -> Any:
        note = field(await request.form(), "note")
        try:
            if not note:
                raise FormError("loan_reject_note_hint")
            await loans.reject(state.pool, principal, application_id, note, clock.now())
        except (FormError, DomainError) as error:
            return await review_page(request, principal, state, "submitted", error)
        return Redirect("/review/loans?done=rejected", status_code=303)


def loan_page_routes() -> list[Any]:
    return [calculator_page, MemberLoanPages, LoanReviewPages]
