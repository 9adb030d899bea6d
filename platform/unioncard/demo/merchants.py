"""Merchants, their contract versions, budgets and terminals."""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta
from typing import Any

from unioncard.demo.figures import (
    BANKS,
    CATEGORIES,
    DISTRICT_PLACE,
    MERCHANT_BRANDS,
    MODEL_TIERS,
    ROADS,
    TOWN_NAMES,
    WINDOW_DAYS,
    Category,
)
from unioncard.demo.model import Calendar, Merchant, Offer, Sizes, Terminal
from unioncard.demo.people import District, person_names
from unioncard.ids import new_secret


def draw_merchants(rng: random.Random, sizes: Sizes, district: District, cal: Calendar) -> list[Merchant]:
    # The first ones cover every category, so even a tiny district has all of them.
    categories = list(CATEGORIES[: sizes.merchants]) + rng.choices(
        CATEGORIES, [c.merchant_weight for c in CATEGORIES], k=max(sizes.merchants - len(CATEGORIES), 0)
    )
    suspended = set(rng.sample(range(1, sizes.merchants + 1), max(1, round(sizes.merchants * 0.01))))
    merchants, next_offer, next_terminal = [], 1, 1
    for merchant_id, category in enumerate(categories, start=1):
        town = int(rng.random() * sizes.towns)
        merchant = Merchant(
            id=merchant_id,
            name=_merchant_name(rng, category),
            category=category,
            town=town,
            org_id=district.towns[town][0],
            status="suspended" if merchant_id in suspended else "active",
            weight=category.traffic * rng.lognormvariate(0, 0.7),
        )
        merchant.offers = _offers(rng, merchant, next_offer, cal)
        merchant.terminals = _terminals(rng, merchant, next_terminal, cal)
        merchant.till_ids = [t.id for t in merchant.terminals if t.revoked_at is None]
        merchant.offer_on = [merchant.offer_at(day) for day in cal.window]
        next_offer += len(merchant.offers)
        next_terminal += len(merchant.terminals)
        merchants.append(merchant)
    _set_budgets(rng, merchants, sizes)
    return merchants


def _merchant_name(rng: random.Random, category: Category) -> str:
    name = rng.choice(MERCHANT_BRANDS) + rng.choice(category.nouns)
    return f"{name}（{rng.choice(ROADS)}店）" if rng.random() < 0.5 else name


def merchant_row(
    rng: random.Random, merchant: Merchant, centres: list[tuple[float, float]], created_at: datetime
) -> tuple[Any, ...]:
    town_name = TOWN_NAMES[merchant.town]
    latitude, longitude = centres[merchant.town]
    company = rng.random() < 0.7  # the others are sole traders, paid to the owner's name
    payee = f"{DISTRICT_PLACE}{merchant.name.split('（')[0]}有限公司" if company else person_names(rng, 1)[0]
    return (
        merchant.id,
        merchant.name,
        merchant.category.slug,
        f"{DISTRICT_PLACE}{town_name}{rng.choice(ROADS)}{rng.randrange(1, 400)}号",
        round(latitude + rng.uniform(-0.015, 0.015), 6),
        round(longitude + rng.uniform(-0.02, 0.02), 6),
        merchant.org_id,
        merchant.status,
        payee,
        f"{rng.randrange(10**18, 10**19)}",
        f"{rng.choice(BANKS)}{DISTRICT_PLACE}{town_name}支行",
        created_at,
    )


# The first merchant of these categories always has the restriction, so a tiny district has them all.
SHOWCASE_TERMS: dict[str, dict[str, Any]] = {
    "restaurant": {"hours": (10 * 3600, 22 * 3600)},
    "cinema": {"days_of_week": (1, 2, 3, 4)},
    "bakery": {"hours": (14 * 3600, 21 * 3600)},
    "bookshop": {"eligible_tiers": MODEL_TIERS, "eligible_org_ids": None},
    "optician": {"eligible_tiers": None},  # and its own town only, below
}


def _first_terms(rng: random.Random, category: Category, town_org_id: int, showcase: bool) -> dict[str, Any]:
    draw = rng.random
    fixed = draw() < category.fixed_share
    amount = rng.randrange(500, 3001, 100) if fixed else None
    daily = rng.choice((1, 1, 2, 2, 3, 5)) if draw() < 0.7 else None
    terms: dict[str, Any] = {
        "kind": "fixed" if fixed else "percent",
        "amount_minor": amount,
        "rate_bps": None if fixed else rng.randrange(category.rate_bps[0], category.rate_bps[1] + 1, 50),
        "min_spend_minor": 0,
        "discount_minor_max": None,
        "per_card_daily_sales_max": daily,
        "per_card_monthly_sales_max": None,
        "days_of_week": None,
        "hours": None,
        "eligible_tiers": None,
        "eligible_org_ids": None,
        "union_share_bps": rng.randrange(3000, 10_001, 500),
    }
    if amount is not None:
        terms["min_spend_minor"] = math.ceil(amount * rng.uniform(3, 8) / 1000) * 1000
    elif draw() < 0.3:
        terms["min_spend_minor"] = min(rng.choice((1000, 2000, 3000, 5000)), category.median_minor)
    if amount is None and draw() < 0.5:
        terms["discount_minor_max"] = rng.choice((1000, 2000, 3000, 5000, 8000, 10_000))
    if draw() < 0.3:
        terms["per_card_monthly_sales_max"] = max(daily or 1, rng.choice((2, 4, 4, 8, 10, 15, 20)))
    if category.slug == "cinema" and draw() < 0.7:
        terms["days_of_week"] = (1, 2, 3, 4)  # cheap-ticket days: Monday to Thursday
    elif draw() < 0.03:
        terms["days_of_week"] = (1, 2, 3, 4, 5)
    if category.slug == "restaurant" and draw() < 0.5:
        terms["hours"] = (10 * 3600, 22 * 3600)
    elif category.slug == "bakery" and draw() < 0.3:
        terms["hours"] = (14 * 3600, 21 * 3600)
    restriction = draw()
    if restriction < 0.02 or (showcase and category.slug == "bookshop"):
        terms["eligible_tiers"] = MODEL_TIERS
    elif restriction < 0.05 or (showcase and category.slug == "optician"):
        terms["eligible_org_ids"] = (town_org_id,)
    if showcase:
        terms.update(SHOWCASE_TERMS.get(category.slug, {}))
    return terms


def _revised_terms(rng: random.Random, terms: dict[str, Any]) -> dict[str, Any]:
    revised = dict(terms)
    if terms["kind"] == "percent":
        revised["rate_bps"] = min(max(terms["rate_bps"] + rng.choice((-300, -200, -100, 100, 200, 300)), 300), 2000)
    else:
        revised["amount_minor"] = min(max(terms["amount_minor"] + rng.choice((-500, 500)), 500), 3000)
    if rng.random() < 0.5:
        revised["union_share_bps"] = rng.randrange(3000, 10_001, 500)
    if rng.random() < 0.3:
        revised["per_card_daily_sales_max"] = rng.choice((None, 1, 2, 3))
        revised["per_card_monthly_sales_max"] = None
    return revised


def _offers(rng: random.Random, merchant: Merchant, first_id: int, cal: Calendar) -> list[Offer]:
    terms = _first_terms(rng, merchant.category, merchant.org_id, showcase=merchant.id <= len(CATEGORIES))
    offers = [
        Offer(id=first_id, merchant_id=merchant.id, version=1, valid_from=cal.day_back(rng.randint(330, 400)), **terms)
    ]
    first = merchant.id == 1  # always revised inside the window, so a tiny district shows it too
    if rng.random() < 0.25 or first:
        # Most changed terms two months ago; some inside the traffic window, so both versions show.
        inside = rng.random() >= 0.8 or first
        back = rng.randint(5, WINDOW_DAYS - 5) if inside else rng.randint(45, 75)
        offers.append(
            Offer(
                id=first_id + 1,
                merchant_id=merchant.id,
                version=2,
                valid_from=cal.day_back(back),
                **_revised_terms(rng, terms),
            )
        )
    return offers


def _expected_union(offer: Offer, category: Category) -> float:
    mean = max(category.mean_minor, offer.min_spend_minor)
    discount = mean * (offer.rate_bps or 0) / 10_000 if offer.kind == "percent" else min(offer.amount_minor or 0, mean)
    if offer.discount_minor_max is not None:
        discount = min(discount, offer.discount_minor_max)
    return discount * offer.union_share_bps / 10_000


def _set_budgets(rng: random.Random, merchants: list[Merchant], sizes: Sizes) -> None:
    """Budgets well above the month's traffic, none for some; a few are left to tighten_budgets."""
    open_merchants = [m for m in merchants if m.status == "active"]
    open_weight = sum(m.weight for m in open_merchants) or 1.0
    for merchant in rng.sample(open_merchants, min(len(open_merchants), max(1, round(len(open_merchants) * 0.03)))):
        merchant.tight_budget = True
    for merchant in merchants:
        sales = sizes.sales * merchant.weight / open_weight
        if merchant.tight_budget or rng.random() < 0.15:
            continue
        for offer in merchant.offers:
            union = sales * _expected_union(offer, merchant.category)
            offer.monthly_budget_minor = max(math.ceil(union * rng.uniform(1.6, 3.0) / 10_000) * 10_000, 50_000)


def _terminals(rng: random.Random, merchant: Merchant, first_id: int, cal: Calendar) -> list[Terminal]:
    count = rng.choices((1, 2, 3), (50, 35, 15))[0]
    opened = cal.midnight_back(rng.randint(400, 420)) + timedelta(hours=10)
    terminals = [Terminal(first_id + k, merchant.id, f"收银台{k + 1}", new_secret("uct"), opened) for k in range(count)]
    if count > 1 and rng.random() < 0.06:
        terminals[-1].revoked_at = cal.midnight_back(rng.randint(10, 200)) + timedelta(hours=15)
    return terminals
