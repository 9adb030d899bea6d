"""The member's pages on a phone: sign-in with card number + PIN, the card with its dynamic code, savings,
the benefits catalog and a benefit's detail. Applications, bookings and loans add their own pages."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import segno
from litestar import Controller, MediaType, Response, get, post
from litestar.datastructures import State
from litestar.response import Redirect, Template
from markupsafe import Markup

from cards import catalog, member_auth
from cards.member_code import issue_member_code
from unioncard import clock, i18n
from unioncard.auth import Principal, Role, requires, resolve_principal
from unioncard.db import Queries
from unioncard.errors import DomainError
from unioncard.ids import mask_card
from unioncard.money import format_yuan_short
from unioncard.pages import (
    NO_STORE,
    AnyRequest,
    alert,
    end_session,
    field,
    lang_of,
    local_time,
    page,
    session_cookie,
    whole_number,
)
from unioncard.settings import Settings

queries = Queries(Path(__file__).with_name("member_queries.sql"))

LOGIN_PATH = "/me/login"
HOME = "/me/"
SALES_PAGE_SIZE = 20
MONTHS_SHOWN = 12
# The app state's hook for the catalog's shop offers (cards cannot import merchants): app.py sets it to
# merchants.directory.catalog_offers, `(app state, tier, org_path, on, lang) -> {"merchants": n,
# "categories": [(slug, name, n)]}`.
OFFERS_HOOK = "member_offers"
OffersHook = Callable[[State, str, str, date, str], Awaitable[dict[str, Any]]]
# Where a benefit is taken up, by kind; the pages behind them belong to their own features.
ACTIONS = {
    "special_protection": ("/me/benefits/{code}/apply", "me_action_apply"),
    "custom": ("/me/benefits/{code}/apply", "me_action_apply"),
    "health_check": ("/me/health-checks", "me_action_health_check"),
    "loan_subsidy": ("/me/loans", "me_action_loans"),
    "service_centre": ("/me/centres", "me_action_centres"),
}
OFFERS_KIND = "merchant_offer"
QR_MASK = 2

i18n.extend(
    {
        "me_login_title": ("会员登录", "Member sign-in"),
        "me_login_help": ("请输入会员卡号和6位密码。", "Enter your card number and 6-digit PIN."),
        "me_card_number": ("卡号", "Card number"),
        "me_pin": ("密码", "PIN"),
        "me_login_malformed": (
            "请输入16–19位卡号和6位数字密码。",
            "Enter a 16–19 digit card number and a 6-digit PIN.",
        ),
        "me_login_failed_left": (
            "卡号或密码不正确，还可以再试 {n} 次。",
            "The card number or PIN is not right: {n} more tries.",
        ),
        "me_login_locked": (
            "密码错误次数过多，请 {minutes} 分钟后再试。",
            "Too many wrong PINs: try again in {minutes} min.",
        ),
        "me_login_pin_help": ("忘记密码请到所在工会重置。", "Forgot the PIN? Your union resets it."),
        "me_card_title": ("我的会员卡", "My card"),
        "me_holder": ("持卡人", "Holder"),
        "me_org": ("所属工会", "Union"),
        "me_expires": ("有效期至", "Valid until"),
        "me_status_active": ("正常", "Active"),
        "me_status_frozen": ("已冻结", "Frozen"),
        "me_status_lost": ("已挂失", "Reported lost"),
        "me_status_cancelled": ("已注销", "Cancelled"),
        "me_status_expired": ("已过期", "Expired"),
        "me_code_title": ("付款时出示动态码", "Show this code at the till"),
        "me_code_help": (
            "请收银员扫码，或输入上方动态码。",
            "Let the cashier scan it, or type the code above.",
        ),
        "me_code_alt": ("会员动态码二维码", "QR code of the member code"),
        "me_code_countdown": ("{s} 秒后自动刷新", "Refreshes in {s} s"),
        "me_code_refresh": ("刷新动态码", "Refresh the code"),
        "me_code_expired": ("动态码已过期，请刷新。", "The code has expired: refresh it."),
        "me_no_code_frozen": (
            "卡已冻结，暂不能出示动态码。如需解冻，请联系所在工会。",
            "The card is frozen, so it has no code now. Ask your union to unfreeze it.",
        ),
        "me_no_code_lost": ("卡已挂失，不能出示动态码。", "The card is reported lost: it has no code."),
        "me_no_code_cancelled": ("卡已注销，不能出示动态码。", "The card is cancelled: it has no code."),
        "me_no_code_expired": ("卡已过期，请到所在工会换卡。", "The card has expired: your union renews it."),
        "me_saved_title": ("会员卡已为您节省", "Your card has saved you"),
        "me_saved_month": ("本月", "This month"),
        "me_saved_year": ("今年", "This year"),
        "me_saved_total": ("累计", "In all"),
        "me_saved_link": ("查看消费与节省明细", "Sales and savings"),
        "me_savings_title": ("节省明细", "Savings"),
        "me_savings_months": ("按月汇总", "By month"),
        "me_savings_sales": ("消费记录", "Sales"),
        "me_month_line": ("{n} 笔，消费 ¥{spent}", "{n} sales, ¥{spent} spent"),
        "me_sale_saved": ("省 ¥{yuan}", "saved ¥{yuan}"),
        "me_sale_refunded": ("已退 ¥{yuan}", "¥{yuan} refunded"),
        "me_no_sales": ("还没有用卡消费的记录。", "No sales with the card yet."),
        "me_prev": ("上一页", "Previous"),
        "me_next": ("下一页", "Next"),
        "me_benefits_title": ("我的福利", "My benefits"),
        "me_benefits_intro": ("以下是您目前可以享受的福利。", "These are the benefits open to you today."),
        "me_show_all": ("也显示暂不符合条件的", "Also show the ones not open to me"),
        "me_show_mine": ("只看我能享受的", "Only the ones open to me"),
        "me_kind_all": ("全部", "All"),
        "me_kind_merchant_offer": ("商户优惠", "Shop discounts"),
        "me_kind_special_protection": ("专项保障", "Special protection"),
        "me_kind_health_check": ("健康体检", "Health checks"),
        "me_kind_loan_subsidy": ("贷款贴息", "Loan subsidy"),
        "me_kind_service_centre": ("服务阵地", "Service centres"),
        "me_kind_custom": ("其他福利", "Other benefits"),
        "me_offers_line": ("{n} 家商户凭卡可享折扣", "{n} shops give you a discount"),
        "me_offers_link": ("查看附近的优惠商户", "Shops near you"),
        "me_no_benefits": ("暂时没有符合条件的福利。", "No benefit is open to you now."),
        "me_not_open": ("暂不符合", "Not open to you"),
        "me_amount_fixed": ("¥{yuan}", "¥{yuan}"),
        "me_amount_max": ("最高 ¥{yuan}", "up to ¥{yuan}"),
        "me_amount_free": ("免费", "Free"),
        "unmet_tier": ("仅限{tiers}", "Only for {tiers} cards"),
        "unmet_tags": ("仅限{tags}会员", "Only for members who are {tags}"),
        "unmet_org": ("仅限指定工会的会员", "Only for members of certain unions"),
        "unmet_membership_months": ("入会满 {n} 个月后可享受", "Open after {n} months of membership"),
        "me_benefit_amount": ("金额", "Amount"),
        "me_benefit_who": ("谁可以申请", "Who may have it"),
        "me_benefit_everyone": ("全体会员", "Every member"),
        "me_benefit_tiers": ("卡等级：{tiers}", "Card tier: {tiers}"),
        "me_benefit_tags": ("会员类别：{tags}", "Members who are: {tags}"),
        "me_benefit_orgs": ("所属工会：{orgs}", "Members of: {orgs}"),
        "me_benefit_months": ("入会满 {n} 个月", "{n} months of membership"),
        "me_benefit_caps": ("次数与名额", "How often"),
        "me_cap_year": ("每年最多 {n} 次", "At most {n} a year"),
        "me_cap_lifetime": ("终身最多 {n} 次", "At most {n} in a lifetime"),
        "me_cap_quota": ("全年名额 {n} 个", "{n} places a year"),
        "me_cap_invoice": ("需提供发票", "Needs an invoice"),
        "me_cap_none": ("不限", "No limit"),
        "me_benefit_reviewer": ("受理审核", "Reviewed by"),
        "me_no_reviewer": ("暂无受理单位", "No union reviews it for you now"),
        "me_benefit_until": ("截止日期", "Open until"),
        "me_benefit_not_open": ("您暂不符合条件：", "It is not open to you:"),
        "me_action_apply": ("立即申请", "Apply"),
        "me_action_health_check": ("预约体检", "Book a health check"),
        "me_action_loans": ("计算贴息并申请", "Work out the subsidy and apply"),
        "me_action_centres": ("预约场地", "Book a room"),
        "me_back_benefits": ("返回福利列表", "Back to benefits"),
        "me_back_home": ("返回我的卡", "Back to my card"),
        "me_level_federation": ("市总工会", "the city federation"),
        "me_level_district": ("区总工会", "the district federation"),
        "me_level_town": ("镇（街道）工会", "the town union"),
        "me_level_village": ("村（社区）工会", "the village union"),
    }
)


# ------------------------------------------------------------------ shared with the other member pages


def catalog_cache(state: State) -> catalog.CatalogCache:
    # One per app, created on first use, so each app (and each test) reads its own database's catalog.
    return state.setdefault("catalog_cache", catalog.CatalogCache())  # type: ignore[no-any-return]


def page_number(text: str | None) -> int:
    """A 1-based page number from the query; anything else is the first page."""
    return whole_number(text, 99_999) or 1


def member_page_error(request: AnyRequest, error: DomainError) -> Response[Any]:
    """Exception handler for member pages: a visitor not signed in as a member goes to sign in; anything else
    is said in the member layout (member/base.html alone renders the error)."""
    if error.code in ("unauthorized", "forbidden"):
        return Redirect(LOGIN_PATH, status_code=303)
    principal = request.scope.get("unioncard.principal")  # type: ignore[call-overload]
    context = {"member_error": alert(lang_of(request), error), "principal": principal}
    return page(request, "member/base.html", status=error.status, here=HOME, **context)


# ------------------------------------------------------------------ sign-in


def _sign_in_error(lang: str, error: DomainError) -> dict[str, Any]:
    if error.code == "member_sign_in_locked":
        minutes = math.ceil(int(error.extra.get("retry_after_s", 60)) / 60)
        return {"text": i18n.t(lang, "me_login_locked", minutes=minutes), "reasons": []}
    if "attempts_left" in error.extra:
        return {"text": i18n.t(lang, "me_login_failed_left", n=error.extra["attempts_left"]), "reasons": []}
    return alert(lang, error)


@get(LOGIN_PATH, include_in_schema=False)
async def member_login_form(request: AnyRequest) -> Response[Any]:
    principal = await resolve_principal(request)
    if principal is not None and principal.role == Role.MEMBER:
        return Redirect(HOME, status_code=303)
    return page(request, "member/login.html", card_number="")


@post(LOGIN_PATH, include_in_schema=False)
async def member_login(request: AnyRequest, state: State) -> Response[Any]:
    """Card number + PIN; a wrong PIN says how many tries are left, a locked card how long to wait."""
    form = await request.form()
    number = field(form, "card_number").replace(" ", "").replace("-", "")
    pin = field(form, "pin")
    lang = lang_of(request)
    if not (number.isascii() and number.isdigit() and 16 <= len(number) <= 19 and pin.isascii() and pin.isdigit()):
        error = {"text": i18n.t(lang, "me_login_malformed"), "reasons": []}
        return page(request, "member/login.html", status=422, card_number=number, error=error)
    ttl_s = state.settings.session_ttl_s
    try:
        async with state.pool.acquire() as conn:
            token = await member_auth.sign_in(conn, number, pin, clock.now(), ttl_s)
    except DomainError as error:
        context = {"card_number": number, "error": _sign_in_error(lang, error)}
        return page(request, "member/login.html", status=error.status, **context)
    return Redirect(HOME, status_code=303, cookies=[session_cookie(request, token, ttl_s)])


@post("/me/logout", include_in_schema=False)
async def member_logout(request: AnyRequest) -> Redirect:
    return await end_session(request, LOGIN_PATH)


# ------------------------------------------------------------------ the dynamic code


def code_of(settings: Settings, card_id: int) -> dict[str, Any]:
    """A fresh dynamic code for the card, with its QR as inline SVG and its lifetime."""
    now = clock.now()
    code, expires_at = issue_member_code(settings.secret_key, card_id, now, settings.member_code_ttl_s)
    # A fixed mask: choosing the best of eight costs ~5 ms of CPU per code, and any mask scans.
    symbol = segno.make(code, error="m", mask=QR_MASK)
    svg = symbol.svg_inline(scale=1, border=2, omitsize=True, svgclass="qr", lineclass=None)
    return {"code": code, "expires_at": expires_at, "expires_in_s": expires_at - int(now.timestamp()), "svg": svg}


def card_state(profile: dict[str, Any], today: date) -> str:
    """The card's status as the till would judge it today: an active card past its date has expired."""
    status = str(profile["card_status"] or "cancelled")
    if status == "active" and profile["expires_on"] is not None and profile["expires_on"] < today:
        return "expired"
    return status


@get("/me/code", include_in_schema=False, guards=[requires(Role.MEMBER)], media_type=MediaType.JSON)
async def member_code(principal: Principal, state: State) -> Response[dict[str, Any]]:
    """A fresh dynamic code for the member's active card (the card page refreshes with it).
    Raises DomainError card_inactive when the card may not be used."""
    assert principal.member_id is not None  # the guard admits members only
    profile = await catalog.member_profile(state.pool, principal.member_id)
    status = card_state(profile, clock.local_today(state.settings.timezone))
    if status != "active":
        raise DomainError("card_inactive", card_status=status)
    return Response(code_of(state.settings, profile["card_id"]), headers=NO_STORE)


# ------------------------------------------------------------------ the pages


def _period_starts(settings: Settings) -> tuple[datetime, datetime]:
    zone = ZoneInfo(settings.timezone)
    today = clock.now().astimezone(zone).date()
    month = datetime.combine(today.replace(day=1), time(), zone)
    return month, datetime.combine(today.replace(month=1, day=1), time(), zone)


def unmet_words(benefit: dict[str, Any], lang: str) -> list[str]:
    """Why this member may not have the benefit, in sentences."""
    joiner = ", " if lang == "en" else "、"
    values = {
        "tier": {"tiers": joiner.join(benefit["eligible_tiers"] or [])},
        "tags": {"tags": joiner.join(benefit["eligible_tags"] or [])},
        "org": {},
        "membership_months": {"n": benefit["membership_months_min"]},
    }
    return [i18n.t(lang, f"unmet_{reason}", **values[reason]) for reason in benefit["unmet"]]


def amount_words(benefit: dict[str, Any], lang: str) -> str:
    if benefit["amount_minor"]:
        return i18n.t(lang, "me_amount_fixed", yuan=format_yuan_short(benefit["amount_minor"]))
    if benefit["amount_max_minor"]:
        return i18n.t(lang, "me_amount_max", yuan=format_yuan_short(benefit["amount_max_minor"]))
    return i18n.t(lang, "me_amount_free") if benefit["kind"] == "health_check" else ""


def action_of(benefit: dict[str, Any]) -> tuple[str, str] | None:
    found = ACTIONS.get(benefit["kind"])
    return (found[0].format(code=benefit["code"]), found[1]) if found else None


class MemberPages(Controller):
    path = "/me"
    include_in_schema = False
    guards = [requires(Role.MEMBER)]
    exception_handlers = {DomainError: member_page_error}

    @get("/")
    async def card(self, request: AnyRequest, principal: Principal, state: State) -> Template:
        """The card, its dynamic code as a QR (only for a card the till takes) and what it has saved."""
        assert principal.member_id is not None
        settings = state.settings
        profile = await catalog.member_profile(state.pool, principal.member_id)
        status = card_state(profile, clock.local_today(settings.timezone))
        code = code_of(settings, profile["card_id"]) if status == "active" else None
        month, year = _period_starts(settings)
        saved = await state.pool.fetchrow(queries.savings_totals, principal.member_id, month, year)
        context = {"profile": profile, "card_status": status, "card_masked": mask_card(profile["card_number"] or "")}
        if code is not None:
            context["qr"] = Markup(code["svg"])  # noqa: S704 - segno's own SVG of our own code
        return page(request, "member/card.html", principal=principal, tab="card", code=code, saved=saved, **context)

    @get("/savings")
    async def savings(self, request: AnyRequest, principal: Principal, state: State) -> Template:
        """Month by month, then the sales one page at a time: shop, amount, discount, refunds."""
        assert principal.member_id is not None
        number = page_number(request.query_params.get("page"))
        timezone = state.settings.timezone
        months = await state.pool.fetch(queries.savings_by_month, principal.member_id, timezone, MONTHS_SHOWN)
        rows = await state.pool.fetch(
            queries.savings_sales, principal.member_id, SALES_PAGE_SIZE + 1, (number - 1) * SALES_PAGE_SIZE
        )
        sales = [{**dict(row), "time": local_time(row["occurred_at"], timezone, "%m-%d %H:%M")} for row in rows]
        context = {
            "months": months,
            "sales": sales[:SALES_PAGE_SIZE],
            "prev_href": f"/me/savings?page={number - 1}" if number > 1 else None,
            "next_href": f"/me/savings?page={number + 1}" if len(rows) > SALES_PAGE_SIZE else None,
        }
        return page(request, "member/savings.html", principal=principal, tab="card", **context)

    @get("/benefits")
    async def benefits(self, request: AnyRequest, principal: Principal, state: State) -> Template:
        """What this member may have today, by kind; `all=1` adds the rest with the reason; `kind=` filters.
        One query (the member); the catalog is cached for a few seconds per process (catalog.CatalogCache) and
        the offers' counts by the offers hook."""
        assert principal.member_id is not None
        lang, today = lang_of(request), clock.local_today(state.settings.timezone)
        kind = request.query_params.get("kind") or ""
        kind = kind if kind in (*catalog.KINDS, OFFERS_KIND) else ""
        show_all = request.query_params.get("all") == "1"
        profile = await catalog.member_profile(state.pool, principal.member_id)
        rows = []
        if kind != OFFERS_KIND:
            cached = await catalog_cache(state).rows(state.pool)
            rows = catalog.for_member(cached, profile, today)
        shown = [row for row in rows if (not kind or row["kind"] == kind) and (show_all or not row["unmet"])]
        shown.sort(key=lambda row: bool(row["unmet"]))  # stable: the catalog's order within each half
        groups: dict[str, list[dict[str, Any]]] = {}
        for row in shown:
            groups.setdefault(row["kind"], []).append(
                {**row, "reasons": unmet_words(row, lang), "amount_text": amount_words(row, lang)}
            )
        offers = None
        hook: OffersHook | None = state.get(OFFERS_HOOK)
        if hook is not None and kind in ("", OFFERS_KIND):
            offers = await hook(state, profile["tier"] or "", profile["org_path"], today, lang)
        context = {"groups": groups, "kind": kind, "show_all": show_all, "offers": offers, "kinds": catalog.KINDS}
        return page(request, "member/benefits.html", principal=principal, tab="benefits", **context)

    @get("/benefits/{code:str}")
    async def benefit(self, request: AnyRequest, principal: Principal, state: State, code: str) -> Template:
        """One benefit in the page's language: amount, who may have it, caps, who reviews it now, and the way
        to take it up. Raises DomainError benefit_not_found (a 404 page)."""
        assert principal.member_id is not None
        lang, today = lang_of(request), clock.local_today(state.settings.timezone)
        profile = await catalog.member_profile(state.pool, principal.member_id)
        benefit = await catalog.benefit_for_member(state.pool, principal.member_id, code, today, profile=profile)
        try:
            reviewer = await catalog.reviewing_org(state.pool, benefit["id"], profile["org_id"], today)
        except DomainError:
            reviewer = None
        orgs = await state.pool.fetch(queries.org_names, benefit["eligible_org_ids"] or [])
        context = {
            "benefit": {**benefit, "reasons": unmet_words(benefit, lang), "amount_text": amount_words(benefit, lang)},
            "reviewer": reviewer,
            "org_names": [row["name"] for row in orgs],
            "action": action_of(benefit),
        }
        return page(request, "member/benefit.html", principal=principal, tab="benefits", **context)


def member_page_routes() -> list[Any]:
    return [member_login_form, member_login, member_logout, member_code, MemberPages]
