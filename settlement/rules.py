"""Pure decisions of a claim: reading a line, the claim's period; no I/O."""

from __future__ import annotations

import csv
import io
import operator
import re
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from settlement.model import ClaimLineIn, ClaimRow
from unioncard.csvfile import CsvRejected, _map_header, decode_csv, problem
from unioncard.money import AMOUNT_MINOR_MAX, format_yuan, parse_yuan

DEFAULT_TOLERANCE_MINOR = 0
RECEIPT_REF_LENGTH_MAX = 100
# The common spelling of an id, checked by one regex; anything else takes the thorough path.
CANONICAL_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")

COLUMNS: dict[str, tuple[str, ...]] = {
    "redemption_id": ("核销编号",),
    "receipt_ref": ("小票号",),
    "occurred_at": ("交易时间",),
    "amount": ("消费金额",),
    "union_funded": ("工会补贴金额",),
}
REQUIRED = {"occurred_at", "amount", "union_funded"}
REFERENCE_COLUMNS = {"redemption_id", "receipt_ref"}


def parse_period(text: str) -> date:
    """'2026-11' -> date(2026, 11, 1); raises ValueError."""
    match = re.fullmatch(r"([0-9]{4})-([0-9]{2})", text.strip())
    if match is None or not 1 <= int(match[2]) <= 12:
        raise ValueError(f"a period is a month, YYYY-MM: {text!r}")
    return date(int(match[1]), int(match[2]), 1)


def add_months(month: date, count: int) -> date:
    """The first day of the month `count` months after (or before) `month`'s."""
    index = month.year * 12 + month.month - 1 + count
    return date(index // 12, index % 12 + 1, 1)


def period_of(moment: datetime, timezone: str) -> date:
    """The local calendar month a moment falls in, as its first day."""
    local = moment.astimezone(ZoneInfo(timezone))
    return date(local.year, local.month, 1)


def parse_time(text: str, timezone: str) -> datetime:
    """'YYYY-MM-DD HH:MM:SS' in the union's time zone, or ISO 8601 (local when it has no offset)."""
    value = text.strip()
    if not value:
        raise ValueError("a time is required")
    try:
        # fromisoformat reads 'YYYY-MM-DD HH:MM:SS' too, twenty times faster than strptime
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"not a time (YYYY-MM-DD HH:MM:SS or ISO 8601): {value!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo(timezone))


def parse_redemption_id(text: str) -> str | None:
    """The id in canonical text (what COPY sends), or None when empty; raises ValueError."""
    if not text:
        return None
    if CANONICAL_UUID.fullmatch(text):
        return text
    try:
        return str(UUID(text))
    except ValueError:
        raise ValueError(f"not a redemption id (a UUID): {text!r}") from None


def parse_receipt_ref(text: str) -> str | None:
    if not text:
        return None
    if len(text) > RECEIPT_REF_LENGTH_MAX:
        raise ValueError(f"a receipt number has at most {RECEIPT_REF_LENGTH_MAX} characters")
    return text


def plain_minor(text: str) -> int:
    """Fen of the common spellings '12', '12.3', '12.34' (ASCII digits only); ValueError for any other."""
    whole, dot, fen = text.partition(".")
    if whole.isdigit() and whole.isascii():
        if len(fen) == 2 and fen.isdigit() and fen.isascii():
            return int(whole) * 100 + int(fen)
        if not dot:
            return int(whole) * 100
        if len(fen) == 1 and fen.isdigit() and fen.isascii():
            return int(whole) * 100 + int(fen) * 10
    raise ValueError


def _amount(text: str) -> int:
    if not text:
        raise ValueError("an amount is required")
    try:
        return plain_minor(text)
    except ValueError:
        return parse_yuan(text)


class LineChecker:
    """Builds ClaimLines, collecting every problem as {line, column, message}."""

    def __init__(self, timezone: str) -> None:
        self.timezone = timezone
        self.errors: list[dict[str, Any]] = []

    def field(self, line: int, column: str, parse: Callable[[Any], Any], value: Any) -> Any:
        try:
            return parse(value)
        except ValueError as exc:
            self.errors.append(problem(line, column, str(exc)))
            return None

    def line(
        self, line_no: int, redemption_id: Any, receipt_ref: Any, occurred_at: Any, amount: Any, union_funded: Any
    ) -> ClaimRow | None:
        """One line from raw values; parsers are chosen by the values' types (text from CSV, ints from JSON)."""
        errors_before = len(self.errors)
        sale_id = self.field(line_no, "redemption_id", parse_redemption_id, redemption_id or "")
        receipt = self.field(line_no, "receipt_ref", parse_receipt_ref, receipt_ref or "")
        if sale_id is None and receipt is None and not redemption_id and not receipt_ref:
            self.errors.append(problem(line_no, "redemption_id", "redemption_id or receipt_ref is required"))
        at = occurred_at if isinstance(occurred_at, datetime) else None
        if at is None:
            at = self.field(line_no, "occurred_at", lambda text: parse_time(text, self.timezone), occurred_at)
        elif at.tzinfo is None:
            at = at.replace(tzinfo=ZoneInfo(self.timezone))
        amount_minor = amount if isinstance(amount, int) else self.field(line_no, "amount", _amount, amount)
        union_minor = (
            union_funded
            if isinstance(union_funded, int)
            else self.field(line_no, "union_funded", _amount, union_funded)
        )
        self._check_amounts(line_no, amount_minor, union_minor)
        if len(self.errors) > errors_before:
            return None
        return (line_no, sale_id, receipt, at, amount_minor, union_minor)

    def _check_amounts(self, line_no: int, amount_minor: int | None, union_minor: int | None) -> None:
        if amount_minor is not None and amount_minor <= 0:
            self.errors.append(problem(line_no, "amount", "the sale amount must be positive"))
        if amount_minor is not None and amount_minor > AMOUNT_MINOR_MAX:
            self.errors.append(problem(line_no, "amount", f"no sale exceeds {format_yuan(AMOUNT_MINOR_MAX)} yuan"))
        if union_minor is not None and union_minor < 0:
            self.errors.append(problem(line_no, "union_funded", "the union share cannot be negative"))
        if amount_minor is not None and union_minor is not None and union_minor > amount_minor:
            self.errors.append(problem(line_no, "union_funded", "the union share exceeds the sale amount"))


def lines_from_csv(data: bytes, timezone: str) -> tuple[list[ClaimRow], list[dict[str, Any]]]:
    """(rows, problems) of a CSV claim file; line numbers are the file's (the header is line 1).

    One pass builds the COPY rows: each line is read by a few precompiled checks and two caches,
    and only a line they refuse goes through LineChecker, which names every problem of it.
    Raises CsvRejected for undecodable bytes and a bad header.
    """
    reader = csv.reader(io.StringIO(decode_csv(data), newline=""), strict=True)
    try:
        header = next(reader, [])
    except csv.Error as exc:
        raise CsvRejected([problem(reader.line_num, None, f"not valid CSV: {exc}")]) from exc
    mapping = _map_header(header, COLUMNS, REQUIRED, [REFERENCE_COLUMNS])
    width = len(mapping)
    absent = any(name not in mapping for name in COLUMNS)
    # a column the file lacks reads the empty value appended after the last one
    fields = operator.itemgetter(*(mapping.index(name) if name in mapping else width for name in COLUMNS))
    rows: list[ClaimRow] = []
    checker = LineChecker(timezone)
    fast = _FastPath(ZoneInfo(timezone))
    end_of_previous = reader.line_num
    try:
        for record in reader:
            # A quoted value may span lines: report the line the record starts on.
            line, end_of_previous = end_of_previous + 1, reader.line_num
            if len(record) != width:
                if any(value.strip() for value in record[width:]):
                    checker.errors.append(problem(line, None, f"{len(record)} values for {width} columns"))
                    continue
                record = (record + [""] * width)[:width]
            if absent:
                record.append("")
            values = fields(record)
            try:
                rows.append(fast.row(line, *values))
            except ValueError:
                if any(value.strip() for value in values):  # blank and ",,,," lines are skipped
                    _slow_row(checker, rows, line, values)
    except csv.Error as exc:
        checker.errors.append(problem(reader.line_num, None, f"not valid CSV: {exc}"))
    if not rows and not checker.errors:
        checker.errors.append(problem(1, None, "the file has a header but no rows"))
    return rows, checker.errors


class _FastPath:
    """A line in the common spellings, or ValueError (without a message) for anything else.

    Amounts are cached by their text, and the zone's UTC offset by the local minute: a file
    repeats both, and a fixed-offset ISO time is parsed in C, where attaching a ZoneInfo is not.
    """

    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone
        self.amounts: dict[str, int] = {}
        self.offsets: dict[str, str] = {}

    def row(
        self, line: int, redemption_id: str, receipt_ref: str, occurred_at: str, amount: str, union_funded: str
    ) -> ClaimRow:
        amount_minor = self.amounts.get(amount)
        if amount_minor is None:
            amount_minor = self._amount(amount)
        union_minor = self.amounts.get(union_funded)
        if union_minor is None:
            union_minor = self._amount(union_funded)
        if len(occurred_at) != 19:  # 'YYYY-MM-DD HH:MM:SS' only: fromisoformat skips a stray character before an offset
            raise ValueError
        offset = self.offsets.get(occurred_at[:16])
        if offset is None:
            offset = self._offset(occurred_at[:16])
        at = datetime.fromisoformat(occurred_at + offset)  # one with its own offset fails: the slow path reads it
        sale_id = redemption_id or None
        if sale_id is not None and CANONICAL_UUID.fullmatch(sale_id) is None:
            raise ValueError
        receipt = receipt_ref.strip() or None if receipt_ref else None
        if (
            (sale_id is None and receipt is None)
            or (receipt is not None and len(receipt) > RECEIPT_REF_LENGTH_MAX)
            or not 0 < amount_minor <= AMOUNT_MINOR_MAX
            or union_minor > amount_minor
        ):
            raise ValueError
        return (line, sale_id, receipt, at, amount_minor, union_minor)

    def _amount(self, text: str) -> int:
        self.amounts[text] = minor = plain_minor(text)
        return minor

    def _offset(self, minute: str) -> str:
        """'+08:00' for '2026-10-05 10:00' in the zone (offsets change on whole minutes only)."""
        if len(minute) != 16:
            raise ValueError
        utcoffset = datetime.fromisoformat(minute).replace(tzinfo=self.zone).utcoffset()
        seconds = int(utcoffset.total_seconds()) if utcoffset is not None else 0
        sign, seconds = ("-" if seconds < 0 else "+"), abs(seconds)
        text = f"{sign}{seconds // 3600:02d}:{seconds % 3600 // 60:02d}"
        self.offsets[minute] = text = text + (f":{seconds % 60:02d}" if seconds % 60 else "")
        return text


def _slow_row(checker: LineChecker, rows: list[ClaimRow], line: int, values: tuple[str, ...]) -> None:
    """The thorough check of a line the fast path refused: its problems, or (other spellings) its row."""
    redemption_id, receipt_ref, occurred_at, amount, union_funded = (value.strip() for value in values)
    row = checker.line(line, redemption_id, receipt_ref, occurred_at, amount, union_funded)
    if row is not None:
        rows.append(row)


def lines_from_json(items: Sequence[ClaimLineIn], timezone: str) -> tuple[list[ClaimRow], list[Any]]:
    """(lines, problems) of a JSON claim; lines are numbered from 1."""
    checker = LineChecker(timezone)
    lines = [
        checker.line(n, item.redemption_id, item.receipt_ref, item.occurred_at, item.amount, item.union_funded)
        for n, item in enumerate(items, start=1)
    ]
    return [line for line in lines if line is not None], checker.errors


def claim_period(requested: str | None, lines: Sequence[ClaimRow], timezone: str) -> date:
    """The requested month, else the month of the first line's time; raises ValueError."""
    if requested:
        return parse_period(requested)
    if not lines:
        raise ValueError("a claim needs at least one line")
    return period_of(lines[0][3], timezone)
