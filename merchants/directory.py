"""The member-facing merchant directory: shops whose offer in force this card may use, nearest first.

Offers live in the contracts, so the directory and the catalog's offers section read them from there,
never from a copy. The catalog (cards/) cannot import this module; app.py hands it `offers_summary`.
"""

from __future__ import annotations

import math
import time
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from litestar import get
from litestar.datastructures import State
from litestar.response import Template

from cards.catalog import member_profile
from cards.member_pages import member_page_error, page_number
from unioncard import clock, i18n
from unioncard.auth import Principal, Role, requires
from unioncard.db import Queries
from unioncard.errors import DomainError
from unioncard.money import format_yuan_short
from unioncard.pages import AnyRequest, lang_of, page

queries = Queries(Path(__file__).with_name("directory_queries.sql"))

PAGE_SIZE = 20
SUMMARY_TTL_S = 60.0
SUMMARY_ENTRIES_MAX = 20_000
WEEKDAYS_ZH = "一二三四五六日"
WEEKDAYS_EN = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
CATEGORIES = {
    "supermarket": ("超市", "Supermarkets"),
    "restaurant": ("餐饮", "Restaurants"),
    "pharmacy": ("药店", "Pharmacies"),
    "bookshop": ("书店", "Bookshops"),
    "fuel": ("加油", "Fuel"),
    "cinema": ("影院", "Cinemas"),
    "fitness": ("健身", "Fitness"),
    "barber": ("美发", "Hair"),
    "optician": ("眼镜", "Opticians"),
    "bakery": ("烘焙", "Bakeries"),
}

i18n.extend(
    {
        "dir_title": ("优惠商户", "Shops with a discount"),
        "dir_intro": (
            "出示会员卡或动态码即可享受以下优惠。",
            "Show your card or its code at the till for these offers.",
        ),
        "dir_category": ("类别", "Category"),
        "dir_all_categories": ("全部", "All"),
        "dir_place": ("距离起点", "Distance from"),
        "dir_place_home": ("我的工会附近（{name}）", "Near my union ({name})"),
        "dir_place_here": ("我的位置", "Where I am"),
        "dir_place_none": ("不按距离排序", "Not by distance"),
        "dir_use_location": ("定位", "Locate"),
        "dir_use_location_long": ("按我现在的位置排序", "Sort by where I am now"),
        "dir_apply": ("筛选", "Apply"),
        "dir_count": ("共 {n} 家", "{n} shops"),
        "dir_none": ("没有符合条件的商户。", "No shop matches."),
        "dir_prev": ("上一页", "Previous"),
        "dir_next": ("下一页", "Next"),
        "dir_km": ("{n} 公里", "{n} km"),
        "dir_m": ("{n} 米", "{n} m"),
        "dir_location_failed": ("无法获取位置", "Could not get your location"),
        # an offer in words
        "dir_offer_rate": ("{zhe}折", "{percent}% off"),
        "dir_offer_fixed": ("立减{yuan}元", "{yuan} yuan off"),
        "dir_offer_union": ("工会补贴{percent}%", "union pays {percent}%"),
        "dir_offer_min": ("满{yuan}元可用", "from {yuan} yuan"),
        "dir_offer_max": ("最高优惠{yuan}元", "at most {yuan} yuan off"),
        "dir_offer_daily": ("每日{n}次", "{n}× a day"),
        "dir_offer_monthly": ("每月{n}次", "{n}× a month"),
        "dir_offer_daily_minor": ("每日最多优惠{yuan}元", "at most {yuan} yuan off a day"),
        "dir_offer_monthly_minor": ("每月最多优惠{yuan}元", "at most {yuan} yuan off a month"),
        "dir_offer_days": ("仅周{days}", "{days} only"),
        "dir_offer_hours": ("{start}–{end}", "{start}–{end}"),
        "dir_offer_until": ("至{day}", "until {day}"),
        "dir_sep": ("，", ", "),
    }
)


# ------------------------------------------------------------------ words


def category_label(slug: str, lang: str) -> str:
    zh, en = CATEGORIES.get(slug, (slug, slug))
    return en if lang == "en" else zh


def _percent(bps: int) -> str:
    return f"{bps / 100:g}"


def offer_words(offer: dict[str, Any], lang: str) -> str:
    """An offer as a shopper reads it: "9折，工会补贴60%，满50元可用，每日1次"."""
    t = i18n.translator(lang)
    if offer["kind"] == "percent":
        zhe = f"{(10000 - offer['rate_bps']) / 1000:g}"
        parts = [t("dir_offer_rate", zhe=zhe, percent=_percent(offer["rate_bps"]))]
    else:
        parts = [t("dir_offer_fixed", yuan=format_yuan_short(offer["amount_minor"]))]
    if offer["union_share_bps"]:
        parts.append(t("dir_offer_union", percent=_percent(offer["union_share_bps"])))
    if offer["min_spend_minor"]:
        parts.append(t("dir_offer_min", yuan=format_yuan_short(offer["min_spend_minor"])))
    if offer["discount_minor_max"]:
        parts.append(t("dir_offer_max", yuan=format_yuan_short(offer["discount_minor_max"])))
    for key, column in (
        ("dir_offer_daily", "per_card_daily_sales_max"),
        ("dir_offer_monthly", "per_card_monthly_sales_max"),
    ):
        if offer[column]:
            parts.append(t(key, n=offer[column]))
    for key, column in (
        ("dir_offer_daily_minor", "per_card_daily_discount_minor_max"),
        ("dir_offer_monthly_minor", "per_card_monthly_discount_minor_max"),
    ):
        if offer[column]:
            parts.append(t(key, yuan=format_yuan_short(offer[column])))
    if offer["days_of_week"]:
        names = [WEEKDAYS_EN[d - 1] if lang == "en" else WEEKDAYS_ZH[d - 1] for d in sorted(offer["days_of_week"])]
        parts.append(t("dir_offer_days", days=(", " if lang == "en" else "、").join(names)))
    if offer["hours_start"] is not None:
        parts.append(
            t("dir_offer_hours", start=offer["hours_start"].strftime("%H:%M"), end=offer["hours_end"].strftime("%H:%M"))
        )
    if offer["valid_until"] is not None:
        parts.append(t("dir_offer_until", day=offer["valid_until"].isoformat()))
    return t("dir_sep").join(parts)


def distance_words(distance_m: float | None, lang: str) -> str:
    if distance_m is None:
        return ""
    if distance_m < 1000:
        return i18n.t(lang, "dir_m", n=max(10, round(distance_m / 10) * 10))
    return i18n.t(lang, "dir_km", n=f"{distance_m / 1000:.1f}")


# ------------------------------------------------------------------ the offers the catalog shows


async def offers_summary(state: State, tier: str, org_path: str, on: date) -> dict[str, Any]:
    """How many shops have an offer in force on `on` that a card of this tier and org may use, per category.

    Every member of the same tier and org sees the same answer, so it is kept for a minute: the catalog
    page, which every member opens, then asks the database nothing about offers.
    """
    key = (on, tier, org_path)
    # One cache per app (each test's app has its own database): (day, tier, org path) -> (until, summary).
    cache: dict[tuple[date, str, str], tuple[float, dict[str, Any]]] = state.setdefault("offer_summaries", {})
    kept = cache.get(key)
    if kept is not None and kept[0] > time.monotonic():
        return kept[1]
    rows = await state.pool.fetch(queries.offer_counts, on, tier, org_path)
    summary = {
        "merchants": sum(row["merchants"] for row in rows),
        "categories": [(row["category"], row["merchants"]) for row in rows],
    }
    if len(cache) >= SUMMARY_ENTRIES_MAX:
        cache.clear()
    cache[key] = (time.monotonic() + SUMMARY_TTL_S, summary)
    return summary


async def catalog_offers(state: State, tier: str, org_path: str, on: date, lang: str) -> dict[str, Any]:
    """The catalog's hook (app.state.member_offers): the offers summary with category names in `lang`."""
    summary = await offers_summary(state, tier, org_path, on)
    categories = [(slug, category_label(slug, lang), n) for slug, n in summary["categories"]]
    return {"merchants": summary["merchants"], "categories": categories}


# ------------------------------------------------------------------ the directory


def _coordinate(text: str | None, bound: float) -> float | None:
    try:
        value = float(text or "")
    except ValueError:
        return None
    return value if math.isfinite(value) and -bound <= value <= bound else None


def choose_origin(
    places: list[dict[str, Any]], org_path: str, place: str, lat: str | None, lon: str | None
) -> tuple[str, float | None, float | None]:
    """Where distances are measured from: the browser's location, a chosen place, or by default the centre of
    the shops of the member's nearest org that has shops. Returns (what is selected, latitude, longitude)."""
    latitude, longitude = _coordinate(lat, 90), _coordinate(lon, 180)
    if place == "here" and latitude is not None and longitude is not None:
        return "here", latitude, longitude
    if place == "none":
        return "none", None, None
    by_id = {str(p["id"]): p for p in places}
    if place in by_id:
        return place, by_id[place]["latitude"], by_id[place]["longitude"]
    home = home_place(places, org_path)
    if home is None:
        return "none", None, None
    return "home", home["latitude"], home["longitude"]


def home_place(places: list[dict[str, Any]], org_path: str) -> dict[str, Any] | None:
    """The place of the member's own org or its nearest ancestor that has shops."""
    mine = [p for p in places if org_path.startswith(p["path"])]
    return max(mine, key=lambda p: len(p["path"])) if mine else None


async def directory_page(state: State, member_id: int, on: date, lang: str, params: dict[str, str]) -> dict[str, Any]:
    """One page of the directory for this member, filtered and sorted as `params` ask (category, place,
    lat, lon, page). Raises DomainError member_not_found."""
    pool = state.pool
    profile = await member_profile(pool, member_id)
    tier, org_path = profile["tier"] or "", profile["org_path"]
    places = [dict(row) for row in await pool.fetch(queries.places)]
    summary = await offers_summary(state, tier, org_path, on)
    category = params.get("category", "")[:50] or None
    chosen, latitude, longitude = choose_origin(
        places, org_path, params.get("place", ""), params.get("lat"), params.get("lon")
    )
    number = page_number(params.get("page"))
    rows = await pool.fetch(
        queries.directory_page,
        on,
        tier,
        org_path,
        latitude,
        longitude,
        category,
        PAGE_SIZE + 1,
        (number - 1) * PAGE_SIZE,
    )
    merchants = [
        {**dict(row), "offer": offer_words(dict(row), lang), "distance": distance_words(row["distance_m"], lang),
         "category_label": category_label(row["category"], lang)}
        for row in rows[:PAGE_SIZE]
    ]  # fmt: skip
    home = home_place(places, org_path)
    kept = {"category": category or "", "place": chosen}
    if chosen == "here":
        kept.update(lat=params.get("lat", ""), lon=params.get("lon", ""))
    query = {k: v for k, v in kept.items() if v}
    return {
        "merchants": merchants,
        "total": rows[0]["total"] if rows else 0,
        "categories": [(slug, category_label(slug, lang), n) for slug, n in summary["categories"]],
        "all_count": summary["merchants"],
        "category": category or "",
        "places": places,
        "home": home,
        "place": chosen,
        "lat": params.get("lat", "") if chosen == "here" else "",
        "lon": params.get("lon", "") if chosen == "here" else "",
        "page": number,
        "prev_href": f"/me/merchants?{urlencode({**query, 'page': number - 1})}" if number > 1 else None,
        "next_href": f"/me/merchants?{urlencode({**query, 'page': number + 1})}" if len(rows) > PAGE_SIZE else None,
        "category_href": lambda slug: (
            f"/me/merchants?{urlencode({k: v for k, v in {**query, 'category': slug}.items() if v})}"
        ),
    }


@get(
    "/me/merchants",
    include_in_schema=False,
    guards=[requires(Role.MEMBER)],
    exception_handlers={DomainError: member_page_error},
)
async def merchants_page(request: AnyRequest, principal: Principal, state: State) -> Template:
    """The shops this member's card gets a discount at, by category, nearest to a chosen place first."""
    assert principal.member_id is not None  # the guard admits members only
    lang = lang_of(request)
    params = {k: v for k, v in request.query_params.items() if isinstance(v, str)}
    today = clock.local_today(state.settings.timezone)
    found = await directory_page(state, principal.member_id, today, lang, params)
    return page(request, "member/merchants.html", principal=principal, tab="merchants", **found)


def directory_routes() -> list[Any]:
    return [merchants_page]
