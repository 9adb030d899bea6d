"""What every server-rendered page shares: rendering in the request's language, form fields, sessions,
friendly error pages and the sign-in throttle. Each domain's pages build on this."""

from __future__ import annotations

import time
import uuid
from collections import deque
from collections.abc import Collection
from datetime import datetime
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from litestar import Request, Response
from litestar.datastructures import Cookie, State
from litestar.response import Redirect, Template

from unioncard import i18n
from unioncard.auth import SESSION_COOKIE, Principal
from unioncard.errors import DomainError
from unioncard.ids import hash_secret
from unioncard.money import format_yuan_grouped

AnyRequest = Request[Any, Any, Any]
# Card numbers and receipts must not linger in the browser's cache or history.
NO_STORE = {"Cache-Control": "no-store"}
LANG_COOKIE_AGE_S = 365 * 24 * 3600
_SESSION_DELETE = "DELETE FROM sessions WHERE token_hash = $1"


class FormError(Exception):
    """A field the assistant must correct; `key` names its sentence in unioncard.i18n."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


# ------------------------------------------------------------------ rendering


def lang_of(request: AnyRequest) -> str:
    return i18n.lang_of(request.query_params.get("lang"), request.cookies.get(i18n.LANG_COOKIE))


def page(request: AnyRequest, template: str, *, status: int = 200, here: str | None = None, **context: Any) -> Template:
    """A page in the request's language, with the switch link pointing at `here` (a GET path).

    On the page asked for, the switch keeps the query (the period, the filters); elsewhere it starts afresh.
    """
    lang = lang_of(request)
    other = "zh-CN" if lang == "en" else "en"
    context.update(lang=lang, t=i18n.translator(lang), yuan=format_yuan_grouped)  # files keep format_yuan
    path = here or request.url.path
    kept = [(k, v) for k, v in request.query_params.multi_items() if k != "lang"] if path == request.url.path else []
    context["switch_href"] = f"{path}?{urlencode([*kept, ('lang', other)])}"
    cookies = []
    if "lang" in request.query_params:
        cookies.append(Cookie(key=i18n.LANG_COOKIE, value=lang, max_age=LANG_COOKIE_AGE_S, samesite="lax"))
    return Template(template_name=template, context=context, status_code=status, headers=NO_STORE, cookies=cookies)


def alert(lang: str, error: Exception) -> dict[str, Any]:
    """What the page says about a failed step: a sentence and, for not_eligible, the reasons."""
    if isinstance(error, FormError):
        return {"text": i18n.t(lang, error.key), "reasons": []}
    if not isinstance(error, DomainError):
        raise error
    reasons = [i18n.reason_text(lang, reason) for reason in error.extra.get("reasons", [])]
    return {"text": i18n.error_text(lang, error), "reasons": reasons}


def status_of(error: Exception) -> int:
    return error.status if isinstance(error, DomainError) else 422


def local_time(value: datetime | str, timezone: str, pattern: str = "%Y-%m-%d %H:%M:%S") -> str:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.astimezone(ZoneInfo(timezone)).strftime(pattern)


def new_key() -> str:
    """An idempotency key minted with the form, so resubmitting the form replays, never repeats."""
    return f"web-{uuid.uuid4()}"


# ------------------------------------------------------------------ form input


def whole_number(text: str | None, maximum: int = 2**63 - 1) -> int | None:
    """A whole number typed or put in a query (ASCII digits only, at most `maximum`), else None.

    str.isdigit() alone accepts '²' and full-width digits, which int() then refuses or reads.
    """
    text = (text or "").strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 19:
        return None
    number = int(text)
    return number if number <= maximum else None


def field(form: Any, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


# ------------------------------------------------------------------ sessions


def session_cookie(request: AnyRequest, token: str, ttl_s: int) -> Cookie:
    return Cookie(
        key=SESSION_COOKIE,
        value=token,
        max_age=ttl_s,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


async def end_session(request: AnyRequest, path: str) -> Redirect:
    """Delete the session row (not just the cookie), then go to `path`."""
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        await request.app.state.pool.execute(_SESSION_DELETE, hash_secret(token))
    response = Redirect(path, status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


def page_error(login_path: str, home: str) -> Any:
    """An exception handler for a page controller: sign-in problems redirect, the rest is a friendly page."""

    def handle(request: AnyRequest, error: DomainError) -> Response[Any]:
        if error.code in ("unauthorized", "forbidden"):
            return Redirect(login_path, status_code=303)
        context = {"error": alert(lang_of(request), error), "back": home}
        return page(request, "error.html", status=error.status, here=home, **context)

    return handle


def staff_page_error(home: str, roles: Collection[str], forbidden: str, forbidden_role: str, here: str = "") -> Any:
    """An exception handler for a staff page controller. Not signed in: to /login. Forbidden: a 403 page saying
    `forbidden` to a staff member of one of `roles` (out of their part of the tree), else `forbidden_role`.
    The rest: a friendly page. `here` (default `home`) is where the language switch points."""

    def handle(request: AnyRequest, error: DomainError) -> Response[Any]:
        if error.code == "unauthorized":
            return Redirect("/login", status_code=303)
        lang = lang_of(request)
        principal: Principal | None = request.scope.get("unioncard.principal")  # type: ignore[call-overload]
        text = i18n.error_text(lang, error)
        if error.code == "forbidden":
            text = i18n.t(lang, forbidden if principal is not None and principal.role in roles else forbidden_role)
        context = {"error": {"text": text, "reasons": []}, "back": home, "principal": principal}
        return page(request, "error.html", status=error.status, here=here or home, **context)

    return handle


# ------------------------------------------------------------------ sign-in throttle


class SignInThrottle:
    """Failed sign-ins per account (staff email, member card) within a window, kept in this process's memory.

    Each server process counts on its own and forgets on restart, so with N workers an attacker
    gets at most 5·N guesses per 15 minutes per email; argon2 makes every guess slow as well.
    """

    def __init__(self, attempts_max: int = 5, window_s: float = 15 * 60, emails_max: int = 100_000) -> None:
        self.attempts_max = attempts_max
        self.window_s = window_s
        self.emails_max = emails_max
        self._failures: dict[str, deque[float]] = {}

    def retry_after_s(self, email: str) -> float:
        """0 when a sign-in may be tried now, else the seconds until the oldest failure ages out."""
        failures = self._recent(email.lower())
        if len(failures) < self.attempts_max:
            return 0.0
        return failures[0] + self.window_s - time.monotonic()

    def failed(self, email: str) -> None:
        if len(self._failures) >= self.emails_max:
            for stale in [key for key in self._failures if not self._recent(key)]:
                del self._failures[stale]
        self._failures.setdefault(email.lower(), deque(maxlen=self.attempts_max)).append(time.monotonic())

    def succeeded(self, email: str) -> None:
        self._failures.pop(email.lower(), None)

    def _recent(self, email: str) -> deque[float]:
        failures = self._failures.get(email, deque())
        while failures and failures[0] < time.monotonic() - self.window_s:
            failures.popleft()
        return failures


def throttle_of(state: State) -> SignInThrottle:
    # One per app, created on first use, so each app (and each test) starts from a clean count.
    return state.setdefault("sign_in_throttle", SignInThrottle())  # type: ignore[no-any-return]
