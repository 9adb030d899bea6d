"""Health-check pages: the member books a slot on a phone (hold, confirm within minutes, cancel), and the
clinic's staff mark who came, slot by slot."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import asyncpg
from litestar import Controller, Response, get, post
from litestar.datastructures import State
from litestar.response import Redirect, Template

from cards import catalog, health_check_figures, health_check_staff, health_checks
from cards.health_check_api import HealthCheckAdminController, HealthCheckController, Id
from cards.health_check_figures import Slot
from cards.health_check_staff import MARKERS
from cards.health_checks import DEFAULT_CODE
from cards.member_pages import member_page_error, unmet_words
from unioncard import clock, i18n
from unioncard.auth import Principal, Role, requires
from unioncard.errors import DomainError
from unioncard.pages import AnyRequest, alert, field, lang_of, page, staff_page_error, whole_number

MEMBER_PATH = "/me/health-checks"
STAFF_PATH = "/staff/health-checks"
STAFF_HOME = "/staff"
DONE = ("booked", "cancelled", "attended", "no_show")
WEEKDAYS = {"zh-CN": "一二三四五六日", "en": ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")}
MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

i18n.extend(
    {
        "hc_title": ("健康体检预约", "Health-check booking"),
        "hc_intro": (
            "会员每年可免费体检一次。选择体检机构和时段，保留名额后请在 {hold} 内确认。",
            "Members have a free health check once a year. Choose a clinic and a time, then confirm the "
            "place within {hold}.",
        ),
        "hc_minutes": ("{n} 分钟", "{n} minutes"),
        "hc_seconds": ("{n} 秒", "{n} seconds"),
        "hc_places_year": ("今年剩余名额", "Places left this year"),
        "hc_places_of": ("共 {n} 个", "of {n}"),
        "hc_places_town": ("{town}剩余", "Left in {town}"),
        "hc_places_unlimited": ("不限", "No cap"),
        "hc_quota_gone": (
            "今年的体检名额已约满，明年再来吧。",
            "This year's places are all taken: come back next year.",
        ),
        "hc_town_quota_gone": (
            "{town}今年的名额已约满。",
            "The places of {town} this year are all taken.",
        ),
        "hc_not_open": ("您暂不符合预约条件：", "Booking is not open to you:"),
        "hc_choose": ("选择体检机构和时段", "Choose a clinic and a time"),
        "hc_my_town": ("本镇", "Your town"),
        "hc_free": ("余 {n}", "{n} free"),
        "hc_next_free": ("最近可约：{day}", "Next free: {day}"),
        "hc_no_slots": (
            "近期没有可预约的时段，请过几天再来看看。",
            "No free slot in the coming weeks: look again in a few days.",
        ),
        "hc_held_title": ("名额已为您保留", "Your place is held"),
        "hc_held_left": ("请在倒计时结束前确认", "Confirm before the countdown ends"),
        "hc_held_gone": (
            "保留时间已过，名额已释放。请重新选择时段。",
            "The hold has run out and the place is free again. Choose a time again.",
        ),
        "hc_reload": ("重新选择", "Choose again"),
        "hc_confirm": ("确认预约", "Confirm the booking"),
        "hc_release": ("不约了，释放名额", "Let the place go"),
        "hc_booked_title": ("我的体检预约", "Your health check"),
        "hc_booked_note": (
            "请带上身份证和会员卡，体检当天早上空腹前往。",
            "Bring your ID card and union card, and do not eat breakfast that morning.",
        ),
        "hc_cancel": ("取消预约", "Cancel the booking"),
        "hc_cancel_ask": ("确定取消这次体检预约吗？", "Cancel this health-check booking?"),
        "hc_attended_title": ("今年的体检已完成", "Your health check this year is done"),
        "hc_done_booked": ("预约成功！", "Booked!"),
        "hc_done_cancelled": ("已取消，名额已释放。", "Cancelled: the place is free again."),
        "hc_when": ("时间", "When"),
        "hc_where": ("地点", "Where"),
        "hc_history": ("今年的预约记录", "Your bookings this year"),
        "hc_status_held": ("保留中", "Held"),
        "hc_status_booked": ("已预约", "Booked"),
        "hc_status_attended": ("已体检", "Attended"),
        "hc_status_no_show": ("未到检", "Did not come"),
        "hc_status_cancelled": ("已取消", "Cancelled"),
        "hc_status_expired": ("保留已过期", "Hold ran out"),
        # the clinic's staff
        "hc_staff_title": ("体检到检登记", "Health checks: attendance"),
        "hc_year_figures": ("{year} 年名额", "Places in {year}"),
        "hc_fig_places": ("全年名额", "Places"),
        "hc_fig_left": ("剩余", "Left"),
        "hc_fig_held": ("保留中", "Held"),
        "hc_fig_booked": ("已预约", "Booked"),
        "hc_fig_attended": ("已体检", "Attended"),
        "hc_fig_no_show": ("未到检", "No-shows"),
        "hc_fig_cancelled": ("已取消", "Cancelled"),
        "hc_town": ("镇（街道）", "Town"),
        "hc_town_share": ("分配名额", "Share"),
        "hc_town_used": ("已占用", "Taken"),
        "hc_clinics": ("体检机构", "Clinics"),
        "hc_no_clinics": ("您的范围内没有体检机构。", "No clinic in your part of the tree."),
        "hc_open_day": ("今日名单", "Today's list"),
        "hc_day_title": ("{clinic} · {day}", "{clinic} · {day}"),
        "hc_prev_day": ("前一天", "Previous day"),
        "hc_next_day": ("后一天", "Next day"),
        "hc_today": ("今天", "Today"),
        "hc_show_day": ("查看", "Show"),
        "hc_slot_empty": ("无人预约", "Nobody booked"),
        "hc_no_slots_day": ("这一天没有体检时段。", "No slots on this day."),
        "hc_member": ("会员", "Member"),
        "hc_id_last4": ("身份证后四位", "ID, last 4"),
        "hc_card_last4": ("卡号后四位", "Card, last 4"),
        "hc_mark_attended": ("已到检", "Came"),
        "hc_mark_no_show": ("未到", "Did not come"),
        "hc_marked_attended": ("已登记到检。", "Marked as came."),
        "hc_marked_no_show": ("已登记未到，名额已释放。", "Marked as not come: the place is free again."),
        "hc_back_clinics": ("返回体检机构列表", "Back to the clinics"),
        "hc_capacity": ("{n} 人", "{n} places"),
        "hc_fig_share": ("本辖区分配名额", "Your towns' shares"),
        "hc_places_shared": ("与全区共用", "Shared with the district"),
        "hc_forbidden": ("这家体检机构不在您的范围内。", "This clinic is not in your part of the tree."),
        "hc_forbidden_role": (
            "体检到检登记仅供审核人员和管理员使用。",
            "Health-check attendance is for reviewers and administrators.",
        ),
    }
)


def when_words(starts_at: datetime, ends_at: datetime, lang: str, timezone: str) -> dict[str, str]:
    """A slot's day and hours in the page's language and the union's time zone."""
    zone = ZoneInfo(timezone)
    start, end = starts_at.astimezone(zone), ends_at.astimezone(zone)
    weekday = WEEKDAYS["en" if lang == "en" else "zh-CN"][start.weekday()]
    if lang == "en":
        day = f"{weekday} {start.day} {MONTHS_EN[start.month - 1]}"
    else:
        day = f"{start.month}月{start.day}日 周{weekday}"
    return {"day": day, "hours": f"{start:%H:%M}–{end:%H:%M}"}


def by_day(slots: list[Slot], lang: str, timezone: str) -> list[tuple[str, list[Slot]]]:
    """Slots grouped by their local day, in order, each day named in the page's language."""
    days: dict[str, list[Slot]] = {}
    for slot in slots:
        days.setdefault(when_words(slot.starts_at, slot.ends_at, lang, timezone)["day"], []).append(slot)
    return list(days.items())


def hold_words(lang: str, seconds: int) -> str:
    """How long a hold lasts, in minutes (or seconds, when shortened for a test)."""
    if seconds % 60:
        return i18n.t(lang, "hc_seconds", n=seconds)
    return i18n.t(lang, "hc_minutes", n=seconds // 60)


# ------------------------------------------------------------------ the member

# One step of the member's booking on their own connection: (conn, member id, now).
Step = Callable[[asyncpg.Connection, int, datetime], Awaitable[Any]]


class MemberHealthCheckPages(Controller):
    path = MEMBER_PATH
    include_in_schema = False
    guards = [requires(Role.MEMBER)]
    exception_handlers = {DomainError: member_page_error}

    @get("/")
    async def show(self, request: AnyRequest, principal: Principal, state: State) -> Template:
        """Places left, the member's booking (with the hold's countdown), and free slots to choose from."""
        done = request.query_params.get("done")
        return await self._render(request, principal, state, done=done if done in DONE else None)

    @post("/hold")
    async def hold(self, request: AnyRequest, principal: Principal, state: State) -> Response[Any]:
        slot_id = whole_number(field(await request.form(), "slot_id"))
        settings = state.settings

        async def step(conn: asyncpg.Connection, member_id: int, now: datetime) -> Any:
            if slot_id is None:
                raise DomainError("health_check_slot_not_found")
            return await health_checks.hold(conn, member_id, slot_id, now, hold_s=settings.health_check_hold_s,
                                            timezone=settings.timezone)  # fmt: skip

        return await self._step(request, principal, state, step)

    @post("/{booking_id:int}/confirm")
    async def confirm(self, request: AnyRequest, principal: Principal, state: State, booking_id: Id) -> Response[Any]:
        async def step(conn: asyncpg.Connection, member_id: int, now: datetime) -> Any:
            return await health_checks.confirm(conn, member_id, booking_id, now)

        return await self._step(request, principal, state, step, "booked")

    @post("/{booking_id:int}/cancel")
    async def cancel(self, request: AnyRequest, principal: Principal, state: State, booking_id: Id) -> Response[Any]:
        async def step(conn: asyncpg.Connection, member_id: int, now: datetime) -> Any:
            return await health_checks.cancel(conn, member_id, booking_id, now)

        return await self._step(request, principal, state, step, "cancelled")

    async def _step(
        self, request: AnyRequest, principal: Principal, state: State, step: Step, done: str = ""
    ) -> Response[Any]:
        """One step of the booking, then back to the page (POST-redirect-GET); a refusal is said on the page."""
        assert principal.member_id is not None
        try:
            async with state.pool.acquire() as conn:
                await step(conn, principal.member_id, clock.now())
        except DomainError as error:
            if error.code in ("unauthorized", "forbidden"):
                raise
            shown = alert(lang_of(request), error)
            return await self._render(request, principal, state, error=shown, status=error.status)
        return Redirect(f"{MEMBER_PATH}?done={done}" if done else MEMBER_PATH, status_code=303)

    async def _render(
        self, request: AnyRequest, principal: Principal, state: State, status: int = 200, **context: Any
    ) -> Template:
        assert principal.member_id is not None
        lang, settings = lang_of(request), state.settings
        timezone = settings.timezone
        code = request.query_params.get("benefit") or DEFAULT_CODE
        now = clock.now()
        async with state.pool.acquire() as conn:
            view = await health_check_figures.member_view(
                conn, principal.member_id, now, timezone=timezone, hold_s=settings.health_check_hold_s, code=code
            )
            reasons = []
            if view.unmet:
                benefit = await catalog.benefit_for_member(
                    conn, principal.member_id, code, clock.local_date(now, timezone)
                )
                reasons = unmet_words(benefit, lang)
        return page(
            request, "member/health_checks.html", status=status, here=MEMBER_PATH, principal=principal,
            tab="benefits", view=view, reasons=reasons, hold_words=hold_words(lang, view.hold_s),
            when=lambda b: when_words(b.starts_at, b.ends_at, lang, timezone),
            by_day=lambda slots: by_day(slots, lang, timezone), **context,
        )  # fmt: skip


# ------------------------------------------------------------------ the clinic's staff


class StaffHealthCheckPages(Controller):
    path = STAFF_PATH
    include_in_schema = False
    guards = [requires(Role.FEDERATION_ADMIN, Role.ORG_REVIEWER)]
    exception_handlers = {
        DomainError: staff_page_error(STAFF_HOME, MARKERS, "hc_forbidden", "hc_forbidden_role", here=STAFF_PATH)
    }

    @get("/")
    async def overview(self, request: AnyRequest, principal: Principal, state: State) -> Template:
        """This year's figures in the staff member's scope, and their clinics."""
        now = clock.now()
        year = clock.local_date(now, state.settings.timezone).year
        code = request.query_params.get("benefit") or DEFAULT_CODE
        figures = await health_check_figures.year_figures(state.pool, principal, code, year, now)
        clinics = await health_check_staff.clinics_for(state.pool, principal)
        return page(request, "review/hc_overview.html", principal=principal, figures=figures, clinics=clinics)

    @get("/clinics/{clinic_id:int}")
    async def clinic(self, request: AnyRequest, principal: Principal, state: State, clinic_id: Id) -> Template:
        """One clinic's day, slot by slot, with a button for each booked member: came, or did not."""
        done = request.query_params.get("done")
        return await self._day(request, principal, state, clinic_id, done=done if done in DONE else None)

    @post("/bookings/{booking_id:int}/{outcome:str}")
    async def mark(
        self, request: AnyRequest, principal: Principal, state: State, booking_id: Id, outcome: str
    ) -> Response[Any]:
        form = await request.form()
        clinic_id, day = whole_number(field(form, "clinic_id")), field(form, "day")
        outcome = outcome.replace("-", "_")
        try:
            async with state.pool.acquire() as conn:
                await health_check_staff.mark(
                    conn, principal, booking_id, outcome, clock.now(), state.settings.timezone
                )
        except DomainError as error:
            if error.code in ("unauthorized", "forbidden") or clinic_id is None:
                raise
            shown = alert(lang_of(request), error)
            return await self._day(request, principal, state, clinic_id, error=shown, status=error.status, day=day)
        if clinic_id is None:
            return Redirect(STAFF_PATH, status_code=303)
        query = urlencode({"day": day, "done": outcome})
        return Redirect(f"{STAFF_PATH}/clinics/{clinic_id}?{query}", status_code=303)

    async def _day(
        self,
        request: AnyRequest,
        principal: Principal,
        state: State,
        clinic_id: int,
        status: int = 200,
        day: str | None = None,
        **context: Any,
    ) -> Template:
        timezone, now = state.settings.timezone, clock.now()
        today = clock.local_date(now, timezone)
        chosen = day_of(day if day is not None else request.query_params.get("day"), today)
        code = request.query_params.get("benefit") or DEFAULT_CODE
        found = await health_check_staff.clinic_day(state.pool, principal, clinic_id, code, chosen, now)
        lang = lang_of(request)
        return page(
            request, "review/hc_clinic.html", status=status, here=f"{STAFF_PATH}/clinics/{clinic_id}",
            principal=principal, found=found, day=chosen, today=today,
            prev_day=chosen - timedelta(days=1), next_day=chosen + timedelta(days=1),
            when=lambda s: when_words(s["starts_at"], s["ends_at"], lang, timezone), **context,
        )  # fmt: skip


def day_of(text: str | None, today: date) -> date:
    """The day a query or form names (YYYY-MM-DD, years 2000 to 2999), else today."""
    try:
        chosen = date.fromisoformat(text) if text and text.isascii() else today
    except ValueError:
        return today
    return chosen if 2000 <= chosen.year <= 2999 else today


def health_check_routes() -> list[Any]:
    """The health-check API and pages, for app.py."""
    return [HealthCheckController, HealthCheckAdminController, MemberHealthCheckPages, StaffHealthCheckPages]
