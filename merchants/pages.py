"""The web till for merchants without a POS, and staff sign-in: server-rendered forms."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import msgspec
from litestar import Controller, Response, get, post
from litestar.datastructures import State
from litestar.response import Redirect, Template

from cards.repository import queries as card_queries
from merchants import till
from merchants.model import QuoteIn, RedeemIn, RefundIn
from merchants.repository import queries
from unioncard import i18n, staff
from unioncard.auth import (
    STAFF_ROLES,
    Principal,
    Role,
    principal_for_session,
    principal_for_terminal_key,
    requires,
    resolve_principal,
)
from unioncard.errors import DomainError
from unioncard.ids import card_number_valid, hash_secret, new_secret
from unioncard.money import AMOUNT_MINOR_MAX, format_yuan, parse_yuan
from unioncard.pages import (
    AnyRequest,
    FormError,
    alert,
    end_session,
    field,
    lang_of,
    local_time,
    new_key,
    page,
    page_error,
    session_cookie,
    status_of,
    throttle_of,
)

RECENT_SALES = 20
# Where each role's work is: a merchant's back office, finance's console; the others' staff home.
HOME_BY_ROLE = {
    Role.MERCHANT_ADMIN: "/merchant/",
    Role.FINANCE_OFFICER: "/finance/",
    Role.ORG_REVIEWER: "/review/",
    Role.FEDERATION_ADMIN: "/federation/",
}


def sale_status(amount_minor: int, remaining_minor: int) -> str:
    if remaining_minor == amount_minor:
        return "recorded"
    return "refunded" if remaining_minor == 0 else "partially_refunded"


def sale_rows(records: Iterable[Any], timezone: str) -> list[dict[str, Any]]:
    return [
        {
            **dict(record),
            "id": str(record["id"]),
            "time": local_time(record["occurred_at"], timezone, "%m-%d %H:%M"),  # short: the list is recent
            "status": sale_status(record["amount_minor"], record["remaining_minor"]),
            "refund_key": new_key(),
        }
        for record in records
    ]


# ------------------------------------------------------------------ form input


def card_fields(text: str) -> tuple[str | None, str | None]:
    """(card number, None) or (None, member code), judged by the shape of what was typed or scanned."""
    if text.upper().startswith("MC1-"):
        return None, text
    digits = text.replace(" ", "").replace("-", "")
    if not (digits.isascii() and digits.isdigit() and 16 <= len(digits) <= 19):
        raise FormError("card_input_invalid")
    if not card_number_valid(digits):
        raise FormError("card_number_invalid")
    return digits, None


def amount_minor(text: str) -> int:
    """Yuan as typed ("123.45") to fen, exactly. Raises FormError."""
    try:
        amount = parse_yuan(text)
    except ValueError:
        raise FormError("amount_invalid") from None
    if amount <= 0:
        raise FormError("amount_not_positive")
    if amount > AMOUNT_MINOR_MAX:
        raise FormError("amount_too_large")
    return amount


# ------------------------------------------------------------------ sessions


async def open_terminal_session(state: State, key: str) -> str:
    """A session token for a working terminal key. Raises FormError."""
    principal = None
    if key.startswith("uct_"):
        principal = await principal_for_terminal_key(state.pool, state.terminal_cache, key)
    if principal is None:
        raise FormError("bad_terminal_key")
    token = new_secret("ucs")
    ttl_s = state.settings.session_ttl_s
    await state.pool.execute(queries.terminal_sign_in, hash_secret(token), principal.terminal_id, float(ttl_s))
    if await principal_for_session(state.pool, token) is None:  # a suspended terminal: known, but may not sell
        await state.pool.execute(queries.session_delete, hash_secret(token))
        raise FormError("terminal_not_active")
    return token


# ------------------------------------------------------------------ the till


@get("/till/login", include_in_schema=False)
async def till_login_form(request: AnyRequest) -> Response[Any]:
    principal = await resolve_principal(request)
    if principal is not None and principal.role == Role.TERMINAL:
        return Redirect("/till", status_code=303)
    return page(request, "till/login.html")


@post("/till/login", include_in_schema=False)
async def till_login(request: AnyRequest, state: State) -> Response[Any]:
    form = await request.form()
    try:
        token = await open_terminal_session(state, field(form, "key"))
    except FormError as error:
        return page(request, "till/login.html", status=401, error=alert(lang_of(request), error))
    return Redirect("/till", status_code=303, cookies=[session_cookie(request, token, state.settings.session_ttl_s)])


@post("/till/logout", include_in_schema=False)
async def till_logout(request: AnyRequest) -> Redirect:
    return await end_session(request, "/till/login")


async def till_page(
    request: AnyRequest, principal: Principal, state: State, error: Exception | None = None, **context: Any
) -> Template:
    """The till: the sale form, a quote when there is one, and the shop's recent sales."""
    rows = await state.pool.fetch(queries.recent_redemptions, principal.merchant_id, RECENT_SALES)
    merchant = await state.pool.fetchrow(queries.merchant_list, principal.merchant_id, None, 0, 1)
    return page(
        request,
        "till/index.html",
        status=status_of(error) if error else 200,
        here="/till",
        principal=principal,
        merchant_name=merchant["name"] if merchant else "",
        sales=sale_rows(rows, state.settings.timezone),
        error=alert(lang_of(request), error) if error else None,
        **context,
    )


async def sale_page(
    request: AnyRequest, principal: Principal, state: State, redemption_id: str, **context: Any
) -> Template:
    """One sale with its refunds. Raises DomainError redemption_not_found."""
    sale = msgspec.json.decode(await till.get_redemption(state.pool, principal, redemption_id))
    timezone = state.settings.timezone
    sale["time"] = local_time(sale["occurred_at"], timezone)
    for refund in sale["refunds"]:
        refund["time"] = local_time(refund["created_at"], timezone)
    here = f"/till/sales/{sale['id']}"
    return page(request, "till/sale.html", here=here, principal=principal, sale=sale, refund_key=new_key(), **context)


class TillPages(Controller):
    path = "/till"
    include_in_schema = False
    guards = [requires(Role.TERMINAL)]
    exception_handlers = {DomainError: page_error("/till/login", "/till")}

    @get("/")
    async def index(self, request: AnyRequest, principal: Principal, state: State) -> Template:
        return await till_page(request, principal, state)

    @post("/quote", status_code=200)
    async def quote(self, request: AnyRequest, principal: Principal, state: State) -> Template:
        """Show the discount; nothing is recorded. The confirm form carries a fresh idempotency key."""
        form = await request.form()
        entry = {"card": field(form, "card"), "amount": field(form, "amount")}
        try:
            card, code = card_fields(entry["card"])
            amount = amount_minor(entry["amount"])
            body = QuoteIn(amount=amount, currency=state.settings.currency, card=card, member_code=code)
            found = await till.quote_discount(state.pool, principal, body, state.settings.secret_key)
        except (FormError, DomainError) as error:
            return await till_page(request, principal, state, error, entry=entry)
        quote = msgspec.json.decode(found)
        quote["reasons"] = [i18n.reason_text(lang_of(request), reason) for reason in quote["reasons"]]
        # The confirm form carries the input as the quote understood it, so the sale is the one quoted.
        entry = {"card": card or code or "", "amount": format_yuan(body.amount)}
        return await till_page(request, principal, state, entry=entry, quote=quote, key=new_key())

    @post("/sales")
    async def sell(self, request: AnyRequest, principal: Principal, state: State) -> Response[Any]:
        """Record the sale; a double click or a resubmit carries the same key and replays the same sale."""
        form = await request.form()
        entry = {"card": field(form, "card"), "amount": field(form, "amount")}
        try:
            card, code = card_fields(entry["card"])
            amount = amount_minor(entry["amount"])
            body = RedeemIn(amount=amount, currency=state.settings.currency, card=card, member_code=code)
            found, _ = await till.redeem(
                state.pool, principal, body, field(form, "idempotency_key"), state.settings.secret_key
            )
        except (FormError, DomainError) as error:
            return await till_page(request, principal, state, error, entry=entry)
        return Redirect(f"/till/sales/{msgspec.json.decode(found)['id']}?done=sale", status_code=303)

    @get("/sales/{redemption_id:str}")
    async def sale(
        self, request: AnyRequest, principal: Principal, state: State, redemption_id: str, done: str = ""
    ) -> Template:
        return await sale_page(request, principal, state, redemption_id, done=done)

    @post("/sales/{redemption_id:str}/refunds")
    async def refund(
        self, request: AnyRequest, principal: Principal, state: State, redemption_id: str
    ) -> Response[Any]:
        """Refund all that remains, or the amount typed; the form's key makes a resubmit harmless."""
        form = await request.form()
        typed = field(form, "amount")
        try:
            body = RefundIn(amount=amount_minor(typed) if typed else None)
            found, _ = await till.refund(state.pool, principal, redemption_id, body, field(form, "idempotency_key"))
        except (FormError, DomainError) as error:
            context = {"error": alert(lang_of(request), error), "refund_amount": typed}
            response = await sale_page(request, principal, state, redemption_id, **context)
            response.status_code = status_of(error)
            return response
        return Redirect(f"/till/sales/{msgspec.json.decode(found)['id']}?done=refund", status_code=303)


# ------------------------------------------------------------------ staff


@get("/login", include_in_schema=False)
async def staff_login_form(request: AnyRequest) -> Response[Any]:
    principal = await resolve_principal(request)
    if principal is not None and principal.role in STAFF_ROLES:
        return Redirect(HOME_BY_ROLE.get(principal.role, "/staff"), status_code=303)
    return page(request, "staff/login.html", email="", home="/login")


@post("/login", include_in_schema=False)
async def staff_login(request: AnyRequest, state: State) -> Response[Any]:
    form = await request.form()
    email, password = field(form, "email"), str(form.get("password") or "")
    lang, throttle = lang_of(request), throttle_of(request.app.state)
    wait_s = throttle.retry_after_s(email)
    if wait_s > 0:
        error = {"text": i18n.t(lang, "too_many_attempts", minutes=math.ceil(wait_s / 60)), "reasons": []}
        return page(request, "staff/login.html", status=429, email=email, error=error, home="/login")
    async with state.pool.acquire() as conn:
        signed_in = await staff.sign_in(conn, email, password, state.settings.session_ttl_s)
    if signed_in is None:
        throttle.failed(email)
        error = {"text": i18n.t(lang, "bad_password"), "reasons": []}
        return page(request, "staff/login.html", status=401, email=email, error=error, home="/login")
    throttle.succeeded(email)
    token, role = signed_in
    cookie = session_cookie(request, token, state.settings.session_ttl_s)
    return Redirect(HOME_BY_ROLE.get(role, "/staff"), status_code=303, cookies=[cookie])


@post("/logout", include_in_schema=False)
async def staff_logout(request: AnyRequest) -> Redirect:
    return await end_session(request, "/login")


async def scope_name(state: State, principal: Principal, lang: str) -> str:
    """Where a staff member's reach ends: everything, their org, or their merchant."""
    if principal.role == Role.MERCHANT_ADMIN:
        row = await state.pool.fetchrow(queries.merchant_list, principal.merchant_id, None, 0, 1)
        return str(row["name"]) if row else ""
    if principal.role == Role.ORG_REVIEWER:
        row = await state.pool.fetchrow(card_queries.org_list, principal.org_path, 1)
        return str(row["name"]) if row else ""
    return i18n.t(lang, "scope_all")


class StaffPages(Controller):
    path = "/staff"
    include_in_schema = False
    guards = [requires(*STAFF_ROLES)]
    exception_handlers = {DomainError: page_error("/login", "/staff")}

    @get("/")
    async def home(self, request: AnyRequest, principal: Principal, state: State) -> Template:
        """Who is signed in, their scope, and for a merchant admin that merchant's sales only."""
        sales: list[dict[str, Any]] = []
        if principal.role == Role.MERCHANT_ADMIN and principal.merchant_id is not None:
            rows = await state.pool.fetch(queries.recent_redemptions, principal.merchant_id, RECENT_SALES)
            sales = sale_rows(rows, state.settings.timezone)
        scope = await scope_name(state, principal, lang_of(request))
        return page(request, "staff/home.html", principal=principal, scope=scope, sales=sales)


def till_page_routes() -> list[Any]:
    return [
        till_login_form,
        till_login,
        till_logout,
        TillPages,
        staff_login_form,
        staff_login,
        staff_logout,
        StaffPages,
    ]
