"""Pure decisions of a claim: reading a line, the claim's period; no I/O."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from settlement.model import ClaimLine, ClaimLineIn
from unioncard.csvfile import problem
from unioncard.money import parse_yuan

DEFAULT_TOLERANCE_MINOR = 0
RECEIPT_REF_LENGTH_MAX = 100
LOCAL_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}")

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
        if LOCAL_TIME.fullmatch(value):
            moment = datetime.strptime(value, "%Y-%m-%d %H:%M:%S")
        else:
            moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"not a time (YYYY-MM-DD HH:MM:SS or ISO 8601): {value!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo(timezone))


def parse_redemption_id(text: str) -> UUID | None:
    if not text:
        return None
    try:
        return UUID(text)
    except ValueError:
        raise ValueError(f"not a redemption id (a UUID): {text!r}") from None


def parse_receipt_ref(text: str) -> str | None:
    if not text:
        return None
    if len(text) > RECEIPT_REF_LENGTH_MAX:
        raise ValueError(f"a receipt number has at most {RECEIPT_REF_LENGTH_MAX} characters")
    return text


def _amount(text: str) -> int:
    if not text:
        raise ValueError("an amount is required")
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
    ) -> ClaimLine | None:
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
        return ClaimLine(
            line_no=line_no, redemption_id=sale_id, receipt_ref=receipt, occurred_at=at,
            amount_minor=amount_minor, union_funded_minor=union_minor,
        )  # fmt: skip

    def _check_amounts(self, line_no: int, amount_minor: int | None, union_minor: int | None) -> None:
        if amount_minor is not None and amount_minor <= 0:
            self.errors.append(problem(line_no, "amount", "the sale amount must be positive"))
        if union_minor is not None and union_minor < 0:
            self.errors.append(problem(line_no, "union_funded", "the union share cannot be negative"))
        if amount_minor is not None and union_minor is not None and union_minor > amount_minor:
            self.errors.append(problem(line_no, "union_funded", "the union share exceeds the sale amount"))


def lines_from_csv(rows: Sequence[tuple[int, dict[str, str]]], timezone: str) -> tuple[list[ClaimLine], list[Any]]:
    """(lines, problems) of a CSV's rows; line numbers are the file's."""
    checker = LineChecker(timezone)
    lines = [
        checker.line(
            n, row["redemption_id"], row["receipt_ref"], row["occurred_at"], row["amount"], row["union_funded"]
        )
        for n, row in rows
    ]
    return [line for line in lines if line is not None], checker.errors


def lines_from_json(items: Sequence[ClaimLineIn], timezone: str) -> tuple[list[ClaimLine], list[Any]]:
    """(lines, problems) of a JSON claim; lines are numbered from 1."""
    checker = LineChecker(timezone)
    lines = [
        checker.line(n, item.redemption_id, item.receipt_ref, item.occurred_at, item.amount, item.union_funded)
        for n, item in enumerate(items, start=1)
    ]
    return [line for line in lines if line is not None], checker.errors


def claim_period(requested: str | None, lines: Sequence[ClaimLine], timezone: str) -> date:
    """The requested month, else the month of the first line's time; raises ValueError."""
    if requested:
        return parse_period(requested)
    if not lines:
        raise ValueError("a claim needs at least one line")
    return period_of(lines[0].occurred_at, timezone)
