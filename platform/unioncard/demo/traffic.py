"""A month of till traffic: sales priced by the till's rule, within every limit, and refunds."""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from operator import itemgetter
from typing import Any

from unioncard.demo.figures import CATEGORIES, CURRENCY, REFUND_SHARE, WINDOW_DAYS, Category
from unioncard.demo.model import Calendar, Merchant, Offer, Sizes, weighted_sampler
from unioncard.demo.people import People
from unioncard.money import round_half_up_div

DAY_WEIGHTS = {1: 1.0, 2: 1.0, 3: 1.0, 4: 1.05, 5: 1.15, 6: 1.35, 7: 1.3}  # by ISO weekday
OVERSAMPLE = 1.04  # a few candidate sales fail a limit or the budget and are dropped
LOCAL_SHARE = 0.75  # of a merchant's customers who live in its own town
REGULAR_SHARE = 0.2  # of its sales that go to its few dozen regulars, who meet the per-card limits
REGULARS = 30


class Pools:
    """Active cards to draw a customer from: by town, by tier, or anyone."""

    def __init__(self, rng: random.Random, people: People, towns: int) -> None:
        self.by_town: list[list[int]] = [[] for _ in range(towns)]
        self.everyone: list[int] = []
        self.by_tier: dict[str, list[int]] = {}
        for card_id, _, _, status, _, tier, _, _ in people.cards:
            if status == "active":
                self.by_town[people.town_of_card[card_id]].append(card_id)
                self.everyone.append(card_id)
                self.by_tier.setdefault(tier, []).append(card_id)
        for pool in (*self.by_town, self.everyone, *self.by_tier.values()):
            rng.shuffle(pool)  # the skew below then falls on random people
        self._tiers: dict[tuple[str, ...], list[int]] = {}
        self._regulars: dict[tuple[int, int], list[int]] = {}
        self.draw = rng.random

    def pool(self, merchant: Merchant, offer: Offer) -> list[int]:
        if offer.eligible_tiers is not None:
            if offer.eligible_tiers not in self._tiers:
                self._tiers[offer.eligible_tiers] = [
                    c for tier in offer.eligible_tiers for c in self.by_tier.get(tier, [])
                ]
            pool = self._tiers[offer.eligible_tiers]
        elif offer.eligible_org_ids is not None or self.draw() < LOCAL_SHARE:  # always its own town
            pool = self.by_town[merchant.town]
        else:
            return self.everyone
        return self.regulars(merchant, pool) if self.draw() < REGULAR_SHARE else pool

    def regulars(self, merchant: Merchant, pool: list[int]) -> list[int]:
        key = (merchant.id, id(pool))  # the pools live as long as self
        if key not in self._regulars:
            start = merchant.id * 7919 % max(len(pool) - REGULARS, 1)
            self._regulars[key] = pool[start : start + REGULARS]
        return self._regulars[key]

    def card(self, pool: list[int]) -> int:
        return pool[int(len(pool) * self.draw() ** 1.5)]  # some members shop far more than others


def _hour_table(weights: str) -> list[int]:
    return [hour for hour, weight in enumerate(weights) for _ in range(int(weight))]


def _open_day(merchant: Merchant, pick_day: Callable[[], int], cal: Calendar) -> int | None:
    for _ in range(10):
        day = pick_day()
        days = merchant.offer_on[day].days_of_week
        if days is None or cal.window[day].isoweekday() in days:
            return day
    return None


def _open_second(rng: random.Random, hours: list[int], offer: Offer) -> int:
    for _ in range(5):
        second = hours[int(rng.random() * len(hours))] * 3600 + int(rng.random() * 3600)
        if offer.open_at(second):
            return second
    start, end = offer.hours or (0, 86_400)
    return start + int(rng.random() * ((end if start < end else 86_400) - start))


def _amount(rng: random.Random, category: Category, offer: Offer) -> int | None:
    drawn = int(rng.lognormvariate(math.log(category.median_minor), category.sigma))
    amount = min(max(drawn // category.step_minor * category.step_minor, category.min_minor), category.max_minor)
    if amount < offer.min_spend_minor:
        if rng.random() < 0.3:
            return None  # under the minimum and no discount: not a redemption at all
        top_up = int(rng.random() * offer.min_spend_minor * 0.2)  # 凑单: buy a little more
        amount = offer.min_spend_minor + top_up // category.step_minor * category.step_minor
    return amount


def sale_candidates(
    rng: random.Random, merchants: list[Merchant], sizes: Sizes, cal: Calendar
) -> list[tuple[int, int, int, Merchant, Offer, int]]:
    """Sales a month could have had, in time order, each inside its offer's days and hours."""
    open_merchants = [m for m in merchants if m.status == "active" and m.till_ids]
    if not open_merchants:
        return []
    pick_merchant = weighted_sampler(rng, [m.weight for m in open_merchants])
    pick_day = weighted_sampler(rng, [DAY_WEIGHTS[day.isoweekday()] for day in cal.window])
    hours = {c.slug: _hour_table(c.hours) for c in CATEGORIES}
    candidates = []
    for _ in range(int(sizes.sales * OVERSAMPLE)):
        merchant = open_merchants[pick_merchant()]
        day = _open_day(merchant, pick_day, cal)
        if day is None:
            continue
        offer = merchant.offer_on[day]
        second = _open_second(rng, hours[merchant.category.slug], offer)
        amount = _amount(rng, merchant.category, offer)
        if amount is not None:
            candidates.append((day * 86_400 + second, day, second, merchant, offer, amount))
    candidates.sort(key=itemgetter(0))
    return candidates


class Limits:
    """What each card used per merchant and local day/month, and each merchant's month budget."""

    def __init__(self, pools: Pools) -> None:
        self.pools = pools
        self.day_sales: dict[tuple[int, int, int], int] = {}
        self.month_sales: dict[tuple[int, int, int], int] = {}
        self.budget_used: dict[tuple[int, int], int] = {}

    def budget_allows(self, offer: Offer, month: int, union: int) -> bool:
        budget = offer.monthly_budget_minor
        return budget is None or self.budget_used.get((offer.merchant_id, month), 0) + union <= budget

    def customer(self, merchant: Merchant, offer: Offer, day: int, month: int) -> int | None:
        """A card the offer lets buy once more today and this month: three tries, else None."""
        pool = self.pools.pool(merchant, offer)
        daily, monthly = offer.per_card_daily_sales_max, offer.per_card_monthly_sales_max
        for _ in range(3 if pool else 0):
            card = self.pools.card(pool)
            if daily is not None and self.day_sales.get((card, merchant.id, day), 0) >= daily:
                continue
            if monthly is not None and self.month_sales.get((card, merchant.id, month), 0) >= monthly:
                continue
            return card
        return None

    def record(self, merchant_id: int, card: int, day: int, month: int, union: int) -> None:
        day_key, month_key, budget_key = (card, merchant_id, day), (card, merchant_id, month), (merchant_id, month)
        self.day_sales[day_key] = self.day_sales.get(day_key, 0) + 1
        self.month_sales[month_key] = self.month_sales.get(month_key, 0) + 1
        self.budget_used[budget_key] = self.budget_used.get(budget_key, 0) + union


def tighten_budgets(candidates: list[tuple[int, int, int, Merchant, Offer, int]], cal: Calendar) -> None:
    """The few nearly exhausted budgets: 80% of the union share the busiest month would spend."""
    demand: dict[tuple[int, int], int] = {}
    tight: dict[int, Merchant] = {}
    for _, day, _, merchant, offer, amount in candidates:
        if merchant.tight_budget:
            key = (merchant.id, cal.months[day])
            demand[key] = demand.get(key, 0) + offer.price(amount)[1]
            tight[merchant.id] = merchant
    for merchant in tight.values():
        busiest = max(union for (merchant_id, _), union in demand.items() if merchant_id == merchant.id)
        for offer in merchant.offers:
            offer.monthly_budget_minor = max(busiest * 8 // 10 // 100 * 100, 100)


def draw_sales(
    rng: random.Random, candidates: list[tuple[int, int, int, Merchant, Offer, int]], pools: Pools, cal: Calendar
) -> list[tuple[Any, ...]]:
    """Redemption rows: each candidate priced as till_price_of would, and dropped where it refuses."""
    limits, draw, last_day = Limits(pools), rng.random, WINDOW_DAYS - 1
    rows: list[tuple[Any, ...]] = []
    for _, day, second, merchant, offer, amount in candidates:
        discount, union, merchant_part = offer.price(amount)
        month = cal.months[day]
        if discount == 0 or amount < offer.min_spend_minor or not limits.budget_allows(offer, month, union):
            continue
        card = limits.customer(merchant, offer, day, month)
        if card is None:
            continue  # three customers in a row at their limit: the sale is not recorded
        limits.record(merchant.id, card, day, month, union)
        terminal = merchant.till_ids[int(draw() * len(merchant.till_ids))]
        occurred_at = cal.window_midnights[day] + timedelta(0, second, int(draw() * 1000) * 1000)
        recorded_at = occurred_at
        if day < last_day and draw() < 0.01:  # captured offline, sent later
            recorded_at += timedelta(minutes=10 + int(draw() * 350))
        rows.append(
            (
                uuid.UUID(int=rng.getrandbits(128), version=4),
                merchant.id,
                terminal,
                card,
                offer.id,
                amount,
                discount,
                union,
                merchant_part,
                CURRENCY,
                f"{cal.window_codes[day]}-{terminal}-{len(rows) + 1:06d}",
                occurred_at,
                recorded_at,
            )
        )
    return rows


def _refund_amounts(rng: random.Random, amount: int) -> list[int]:
    if amount < 2 or rng.random() < 0.7:
        return [amount]
    first = min(max(int(amount * rng.uniform(0.1, 0.9)), 1), amount - 1)
    if rng.random() < 0.3:
        remaining = amount - first
        return [first, remaining if rng.random() < 0.5 else max(int(remaining * rng.uniform(0.2, 0.8)), 1)]
    return [first]


def _later(rng: random.Random, after: datetime, end: datetime) -> datetime:
    at = after + timedelta(seconds=120 + rng.expovariate(1 / 43_200))
    return at if at < end else after + (end - after) / 2


def draw_refunds(rng: random.Random, sales: list[tuple[Any, ...]], cal: Calendar) -> list[tuple[Any, ...]]:
    """Some sales refunded, some in part; each share reverses on its cumulative proportion (till_refund)."""
    rows = []
    for sale_id, merchant_id, terminal_id, _, _, amount, _, union, merchant_part, currency, _, occurred_at, _ in sales:
        if rng.random() >= REFUND_SHARE:
            continue
        refunded = union_back = merchant_back = 0
        at = occurred_at
        for part in _refund_amounts(rng, amount):
            at = _later(rng, at, cal.window_end)
            union_part = round_half_up_div(union * (refunded + part), amount) - union_back
            merchant_share = round_half_up_div(merchant_part * (refunded + part), amount) - merchant_back
            rows.append(
                (
                    uuid.UUID(int=rng.getrandbits(128), version=4),
                    sale_id,
                    merchant_id,
                    terminal_id,
                    part,
                    union_part + merchant_share,
                    union_part,
                    merchant_share,
                    currency,
                    at,
                )
            )
            refunded += part
            union_back += union_part
            merchant_back += merchant_share
    return rows
