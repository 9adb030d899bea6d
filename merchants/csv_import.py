"""Bulk import of merchants from a CSV file, all or nothing."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import asyncpg

from unioncard.csvfile import CsvRejected, problem, read_rows, rejection_as_domain_error
from unioncard.db import Queries

queries = Queries(Path(__file__).parent / "import_queries.sql")

COLUMNS: dict[str, tuple[str, ...]] = {
    "name": ("商户名称",),
    "category": ("类别",),
    "address": ("地址",),
    "latitude": ("纬度",),
    "longitude": ("经度",),
    "org_code": ("所属工会编码",),
    "payee_name": ("收款户名",),
    "payee_account": ("收款账号",),
    "payee_bank": ("开户行",),
}
REQUIRED = {"name", "category"}
STAGE_COLUMNS = (
    "line", "name", "category", "address", "latitude", "longitude", "org_id",
    "payee_name", "payee_account", "payee_bank",
)  # fmt: skip


async def import_merchants(conn: asyncpg.Connection, data: bytes) -> dict[str, int]:
    """Merchants from a CSV file, loaded by COPY in one transaction.

    Returns {"merchants": n}. Raises DomainError import_rejected listing every bad line
    with its reason: missing values, coordinates out of range or one without the other,
    unknown org codes, payee details without a name or account, the same name and address
    twice in the file or already in the database. Nothing is written then.
    """
    with rejection_as_domain_error():
        rows = read_rows(data, COLUMNS, REQUIRED)
        codes = list({row["org_code"] for _, row in rows if row["org_code"]})
        by_code = {org["code"]: org["id"] for org in await conn.fetch(queries.import_orgs_by_code, codes)}
        errors: list[dict[str, Any]] = []
        first_line: dict[tuple[str, str], int] = {}
        records = [_record(line, row, by_code, first_line, errors) for line, row in rows]
        return await _load(conn, records, errors)


def _record(
    line: int,
    row: dict[str, str],
    by_code: dict[str, int],
    first_line: dict[tuple[str, str], int],
    errors: list[dict[str, Any]],
) -> tuple[Any, ...]:
    """The staging record of one line; its problems go to `errors`."""
    found = [problem(line, column, message) for column, message in _problems(row, by_code)]
    if row["address"]:
        first = first_line.setdefault((row["name"], row["address"]), line)
        if first != line:
            found.append(problem(line, "name", f"the same name and address as line {first}"))
    errors.extend(found)
    latitude, longitude = (_degrees(row[axis]) for axis in ("latitude", "longitude"))
    return (
        line, row["name"], row["category"], row["address"], latitude, longitude,
        by_code.get(row["org_code"]), row["payee_name"] or None, row["payee_account"] or None,
        row["payee_bank"] or None,
    )  # fmt: skip


def _problems(row: dict[str, str], by_code: dict[str, int]) -> list[tuple[str, str]]:
    """(column, message) for everything wrong with one line."""
    found = [(column, f"{column} is required") for column in ("name", "category") if not row[column]]
    found += [(column, f"{column} is longer than 200 characters")
              for column in ("name", "category", "address") if len(row[column]) > 200]  # fmt: skip
    found += _coordinate_problems(row["latitude"], row["longitude"])
    if row["org_code"] and row["org_code"] not in by_code:
        found.append(("org_code", f"no org with code {row['org_code']}"))
    if (row["payee_bank"] or row["payee_name"] or row["payee_account"]) and not (
        row["payee_name"] and row["payee_account"]
    ):
        found.append(("payee_account", "payee details need both payee_name and payee_account"))
    if row["payee_account"] and not re.fullmatch(r"[0-9A-Za-z -]{6,40}", row["payee_account"]):
        found.append(("payee_account", "not a bank account number"))
    return found


def _coordinate_problems(latitude: str, longitude: str) -> list[tuple[str, str]]:
    if bool(latitude) != bool(longitude):
        missing = "longitude" if latitude else "latitude"
        return [(missing, "latitude and longitude come together: give both or neither")]
    found = []
    for column, text, limit in (("latitude", latitude, 90), ("longitude", longitude, 180)):
        if not text:
            continue
        degrees = _degrees(text)
        if degrees is None:
            found.append((column, f"not decimal degrees: {text!r}"))
        elif not -limit <= degrees <= limit:
            found.append((column, f"{column} {text} is outside -{limit}..{limit}"))
    return found


def _degrees(text: str) -> float | None:
    """Decimal degrees such as 30.2741 or -0.5; None when absent or not a number."""
    if not re.fullmatch(r"[+-]?[0-9]{1,3}(\.[0-9]+)?", text):
        return None
    return float(text)


async def _load(
    conn: asyncpg.Connection, records: list[tuple[Any, ...]], errors: list[dict[str, Any]]
) -> dict[str, int]:
    """Stage every line by COPY, add the database's clashes, then insert all or raise."""
    async with conn.transaction():
        await conn.execute(queries.import_merchants_stage)
        await conn.copy_records_to_table("import_merchants", records=records, columns=STAGE_COLUMNS)
        clashes = await conn.fetch(queries.import_merchants_clashes)
        errors = errors + [problem(row["line"], row["column_name"], row["message"]) for row in clashes]
        if errors:
            raise CsvRejected(errors)
        merchants = await conn.fetchval(queries.import_merchants_insert)
        await conn.execute(queries.import_merchants_unstage)
    return {"merchants": merchants}
