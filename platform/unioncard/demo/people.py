"""Orgs, members and cards: the district's tree and the people in it."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from unioncard.demo.figures import (
    CARD_YEARS,
    DISTRICT_NAME,
    FIRM_CHARACTERS,
    GIVEN_CHARACTERS,
    ID_CHECK,
    ID_WEIGHTS,
    INDUSTRIES,
    REGION_CODES,
    STATUSES,
    SURNAMES,
    TIERS,
    TOWN_NAMES,
    VILLAGE_STEMS,
    DemoError,
)
from unioncard.demo.model import Calendar, Sizes, split_total, thresholds
from unioncard.ids import keyed_hash, luhn_checksum_digit


@dataclass
class District:
    district: list[tuple[Any, ...]]
    towns: list[tuple[Any, ...]]
    grassroots: list[tuple[Any, ...]]  # (id, parent_id, kind, name, code); the first is the big village

    def town_index(self, org_id: int) -> int:
        return org_id - 2  # towns are ids 2.. in order


def draw_district(rng: random.Random, sizes: Sizes) -> District:
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


def person_names(rng: random.Random, count: int) -> list[str]:
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
    tier_of, status_of = thresholds(TIERS), thresholds(STATUSES)
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


def draw_people(rng: random.Random, sizes: Sizes, district: District, cal: Calendar, secret_key: str) -> People:
    cards, history, issued_back = _cards(rng, sizes.cards, cal)
    names = person_names(rng, sizes.cards)
    national_ids = _national_ids(rng, sizes.cards, cal.today)
    others = [rng.lognormvariate(0, 0.6) for _ in district.grassroots[1:]]
    org_sizes = [sizes.big_village, *split_total(sizes.cards - sizes.big_village, others)]
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
