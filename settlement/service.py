"""Claims use-cases: intake (JSON or CSV), reconciliation, reading results; each owns its transaction."""

from __future__ import annotations

import csv
import hashlib
import io
import time
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

import asyncpg
import msgspec

from settlement import repository, rules
from settlement.model import CLASSES, ClaimIn, ParsedClaim
from unioncard.auth import Principal
from unioncard.csvfile import CsvRejected, problem, rejection_as_domain_error
from unioncard.errors import DomainError
from unioncard.money import format_yuan

DEFAULT_TIMEZONE = "Asia/Shanghai"
PAGE_LIMIT_MAX = 1000


def parse_csv_claim(data: bytes, period: str | None, timezone: str = DEFAULT_TIMEZONE) -> ParsedClaim:
    """A CSV claim, every line checked. Raises CsvRejected listing every bad line."""
    lines, errors = rules.lines_from_csv(data, timezone)
    if errors:
        raise CsvRejected(errors)  # the default period is the first line's month: only of a sound file
    try:
        claim_period = rules.claim_period(period, lines, timezone)
    except ValueError as exc:
        raise CsvRejected([problem(1, "period", str(exc))]) from exc
    return ParsedClaim(period=claim_period, currency="CNY", source="csv", lines=lines, digest=_digest(data))


def parse_json_claim(data: bytes, period: str | None, timezone: str = DEFAULT_TIMEZONE) -> ParsedClaim:
    """A JSON claim, decoded strictly. Raises DomainError malformed_request or validation_failed."""
    try:
        body = msgspec.json.decode(data, type=ClaimIn, strict=True)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise DomainError("malformed_request", str(exc), errors=[{"message": str(exc)}]) from exc
    lines, errors = rules.lines_from_json(body.lines, timezone)
    if not body.lines:
        errors.append({"line": 0, "column": "lines", "message": "a claim needs at least one line"})
    claim_period = None
    try:
        claim_period = rules.claim_period(period or body.period, lines, timezone)
    except ValueError as exc:
        if lines or not errors:
            errors.append({"line": 0, "column": "period", "message": str(exc)})
    if errors or claim_period is None:
        raise DomainError("validation_failed", f"{len(errors)} problem(s); nothing was stored", errors=errors)
    return ParsedClaim(period=claim_period, currency=body.currency, source="json", lines=lines, digest=_digest(data))


def _digest(document: bytes) -> str:
    return hashlib.sha256(document).hexdigest()


async def submit_claim(
    conn: asyncpg.Connection,
    merchant_id: int,
    claim: ParsedClaim,
    tolerance_minor: int | None = None,
    *,
    timings: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Store a parsed claim with its lines (COPY) and reconcile it, in one transaction; the claim's summary.

    `timings`, when given, gets the seconds of each stage added: load, classify, aggregate.
    Raises DomainError not_found when the merchant does not exist.
    """

    async def store(clock: _StageClock) -> int:
        return await _store_parsed(conn, merchant_id, claim, clock)

    return await _store_and_reconcile(conn, merchant_id, store, tolerance_minor, timings)


async def submit_csv_claim(
    conn: asyncpg.Connection,
    merchant_id: int,
    data: bytes,
    period: str | None,
    timezone: str = DEFAULT_TIMEZONE,
    tolerance_minor: int | None = None,
    *,
    timings: dict[str, float] | None = None,
) -> dict[str, Any]:
    """A CSV claim file (UTF-8, UTF-8 with BOM or GBK; English or Chinese headers) parsed, stored and reconciled.

    `timings` as for submit_claim, with parse. Raises DomainError import_rejected listing every bad line (nothing
    is stored), not_found.
    """

    async def store(clock: _StageClock) -> int:
        with rejection_as_domain_error():
            claim = parse_csv_claim(data, period, timezone)
        clock.lap("parse")
        return await _store_parsed(conn, merchant_id, claim, clock)

    return await _store_and_reconcile(conn, merchant_id, store, tolerance_minor, timings)


async def _store_parsed(conn: asyncpg.Connection, merchant_id: int, claim: ParsedClaim, clock: _StageClock) -> int:
    claim_id = await repository.insert_claim(conn, merchant_id, claim)
    await repository.copy_lines(conn, claim_id, merchant_id, claim.lines)
    clock.lap("load")
    return claim_id


async def _store_and_reconcile(
    conn: asyncpg.Connection,
    merchant_id: int,
    store: Callable[[_StageClock], Awaitable[int]],
    tolerance_minor: int | None,
    timings: dict[str, float] | None,
) -> dict[str, Any]:
    """In one transaction, store the claim (`store` gives its id) and classify it; then its summary."""
    tolerance = rules.DEFAULT_TOLERANCE_MINOR if tolerance_minor is None else tolerance_minor
    clock = _StageClock(timings)
    try:
        async with conn.transaction():
            claim_id = await store(clock)
            run = await repository.classify(conn, claim_id, tolerance)
            clock.lap("classify")
            await repository.record_run(conn, claim_id, tolerance, run)
    except asyncpg.ForeignKeyViolationError as exc:
        if exc.constraint_name == "claims_merchant_fk":
            raise DomainError("not_found", f"no merchant {merchant_id}") from exc
        raise
    summary = await _summary(conn, claim_id)
    clock.lap("aggregate")
    return summary


class _StageClock:
    """Adds the seconds since the previous lap to timings[stage]; does nothing without timings."""

    def __init__(self, timings: dict[str, float] | None) -> None:
        self.timings = timings
        self.last = time.perf_counter()

    def lap(self, stage: str) -> None:
        if self.timings is not None:
            now = time.perf_counter()
            self.timings[stage] = self.timings.get(stage, 0.0) + now - self.last
            self.last = now


async def import_claim_file(
    conn: asyncpg.Connection,
    data: bytes,
    *,
    merchant_id: int,
    period: str | None,
    timezone: str = DEFAULT_TIMEZONE,
) -> dict[str, Any]:
    """A merchant's CSV claim file, as submit_csv_claim. Raises DomainError import_rejected, not_found."""
    return await submit_csv_claim(conn, merchant_id, data, period, timezone)


async def submit_claim_body(
    conn: asyncpg.Connection,
    principal: Principal,
    data: bytes,
    content_type: str,
    period: str | None,
    timezone: str = DEFAULT_TIMEZONE,
) -> dict[str, Any]:
    """A merchant's (or its terminal's) claim from a request body, CSV or JSON; local times are in `timezone`.

    Raises DomainError forbidden, import_rejected, malformed_request, validation_failed.
    """
    if principal.merchant_id is None:
        raise DomainError("forbidden", "only a merchant's admin or terminal submits its claims")
    if content_type.split(";")[0].strip().lower() in ("text/csv", "application/csv"):
        return await submit_csv_claim(conn, principal.merchant_id, data, period, timezone)
    return await submit_claim(conn, principal.merchant_id, parse_json_claim(data, period, timezone))


async def reconcile_claim(
    conn: asyncpg.Connection, principal: Principal, claim_id: int, tolerance_minor: int | None
) -> dict[str, Any]:
    """Classify the claim's lines again and record the run. Raises DomainError not_found, validation_failed."""
    tolerance = rules.DEFAULT_TOLERANCE_MINOR if tolerance_minor is None else tolerance_minor
    if tolerance < 0:
        raise DomainError("validation_failed", "tolerance_minor cannot be negative")
    await _visible_claim(conn, principal, claim_id)
    async with conn.transaction():
        run = await repository.classify(conn, claim_id, tolerance)
        await repository.record_run(conn, claim_id, tolerance, run)
    return await _summary(conn, claim_id)


async def get_claim(conn: asyncpg.Connection, principal: Principal, claim_id: int) -> dict[str, Any]:
    """The claim with lines, amounts and union shares per class. Raises DomainError not_found."""
    await _visible_claim(conn, principal, claim_id)
    return await _summary(conn, claim_id)


async def list_lines(
    conn: asyncpg.Connection,
    principal: Principal,
    claim_id: int,
    *,
    line_class: str | None,
    after_line: int,
    limit: int,
) -> dict[str, Any]:
    """A page of lines after `after_line`. Raises DomainError not_found, validation_failed."""
    if line_class is not None and line_class not in CLASSES:
        raise DomainError("validation_failed", f"class is one of {', '.join(CLASSES)}")
    await _visible_claim(conn, principal, claim_id)
    lines = await repository.lines_page(conn, claim_id, after_line, line_class, _limit(limit))
    next_after = lines[-1]["line_no"] if len(lines) == _limit(limit) else None
    return {"lines": lines, "next_after_line": next_after}


async def list_unclaimed(
    conn: asyncpg.Connection, principal: Principal, claim_id: int, *, after: str | None, limit: int
) -> dict[str, Any]:
    """The period's sales no line of the claim names, by id. Raises DomainError not_found, validation_failed."""
    try:
        after_id = UUID(after) if after else None
    except ValueError:
        raise DomainError("validation_failed", "after is a redemption id") from None
    await _visible_claim(conn, principal, claim_id)
    sales = await repository.unclaimed(conn, claim_id, after_id, _limit(limit))
    return {"sales": sales, "next_after": sales[-1]["redemption_id"] if len(sales) == _limit(limit) else None}


RESULT_HEADER = ["line", "redemption_id", "receipt_ref", "occurred_at", "amount", "union_funded", "class",
                 "matched_redemption_id"]  # fmt: skip


async def export_results(conn: asyncpg.Connection, principal: Principal, claim_id: int) -> bytes:
    """The classified lines as CSV (UTF-8 with BOM, for spreadsheets). Raises DomainError not_found."""
    await _visible_claim(conn, principal, claim_id)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(RESULT_HEADER)
    after = 0
    while True:
        lines = await repository.lines_page(conn, claim_id, after, None, 10_000)
        for line in lines:
            writer.writerow([
                line["line_no"], line["redemption_id"] or "", line["receipt_ref"] or "",
                line["occurred_at"].isoformat(), format_yuan(line["amount_minor"]),
                format_yuan(line["union_funded_minor"]), line["class"], line["resolved_redemption_id"] or "",
            ])  # fmt: skip
        if len(lines) < 10_000:
            return ("\ufeff" + out.getvalue()).encode("utf-8")
        after = lines[-1]["line_no"]


def _limit(limit: int) -> int:
    return max(1, min(limit, PAGE_LIMIT_MAX))


async def _visible_claim(conn: asyncpg.Connection, principal: Principal, claim_id: int) -> dict[str, Any]:
    """The claim, when the caller may see it; another merchant's claim is not found, not forbidden."""
    claim = await repository.claim(conn, claim_id)
    if claim is None or not principal.may_see_merchant(claim["merchant_id"]):
        raise DomainError("not_found", f"no claim {claim_id}")
    return claim


async def _summary(conn: asyncpg.Connection, claim_id: int) -> dict[str, Any]:
    claim = await repository.claim(conn, claim_id)
    if claim is None:
        raise DomainError("not_found", f"no claim {claim_id}")
    empty = {"lines": 0, "amount_minor": 0, "union_funded_minor": 0}
    classes: dict[str, dict[str, int]] = {name: dict(empty) for name in CLASSES}
    for row in await repository.class_totals(conn, claim_id):
        if row["class"] is not None:
            classes[row["class"]] = {key: row[key] for key in empty}
    return {
        "id": claim["id"],
        "merchant_id": claim["merchant_id"],
        "period": claim["period"],
        "currency": claim["currency"],
        "status": claim["status"],
        "source": claim["source"],
        "line_count": claim["line_count"],
        "created_at": claim["created_at"].isoformat(),
        "reconciled_at": claim["reconciled_at"].isoformat() if claim["reconciled_at"] else None,
        "classes": classes,
        "unclaimed": {"sales": claim["unclaimed_sales"], "union_funded_minor": claim["unclaimed_union_funded_minor"]},
        "run": {
            "id": claim["run_id"],
            "tolerance_minor": claim["tolerance_minor"],
            "input_digest": claim["input_digest"],
            "result_digest": claim["result_digest"],
        },
    }
