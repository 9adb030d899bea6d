"""The member's grant applications on a phone: the application form of a benefit, my applications, one with its
history (paid or failed shows there)."""

from __future__ import annotations

from datetime import date
from typing import Any

from litestar import Controller, Response, get, post
from litestar.datastructures import State
from litestar.response import Redirect, Template

from cards import applications, catalog
from cards.application_rules import ApplicationIn, InvoiceIn, PayeeIn
from cards.member_pages import amount_words, member_page_error, unmet_words
from unioncard import clock, i18n
from unioncard.auth import Principal, Role, requires
from unioncard.errors import DomainError
from unioncard.money import AMOUNT_MINOR_MAX, parse_yuan
from unioncard.pages import AnyRequest, field, lang_of, local_time, new_key, page, whole_number

FORM_FIELDS = ("amount", "invoice_issuer", "invoice_number", "invoice_amount", "invoice_date", "hospital",
               "days_in_hospital", "diagnosis", "note", "payee_name", "payee_bank", "payee_account")  # fmt: skip
DETAIL_FIELDS = ("hospital", "days_in_hospital", "diagnosis", "note")
# Where a problem with the input as the service names it is shown on the form ("details.<key>": its own field).
FIELD_OF = {"invoice": "invoice_issuer", "details": "note"}
DAYS_MAX = 3650

i18n.extend(
    {
        "appl_title": ("我的申请", "My applications"),
        "appl_none": ("还没有申请。可以在“福利”里申请补助。", "No applications yet. Apply for a grant under Benefits."),
        "appl_to_benefits": ("去看看福利", "See the benefits"),
        "appl_apply_title": ("申请：{name}", "Apply: {name}"),
        "appl_amount_fixed": ("补助金额", "Grant"),
        "appl_amount_section": ("金额", "Amount"),
        "appl_amount": ("申请金额（元）", "Amount asked for (yuan)"),
        "appl_amount_hint": ("最高 ¥{yuan}", "At most ¥{yuan}"),
        "appl_invoice": ("发票信息", "Invoice"),
        "appl_invoice_hint": ("同一张发票只能申领一次。", "An invoice can be claimed once only."),
        "appl_invoice_issuer": ("开票单位", "Issued by"),
        "appl_invoice_number": ("发票号码", "Invoice number"),
        "appl_invoice_amount": ("发票金额（元）", "Invoice amount (yuan)"),
        "appl_invoice_date": ("开票日期", "Invoice date"),
        "appl_situation": ("情况说明", "What happened"),
        "appl_hospital": ("医院", "Hospital"),
        "appl_days_in_hospital": ("住院天数", "Days in hospital"),
        "appl_diagnosis": ("诊断", "Diagnosis"),
        "appl_note": ("补充说明", "Anything else"),
        "appl_payee": ("收款账户", "Pay it to"),
        "appl_payee_hint": ("补助将转入本人银行卡。", "The grant is paid into your own bank account."),
        "appl_payee_name": ("户名", "Account holder"),
        "appl_payee_bank": ("开户银行", "Bank"),
        "appl_payee_account": ("银行卡号", "Account number"),
        "appl_submit": ("提交申请", "Submit"),
        "appl_reviewed_by": ("将由 {org} 审核", "Reviewed by {org}"),
        "appl_not_open": ("您暂不能申请：", "You may not apply:"),
        "appl_fix_fields": ("请修改标红的项目。", "Please correct the fields marked in red."),
        "appl_submitted": ("申请已提交，请等待审核。", "Submitted: it is waiting for review."),
        "appl_applied_on": ("申请日期", "Applied on"),
        "appl_requested": ("申请金额", "Asked for"),
        "appl_approved": ("核准金额", "Approved"),
        "appl_reviewer": ("审核单位", "Reviewed by"),
        "appl_history": ("办理进度", "Progress"),
        "appl_paid_banner": ("补助已发放到您的银行卡。", "The grant has been paid into your bank account."),
        "appl_failed_banner": (
            "转账未成功：{reason}。工会将核实后重新发放。",
            "The transfer did not go through: {reason}. The union will check and pay again.",
        ),
        "appl_rejected_banner": ("未通过：{reason}", "Not approved: {reason}"),
        "appl_back_list": ("返回我的申请", "Back to my applications"),
        "appl_status_submitted": ("已提交", "Submitted"),
        "appl_status_under_review": ("审核中", "Under review"),
        "appl_status_approved": ("已批准", "Approved"),
        "appl_status_rejected": ("未通过", "Not approved"),
        "appl_status_disbursed": ("发放中", "Being paid"),
        "appl_status_paid": ("已到账", "Paid"),
        "appl_status_failed": ("发放失败", "Payment failed"),
        "appl_actor_member": ("本人", "You"),
        "appl_actor_applicant": ("申请人", "Applicant"),
        "appl_actor_org_reviewer": ("审核人员", "Reviewer"),
        "appl_actor_federation_admin": ("总工会", "The federation"),
        "appl_actor_finance_officer": ("财务", "Finance"),
        "appl_err_amount_invalid": ("请输入金额，如 1200 或 1200.50。", "Enter an amount, like 1200 or 1200.50."),
        "appl_err_amount_fixed": ("该补助金额固定，无需填写。", "This grant has a fixed amount."),
        "appl_err_amount_missing": ("请填写申请金额。", "Enter the amount you ask for."),
        "appl_err_amount_over_max": ("超过了该补助的最高金额。", "More than this grant pays at most."),
        "appl_err_amount_over_invoice": ("申请金额不能超过发票金额。", "No more than the invoice."),
        "appl_err_invoice_missing": ("请填写发票信息。", "Enter the invoice's details."),
        "appl_err_invoice_issuer": ("请填写开票单位。", "Enter who issued the invoice."),
        "appl_err_invoice_number": ("请填写发票号码。", "Enter the invoice number."),
        "appl_err_invoice_amount": ("请填写发票金额。", "Enter the invoice amount."),
        "appl_err_invoice_date": ("开票日期不能晚于今天。", "The invoice cannot be dated after today."),
        "appl_err_invoice_date_invalid": ("请选择开票日期。", "Pick the invoice date."),
        "appl_err_invoice_claimed": ("这张发票已经申领过了。", "This invoice has already been claimed."),
        "appl_err_days": ("请填写天数（整数）。", "Enter a whole number of days."),
        "appl_err_details": ("说明内容过多。", "Too many details."),
        "appl_err_too_long": ("内容太长，请删减。", "Too long: please shorten it."),
        "appl_err_not_valid": ("这一项填写有误。", "This is not valid."),
        "appl_err_payee_name": ("请填写户名。", "Enter the account holder."),
        "appl_err_payee_bank": ("请填写开户银行。", "Enter the bank."),
        "appl_err_payee_account": ("银行卡号为 8–30 位数字。", "An account number is 8 to 30 digits."),
        "error_benefit_cap_reached": ("您已达到该补助的申请次数上限。", "You have reached the limit for this grant."),
        "error_invoice_already_claimed": ("这张发票已经申领过了。", "This invoice has already been claimed."),
        "error_no_reviewing_org": ("目前没有单位受理您的这项申请。", "No union reviews this for you at present."),
        "error_application_not_found": ("找不到这份申请。", "No such application."),
    }
)


class FormProblems(Exception):
    """Fields to correct, each with its sentence's key."""

    def __init__(self, problems: dict[str, str]) -> None:
        super().__init__(", ".join(problems))
        self.problems = problems


def _yuan(text: str, key: str) -> int:
    try:
        amount = parse_yuan(text)
    except ValueError:
        raise FormProblems({"": key}) from None
    if not 0 < amount <= AMOUNT_MINOR_MAX:
        raise FormProblems({"": key})
    return amount


def application_of(benefit: dict[str, Any], entry: dict[str, str]) -> ApplicationIn:
    """The form as the service takes it, which checks its limits. Raises FormProblems for what cannot even be read
    (amounts, dates, days)."""
    problems: dict[str, str] = {}

    def read(name: str, parse: Any, key: str) -> Any:
        try:
            return parse(entry[name], key)
        except FormProblems:
            problems[name] = key
            return None

    amount = read("amount", _yuan, "appl_err_amount_invalid") if entry["amount"] else None
    invoice = None
    if benefit["needs_invoice"]:
        invoice_amount = read("invoice_amount", _yuan, "appl_err_invoice_amount")
        issued_on = read("invoice_date", lambda text, key: _date(text, key), "appl_err_invoice_date_invalid")
        if invoice_amount is not None and issued_on is not None:
            invoice = InvoiceIn(issuer=entry["invoice_issuer"], number=entry["invoice_number"],
                                amount_minor=invoice_amount, issued_on=issued_on)  # fmt: skip
    days = whole_number(entry["days_in_hospital"], DAYS_MAX)
    if entry["days_in_hospital"] and days is None:
        problems["days_in_hospital"] = "appl_err_days"
    if problems:
        raise FormProblems(problems)
    details: dict[str, Any] = {name: entry[name] for name in DETAIL_FIELDS if entry[name]}
    if days is not None:
        details["days_in_hospital"] = days
    payee = PayeeIn(name=entry["payee_name"], account=entry["payee_account"], bank=entry["payee_bank"])
    return ApplicationIn(benefit_code=benefit["code"], payee=payee, amount_minor=amount, invoice=invoice,
                         details=details)  # fmt: skip


def _date(text: str, key: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise FormProblems({"": key}) from None


def field_problems(error: DomainError) -> dict[str, str]:
    """A validation_failed (or a claimed invoice) as the form's fields to correct."""
    if error.code == "invoice_already_claimed":
        return {"invoice_number": "appl_err_invoice_claimed"}
    if error.code != "validation_failed":
        return {}
    problems: dict[str, str] = {}
    for problem in error.extra["errors"]:  # the first problem of a field is the one to say
        problems.setdefault(form_field(problem["field"]), problem["key"])
    return problems


def form_field(name: str) -> str:
    """The form's field for a problem's field as the service names it."""
    if name.startswith("details."):
        detail = name.removeprefix("details.")
        return detail if detail in DETAIL_FIELDS else "note"
    return FIELD_OF.get(name, name)


def actor_words(lang: str, actor: str, *, own: bool = True) -> str:
    """Who took a step, as a member reads it (`own`: the member is "you") or a reviewer does."""
    role = actor.split(":", 1)[0]
    key = "appl_actor_applicant" if role == "member" and not own else f"appl_actor_{role}"
    return i18n.t(lang, key) if key in i18n.MESSAGES else role


async def _benefit(
    state: State, principal: Principal, code: str, lang: str, profile: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The benefit as the form shows it. Raises DomainError benefit_not_found, benefit_not_applicable."""
    assert principal.member_id is not None  # the guard admits members only
    today = clock.local_today(state.settings.timezone)
    benefit = await catalog.benefit_for_member(state.pool, principal.member_id, code, today, profile=profile)
    if benefit["kind"] not in applications.GRANT_KINDS:
        raise DomainError("benefit_not_applicable", kind=benefit["kind"])
    return {**benefit, "reasons": unmet_words(benefit, lang), "amount_text": amount_words(benefit, lang)}


async def form_page(
    request: AnyRequest, principal: Principal, state: State, code: str, *, entry: dict[str, str] | None = None,
    problems: dict[str, str] | None = None, error: DomainError | None = None, form_key: str | None = None,
) -> Template:  # fmt: skip
    """The application form, prefilled: the member's name and the bank account of their latest application."""
    assert principal.member_id is not None
    lang = lang_of(request)
    profile = await catalog.member_profile(state.pool, principal.member_id)
    benefit = await _benefit(state, principal, code, lang, profile)
    try:
        reviewer = await catalog.reviewing_org(
            state.pool, benefit["id"], profile["org_id"], clock.local_today(state.settings.timezone)
        )
    except DomainError:
        reviewer = None
    if entry is None:
        entry = dict.fromkeys(FORM_FIELDS, "")
        async with state.pool.acquire() as conn:
            latest = await applications.list_mine(conn, principal)
            earlier = await applications.get_mine(conn, principal, latest[0]["id"]) if latest else None
        entry["payee_name"] = earlier["payee_name"] if earlier else profile["name"]
        entry["payee_bank"] = earlier["payee_bank"] if earlier else ""
        entry["payee_account"] = earlier["payee_account"] if earlier else ""
    alert = None
    if error is not None and not problems:
        alert = {"text": i18n.error_text(lang, error), "reasons": []}
    elif problems:
        alert = {"text": i18n.t(lang, "appl_fix_fields"), "reasons": []}
    return page(
        request, "member/apply.html", status=error.status if error else (422 if problems else 200),
        here=f"/me/benefits/{code}/apply", principal=principal, tab="benefits", benefit=benefit, reviewer=reviewer,
        entry=entry, problems=problems or {}, error=alert, form_key=form_key or new_key(),
    )  # fmt: skip


class ApplicationPages(Controller):
    path = "/me"
    include_in_schema = False
    guards = [requires(Role.MEMBER)]
    exception_handlers = {DomainError: member_page_error}

    @get("/benefits/{code:str}/apply")
    async def form(self, request: AnyRequest, principal: Principal, state: State, code: str) -> Template:
        return await form_page(request, principal, state, code)

    @post("/benefits/{code:str}/apply")
    async def apply(self, request: AnyRequest, principal: Principal, state: State, code: str) -> Response[Any]:
        """Submit; a resubmitted form carries the same key and lands on the same application."""
        form = await request.form()
        entry = {name: field(form, name) for name in FORM_FIELDS}
        form_key = field(form, "form_key") or new_key()
        benefit = await _benefit(state, principal, code, lang_of(request))
        try:
            data = application_of(benefit, entry)
            async with state.pool.acquire() as conn:
                found, _ = await applications.submit(
                    conn, principal, data, now=clock.now(), timezone=state.settings.timezone, idempotency_key=form_key
                )
        except FormProblems as problems:
            return await form_page(request, principal, state, code, entry=entry, problems=problems.problems,
                                   form_key=form_key)  # fmt: skip
        except DomainError as error:
            if error.code in ("unauthorized", "forbidden"):
                raise
            return await form_page(request, principal, state, code, entry=entry, problems=field_problems(error),
                                   error=error, form_key=form_key)  # fmt: skip
        return Redirect(f"/me/applications/{found['id']}?done=submitted", status_code=303)

    @get("/applications")
    async def mine(self, request: AnyRequest, principal: Principal, state: State) -> Template:
        async with state.pool.acquire() as conn:
            items = await applications.list_mine(conn, principal)
        return page(request, "member/applications.html", principal=principal, tab="applications", items=items)

    @get("/applications/{application_id:int}")
    async def one(
        self, request: AnyRequest, principal: Principal, state: State, application_id: int, done: str = ""
    ) -> Template:
        """An application, its amounts and invoice, and every step with who and when."""
        lang = lang_of(request)
        async with state.pool.acquire() as conn:
            found = await applications.get_mine(conn, principal, application_id)
        timezone = state.settings.timezone
        steps = [{**event, "time": local_time(event["created_at"], timezone, "%Y-%m-%d %H:%M"),
                  "who": actor_words(lang, event["actor"])} for event in found["events"]]  # fmt: skip
        failure = next((e["note"] for e in reversed(found["events"]) if e["to_status"] == "failed"), None)
        return page(
            request, "member/application.html", here=f"/me/applications/{application_id}", principal=principal,
            tab="applications", item=found, steps=steps, failure=failure, done=done,
            account_tail=found["payee_account"][-4:],
        )  # fmt: skip
