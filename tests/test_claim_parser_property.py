"""The fast CSV claim parser agrees with the reference reading: read_rows, then LineChecker on every line.

settlement.service.parse_csv_claim uses rules.lines_from_csv, which reads most lines through a fast path and hands
only the lines it refuses to LineChecker. The reference is the careful reading it replaced: unioncard.csvfile.read_rows
(strict structure, stripped values) then LineChecker.line for each row. Same files accepted with identical lines; same
files rejected, with the same problems when the file's structure is sound.
"""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from settlement.rules import COLUMNS, REFERENCE_COLUMNS, REQUIRED, LineChecker, lines_from_csv
from unioncard.csvfile import CsvRejected, read_rows

TIMEZONE = "Asia/Shanghai"
SPELLINGS: dict[str, tuple[str, ...]] = {
    name: (name, name.replace("_", " ").title(), name.upper().replace("_", "-"), *aliases)
    for name, aliases in COLUMNS.items()
}
RECEIPT_ALPHABET = "abcXYZ0129-_/ 小票号甲乙丙，"
Outcome = tuple[list[tuple[Any, ...]], list[dict[str, Any]], bool]


# ------------------------------------------------------------------ the two readings


def fast(data: bytes) -> Outcome:
    """(rows, problems, structural) as the service reads a claim file."""
    try:
        rows, errors = lines_from_csv(data, TIMEZONE)
    except CsvRejected as exc:
        return [], exc.errors, True
    return rows, errors, False


def reference(data: bytes) -> Outcome:
    """(rows, problems, structural): the strict generic reader, then the careful checker on every row."""
    try:
        rows = read_rows(data, COLUMNS, REQUIRED, required_any=[REFERENCE_COLUMNS])
    except CsvRejected as exc:
        return [], exc.errors, True
    checker = LineChecker(TIMEZONE)
    lines = [checker.line(n, r["redemption_id"], r["receipt_ref"], r["occurred_at"], r["amount"], r["union_funded"])
             for n, r in rows]  # fmt: skip
    return [line for line in lines if line is not None], checker.errors, False


def instant(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A row with its time as a UTC instant: what COPY sends, whatever tzinfo object carried the offset."""
    line, sale_id, receipt, at, amount, union = row
    assert isinstance(at, datetime) and at.tzinfo is not None
    return (line, sale_id, receipt, at.astimezone(UTC), amount, union)


def problems(errors: list[dict[str, Any]]) -> list[tuple[int, str, str]]:
    return sorted((error["line"], str(error["column"]), error["message"]) for error in errors)


def assert_agree(data: bytes) -> None:
    rows, errors, structural = fast(data)
    ref_rows, ref_errors, ref_structural = reference(data)
    assert bool(errors) == bool(ref_errors), (problems(errors), problems(ref_errors))
    if not errors:
        assert [instant(row) for row in rows] == [instant(row) for row in ref_rows]
    elif ref_structural:
        # The reference stops at the structure; the fast reading also names the bad values it met on the way.
        assert set(problems(ref_errors)) <= set(problems(errors)), (problems(errors), problems(ref_errors))
    else:
        assert not structural
        assert problems(errors) == problems(ref_errors)


# ------------------------------------------------------------------ claim files


def yuan_text(whole: int, decimals: int, fraction: int) -> str:
    return str(whole) if decimals == 0 else f"{whole}.{fraction % 10**decimals:0{decimals}d}"


amounts = st.builds(yuan_text, st.integers(0, 10**6), st.integers(0, 3), st.integers(0, 999))
odd_amounts = st.one_of(
    amounts.map(lambda text: "-" + text),
    st.integers(10**15, 10**25).map(str),
    st.sampled_from(["", " ", "12.", ".5", " 12.50 ", "1,234.50", "+3", "１２", "abc", "-0", "0", "0.00", "1e3"]),
)
moments = st.datetimes(min_value=datetime(1880, 1, 1), max_value=datetime(2040, 12, 31))
TIME_FORMATS = ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d", "%Y-%m-%d %H:%M:%S.%f",
                "%Y-%m-%dT%H:%M:%S+08:00", "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S-05:30"]  # fmt: skip
times = st.builds(lambda moment, pattern: moment.strftime(pattern), moments, st.sampled_from(TIME_FORMATS))
odd_times = st.one_of(
    times.map(lambda text: f" {text} "),
    st.sampled_from(
        [
            "",
            "2026-02-30 10:00:00",
            "2026-13-01 00:00:00",
            "30/10/2026 10:00",
            "2026/10/30 10:00:00",
            "2026-10-30 25:00:00",
            "2026-10-30T10:00:00+8",
            "2026-10-30 10:00:00 +08:00",
            "昨天",
            "20261030T100000",
            "2026-10-30T10",
            "2026-10-30 10:00:00.1234567",
        ]
    ),  # fmt: skip
)
# Python 3.11's fromisoformat skips one stray character before a UTC offset: the fast path appends the zone's
# offset to the text as typed, so "10:00:00." and "10:00:005" read as 10:00:00 there and are refused by LineChecker.
stray_times = st.builds(lambda text, stray: text + stray, times.filter(lambda text: len(text) >= 16),
                        st.sampled_from(list(".,:;A5'/ ")))  # fmt: skip
uuids = st.builds(lambda value, form: form(value), st.uuids(), st.sampled_from(
    [str, lambda u: str(u).upper(), lambda u: u.hex, lambda u: "{" + str(u) + "}", lambda u: u.urn]))  # fmt: skip
odd_ids = st.sampled_from(["", " ", "not-a-uuid", str(uuid.UUID(int=1))[:-1], f" {uuid.UUID(int=7)} "])
receipts = st.text(RECEIPT_ALPHABET, max_size=12)
odd_receipts = st.sampled_from(["", "   ", "R" * 101, " R-1 ", "票\n号", 'he said "1"'])


SOUND = {"redemption_id": uuids, "receipt_ref": receipts, "occurred_at": times}
ODD = {"redemption_id": odd_ids, "receipt_ref": odd_receipts, "occurred_at": odd_times, "amount": odd_amounts,
       "union_funded": odd_amounts}  # fmt: skip


@st.composite
def lines(draw: st.DrawFn, header: list[str], stray: bool, clean: bool) -> list[str] | str:
    """A line for this header: sound, sound but for some odd values, blank, with extra values, or not CSV at all;
    with `stray`, also sound but for a stray character after the time; `clean` lines are sound or blank.
    """
    kinds = ["sound", "sound", "odd", "odd", "odd", "blank", "extra", "broken", *(["stray"] * 3 if stray else [])]
    if clean:
        kinds = ["sound", "sound", "sound", "blank"]
    kind = draw(st.sampled_from(kinds))
    if kind == "blank":
        return draw(st.sampled_from(["", ",,,,", " , , "]))
    if kind == "broken":
        return draw(st.sampled_from(['a,"b"c,d', '"unterminated,1,2', "x\x00y,1,2"]))
    amount = draw(amounts.filter(lambda text: text.strip("0.") != ""))
    values = {name: draw(strategy) for name, strategy in SOUND.items()}
    values.update(amount=amount, union_funded=draw(st.sampled_from(["0", amount, "0.01", "1"])))
    if kind == "odd":
        for name in draw(st.sets(st.sampled_from(header), min_size=1)):
            values[name] = draw(st.one_of(ODD[name], SOUND.get(name, amounts)))
    if kind == "stray":
        values["occurred_at"] = draw(stray_times)
    row = [values[name] for name in header]
    if kind == "extra":
        row.append(draw(st.sampled_from(["", "  ", "x"])))
    return row


@st.composite
def claim_files(draw: st.DrawFn, stray: bool = False) -> bytes:
    """A claim file: headers in either language and any order, up to 8 lines, quoted or not, UTF-8, BOM or GBK."""
    references = draw(st.sampled_from([["redemption_id"], ["receipt_ref"], ["redemption_id", "receipt_ref"]]))
    header = draw(st.permutations([*references, *sorted(REQUIRED)]))
    out = io.StringIO()
    terminator = draw(st.sampled_from(["\r\n", "\n"]))
    writer = csv.writer(out, lineterminator=terminator, quoting=draw(st.sampled_from([csv.QUOTE_MINIMAL,
                                                                                        csv.QUOTE_ALL])))  # fmt: skip
    writer.writerow([draw(st.sampled_from(SPELLINGS[name])) for name in header])
    for line in draw(st.lists(lines(header, stray, clean=draw(st.booleans())), max_size=8)):
        if isinstance(line, str):
            out.write(line + terminator)
        else:
            writer.writerow(line)
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "gbk"]))
    try:
        return out.getvalue().encode(encoding)
    except UnicodeEncodeError:
        assume(False)
        raise


# ------------------------------------------------------------------ the properties

STRAY = (b"redemption_id,occurred_at,amount,union_funded\r\n"
         b"00000000-0000-0000-0000-000000000001,2026-10-05 10:00:00.,12.30,1.23\r\n")  # fmt: skip


@given(claim_files())
@example(b"redemption_id,occurred_at,amount,union_funded\r\n"
         b"00000000-0000-0000-0000-000000000001,2026-10-05 10:00:00,12.3,1.23\r\n")  # fmt: skip
@example('交易时间,消费金额,工会补贴金额,小票号\n2026-10-05T10:00:00,"1,000.00",10,甲-1\n\n'.encode("gbk"))
@example(b"\xef\xbb\xbfreceipt_ref,occurred_at,amount,union_funded\nR1,2026-10-05,-5,0\nR2,2026-10-05 10:00,5,6\n")
@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_the_fast_parser_agrees_with_the_line_checker(data: bytes) -> None:
    """Every shape of file but one: times with a stray last character (the next test)."""
    assert_agree(data)


@given(claim_files(stray=True))
@example(STRAY)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_a_stray_character_after_the_time(data: bytes) -> None:
    """fromisoformat skips one stray character before an offset; the fast path reads only the plain 19 characters."""
    assert_agree(data)


def test_an_amount_no_till_could_ring_up_is_a_bad_line_not_a_crash() -> None:
    data = (b"receipt_ref,occurred_at,amount,union_funded\r\n"
            b"R1,2026-10-05 10:00:00,1000000.00,1.00\r\n"
            b"R2,2026-10-05 10:00:00,1000000.01,1.00\r\n"
            b"R3,2026-10-05 10:00:00,100000000000000000000000,1.00\r\n")  # fmt: skip
    rows, errors = lines_from_csv(data, "Asia/Shanghai")
    assert [row[0] for row in rows] == [2]
    assert [(error["line"], error["column"]) for error in errors] == [(3, "amount"), (4, "amount")]
