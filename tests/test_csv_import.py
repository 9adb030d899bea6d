"""Bulk CSV import of members with cards, and of merchants: encodings, headers, all or nothing."""

from __future__ import annotations

import asyncio
import csv
import io
import time
from datetime import date, timedelta
from typing import Any

import asyncpg
import pytest

from cards import csv_import as card_import
from cards.csv_import import import_members_and_cards
from merchants import csv_import as merchant_import
from merchants.csv_import import import_merchants
from unioncard.csvfile import CsvRejected, decode_csv, read_rows
from unioncard.errors import DomainError
from unioncard.ids import keyed_hash, luhn_checksum_digit

SECRET = "test-secret"
TODAY = date(2025, 6, 1)
ZH = ["姓名", "身份证号", "工会编码", "手机号", "标签", "入会日期", "卡号", "等级", "状态", "有效期"]
EN = ["name", "national_id", "org_code", "phone", "tags", "joined_on", "card_number", "tier",
      "status", "expires_on"]  # fmt: skip
ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def national_id(serial: int) -> str:
    """A valid 18-character ID, distinct for every serial below 36 million."""
    born = date(1960, 1, 1) + timedelta(days=serial // 1000)
    body = f"330106{born:%Y%m%d}{serial % 1000:03d}"
    return body + "10X98765432"[sum(int(d) * w for d, w in zip(body, ID_WEIGHTS, strict=True)) % 11]


def card_number(serial: int) -> str:
    body = f"621700{serial:012d}"
    return body + luhn_checksum_digit(body)


def member_line(serial: int, **changes: str) -> list[str]:
    line = {"name": f"张{serial}", "national_id": national_id(serial), "org_code": "D01",
            "phone": "13800000000", "tags": "", "joined_on": "2020-03-01",
            "card_number": card_number(serial), "tier": "", "status": "", "expires_on": "2030-12-31"}  # fmt: skip
    line.update(changes)
    return [line[column] for column in EN]


def csv_bytes(header: list[str], lines: list[list[str]], encoding: str = "utf-8") -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(lines)
    return out.getvalue().encode(encoding)


@pytest.fixture
async def org_ids(conn: asyncpg.Connection) -> dict[str, int]:
    district = await conn.fetchval(
        "INSERT INTO orgs (kind, name, code) VALUES ('district', '区总工会', 'D01') RETURNING id"
    )
    town = await conn.fetchval(
        "INSERT INTO orgs (parent_id, kind, name, code) VALUES ($1, 'town', '东镇', 'T01') RETURNING id",
        district)  # fmt: skip
    return {"D01": district, "T01": town}


async def import_cards(conn: asyncpg.Connection, data: bytes) -> dict[str, int]:
    return await import_members_and_cards(conn, data, secret_key=SECRET, today=TODAY)


async def rejected_cards(conn: asyncpg.Connection, data: bytes) -> list[dict[str, Any]]:
    with pytest.raises(DomainError) as caught:
        await import_cards(conn, data)
    assert caught.value.code == "import_rejected"
    assert caught.value.status == 422
    return caught.value.extra["errors"]  # type: ignore[no-any-return]


async def counts(conn: asyncpg.Connection) -> tuple[int, int, int]:
    row = await conn.fetchrow(
        "SELECT (SELECT count(*) FROM members) AS m, (SELECT count(*) FROM cards) AS c, "
        "(SELECT count(*) FROM card_status_history) AS h"
    )
    return row["m"], row["c"], row["h"]


# ------------------------------------------------------------------ members and cards


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk"])
async def test_chinese_headers_in_every_encoding(
    conn: asyncpg.Connection, org_ids: dict[str, int], encoding: str
) -> None:
    ends_in_x = next(n for n in range(100, 200) if national_id(n).endswith("X"))
    lines = [
        member_line(1, tags="优秀职工；劳模;优秀职工", status="正常", tier="优秀职工"),
        member_line(
            ends_in_x,
            national_id=national_id(ends_in_x).lower(),
            status="挂失",
            phone="",
            org_code="T01",
            joined_on="2019/7/5",
        ),  # fmt: skip
    ]
    result = await import_cards(conn, csv_bytes(ZH, lines, encoding))
    assert result == {"members": 2, "cards": 2}
    members = await conn.fetch(
        "SELECT m.name, m.org_id, m.national_id_hash, m.national_id_last4, m.phone, m.tags, "
        "m.joined_on, c.number, c.tier, c.status, c.issued_on, c.expires_on, h.status AS history "
        "FROM members m JOIN cards c ON c.member_id = m.id "
        "JOIN card_status_history h ON h.card_id = c.id AND h.valid_from = c.status_since "
        "ORDER BY m.id"
    )
    first, second = (dict(member) for member in members)
    assert first["name"] == "张1" and first["org_id"] == org_ids["D01"]
    assert first["national_id_hash"] == keyed_hash(SECRET, national_id(1))
    assert first["national_id_last4"] == national_id(1)[-4:]
    assert first["tags"] == ["优秀职工", "劳模"]
    assert (first["tier"], first["status"], first["history"]) == ("优秀职工", "active", "active")
    assert (first["issued_on"], first["expires_on"]) == (TODAY, date(2030, 12, 31))
    assert second["national_id_hash"] == keyed_hash(SECRET, national_id(ends_in_x))
    assert second["national_id_last4"].endswith("X")
    assert (second["org_id"], second["phone"], second["tier"]) == (org_ids["T01"], None, "普通职工")
    assert (second["status"], second["history"], second["joined_on"]) == ("lost", "lost", date(2019, 7, 5))


async def test_the_national_id_is_stored_nowhere(conn: asyncpg.Connection, org_ids: dict[str, int]) -> None:
    await import_cards(conn, csv_bytes(EN, [member_line(7)]))
    dump = await conn.fetchval("SELECT string_agg(t::text, ' ') FROM members t")
    assert national_id(7) not in dump and national_id(7)[:17] not in dump


async def test_english_headers_ignore_case_spaces_and_underscores(
    conn: asyncpg.Connection, org_ids: dict[str, int]
) -> None:
    header = [" Name", "NATIONAL ID", "org_id", "Card Number", "Expires_On", "Status"]
    lines = [[f"李{n}", national_id(n), str(org_ids["T01"]), card_number(n), "2031-01-31", "Frozen"]
             for n in (1, 2, 3)]  # fmt: skip
    assert await import_cards(conn, csv_bytes(header, lines)) == {"members": 3, "cards": 3}
    assert await conn.fetchval("SELECT count(*) FROM cards WHERE status = 'frozen'") == 3


async def test_one_bad_card_number_in_a_thousand_rejects_the_file(
    conn: asyncpg.Connection, org_ids: dict[str, int]
) -> None:
    lines = [member_line(n) for n in range(1, 1001)]
    broken = card_number(730)
    lines[729][EN.index("card_number")] = broken[:-1] + str((int(broken[-1]) + 1) % 10)
    errors = await rejected_cards(conn, csv_bytes(ZH, lines))
    assert errors == [{"line": 731, "column": "card_number",
                       "message": "the card number fails its check digit (Luhn)"}]  # fmt: skip
    assert await counts(conn) == (0, 0, 0)


async def test_every_bad_line_is_listed_with_its_reason(conn: asyncpg.Connection, org_ids: dict[str, int]) -> None:
    bad_id = national_id(4)[:-1] + ("0" if national_id(4)[-1] != "0" else "1")
    lines = [
        member_line(1),
        member_line(2, card_number=card_number(1)),  # line 3: repeats line 2's card
        member_line(3, expires_on="2030-02-30"),  # line 4: no such day
        member_line(4, national_id=bad_id),  # line 5: check digit
        member_line(5, org_code="NOPE"),  # line 6: unknown org
        member_line(6, national_id=national_id(1)),  # line 7: repeats line 2's member
        member_line(7, joined_on="2026-01-01", status="gone", name=""),  # line 8: three problems
    ]
    errors = await rejected_cards(conn, csv_bytes(EN, lines))
    assert [(error["line"], error["column"]) for error in errors] == [
        (3, "card_number"), (4, "expires_on"), (5, "national_id"), (6, "org_code"),
        (7, "national_id"), (8, "joined_on"), (8, "name"), (8, "status"),
    ]  # fmt: skip
    assert "line 2" in errors[0]["message"] and "line 2" in errors[4]["message"]
    assert all(national_id(1) not in error["message"] for error in errors)
    assert await counts(conn) == (0, 0, 0)


async def test_card_numbers_and_members_already_in_the_database_are_rejected(
    conn: asyncpg.Connection, org_ids: dict[str, int]
) -> None:
    await import_cards(conn, csv_bytes(EN, [member_line(1), member_line(2)]))
    lines = [member_line(3), member_line(4, card_number=card_number(2)), member_line(1, card_number=card_number(5))]
    errors = await rejected_cards(conn, csv_bytes(EN, lines))
    assert [(error["line"], error["column"]) for error in errors] == [(3, "card_number"), (4, "national_id")]
    assert await counts(conn) == (2, 2, 2)


async def test_org_code_and_org_id_must_name_a_known_org(conn: asyncpg.Connection, org_ids: dict[str, int]) -> None:
    header = [*EN, "org_id"]
    lines = [
        [*member_line(1), str(org_ids["D01"])],  # both, agreeing
        [*member_line(2, org_code=""), str(org_ids["T01"])],  # id only
        [*member_line(3), str(org_ids["T01"])],  # line 4: disagree
        [*member_line(4, org_code=""), "999999"],  # line 5: no such id
        [*member_line(5, org_code=""), ""],  # line 6: neither
        [*member_line(6, org_code=""), "abc"],  # line 7: not an id
    ]
    errors = await rejected_cards(conn, csv_bytes(header, lines))
    assert [(error["line"], error["column"]) for error in errors] == [
        (4, "org_id"),
        (5, "org_id"),
        (6, "org_code"),
        (7, "org_id"),
    ]


async def test_header_problems_are_listed_together(conn: asyncpg.Connection, org_ids: dict[str, int]) -> None:
    header = ["姓名", "身份证号", "卡号", "备注", "卡号"]
    errors = await rejected_cards(conn, csv_bytes(header, [["张三", national_id(1), card_number(1), "", ""]]))
    assert errors == [
        {"line": 1, "column": "备注", "message": "unknown column"},
        {"line": 1, "column": "卡号", "message": "the column card_number appears twice"},
        {"line": 1, "column": "expires_on", "message": "required column missing"},
        {"line": 1, "column": "org_code / org_id", "message": "one of these columns is required"},
    ]


async def test_line_numbers_are_physical_lines(conn: asyncpg.Connection, org_ids: dict[str, int]) -> None:
    # Line 2's name spans two lines and a blank line follows, so the bad record starts on line 5.
    lines = [member_line(1, name="张\n三"), [], member_line(2, expires_on="soon"), [""] * len(EN)]
    errors = await rejected_cards(conn, csv_bytes(EN, lines))
    assert [(error["line"], error["column"]) for error in errors] == [(5, "expires_on")]


async def test_a_file_that_is_not_text_is_rejected(conn: asyncpg.Connection, org_ids: dict[str, int]) -> None:
    data = "姓名,卡号\n".encode("utf-8-sig") + b"\xff\xfe\x00bad\n"
    assert await rejected_cards(conn, data) == [
        {"line": 2, "column": None, "message": "the file is neither UTF-8 nor GBK text"}
    ]
    assert (await rejected_cards(conn, b""))[0]["message"].startswith("the file is empty")
    assert (await rejected_cards(conn, csv_bytes(EN, [])))[0]["message"] == "the file has a header but no rows"


async def test_a_unique_violation_from_a_concurrent_import_is_a_rejection(
    conn: asyncpg.Connection, dsn: str, org_ids: dict[str, int]
) -> None:
    other = await asyncpg.connect(dsn)
    try:
        other_tx = other.transaction()
        await other_tx.start()
        await card_import.import_members_and_cards(
            other, csv_bytes(EN, [member_line(9, card_number=card_number(2))]), secret_key=SECRET, today=TODAY
        )
        # Our check cannot see the uncommitted card, so our insert waits on it, then collides.
        ours = asyncio.create_task(import_cards(conn, csv_bytes(EN, [member_line(1), member_line(2)])))
        await wait_for_a_lock_wait(other)
        await other_tx.commit()
        with pytest.raises(DomainError) as caught:
            await ours
    finally:
        await other.close()
    assert caught.value.extra["errors"] == [
        {"line": 3, "column": "card_number", "message": "a card with this number exists"}
    ]
    assert await counts(conn) == (1, 1, 1)


async def wait_for_a_lock_wait(conn: asyncpg.Connection) -> None:
    for _ in range(500):
        if await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        ):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the import never waited on the other transaction")


async def test_two_imports_in_one_outer_transaction(conn: asyncpg.Connection, org_ids: dict[str, int]) -> None:
    async with conn.transaction():
        await import_cards(conn, csv_bytes(EN, [member_line(1)]))
        await import_cards(conn, csv_bytes(EN, [member_line(2)]))
    assert await counts(conn) == (2, 2, 2)


async def test_today_defaults_to_the_unions_calendar_day(conn: asyncpg.Connection, org_ids: dict[str, int]) -> None:
    await import_members_and_cards(conn, csv_bytes(EN, [member_line(1, joined_on="")]), secret_key=SECRET)
    today = await conn.fetchval("SELECT (now() AT TIME ZONE 'Asia/Shanghai')::date")
    assert await conn.fetchrow("SELECT joined_on, issued_on FROM members, cards") == (today, today)


@pytest.mark.slow
async def test_fifty_thousand_members_and_cards(conn: asyncpg.Connection, org_ids: dict[str, int]) -> None:
    data = csv_bytes(ZH, [member_line(n) for n in range(1, 50_001)], "gbk")
    started = time.perf_counter()
    assert await import_cards(conn, data) == {"members": 50_000, "cards": 50_000}
    elapsed = time.perf_counter() - started
    print(f"\n50,000 members and cards ({len(data) / 1e6:.1f} MB GBK) imported in {elapsed:.2f} s")
    assert await counts(conn) == (50_000, 50_000, 50_000)
    assert elapsed < 60


# ------------------------------------------------------------------ merchants

MERCHANTS_ZH = ["商户名称", "类别", "地址", "纬度", "经度", "所属工会编码", "收款户名", "收款账号", "开户行"]


async def rejected_merchants(conn: asyncpg.Connection, data: bytes) -> list[dict[str, Any]]:
    with pytest.raises(DomainError) as caught:
        await import_merchants(conn, data)
    assert caught.value.code == "import_rejected"
    return caught.value.extra["errors"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk"])
async def test_merchants_load(conn: asyncpg.Connection, org_ids: dict[str, int], encoding: str) -> None:
    lines = [
        ["联华超市", "supermarket", "解放路1号", "30.2741", "120.1551", "D01", "联华超市有限公司",
         "6222 0212 3456 7890", "工商银行"],
        ["老街面馆", "restaurant", "", "", "", "", "", "", ""],
    ]  # fmt: skip
    assert await import_merchants(conn, csv_bytes(MERCHANTS_ZH, lines, encoding)) == {"merchants": 2}
    rows = await conn.fetch("SELECT name, address, latitude, longitude, org_id, payee_account, payee_bank "
                            "FROM merchants ORDER BY id")  # fmt: skip
    assert dict(rows[0]) == {"name": "联华超市", "address": "解放路1号", "latitude": 30.2741,
                             "longitude": 120.1551, "org_id": org_ids["D01"],
                             "payee_account": "6222 0212 3456 7890", "payee_bank": "工商银行"}  # fmt: skip
    assert (rows[1]["latitude"], rows[1]["org_id"], rows[1]["payee_account"]) == (None, None, None)


async def test_bad_merchant_lines_are_all_listed(conn: asyncpg.Connection, org_ids: dict[str, int]) -> None:
    header = ["name", "category", "address", "latitude", "longitude", "org_code", "payee_account"]
    lines = [
        ["A", "shop", "1 Road", "30.1", "120.2", "", ""],
        ["B", "shop", "", "95", "120.2", "", ""],          # line 3: latitude out of range
        ["C", "shop", "", "30.1", "", "", ""],             # line 4: latitude without longitude
        ["D", "shop", "", "", "-181", "", ""],             # line 5: longitude without latitude
        ["E", "shop", "", "30°N", "120", "", ""],          # line 6: not decimal degrees
        ["F", "", "", "", "", "X99", ""],                  # line 7: no category, unknown org
        ["A", "shop", "1 Road", "", "", "", ""],           # line 8: same as line 2
        ["G", "shop", "", "", "", "", "12345678"],         # line 9: account without a name
    ]  # fmt: skip
    errors = await rejected_merchants(conn, csv_bytes(header, lines))
    assert [(error["line"], error["column"]) for error in errors] == [
        (3, "latitude"), (4, "longitude"), (5, "latitude"), (6, "latitude"),
        (7, "category"), (7, "org_code"), (8, "name"), (9, "payee_account"),
    ]  # fmt: skip
    assert await conn.fetchval("SELECT count(*) FROM merchants") == 0


async def test_a_merchant_file_imported_twice_is_rejected(conn: asyncpg.Connection) -> None:
    data = csv_bytes(["name", "category", "address"], [["A", "shop", "1 Road"], ["B", "shop", ""]])
    await import_merchants(conn, data)
    assert await rejected_merchants(conn, data) == [
        {"line": 2, "column": "name", "message": "a merchant with this name and address exists"}
    ]
    assert await conn.fetchval("SELECT count(*) FROM merchants") == 2


# ------------------------------------------------------------------ the kernel and the SQL


def test_decode_prefers_utf8_and_falls_back_to_gbk() -> None:
    text = "姓名,卡号\r\n张三,1\r\n"
    for encoding in ("utf-8", "utf-8-sig", "gbk", "gb18030"):
        assert decode_csv(text.encode(encoding)) == text


def test_read_rows_fills_absent_columns_and_skips_blank_lines() -> None:
    data = "Name,手机号\n\n张三,138\n李四\n".encode("gbk")
    columns = {"name": ("姓名",), "phone": ("手机号",), "tags": ("标签",)}
    assert read_rows(data, columns, {"name"}) == [
        (3, {"name": "张三", "phone": "138", "tags": ""}),
        (4, {"name": "李四", "phone": "", "tags": ""}),
    ]
    with pytest.raises(CsvRejected) as caught:
        read_rows(b'name\nA,B\n"unterminated\n', columns, {"name"})
    assert [(error["line"], error["message"]) for error in caught.value.errors] == [
        (2, "2 values for 1 columns"),
        (3, "not valid CSV: unexpected end of data"),
    ]


async def test_every_import_query_prepares(conn: asyncpg.Connection) -> None:
    async with conn.transaction():
        await conn.execute(card_import.queries.import_members_stage)
        await conn.execute(merchant_import.queries.import_merchants_stage)
        for queries in (card_import.queries, merchant_import.queries):
            for name, sql in queries.items():
                if not name.endswith("_stage"):
                    await conn.prepare(sql)


async def test_import_api_and_cli_reject_whole_and_accept_whole(client, dsn: str) -> None:  # type: ignore[no-untyped-def]
    """The admin API and `unioncard import` both take a file and answer with lines, or load it all."""
    import os
    import subprocess
    import sys
    import tempfile

    from tests.factories import card_number, make_world, national_id

    world = await make_world(client, dsn)
    good = "姓名,身份证号,工会ID,卡号,有效期\n" + "".join(
        f"王{i},{national_id()},{world.org_ids['east']},{card_number()},2030-12-31\n" for i in range(3)
    )
    bad = good + f"王x,{national_id()},{world.org_ids['east']},6217000000000000000,2030-12-31\n"
    rejected = await client.post(
        "/api/admin/v1/imports/members", content=bad.encode("gbk"), headers={**world.admin, "Content-Type": "text/csv"}
    )
    assert rejected.status_code == 422 and rejected.json()["code"] == "import_rejected"
    assert [e["line"] for e in rejected.json()["errors"]] == [5]
    accepted = await client.post(
        "/api/admin/v1/imports/members",
        content=good.encode("utf-8-sig"),
        headers={**world.admin, "Content-Type": "text/csv"},
    )
    assert accepted.status_code == 201 and accepted.json() == {"members": 3, "cards": 3}
    with tempfile.NamedTemporaryFile("wb", suffix=".csv", delete=False) as handle:
        handle.write("商户名称,类别,纬度,经度\n好又多超市,supermarket,30.2,\n".encode("gbk"))
    cli = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "unioncard.cli", "import", "merchants", handle.name],
        env={**os.environ, "DATABASE_URL": dsn},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 1 and "line 2" in cli.stderr
