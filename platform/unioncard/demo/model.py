"""The model of the demo district: sizes at a scale, offers, terminals, merchants, the calendar."""

from __future__ import annotations

import bisect
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from typing import Any
from zoneinfo import ZoneInfo

from unioncard.demo.figures import (
    BIG_VILLAGE_WORKERS,
    CARDS,
    CURRENCY,
    GRASSROOTS,
    MERCHANTS,
    SALES,
    TOWNS,
    WINDOW_DAYS,
    Category,
)
from unioncard.ids import hash_secret
from unioncard.money import apply_bps, split_discount


@dataclass(frozen=True)
class Sizes:
    cards: int
    towns: int
    grassroots: int
    merchants: int
    sales: int
    big_village: int

    @classmethod
    def at(cls, scale: float) -> Sizes:
        cards = max(round(CARDS * scale), 20)
        towns = min(max(round(TOWNS * scale), 3), TOWNS)
        return cls(
            cards=cards,
            towns=towns,
            grassroots=max(round(GRASSROOTS * scale), 2 * towns),
            merchants=max(round(MERCHANTS * scale), 10),
            sales=round(SALES * scale),
            big_village=min(round(BIG_VILLAGE_WORKERS * scale), cards // 4),
        )


@dataclass
class Offer:
    """One contract version, as the till reads it."""

    id: int
    merchant_id: int
    version: int
    valid_from: date
    kind: str
    rate_bps: int | None
    amount_minor: int | None
    min_spend_minor: int
    discount_minor_max: int | None
    per_card_daily_sales_max: int | None
    per_card_monthly_sales_max: int | None
    days_of_week: tuple[int, ...] | None
    hours: tuple[int, int] | None  # local seconds of the day, [start, end)
    eligible_tiers: tuple[str, ...] | None
    eligible_org_ids: tuple[int, ...] | None
    union_share_bps: int
    monthly_budget_minor: int | None = None

    def price(self, amount_minor: int) -> tuple[int, int, int]:
        """(discount, union, merchant) exactly as till_price_of computes them."""
        if self.kind == "percent":
            discount = apply_bps(amount_minor, self.rate_bps or 0)
        else:
            discount = min(self.amount_minor or 0, amount_minor)
        if self.discount_minor_max is not None:
            discount = min(discount, self.discount_minor_max)
        union, merchant = split_discount(discount, self.union_share_bps)
        return discount, union, merchant

    def open_at(self, second: int) -> bool:
        if self.hours is None:
            return True
        start, end = self.hours
        return start <= second < end if start <= end else (second >= start or second < end)

    def row(self, created_at: datetime) -> tuple[Any, ...]:
        hours = [None, None] if self.hours is None else [_clock(s) for s in self.hours]
        return (
            self.id,
            self.merchant_id,
            self.version,
            self.kind,
            self.rate_bps,
            self.amount_minor,
            CURRENCY,
            self.min_spend_minor,
            self.discount_minor_max,
            self.per_card_daily_sales_max,
            self.per_card_monthly_sales_max,
            self.valid_from,
            _list(self.days_of_week),
            *hours,
            _list(self.eligible_tiers),
            _list(self.eligible_org_ids),
            self.union_share_bps,
            self.monthly_budget_minor,
            created_at,
        )

    def terms(self) -> dict[str, Any]:
        hours = [None, None] if self.hours is None else [_clock(s).isoformat("minutes") for s in self.hours]
        return {
            "id": self.id,
            "version": self.version,
            "valid_from": self.valid_from.isoformat(),
            "kind": self.kind,
            "rate_bps": self.rate_bps,
            "amount_minor": self.amount_minor,
            "currency": CURRENCY,
            "min_spend_minor": self.min_spend_minor,
            "discount_minor_max": self.discount_minor_max,
            "union_share_bps": self.union_share_bps,
            "per_card_daily_sales_max": self.per_card_daily_sales_max,
            "per_card_monthly_sales_max": self.per_card_monthly_sales_max,
            "monthly_budget_minor": self.monthly_budget_minor,
            "days_of_week": _list(self.days_of_week),
            "hours_start": hours[0],
            "hours_end": hours[1],
            "eligible_tiers": _list(self.eligible_tiers),
            "eligible_org_ids": _list(self.eligible_org_ids),
        }


def _clock(second: int) -> clock_time:
    return clock_time(second // 3600, second // 60 % 60)


def _list(values: tuple[Any, ...] | None) -> list[Any] | None:
    return None if values is None else list(values)


@dataclass
class Terminal:
    id: int
    merchant_id: int
    name: str
    key: str
    created_at: datetime
    revoked_at: datetime | None = None

    def row(self) -> tuple[Any, ...]:
        status = "active" if self.revoked_at is None else "revoked"
        return (
            self.id,
            self.merchant_id,
            self.name,
            self.key[:8],
            hash_secret(self.key),
            status,
            self.created_at,
            self.revoked_at,
        )


@dataclass
class Merchant:
    id: int
    name: str
    category: Category
    town: int
    org_id: int
    status: str
    weight: float
    offers: list[Offer] = field(default_factory=list)
    terminals: list[Terminal] = field(default_factory=list)
    offer_on: list[Offer] = field(default_factory=list)  # by window day
    till_ids: list[int] = field(default_factory=list)  # its terminals that are not revoked
    tight_budget: bool = False  # sized from the month's demand, so the traffic nearly uses it up

    def offer_at(self, day: date) -> Offer:
        return max((o for o in self.offers if o.valid_from <= day), key=lambda o: o.version)


class Calendar:
    """Local days and their UTC midnights, in the till's time zone."""

    def __init__(self, tz_name: str, today: date | None) -> None:
        self.tz = ZoneInfo(tz_name)
        self.today = today or datetime.now(self.tz).date()
        self.window = [self.today - timedelta(days=WINDOW_DAYS - i) for i in range(WINDOW_DAYS)]
        self.window_midnights = [self.midnight(day) for day in self.window]
        self.window_end = self.midnight(self.today)
        self.months = [day.year * 12 + day.month for day in self.window]
        self.window_codes = [f"{day:%Y%m%d}" for day in self.window]
        self._days_back: list[date] = []
        self._midnights_back: list[datetime] = []

    def midnight(self, day: date) -> datetime:
        return datetime.combine(day, clock_time(), tzinfo=self.tz).astimezone(UTC)

    def day_back(self, days: int) -> date:
        """The local date `days` before today, cached: the card loop asks 500,000 times."""
        while len(self._days_back) <= days:
            self._days_back.append(self.today - timedelta(days=len(self._days_back)))
        return self._days_back[days]

    def midnight_back(self, days: int) -> datetime:
        while len(self._midnights_back) <= days:
            self._midnights_back.append(self.midnight(self.day_back(len(self._midnights_back))))
        return self._midnights_back[days]


def weighted_sampler(rng: random.Random, weights: Sequence[float]) -> Callable[[], int]:
    """Index by weight, in one bisect."""
    cumulative, total = [], 0.0
    for weight in weights:
        total += weight
        cumulative.append(total)
    draw, find = rng.random, bisect.bisect_right
    return lambda: min(find(cumulative, draw() * total), len(cumulative) - 1)


def split_total(total: int, weights: Sequence[float]) -> list[int]:
    """Integer parts of total in proportion to weights, summing to total."""
    whole = sum(weights)
    sizes = [int(total * w / whole) for w in weights]
    for i in range(total - sum(sizes)):
        sizes[i % len(sizes)] += 1
    return sizes


def thresholds(table: tuple[tuple[str, float], ...]) -> Callable[[float], str]:
    def pick(u: float) -> str:
        for label, upto in table:
            if u < upto:
                return label
        return table[-1][0]

    return pick
