"""Payout rails: the interface every rail meets, and the bank-file rail (the default, for CNY)."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol, runtime_checkable

import msgspec

from unioncard.csvfile import CsvRejected, problem, read_rows
from unioncard.money import format_yuan
from unioncard.settings import Settings


class RailUnavailable(RuntimeError):
    """The configured rail does not exist or cannot pay the configured currency: the service must not start."""


class Payee(msgspec.Struct, frozen=True, kw_only=True):
    merchant_id: int
    name: str | None
    account: str | None
    bank: str | None
    rail_account: str | None = None
    """The payee's own account on a rail that keeps one (Stripe: the connected account acct_…)."""
    rail_ready: bool = False
    """That rail's word that it can pay the payee out (Stripe: payouts_enabled)."""


class Instruction(msgspec.Struct, frozen=True, kw_only=True):
    """One payment to one payee; `id` is our reference on the rail."""

    id: int
    batch_id: int
    amount_minor: int
    currency: str
    payee: Payee
    reference: str | None = None
    """The rail's id for it once known (Stripe: the transfer tr_…)."""


class RailEvent(msgspec.Struct, frozen=True, kw_only=True):
    """What the rail says about an instruction: status is transferred, paid or failed (submitting: no answer yet)."""

    instruction_id: int
    status: str
    reason: str | None = None
    reference: str | None = None


@runtime_checkable
class PayoutRail(Protocol):
    name: str
    currencies: frozenset[str]

    def onboard_payee(self, payee: Payee) -> str:
        """'ready' when the rail can pay the payee, else what is missing."""

    async def submit(self, instruction: Instruction) -> RailEvent:
        """Hand one instruction to the rail; called with no database transaction open."""

    def verify_event(self, payload: bytes, headers: Mapping[str, str]) -> list[RailEvent]:
        """The events of a notification from the rail, once its origin is verified."""

    async def fetch_status(self, instruction: Instruction) -> RailEvent | None:
        """The rail's current word on an instruction, or None when the rail cannot tell."""

    def confirm_paid(self, instruction_ids: Iterable[int]) -> list[RailEvent]:
        """Finance's word that these instructions were paid."""


BANK_FILE_HEADER = ["payee_name", "payee_account", "payee_bank", "amount", "currency", "reference"]
RESULT_COLUMNS: dict[str, tuple[str, ...]] = {
    "reference": ("参考号", "业务参考号", "附言", "instruction_id"),
    "status": ("状态", "处理结果"),
    "reason": ("原因", "失败原因", "备注"),
}
RESULT_STATUSES = {"paid": "paid", "success": "paid", "成功": "paid", "failed": "failed", "fail": "failed",
                   "失败": "failed"}  # fmt: skip


class BankFileRail:
    """Finance downloads the bank's bulk-payment file, pays it in online banking, then confirms or uploads results."""

    name = "bank_file"
    currencies = frozenset({"CNY"})

    def onboard_payee(self, payee: Payee) -> str:
        missing = [field for field in ("name", "account", "bank") if not (getattr(payee, field) or "").strip()]
        return "ready" if not missing else "missing payee " + ", ".join(missing)

    async def submit(self, instruction: Instruction) -> RailEvent:
        # The file is the submission: once a line is in it, the payment is with finance and the bank.
        return RailEvent(instruction_id=instruction.id, status="transferred")

    def verify_event(self, payload: bytes, headers: Mapping[str, str]) -> list[RailEvent]:
        return self.import_result_file(payload)

    async def fetch_status(self, instruction: Instruction) -> RailEvent | None:
        return None  # a bank file has no status API: results come back by confirmation or result file

    def export_batch_csv(self, instructions: Iterable[Instruction]) -> bytes:
        """The bulk-payment file: UTF-8 with BOM, amounts in yuan with two decimals, our instruction id as reference."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(BANK_FILE_HEADER)
        for item in instructions:
            payee = item.payee
            writer.writerow([payee.name or "", payee.account or "", payee.bank or "", format_yuan(item.amount_minor),
                             item.currency, str(item.id)])  # fmt: skip
        return ("\ufeff" + out.getvalue()).encode("utf-8")

    def confirm_paid(self, instruction_ids: Iterable[int]) -> list[RailEvent]:
        """Finance's word that these lines were paid."""
        return [RailEvent(instruction_id=number, status="paid") for number in dict.fromkeys(instruction_ids)]

    def import_result_file(self, data: bytes) -> list[RailEvent]:
        """The bank's result file (reference, status paid/failed, reason). Raises CsvRejected listing every bad line."""
        rows = read_rows(data, RESULT_COLUMNS, {"reference", "status"})
        events: dict[int, RailEvent] = {}
        errors = []
        for line, row in rows:
            status = RESULT_STATUSES.get(row["status"].strip().lower())
            reference = row["reference"].strip()
            if not reference.isdigit():
                errors.append(problem(line, "reference", "the reference is our instruction id, a number"))
            if status is None:
                errors.append(problem(line, "status", "status is paid or failed"))
            if status is None or not reference.isdigit():
                continue
            event = RailEvent(instruction_id=int(reference), status=status, reason=row["reason"] or None)
            earlier = events.get(event.instruction_id)
            if earlier is not None and earlier.status != event.status:
                errors.append(problem(line, "status", f"reference {reference} is both {earlier.status} and {status}"))
            events.setdefault(event.instruction_id, event)
        if errors:
            raise CsvRejected(errors)
        return list(events.values())


def _stripe_connect(settings: Settings) -> PayoutRail:
    from settlement.stripe_rail import StripeConnectRail  # it builds on this module

    return StripeConnectRail(settings)


RAILS: dict[str, Callable[[Settings], PayoutRail]] = {
    "bank_file": lambda settings: BankFileRail(),
    "stripe_connect": _stripe_connect,
}


def rail_for(settings: Settings) -> PayoutRail:
    """The configured payout rail. Raises RailUnavailable when unknown, unconfigured or unable to pay the currency."""
    make = RAILS.get(settings.payout_rail)
    if make is None:
        raise RailUnavailable(f"unknown payout rail {settings.payout_rail!r}; known: {', '.join(sorted(RAILS))}")
    rail = make(settings)
    if settings.currency not in rail.currencies:
        pays = ", ".join(sorted(rail.currencies))
        raise RailUnavailable(f"the payout rail {rail.name!r} cannot pay {settings.currency}; it pays {pays}")
    return rail
