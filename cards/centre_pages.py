"""The member's service-centre page: the nearest centre, its rooms' free hours on a day, book and cancel."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from litestar import Controller, Response, get, post
from litestar.datastructures import State
from litestar.response import Redirect, Template

from cards import centres
from cards.centres import BookingIn
from cards.loan_pages import page_alert
from cards.member_pages import member_page_error
from unioncard import clock, i18n
from unioncard.auth import Principal, Role, requires
from unioncard.errors import DomainError
from unioncard.pages import AnyRequest, FormError, field, lang_of, local_time, new_key, page, status_of, whole_number

i18n.extend(
    {
        "centre_title": ("职工服务中心", "Worker service centres"),
        "centre_nearest": ("离您最近", "Nearest to you"),
        "centre_others": ("其他服务中心（{n}）", "Other centres ({n})"),
        "centre_km": ("{km} 公里", "{km} km"),
        "centre_hours": ("开放时间 {opens}–{closes}", "Open {opens}–{closes}"),
        "centre_none": ("暂无开放的服务中心。", "No service centre is open at present."),
        "centre_kind_training": ("培训室", "Training room"),
        "centre_kind_activity": ("活动室", "Activity room"),
        "centre_kind_library": ("职工书屋", "Workers' library"),
        "centre_kind_mediation": ("调解室", "Mediation room"),
        "centre_capacity": ("可容纳 {n} 人", "Holds {n}"),
        "centre_day": ("日期", "Day"),
        "centre_prev_day": ("前一天", "Previous day"),
        "centre_next_day": ("后一天", "Next day"),
        "centre_show_day": ("查看", "Show"),
        "centre_pick_slot": ("选择开始时间", "Pick a start time"),
        "centre_free": ("可预约", "Free"),
        "centre_taken": ("已约满", "Taken"),
        "centre_mine": ("我的预约", "Mine"),
        "centre_no_slots": ("当天没有可预约的时段", "No hours to book that day"),
        "centre_hours_count": ("时长（小时）", "Hours"),
        "centre_purpose": ("用途", "What for"),
        "centre_purpose_hint": ("如：技能培训、读书会、劳动争议调解", "e.g. skills class, book club, mediation"),
        "centre_headcount": ("人数", "People"),
        "centre_people": ("{n} 人", "{n} people"),
        "centre_book": ("预约", "Book"),
        "centre_booked": ("预约成功。", "Booked."),
        "centre_cancelled": ("预约已取消，时段已释放。", "Cancelled: the hours are free again."),
        "centre_mine_title": ("我的预约", "My bookings"),
        "centre_mine_none": ("暂无预约", "No bookings yet"),
        "centre_cancel": ("取消预约", "Cancel"),
        "centre_cancel_confirm": ("确定取消这次预约吗？", "Cancel this booking?"),
        "centre_status_booked": ("已预约", "Booked"),
        "centre_status_cancelled": ("已取消", "Cancelled"),
        "centre_status_done": ("已结束", "Done"),
        "centre_pick_a_slot": ("请选择一个可预约的开始时间", "Pick a free start time"),
        "centre_headcount_invalid": ("请填写人数（正整数）", "Type how many people (a whole number)"),
        "centre_hours_invalid": ("时长为1至4小时", "Book 1 to 4 hours"),
        "centre_purpose_missing": ("请填写用途", "Say what the room is for"),
        "centre_rooms": ("房间", "Rooms"),
    }
)


def _day_of(text: str | None, today: date) -> date:
    try:
        day = date.fromisoformat(text) if text else today
    except ValueError:
        return today
    return min(max(day, today), today + timedelta(days=centres.BOOK_DAYS_AHEAD))


def _closing_soon(centre: dict[str, Any], now: datetime, timezone: str) -> bool:
    last_start = datetime.combine(date.min, centre["closes_at"]) - centres.SLOT
    return now.astimezone(ZoneInfo(timezone)).time() >= last_start.time()


def _chosen(items: list[dict[str, Any]], wanted: str | None) -> dict[str, Any] | None:
    """The item asked for by id, else the first (none asked, or not a number); None when there are none."""
    number = whole_number(wanted)
    if not items:
        return None
    return next((item for item in items if item["id"] == number), items[0])


async def centre_page(
    request: AnyRequest, principal: Principal, state: State, error: Exception | None = None, **context: Any
) -> Template:
    member_id, timezone, now = principal.member_id or 0, state.settings.timezone, clock.now()
    query = request.query_params
    entry = context.pop("entry", None) or {}
    today = clock.local_date(now, timezone)
    day = _day_of(entry.get("day") or query.get("day"), today)
    found = await centres.centres_near(state.pool, await centres.member_place(state.pool, member_id))
    wanted = entry.get("centre") or query.get("centre")
    if wanted and not any(c["id"] == whole_number(wanted) for c in found):
        raise DomainError("centre_not_found")  # closed, or never was: said in the member layout
    chosen = _chosen(found, wanted)
    view, room = None, None
    if chosen is not None:
        if not (entry.get("day") or query.get("day")) and _closing_soon(chosen, now, timezone):
            day = today + timedelta(days=1)  # nothing left to book today: show tomorrow
        view = await centres.centre_day(state.pool, chosen["id"], day, member_id, now, timezone)
        room = _chosen(view["rooms"], entry.get("room_id") or query.get("room"))
    bookings = await centres.member_bookings(state.pool, member_id, now)
    for booking in bookings:
        booking["day"] = local_time(booking["starts_at"], timezone, "%Y-%m-%d")
        booking["hours"] = "–".join(local_time(booking[end], timezone, "%H:%M") for end in ("starts_at", "ends_at"))
        booking["cancellable"] = booking["status"] == "booked" and booking["starts_at"] > now
        if booking["status"] == "booked" and booking["ends_at"] <= now:
            booking["status"] = "done"
    return page(
        request,
        "member/centres.html",
        status=status_of(error) if error else 200,
        here="/me/centres",
        principal=principal,
        tab="benefits",
        centres=found,
        chosen=chosen,
        view=view,
        room=room,
        day=day,
        prev_day=day - timedelta(days=1) if day > today else None,
        next_day=day + timedelta(days=1) if day < today + timedelta(days=centres.BOOK_DAYS_AHEAD) else None,
        today=today,
        last_day=today + timedelta(days=centres.BOOK_DAYS_AHEAD),
        hours_max=centres.HOURS_MAX,
        bookings=bookings,
        entry=entry,
        key=new_key(),
        error=page_alert(lang_of(request), error) if error else None,
        **context,
    )


def booking_of(form: Any) -> BookingIn:
    """The booking the form asks for. Raises FormError."""
    room_id = whole_number(field(form, "room_id"))
    try:
        starts_at = datetime.fromisoformat(field(form, "start"))
    except ValueError:
        starts_at = None
    if room_id is None or starts_at is None or starts_at.tzinfo is None:
        raise FormError("centre_pick_a_slot")
    hours = whole_number(field(form, "hours") or "1", centres.HOURS_MAX)
    if not hours:
        raise FormError("centre_hours_invalid")
    headcount = whole_number(field(form, "headcount"), 10_000)
    if not headcount:
        raise FormError("centre_headcount_invalid")
    purpose = field(form, "purpose")
    if not purpose or len(purpose) > 200:
        raise FormError("centre_purpose_missing")
    return BookingIn(
        room_id=room_id,
        starts_at=starts_at,
        hours=hours,
        purpose=purpose,
        headcount=headcount,
        idempotency_key=field(form, "idempotency_key") or None,
    )


class MemberCentrePages(Controller):
    path = "/me/centres"
    include_in_schema = False
    guards = [requires(Role.MEMBER)]
    exception_handlers = {DomainError: member_page_error}

    @get("/")
    async def index(self, request: AnyRequest, principal: Principal, state: State, done: str = "") -> Template:
        return await centre_page(request, principal, state, done=done)

    @post("/bookings")
    async def book(self, request: AnyRequest, principal: Principal, state: State) -> Response[Any]:
        form = await request.form()
        entry = {name: field(form, name) for name in ("centre", "day", "room_id", "start", "hours", "purpose")}
        entry["headcount"] = field(form, "headcount")
        try:
            data = booking_of(form)
            made, _ = await centres.book(
                state.pool, principal.member_id or 0, data, clock.now(), state.settings.timezone
            )
        except (FormError, DomainError) as error:
            return await centre_page(request, principal, state, error, entry=entry)
        day = local_time(made["starts_at"], state.settings.timezone, "%Y-%m-%d")
        where = f"centre={made['centre_id']}&day={day}&room={made['room_id']}"
        return Redirect(f"/me/centres?{where}&done=booked#mine", status_code=303)

    @post("/bookings/{booking_id:int}/cancel")
    async def cancel(self, request: AnyRequest, booking_id: int, principal: Principal, state: State) -> Response[Any]:
        try:
            await centres.cancel(state.pool, principal.member_id or 0, booking_id, clock.now())
        except DomainError as error:
            return await centre_page(request, principal, state, error)
        return Redirect("/me/centres?done=cancelled#mine", status_code=303)


def centre_page_routes() -> list[Any]:
    return [MemberCentrePages]
