"""Bulk import of members with their cards from a CSV file, all or nothing."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import asyncpg

from unioncard.csvfile import CsvRejected, problem, read_rows, rejection_as_domain_error
from unioncard.db import Queries
from unioncard.ids import card_number_valid, keyed_hash

queries = Queries(Path(__file__).parent / "import_queries.sql")

COLUMNS: dict[str, tuple[str, ...]] = {
    "name": ("姓名",),
    "national_id": ("身份证号", "身份证号码"),
    "org_code": ("工会编码",),
    "org_id": ("工会ID",),
    "phone": ("手机号", "手机号码"),
    "tags": ("标签",),
    "joined_on": ("入会日期",),
    "card_number": ("卡号",),
    "tier": ("等级",),
    "status": ("状态",),
    "expires_on": ("有效期", "有效期至"),
}
REQUIRED = {"name", "national_id", "card_number", "expires_on"}
ORG_COLUMNS = {"org_code", "org_id"}
STAGE_COLUMNS = (
    "line", "org_id", "name", "national_id_hash", "national_id_last4", "phone", "tags",
    "joined_on", "card_number", "tier", "status", "expires_on",
)  # fmt: skip
STATUSES = {
    "active": "active", "frozen": "frozen", "lost": "lost", "cancelled": "cancelled",
    "expired": "expired", "正常": "active", "冻结": "frozen", "挂失": "lost",
    "注销": "cancelled", "过期": "expired",
}  # fmt: skip
DEFAULT_TIER = "普通职工"
# GB 11643-1999: weights of the first 17 characters, and the check character by sum mod 11.
ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK_CHARACTERS = "10X98765432"


async def import_members_and_cards(
    conn: asyncpg.Connection, data: bytes, *, secret_key: str, today: date | None = None
) -> dict[str, int]:
    """Members and their cards from a CSV file, loaded by COPY in one transaction.

    `today` (default: today in the union's time zone) is the cards' issue day and the
    default joining day. Returns {"members": n, "cards": n}.
    Raises DomainError import_rejected listing every bad line with its reason: format,
    check digits, repeats inside the file, unknown orgs, national IDs or card numbers the
    database already has. Nothing is written then.
    """
    with rejection_as_domain_error():
        rows = read_rows(data, COLUMNS, REQUIRED, required_any=[ORG_COLUMNS])
        today = today or await conn.fetchval(queries.import_today)
        parser = _LineParser(secret_key, today, *await _orgs(conn, rows))
        records = [parser.record(line, row) for line, row in rows]
        return await _load(conn, records, parser.errors, today)


async def _orgs(conn: asyncpg.Connection, rows: list[tuple[int, dict[str, str]]]) -> tuple[dict[str, int], set[int]]:
    """The orgs the file names: ids by code, and the set of ids."""
    codes = {row["org_code"] for _, row in rows if row["org_code"]}
    ids = {int(row["org_id"]) for _, row in rows if _is_id(row["org_id"])}
    found = await conn.fetch(queries.import_orgs_lookup, list(codes), list(ids))
    return {org["code"]: org["id"] for org in found if org["code"]}, {org["id"] for org in found}


class _LineParser:
    """Turns lines into staging records, collecting every problem and repeat."""

    def __init__(self, secret_key: str, today: date, by_code: dict[str, int], ids: set[int]) -> None:
        self.secret_key, self.today, self.by_code, self.ids = secret_key, today, by_code, ids
        self.errors: list[dict[str, Any]] = []
        self.first_line: dict[tuple[str, str], int] = {}

    def record(self, line: int, row: dict[str, str]) -> tuple[Any, ...]:
        field = self.field
        national_id = field(line, row, "national_id", _national_id)
        number = field(line, row, "card_number", _card_number)
        self.once(line, "national_id", national_id)
        self.once(line, "card_number", number)
        joined_on = field(line, row, "joined_on", self.joined_on)
        return (
            line, self.org(line, row), field(line, row, "name", _name),
            keyed_hash(self.secret_key, national_id) if national_id else None,
            national_id[-4:] if national_id else None,
            field(line, row, "phone", _phone), _tags(row["tags"]),
            joined_on, number, row["tier"] or DEFAULT_TIER,
            field(line, row, "status", _status), field(line, row, "expires_on", _date),
        )  # fmt: skip

    def field(self, line: int, row: dict[str, str], column: str, parse: Callable[[str], Any]) -> Any:
        try:
            return parse(row[column])
        except ValueError as exc:
            self.errors.append(problem(line, column, str(exc)))
            return None

    def once(self, line: int, column: str, value: str | None) -> None:
        if value is None:
            return
        first = self.first_line.setdefault((column, value), line)
        if first != line:
            # The message names the line, never the value: national IDs stay out of responses.
            self.errors.append(problem(line, column, f"the same {column} as line {first}"))

    def joined_on(self, text: str) -> date:
        if not text:
            return self.today
        joined_on = _date(text)
        if joined_on > self.today:
            raise ValueError(f"joined_on {joined_on} is in the future")
        return joined_on

    def org(self, line: int, row: dict[str, str]) -> int | None:
        """The org by code or by id; when the file gives both they must agree."""
        code = row["org_code"]
        org_id: int | None = self.field(line, row, "org_id", _optional_id)
        if code:
            found = self.by_code.get(code)
            if found is None:
                self.errors.append(problem(line, "org_code", f"no org with code {code}"))
            elif org_id is not None and org_id != found:
                self.errors.append(problem(line, "org_id", "org_id and org_code name different orgs"))
            return found if org_id in (None, found) else None
        if org_id is None and not row["org_id"]:
            self.errors.append(problem(line, "org_code", "org_code or org_id is required"))
        elif org_id is not None and org_id not in self.ids:
            self.errors.append(problem(line, "org_id", f"no org with id {org_id}"))
            return None
        return org_id


async def _load(
    conn: asyncpg.Connection, records: list[tuple[Any, ...]], errors: list[dict[str, Any]], today: date
) -> dict[str, int]:
    """Stage every line by COPY, add the database's clashes, then insert all or raise."""
    async with conn.transaction():
        await conn.execute(queries.import_members_stage)
        await conn.copy_records_to_table("import_members", records=records, columns=STAGE_COLUMNS)
        errors = errors + await _clashes(conn)
        if errors:
            raise CsvRejected(errors)
        counts = await _insert(conn, today)
        await conn.execute(queries.import_members_unstage)
    return counts


async def _clashes(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    rows = await conn.fetch(queries.import_members_clashes)
    return [problem(row["line"], row["column_name"], row["message"]) for row in rows]


async def _insert(conn: asyncpg.Connection, today: date) -> dict[str, int]:
    try:
        async with conn.transaction():
            counts = await conn.fetchrow(queries.import_members_insert, today)
    except asyncpg.UniqueViolationError as exc:
        # A concurrent import committed the same ID or number after our check. Under READ
        # COMMITTED the check, run again, sees that commit and names the lines.
        clashes = await _clashes(conn)
        message = f"imported by someone else meanwhile ({exc.constraint_name}); nothing was loaded"
        raise CsvRejected(clashes or [problem(0, None, message)]) from exc
    return {"members": counts["members"], "cards": counts["cards"]}


def _is_id(text: str) -> bool:
    return re.fullmatch(r"[0-9]{1,18}", text) is not None


def _optional_id(text: str) -> int | None:
    if not text:
        return None
    if not _is_id(text) or int(text) == 0:
        raise ValueError("not an org id (a positive whole number)")
    return int(text)


def _name(text: str) -> str:
    if not text:
        raise ValueError("the name is required")
    if len(text) > 100:
        raise ValueError("the name is longer than 100 characters")
    return text


def _national_id(text: str) -> str:
    """An 18-character ID (GB 11643), upper-cased: the form the hash is taken of."""
    national_id = text.upper()
    if not re.fullmatch(r"[0-9]{17}[0-9X]", national_id):
        raise ValueError("a national ID has 17 digits and a final digit or X")
    total = sum(int(digit) * weight for digit, weight in zip(national_id, ID_WEIGHTS, strict=False))
    if ID_CHECK_CHARACTERS[total % 11] != national_id[-1]:
        raise ValueError("the national ID fails its check digit")
    return national_id


def _card_number(text: str) -> str:
    # ASCII first: str.isdigit() in card_number_valid also accepts full-width digits.
    if not re.fullmatch(r"[0-9]{16,19}", text):
        raise ValueError("a card number has 16 to 19 digits")
    if not card_number_valid(text):
        raise ValueError("the card number fails its check digit (Luhn)")
    return text


def _phone(text: str) -> str | None:
    if not text:
        return None
    if not re.fullmatch(r"\+?[0-9][0-9 -]{4,19}", text):
        raise ValueError("not a phone number")
    return text


def _tags(text: str) -> list[str]:
    """Tags separated by ; or the full-width ；, each once, in file order."""
    return list(dict.fromkeys(tag.strip() for tag in re.split("[;；]", text) if tag.strip()))


def _status(text: str) -> str:
    if not text:
        return "active"
    status = STATUSES.get(text.casefold())
    if status is None:
        raise ValueError("the status is one of active, frozen, lost, cancelled, expired")
    return status


def _date(text: str) -> date:
    """YYYY-MM-DD, and the YYYY/M/D that spreadsheets write back when they re-save a date."""
    if not text:
        raise ValueError("a date is required")
    match = re.fullmatch(r"([0-9]{4})([-/])([0-9]{1,2})\2([0-9]{1,2})", text)
    try:
        if match is None:
            raise ValueError
        return date(int(match[1]), int(match[3]), int(match[4]))
    except ValueError:
        raise ValueError(f"not a date (YYYY-MM-DD): {text!r}") from None
