"""A whole demo district and a month of its till traffic, generated in Python and loaded by COPY."""

from __future__ import annotations

import asyncio
import bisect
import math
import random
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from operator import itemgetter
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from unioncard.ids import hash_secret, keyed_hash, luhn_checksum_digit, new_secret
from unioncard.money import apply_bps, round_half_up_div, split_discount
from unioncard.passwords import hash_password

# The district's figures (DESIGN.md) at scale 1.
CARDS = 225_159
TOWNS = 15
GRASSROOTS = 300
MERCHANTS = 1_000
SALES = 300_000
WINDOW_DAYS = 30
BIG_VILLAGE_WORKERS = 3_300
CURRENCY = "CNY"

DISTRICT_NAME = "临江区总工会"
DISTRICT_PLACE = "临江区"
TOWN_NAMES = (
    "青山镇",
    "城东街道",
    "城西街道",
    "城南街道",
    "城北街道",
    "湖滨街道",
    "新塘镇",
    "白沙镇",
    "石桥镇",
    "龙泉镇",
    "柳溪镇",
    "桃源镇",
    "江口镇",
    "凤凰街道",
    "金沙镇",
)
VILLAGE_STEMS = (
    "东山 西岭 南湖 北塘 上林 下沙 前进 红星 长丰 双桥 三河 大溪 小港 杨柳 梅园 竹林 荷塘 "
    "永安 太平 光明 团结 联合 五星 金星 东升 新建 民主 高桥 马家 林场"
).split()
FIRM_CHARACTERS = "华恒永鑫宏盛泰富锦瑞嘉隆达佳德昌顺兴安康"
INDUSTRIES = ("精密机械 纺织 电子科技 食品 建材 物流 服装 新材料 汽车配件 印染 化纤 家具 包装 医药 光电").split()
# Roughly by frequency, so the first ones weigh more.
SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕"
    "丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴"
)
GIVEN_CHARACTERS = (
    "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂华玉萍红建文辉鹏飞斌宇浩凯俊峰晨欣怡婷"
    "雪琳颖慧晶倩丹蕾燕玲梅莉凤洁琴云莹佳子涵梓轩博思雨嘉海波志国庆春晓东立新永小德振卫爱"
)
ROADS = (
    "解放路 人民路 中山路 建设路 文化路 湖滨路 新华路 振兴路 学院路 工业路 江滨路 青年路 和平路 健康路 "
    "幸福路 东风路 胜利路 迎宾路 府前街 南大街"
).split()
MERCHANT_BRANDS = (
    "惠民 好邻居 百姓 金桥 万家 乐活 同心 康宁 福满 明亮 星光 麦香 老街 阳光 和顺 兴隆 友谊 平安 "
    "大众 东方 春风 如意 开心 吉祥 永和 家家 益民 仁和 德信 鸿运"
).split()
BANKS = ("中国工商银行", "中国农业银行", "中国银行", "中国建设银行", "交通银行", "农商银行", "招商银行")
# ID-card region codes: the district itself and the provinces its migrant workers come from.
REGION_CODES = (
    "330106",
    "330106",
    "330106",
    "330108",
    "330110",
    "341125",
    "412726",
    "522121",
    "511622",
    "360124",
    "431021",
    "452123",
)
ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK = "10X98765432"

TIERS = (("普通职工", 0.915), ("优秀职工", 0.965), ("劳动模范", 0.970), ("困难职工", 1.0))
STATUSES = (("active", 0.92), ("frozen", 0.95), ("lost", 0.97), ("cancelled", 0.98), ("expired", 1.0))
MODEL_TIERS = ("优秀职工", "劳动模范")
CARD_YEARS = timedelta(days=1826)
SAMPLE_PER_STATUS = 2_000
REFUND_SHARE = 0.03


@dataclass(frozen=True)
class Category:
    slug: str
    merchant_weight: int
    traffic: float  # sales per merchant, relative
    nouns: tuple[str, ...]
    median_minor: int
    sigma: float
    min_minor: int
    max_minor: int
    step_minor: int
    hours: str  # 24 digits: how busy each local hour is
    rate_bps: tuple[int, int]
    fixed_share: float

    @property
    def mean_minor(self) -> float:
        return self.median_minor * math.exp(self.sigma**2 / 2)


SHOP_HOURS = "000000001355445555554200"
# slug, share of merchants, sales per merchant, shop nouns, sale amounts in fen (median, lognormal
# sigma, min, max, step), busy hours, percent rate range, share of fixed-amount offers.
CATEGORIES = (
    Category(
        "supermarket",
        20,
        1.6,
        ("超市", "生活超市", "便利店"),
        6800,
        0.8,
        500,
        80_000,
        1,
        "000000013466544457886310",
        (300, 800),
        0.15,
    ),
    Category(
        "restaurant",
        30,
        1.0,
        ("餐厅", "面馆", "小吃", "酒家", "食府", "火锅"),
        9800,
        0.7,
        1500,
        80_000,
        100,
        "000000011139952115985310",
        (800, 2000),
        0.10,
    ),
    Category(
        "pharmacy", 10, 0.8, ("大药房", "药店", "医药"), 5600, 0.8, 800, 60_000, 10, SHOP_HOURS, (500, 1000), 0.10
    ),
    Category("bookshop", 4, 0.5, ("书店", "书城", "图书"), 6800, 0.6, 1500, 50_000, 10, SHOP_HOURS, (1000, 2000), 0.10),
    Category("fuel", 5, 1.2, ("加油站",), 26_000, 0.4, 5000, 80_000, 100, "000001256433333346643211", (300, 500), 0.30),
    Category(
        "cinema",
        3,
        0.9,
        ("影城", "电影院"),
        9000,
        0.45,
        3000,
        30_000,
        500,
        "000000000022234433589631",
        (1000, 2000),
        0.60,
    ),
    Category(
        "fitness",
        6,
        0.5,
        ("健身", "健身中心", "游泳馆"),
        12_000,
        1.0,
        2000,
        300_000,
        100,
        "000000453222322235897410",
        (1000, 2000),
        0.10,
    ),
    Category(
        "barber", 10, 0.6, ("理发店", "美发", "发型设计"), 5800, 0.6, 1500, 50_000, 100, SHOP_HOURS, (1000, 2000), 0.10
    ),
    Category(
        "optician",
        4,
        0.2,
        ("眼镜", "眼镜店", "视光中心"),
        58_000,
        0.6,
        9900,
        300_000,
        100,
        SHOP_HOURS,
        (1000, 2000),
        0.10,
    ),
    Category(
        "bakery",
        8,
        0.9,
        ("烘焙", "面包房", "蛋糕店"),
        3200,
        0.6,
        500,
        30_000,
        10,
        "000000057433333467642100",
        (500, 1500),
        0.10,
    ),
)


class DemoError(Exception):
    """The demo could not be loaded: the database is not empty, or a check after the load failed."""


# ---------------------------------------------------------------- the model of the district


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


def _sampler(rng: random.Random, weights: Sequence[float]) -> Callable[[], int]:
    """Index by weight, in one bisect."""
    cumulative, total = [], 0.0
    for weight in weights:
        total += weight
        cumulative.append(total)
    draw, find = rng.random, bisect.bisect_right
    return lambda: min(find(cumulative, draw() * total), len(cumulative) - 1)


def _split(total: int, weights: Sequence[float]) -> list[int]:
    """Integer parts of total in proportion to weights, summing to total."""
    whole = sum(weights)
    sizes = [int(total * w / whole) for w in weights]
    for i in range(total - sum(sizes)):
        sizes[i % len(sizes)] += 1
    return sizes


def _thresholds(table: tuple[tuple[str, float], ...]) -> Callable[[float], str]:
    def pick(u: float) -> str:
        for label, upto in table:
            if u < upto:
                return label
        return table[-1][0]

    return pick


# ---------------------------------------------------------------- orgs, members and cards


@dataclass
class District:
    district: list[tuple[Any, ...]]
    towns: list[tuple[Any, ...]]
    grassroots: list[tuple[Any, ...]]  # (id, parent_id, kind, name, code); the first is the big village

    def town_index(self, org_id: int) -> int:
        return org_id - 2  # towns are ids 2.. in order


def _district(rng: random.Random, sizes: Sizes) -> District:
    towns = [(2 + t, 1, "town", f"{TOWN_NAMES[t]}总工会", f"T{t + 1:02d}") for t in range(sizes.towns)]
    stems = [rng.sample(VILLAGE_STEMS, len(VILLAGE_STEMS)) for _ in range(sizes.towns)]
    firms: set[str] = set()
    grassroots = []
    for g in range(sizes.grassroots):
        town = g % sizes.towns
        code = f"T{town + 1:02d}-{g // sizes.towns + 1:03d}"
        if stems[town] and (g == 0 or rng.random() < 0.4):
            place = "村" if rng.random() < 0.7 or g == 0 else "社区"  # the first is the big village
            name, kind = f"{TOWN_NAMES[town]}{stems[town].pop()}{place}工会", "village"
        else:
            name, kind = _firm_name(rng, firms), "enterprise"
        grassroots.append((2 + sizes.towns + g, 2 + town, kind, name, code))
    return District([(1, None, "district", DISTRICT_NAME, "D")], towns, grassroots)


def _firm_name(rng: random.Random, taken: set[str]) -> str:
    while True:
        brand = "".join(rng.sample(FIRM_CHARACTERS, 2))
        name = f"{brand}{rng.choice(INDUSTRIES)}有限公司工会"
        if name not in taken:
            taken.add(name)
            return name


def _person_names(rng: random.Random, count: int) -> list[str]:
    surnames = [s for rank, s in enumerate(SURNAMES) for _ in range(round(400 / (rank + 8)))]
    given, draw = GIVEN_CHARACTERS, rng.random
    names = []
    for _ in range(count):
        name = surnames[int(draw() * len(surnames))] + given[int(draw() * len(given))]
        if draw() < 0.75:
            name += given[int(draw() * len(given))]
        names.append(name)
    return names


def _weighted_digits(digits: str, weights: Sequence[int]) -> int:
    return sum(int(d) * w for d, w in zip(digits, weights, strict=True))


def _national_ids(rng: random.Random, count: int, today: date) -> list[str]:
    """Unique 18-character IDs (GB 11643): region, birth date, sequence, ISO 7064 check."""
    regions = [(code, _weighted_digits(code, ID_WEIGHTS[:6])) for code in REGION_CODES]
    sequences = [(f"{s:03d}", _weighted_digits(f"{s:03d}", ID_WEIGHTS[14:])) for s in range(1000)]
    births: dict[int, tuple[str, int]] = {}
    seen: set[str] = set()
    draw = rng.random
    while len(seen) < count:
        region, region_sum = regions[int(draw() * len(regions))]
        days = 7300 + int(draw() * 13_870)  # aged 20 to 58
        if days not in births:
            text = f"{today - timedelta(days=days):%Y%m%d}"
            births[days] = (text, _weighted_digits(text, ID_WEIGHTS[6:14]))
        birth, birth_sum = births[days]
        sequence, sequence_sum = sequences[int(draw() * 1000)]
        seen.add(region + birth + sequence + ID_CHECK[(region_sum + birth_sum + sequence_sum) % 11])
    ids = sorted(seen)
    rng.shuffle(ids)  # set order is not seeded; sorting first keeps the demo reproducible
    return ids


CARD_PREFIX = "621700"


def _luhn_groups(first_doubled: bool) -> list[int]:
    """Luhn digit sums of every 3-digit group, its last digit doubled or not."""
    sums = []
    for value in range(1000):
        total = 0
        for position, digit in enumerate((value % 10, value // 10 % 10, value // 100)):
            if (position % 2 == 0) == first_doubled:
                digit = digit * 2 - 9 if digit > 4 else digit * 2
            total += digit
        sums.append(total)
    return sums


def _card_numbers(rng: random.Random, count: int) -> list[str]:
    """19 digits, 6217…, unique: an affine map of the card id modulo 10**12, then the Luhn digit.

    The Luhn sum goes by 3-digit groups from tables (4 µs a number for the digit loop is a
    second at this scale); the first number is checked against ids.luhn_checksum_digit.
    Raises DemoError if the two disagree.
    """
    even, odd = _luhn_groups(True), _luhn_groups(False)
    # The prefix's groups, from the right, continue the body's four: doubled, plain, ...
    groups = [int(CARD_PREFIX[i - 3 : i]) for i in range(len(CARD_PREFIX), 0, -3)]
    prefix = sum((odd if k % 2 else even)[group] for k, group in enumerate(groups))
    offset, modulus = rng.randrange(10**12), 10**12
    numbers = []
    for card_id in range(1, count + 1):
        body = (card_id * 982_451_653 + offset) % modulus
        total = (
            prefix
            + even[body % 1000]
            + odd[body // 1000 % 1000]
            + even[body // 1_000_000 % 1000]
            + odd[body // 1_000_000_000]
        )
        numbers.append(f"{CARD_PREFIX}{body:012d}{(10 - total % 10) % 10}")
    if numbers and luhn_checksum_digit(numbers[0][:-1]) != numbers[0][-1]:
        raise DemoError("the fast Luhn digit disagrees with ids.luhn_checksum_digit")
    return numbers


@dataclass
class People:
    members: list[tuple[Any, ...]]
    cards: list[tuple[Any, ...]]
    history: list[tuple[Any, ...]]
    town_of_card: list[int]  # by card id (index 0 unused)


def _cards(rng: random.Random, count: int, cal: Calendar) -> tuple[list[Any], list[Any], list[int]]:
    """Cards, their status history, and how many days ago each was issued."""
    numbers = _card_numbers(rng, count)
    tier_of, status_of = _thresholds(TIERS), _thresholds(STATUSES)
    office = [timedelta(minutes=m) for m in range(540, 1020)]
    cards, history, issued_back = [], [], []
    draw = rng.random
    for card_id in range(1, count + 1):
        status = status_of(draw())
        if status == "expired":
            expired_back = 1 + int(draw() * 700)
            back = expired_back + CARD_YEARS.days
            since = cal.midnight_back(expired_back - 1)  # the day after expires_on
        else:
            back = 60 + int(draw() * 1640)  # issued before the traffic window, valid after today
        issued_at = cal.midnight_back(back) + office[int(draw() * 480)]
        if status == "active":
            since = issued_at
        elif status != "expired":
            since = cal.midnight_back(1 + int(draw() * (back - 31))) + office[int(draw() * 480)]
        issued_on = cal.day_back(back)
        cards.append(
            (card_id, card_id, numbers[card_id - 1], status, since, tier_of(draw()), issued_on, issued_on + CARD_YEARS)
        )
        history.append((card_id, "active", issued_at))
        if status != "active":
            history.append((card_id, status, since))
        issued_back.append(back)
    return cards, history, issued_back


def _people(rng: random.Random, sizes: Sizes, district: District, cal: Calendar, secret_key: str) -> People:
    cards, history, issued_back = _cards(rng, sizes.cards, cal)
    names = _person_names(rng, sizes.cards)
    national_ids = _national_ids(rng, sizes.cards, cal.today)
    others = [rng.lognormvariate(0, 0.6) for _ in district.grassroots[1:]]
    org_sizes = [sizes.big_village, *_split(sizes.cards - sizes.big_village, others)]
    migrant, nobody = ["农民工"], list[str]()  # shared: COPY encodes them, nobody changes them
    members: list[tuple[Any, ...]] = []
    town_of_card = [0]
    draw = rng.random
    for (org_id, town_id, kind, _, _), size in zip(district.grassroots, org_sizes, strict=True):
        migrant_share = 0.9 if len(members) == 0 else 0.6 if kind == "village" else 0.4
        for _ in range(size):
            index = len(members)
            national_id = national_ids[index]
            members.append(
                (
                    index + 1,
                    org_id,
                    names[index],
                    keyed_hash(secret_key, national_id),
                    national_id[-4:],
                    f"1{'35789'[int(draw() * 5)]}{int(draw() * 1e9):09d}",
                    migrant if draw() < migrant_share else nobody,
                    cal.day_back(issued_back[index] + int(draw() * 400)),
                )
            )
            town_of_card.append(district.town_index(town_id))
    return People(members, cards, history, town_of_card)


# ---------------------------------------------------------------- merchants, contracts, terminals


def _merchants(rng: random.Random, sizes: Sizes, district: District, cal: Calendar) -> list[Merchant]:
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


def _merchant_row(
    rng: random.Random, merchant: Merchant, centres: list[tuple[float, float]], created_at: datetime
) -> tuple[Any, ...]:
    town_name = TOWN_NAMES[merchant.town]
    latitude, longitude = centres[merchant.town]
    company = rng.random() < 0.7  # the others are sole traders, paid to the owner's name
    payee = f"{DISTRICT_PLACE}{merchant.name.split('（')[0]}有限公司" if company else _person_names(rng, 1)[0]
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
    """Budgets well above the month's traffic, none for some; a few are left to _tighten_budgets."""
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


# ---------------------------------------------------------------- a month of till traffic

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


def _candidates(
    rng: random.Random, merchants: list[Merchant], sizes: Sizes, cal: Calendar
) -> list[tuple[int, int, int, Merchant, Offer, int]]:
    """Sales a month could have had, in time order, each inside its offer's days and hours."""
    open_merchants = [m for m in merchants if m.status == "active" and m.till_ids]
    if not open_merchants:
        return []
    pick_merchant = _sampler(rng, [m.weight for m in open_merchants])
    pick_day = _sampler(rng, [DAY_WEIGHTS[day.isoweekday()] for day in cal.window])
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


def _tighten_budgets(candidates: list[tuple[int, int, int, Merchant, Offer, int]], cal: Calendar) -> None:
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


def _sales(
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


def _refunds(rng: random.Random, sales: list[tuple[Any, ...]], cal: Calendar) -> list[tuple[Any, ...]]:
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


# ---------------------------------------------------------------- SQL

ORG_COLUMNS = ("id", "parent_id", "kind", "name", "code")
MEMBER_COLUMNS = ("id", "org_id", "name", "national_id_hash", "national_id_last4", "phone", "tags", "joined_on")
CARD_COLUMNS = ("id", "member_id", "number", "status", "status_since", "tier", "issued_on", "expires_on")
HISTORY_COLUMNS = ("card_id", "status", "valid_from")
MERCHANT_COLUMNS = (
    "id",
    "name",
    "category",
    "address",
    "latitude",
    "longitude",
    "org_id",
    "status",
    "payee_name",
    "payee_account",
    "payee_bank",
    "created_at",
)
CONTRACT_COLUMNS = (
    "id",
    "merchant_id",
    "version",
    "kind",
    "rate_bps",
    "amount_minor",
    "currency",
    "min_spend_minor",
    "discount_minor_max",
    "per_card_daily_sales_max",
    "per_card_monthly_sales_max",
    "valid_from",
    "days_of_week",
    "hours_start",
    "hours_end",
    "eligible_tiers",
    "eligible_org_ids",
    "union_share_bps",
    "monthly_budget_minor",
    "created_at",
)
TERMINAL_COLUMNS = ("id", "merchant_id", "name", "key_prefix", "key_hash", "status", "created_at", "revoked_at")
REDEMPTION_COLUMNS = (
    "id",
    "merchant_id",
    "terminal_id",
    "card_id",
    "contract_version_id",
    "amount_minor",
    "discount_minor",
    "union_funded_minor",
    "merchant_funded_minor",
    "currency",
    "receipt_ref",
    "occurred_at",
    "recorded_at",
)
REFUND_COLUMNS = (
    "id",
    "redemption_id",
    "merchant_id",
    "terminal_id",
    "amount_minor",
    "discount_minor",
    "union_funded_minor",
    "merchant_funded_minor",
    "currency",
    "created_at",
)

ANY_ROWS_SQL = """
SELECT EXISTS (SELECT 1 FROM orgs) OR EXISTS (SELECT 1 FROM members) OR EXISTS (SELECT 1 FROM cards)
    OR EXISTS (SELECT 1 FROM merchants) OR EXISTS (SELECT 1 FROM staff_users)
    OR EXISTS (SELECT 1 FROM redemptions) OR EXISTS (SELECT 1 FROM ledger_transactions)
"""
# The aggregates below hash a few hundred thousand groups: let them do it in memory.
WORK_MEM_SQL = "SET LOCAL work_mem = '256MB'"
STAFF_SQL = """
INSERT INTO staff_users (email, display_name, password_hash, role, org_id, merchant_id)
SELECT email, display_name, password_hash, role, org_id, merchant_id
  FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[])
       AS s (email, display_name, password_hash, role, org_id, merchant_id)
RETURNING id, email
"""
TOKEN_SQL = "INSERT INTO api_tokens (token_hash, staff_user_id, label) VALUES ($1, $2, 'demo')"

# Counters and budgets as till_redeem and till_refund would have left them; $1 is the till's time zone.
USAGE_DAYS_SQL = """
INSERT INTO card_usage_days (card_id, merchant_id, day, sales_count, discount_minor)
SELECT card_id, merchant_id, (occurred_at AT TIME ZONE $1)::date, count(*), sum(discount_minor)
  FROM redemptions
 GROUP BY 1, 2, 3
"""
USAGE_MONTHS_SQL = """
INSERT INTO card_usage_months (card_id, merchant_id, month, sales_count, discount_minor)
SELECT card_id, merchant_id, date_trunc('month', day)::date, sum(sales_count), sum(discount_minor)
  FROM card_usage_days
 GROUP BY 1, 2, 3
"""
BUDGET_MONTHS_SQL = """
INSERT INTO merchant_budget_months (merchant_id, month, used_minor)
SELECT r.merchant_id, date_trunc('month', r.occurred_at AT TIME ZONE $1)::date,
       sum(r.union_funded_minor - coalesce(f.union_funded_minor, 0))
  FROM redemptions r
  LEFT JOIN (SELECT redemption_id, sum(union_funded_minor) AS union_funded_minor
               FROM refunds GROUP BY redemption_id) f ON f.redemption_id = r.id
 GROUP BY 1, 2
"""
# One ledger transaction per sale or refund the union funded, numbered in time order, as ledger_post
# would have written them; the legs are joined back by redemption_id and refund_id.
LEDGER_TRANSACTIONS_SQL = """
INSERT INTO ledger_transactions (kind, merchant_id, redemption_id, refund_id, occurred_at, recorded_at)
SELECT kind, merchant_id, redemption_id, refund_id, occurred_at, recorded_at
  FROM (SELECT 'sale' AS kind, merchant_id, id AS redemption_id, NULL::uuid AS refund_id,
               occurred_at, recorded_at
          FROM redemptions WHERE union_funded_minor > 0
        UNION ALL
        SELECT 'refund', merchant_id, redemption_id, id, created_at, created_at
          FROM refunds WHERE union_funded_minor > 0) AS events
 ORDER BY recorded_at, occurred_at
"""
SALE_POSTINGS_SQL = """
INSERT INTO ledger_postings (transaction_id, account, amount_minor, currency, recorded_at)
SELECT t.id, leg.account, leg.amount_minor, r.currency, t.recorded_at
  FROM ledger_transactions t
  JOIN redemptions r ON r.id = t.redemption_id
 CROSS JOIN LATERAL (VALUES ('union:subsidy_expense', r.union_funded_minor),
                            ('merchant:' || r.merchant_id || ':payable', -r.union_funded_minor))
       AS leg (account, amount_minor)
 WHERE t.kind = 'sale'
 ORDER BY t.id
"""
REFUND_POSTINGS_SQL = """
INSERT INTO ledger_postings (transaction_id, account, amount_minor, currency, recorded_at)
SELECT t.id, leg.account, leg.amount_minor, f.currency, t.recorded_at
  FROM ledger_transactions t
  JOIN refunds f ON f.id = t.refund_id
 CROSS JOIN LATERAL (VALUES ('merchant:' || f.merchant_id || ':payable', f.union_funded_minor),
                            ('union:subsidy_expense', -f.union_funded_minor))
       AS leg (account, amount_minor)
 WHERE t.kind = 'refund'
 ORDER BY t.id
"""
# Row triggers would check every foreign key of 1.5 million rows one by one, and the ledger's
# deferred balance trigger 600,000 postings at commit: replica mode skips triggers until ORIGIN_SQL,
# and FOREIGN_KEYS_SQL and LEDGER_CHECK_SQL prove the same things afterwards, one pass each.
# Only a superuser may; anyone else loads with the triggers on, in an order the keys allow, slower.
SUPERUSER_SQL = "SELECT current_setting('is_superuser') = 'on'"
REPLICA_SQL = "SET LOCAL session_replication_role = replica"
ORIGIN_SQL = "SET LOCAL session_replication_role = origin"
FOREIGN_KEYS_SQL = """
SELECT (SELECT count(*) FROM members x WHERE NOT EXISTS (SELECT FROM orgs y WHERE y.id = x.org_id))
           AS members_org,
       (SELECT count(*) FROM cards x WHERE NOT EXISTS (SELECT FROM members y WHERE y.id = x.member_id))
           AS cards_member,
       (SELECT count(*) FROM card_status_history x
         WHERE NOT EXISTS (SELECT FROM cards y WHERE y.id = x.card_id)) AS history_card,
       (SELECT count(*) FROM merchants x
         WHERE x.org_id IS NOT NULL AND NOT EXISTS (SELECT FROM orgs y WHERE y.id = x.org_id))
           AS merchants_org,
       (SELECT count(*) FROM contract_versions x
         WHERE NOT EXISTS (SELECT FROM merchants y WHERE y.id = x.merchant_id)) AS contracts_merchant,
       (SELECT count(*) FROM terminals x
         WHERE NOT EXISTS (SELECT FROM merchants y WHERE y.id = x.merchant_id)) AS terminals_merchant,
       (SELECT count(*) FROM staff_users x
         WHERE (x.org_id IS NOT NULL AND NOT EXISTS (SELECT FROM orgs y WHERE y.id = x.org_id))
            OR (x.merchant_id IS NOT NULL
                AND NOT EXISTS (SELECT FROM merchants y WHERE y.id = x.merchant_id))) AS staff_scope,
       (SELECT count(*) FROM api_tokens x
         WHERE NOT EXISTS (SELECT FROM staff_users y WHERE y.id = x.staff_user_id)) AS tokens_staff,
       (SELECT count(*) FROM redemptions x WHERE NOT EXISTS (
           SELECT FROM terminals y WHERE y.id = x.terminal_id AND y.merchant_id = x.merchant_id))
           AS redemptions_terminal,
       (SELECT count(*) FROM redemptions x WHERE NOT EXISTS (SELECT FROM cards y WHERE y.id = x.card_id))
           AS redemptions_card,
       (SELECT count(*) FROM redemptions x WHERE NOT EXISTS (
           SELECT FROM contract_versions y
            WHERE y.id = x.contract_version_id AND y.merchant_id = x.merchant_id)) AS redemptions_contract,
       (SELECT count(*) FROM refunds x WHERE NOT EXISTS (
           SELECT FROM redemptions y WHERE y.id = x.redemption_id AND y.merchant_id = x.merchant_id))
           AS refunds_redemption,
       (SELECT count(*) FROM refunds x WHERE NOT EXISTS (
           SELECT FROM terminals y WHERE y.id = x.terminal_id AND y.merchant_id = x.merchant_id))
           AS refunds_terminal,
       (SELECT count(*) FROM ledger_postings x
         WHERE NOT EXISTS (SELECT FROM ledger_transactions y WHERE y.id = x.transaction_id))
           AS postings_transaction
"""
LEDGER_CHECK_SQL = """
SELECT (SELECT count(*) FROM ledger_unbalanced) AS unbalanced,
       ledger_balance('union:subsidy_expense') AS expense,
       (SELECT coalesce(sum(union_funded_minor), 0) FROM redemptions)
     - (SELECT coalesce(sum(union_funded_minor), 0) FROM refunds) AS union_net
"""
# Explicit ids bypassed the identity sequences; later inserts must start above them.
SEQUENCES_SQL = """
SELECT setval(pg_get_serial_sequence('orgs', 'id'), (SELECT max(id) FROM orgs)),
       setval(pg_get_serial_sequence('members', 'id'), (SELECT max(id) FROM members)),
       setval(pg_get_serial_sequence('cards', 'id'), (SELECT max(id) FROM cards)),
       setval(pg_get_serial_sequence('merchants', 'id'), (SELECT max(id) FROM merchants)),
       setval(pg_get_serial_sequence('contract_versions', 'id'), (SELECT max(id) FROM contract_versions)),
       setval(pg_get_serial_sequence('terminals', 'id'), (SELECT max(id) FROM terminals))
"""
COUNTS_SQL = """
SELECT (SELECT count(*) FROM orgs) AS orgs, (SELECT count(*) FROM members) AS members,
       (SELECT count(*) FROM cards) AS cards,
       (SELECT count(*) FROM card_status_history) AS card_status_history,
       (SELECT count(*) FROM merchants) AS merchants,
       (SELECT count(*) FROM contract_versions) AS contract_versions,
       (SELECT count(*) FROM terminals) AS terminals, (SELECT count(*) FROM staff_users) AS staff_users,
       (SELECT count(*) FROM api_tokens) AS api_tokens, (SELECT count(*) FROM redemptions) AS redemptions,
       (SELECT count(*) FROM refunds) AS refunds, (SELECT count(*) FROM card_usage_days) AS card_usage_days,
       (SELECT count(*) FROM card_usage_months) AS card_usage_months,
       (SELECT count(*) FROM merchant_budget_months) AS merchant_budget_months,
       (SELECT count(*) FROM ledger_transactions) AS ledger_transactions,
       (SELECT count(*) FROM ledger_postings) AS ledger_postings
"""
ANALYZE_SQL = """
ANALYZE orgs, members, cards, card_status_history, merchants, contract_versions, terminals, redemptions,
        refunds, card_usage_days, card_usage_months, merchant_budget_months, ledger_transactions,
        ledger_postings
"""


# ---------------------------------------------------------------- loading


class Steps:
    """Progress lines and the seconds each stage took."""

    def __init__(self, progress: Callable[[str], None]) -> None:
        self.progress = progress
        self.seconds: dict[str, float] = {}
        self._last = self._start = time.monotonic()

    def done(self, stage: str, count: int | None = None, note: str = "") -> None:
        now = time.monotonic()
        elapsed, self._last = now - self._last, now
        self.seconds[stage] = round(elapsed, 2)
        shown = f"{stage} {count:,}" if count is not None else stage
        self.progress(f"{shown} ({note}{elapsed:.1f} s)")

    @property
    def total(self) -> float:
        return round(time.monotonic() - self._start, 2)


async def _copy(conn: asyncpg.Connection, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> int:
    await conn.copy_records_to_table(table, records=rows, columns=list(columns))
    return len(rows)


def _status_count(status: str) -> int:
    return int(status.rsplit(" ", 1)[-1])  # 'INSERT 0 1234'


async def _load_district(conn: asyncpg.Connection, rng: random.Random, sizes: Sizes, steps: Steps) -> District:
    district = _district(rng, sizes)
    # Parents before children: the path trigger reads the parent's row.
    for level in (district.district, district.towns, district.grassroots):
        await _copy(conn, "orgs", ORG_COLUMNS, level)
    steps.done("orgs", 1 + len(district.towns) + len(district.grassroots))
    return district


async def _copy_people(conn: asyncpg.Connection, people: People, steps: Steps) -> None:
    steps.done("members", await _copy(conn, "members", MEMBER_COLUMNS, people.members))
    steps.done("cards", await _copy(conn, "cards", CARD_COLUMNS, people.cards))
    steps.done("card_status_history", await _copy(conn, "card_status_history", HISTORY_COLUMNS, people.history))


async def _copy_merchants(
    conn: asyncpg.Connection, rng: random.Random, sizes: Sizes, merchants: list[Merchant], cal: Calendar, steps: Steps
) -> None:
    centres = [(30.22 + 0.16 * rng.random(), 120.03 + 0.24 * rng.random()) for _ in range(sizes.towns)]
    signed = {m.id: cal.midnight(m.offers[0].valid_from) - timedelta(days=7) for m in merchants}
    rows = [_merchant_row(rng, m, centres, signed[m.id]) for m in merchants]
    steps.done("merchants", await _copy(conn, "merchants", MERCHANT_COLUMNS, rows))
    terminals = [t.row() for m in merchants for t in m.terminals]
    steps.done("terminals", await _copy(conn, "terminals", TERMINAL_COLUMNS, terminals))


async def _copy_contracts(conn: asyncpg.Connection, merchants: list[Merchant], cal: Calendar, steps: Steps) -> None:
    offers = [o.row(cal.midnight(o.valid_from) - timedelta(days=3)) for m in merchants for o in m.offers]
    steps.done("contract_versions", await _copy(conn, "contract_versions", CONTRACT_COLUMNS, offers))


def _staff(district: District, merchants: list[Merchant]) -> list[dict[str, Any]]:
    staff: list[dict[str, Any]] = [
        {
            "email": "admin@demo.unioncard",
            "password": "demo-admin",
            "role": "federation_admin",
            "display_name": "区总工会管理员",
        },
        {
            "email": "finance@demo.unioncard",
            "password": "demo-finance",
            "role": "finance_officer",
            "display_name": "区总工会财务",
        },
    ]
    for number, (org_id, _, _, name, _) in enumerate(district.towns, start=1):
        staff.append(
            {
                "email": f"reviewer{number}@demo.unioncard",
                "password": "demo-reviewer",
                "role": "org_reviewer",
                "org_id": org_id,
                "display_name": f"{name}审核员",
            }
        )
    for merchant in merchants[:5]:
        staff.append(
            {
                "email": f"merchant{merchant.id}@demo.unioncard",
                "password": "demo-merchant",
                "role": "merchant_admin",
                "merchant_id": merchant.id,
                "display_name": f"{merchant.name}管理员",
            }
        )
    return staff


async def _load_staff(
    conn: asyncpg.Connection, district: District, merchants: list[Merchant], steps: Steps
) -> tuple[str, list[dict[str, Any]]]:
    """Staff and the admin's API token. Raises DemoError if the admin row is missing."""
    staff = _staff(district, merchants)
    # Argon2 costs 0.1 s a hash here; these passwords are printed in the manifest anyway, so one
    # hash per password serves every account that shares it.
    hashes = {p: hash_password(p) for p in {s["password"] for s in staff}}
    rows = await conn.fetch(
        STAFF_SQL,
        [s["email"] for s in staff],
        [s["display_name"] for s in staff],
        [hashes[s["password"]] for s in staff],
        [s["role"] for s in staff],
        [s.get("org_id") for s in staff],
        [s.get("merchant_id") for s in staff],
    )
    admin_id = next((r["id"] for r in rows if r["email"] == staff[0]["email"]), None)
    if admin_id is None:
        raise DemoError("the demo admin was not created")
    token = new_secret("uca")
    await conn.execute(TOKEN_SQL, hash_secret(token), admin_id)
    steps.done("staff_users", len(rows))
    return token, staff


def _traffic(
    rng: random.Random, sizes: Sizes, merchants: list[Merchant], people: People, cal: Calendar
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], float]:
    """Sales and refunds, and the seconds it took; runs in a thread while the server copies.

    It sets the tight budgets, so the contract versions are copied after it.
    """
    started = time.monotonic()
    pools = Pools(rng, people, sizes.towns)
    candidates = _candidates(rng, merchants, sizes, cal)
    _tighten_budgets(candidates, cal)
    sales = _sales(rng, candidates, pools, cal)
    return sales, _refunds(rng, sales, cal), time.monotonic() - started


async def _copy_traffic(
    conn: asyncpg.Connection, sales: list[tuple[Any, ...]], refunds: list[tuple[Any, ...]], steps: Steps
) -> None:
    steps.done("redemptions", await _copy(conn, "redemptions", REDEMPTION_COLUMNS, sales))
    steps.done("refunds", await _copy(conn, "refunds", REFUND_COLUMNS, refunds))


async def _derive(conn: asyncpg.Connection, cal: Calendar, steps: Steps) -> None:
    tz = cal.tz.key
    steps.done("card_usage_days", _status_count(await conn.execute(USAGE_DAYS_SQL, tz)))
    steps.done("card_usage_months", _status_count(await conn.execute(USAGE_MONTHS_SQL)))
    steps.done("merchant_budget_months", _status_count(await conn.execute(BUDGET_MONTHS_SQL, tz)))
    steps.done("ledger_transactions", _status_count(await conn.execute(LEDGER_TRANSACTIONS_SQL)))
    postings = _status_count(await conn.execute(SALE_POSTINGS_SQL))
    postings += _status_count(await conn.execute(REFUND_POSTINGS_SQL))
    steps.done("ledger_postings", postings)


async def _prove(conn: asyncpg.Connection, steps: Steps) -> None:
    """What the skipped triggers would have checked, set-based.

    Raises DemoError on a dangling reference, an unbalanced ledger transaction, or a subsidy
    expense that disagrees with the sales and refunds.
    """
    dangling = {name: n for name, n in (await conn.fetchrow(FOREIGN_KEYS_SQL)).items() if n}
    if dangling:
        raise DemoError(f"the demo has dangling references: {dangling}")
    ledger = await conn.fetchrow(LEDGER_CHECK_SQL)
    if ledger["unbalanced"] != 0 or ledger["expense"] != ledger["union_net"]:
        raise DemoError(f"the demo ledger does not balance: {dict(ledger)}")
    steps.done("foreign keys and ledger proven")


def _manifest(rng: random.Random, people: People, merchants: list[Merchant], cal: Calendar) -> dict[str, Any]:
    terminals, revoked = [], []
    for merchant in merchants:
        terms = merchant.offer_at(cal.today).terms()
        for terminal in merchant.terminals:
            if merchant.status == "active" and terminal.revoked_at is None:
                terminals.append(
                    {
                        "merchant_id": merchant.id,
                        "merchant_name": merchant.name,
                        "category": merchant.category.slug,
                        "terminal_id": terminal.id,
                        "terminal_key": terminal.key,
                        "contract": terms,
                    }
                )
            else:
                reason = "terminal_revoked" if terminal.revoked_at is not None else "merchant_suspended"
                revoked.append(
                    {
                        "merchant_id": merchant.id,
                        "terminal_id": terminal.id,
                        "terminal_key": terminal.key,
                        "reason": reason,
                    }
                )
    numbers: dict[str, list[str]] = {}
    for _, _, number, status, *_ in people.cards:
        numbers.setdefault(status, []).append(number)
    cards = {status: rng.sample(found, min(len(found), SAMPLE_PER_STATUS)) for status, found in numbers.items()}
    return {"terminals": terminals, "revoked_terminals": revoked, "cards": cards}


async def _load_all(
    conn: asyncpg.Connection,
    rng: random.Random,
    traffic_rng: random.Random,
    sizes: Sizes,
    cal: Calendar,
    secret_key: str,
    steps: Steps,
) -> dict[str, Any]:
    district = await _load_district(conn, rng, sizes, steps)
    triggers_off = bool(await conn.fetchval(SUPERUSER_SQL))
    if triggers_off:
        await conn.execute(REPLICA_SQL)  # the orgs' path trigger has run; no other trigger is wanted
    else:
        steps.progress("not a superuser: loading with every trigger on (slower)")
    people = _people(rng, sizes, district, cal, secret_key)
    merchants = _merchants(rng, sizes, district, cal)
    steps.done("members, cards and merchants generated", len(people.cards))
    # Two cores: Python draws the month's sales while the server takes the cards.
    with ThreadPoolExecutor(max_workers=1) as worker:
        traffic = asyncio.get_running_loop().run_in_executor(
            worker, _traffic, traffic_rng, sizes, merchants, people, cal
        )
        await _copy_people(conn, people, steps)
        await _copy_merchants(conn, rng, sizes, merchants, cal, steps)
        admin_token, staff = await _load_staff(conn, district, merchants, steps)
        sales, refunds, drawn_s = await traffic
    steps.done(
        "sales and refunds drawn", len(sales) + len(refunds), note=f"{drawn_s:.1f} s beside the copies, then waited "
    )
    await _copy_contracts(conn, merchants, cal, steps)
    await _copy_traffic(conn, sales, refunds, steps)
    await _derive(conn, cal, steps)
    if triggers_off:
        await conn.execute(ORIGIN_SQL)
    await _prove(conn, steps)
    await conn.execute(SEQUENCES_SQL)
    await conn.execute(ANALYZE_SQL)
    steps.done("sequences and statistics")
    return {
        "admin_token": admin_token,
        "staff": staff,
        **_manifest(rng, people, merchants, cal),
        "counts": dict(await conn.fetchrow(COUNTS_SQL)),
    }


async def load_demo(
    conn: asyncpg.Connection,
    *,
    scale: float = 1.0,
    secret_key: str,
    seed: int = 20261129,
    progress: Callable[[str], None] = print,
    today: date | None = None,
    settlement: bool = True,
) -> dict[str, Any]:
    """Load a district at `scale` of DESIGN.md's figures, with the month of till traffic before `today`.

    The district in one transaction; then, with `settlement`, the month's claims and batches through
    the settlement code (demo_settlement). Raises DemoError when the database is not empty or a check fails.
    """
    if scale <= 0:
        raise ValueError(f"scale must be positive, not {scale}")
    if await conn.fetchval(ANY_ROWS_SQL):
        raise DemoError("the demo loads into an empty database: reset it first (unioncard demo --reset)")
    sizes, steps = Sizes.at(scale), Steps(progress)
    cal = Calendar(await conn.fetchval("SELECT till_local_tz()"), today)
    # The traffic thread draws from its own stream, so the demo is the same whatever the timing.
    rng, traffic_rng = random.Random(seed), random.Random(seed + 1)
    async with conn.transaction():
        await conn.execute(WORK_MEM_SQL)
        manifest = await _load_all(conn, rng, traffic_rng, sizes, cal, secret_key, steps)
    steps.done("committed")
    if settlement:
        from unioncard.demo_settlement import claim_period, load_settlement

        logins = [member["merchant_id"] for member in manifest["staff"] if member.get("merchant_id")]
        manifest["settlement"] = made = await load_settlement(
            conn, random.Random(seed + 2), claim_period(cal.window), cal.tz.key, logins
        )
        manifest["counts"] = dict(await conn.fetchrow(COUNTS_SQL))  # with the settlement's ledger postings
        steps.done("claims reconciled, batches approved and paid", made["claims"])
    return {
        **manifest,
        "today": cal.today.isoformat(),
        "scale": scale,
        "stage_seconds": {**steps.seconds, "total": steps.total},
    }
