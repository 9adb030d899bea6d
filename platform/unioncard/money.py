"""Money as integer minor units (fen): half-up rounding and exact splits."""

from __future__ import annotations

BPS = 10_000
AMOUNT_MINOR_MAX = 100_000_000  # 1,000,000 yuan: no till sale is larger


class MoneyError(Exception):
    """A money computation broke an invariant: a bug, never an input error."""


def round_half_up_div(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded half-up, for non-negative integers."""
    if numerator < 0 or denominator <= 0:
        raise MoneyError(f"round_half_up_div({numerator}, {denominator}) is for non-negatives")
    return (2 * numerator + denominator) // (2 * denominator)


def apply_bps(amount_minor: int, rate_bps: int) -> int:
    """amount × rate / 10000, rounded half-up to the fen."""
    return round_half_up_div(amount_minor * rate_bps, BPS)


def split_discount(discount_minor: int, union_share_bps: int) -> tuple[int, int]:
    """Split a discount into (union_funded, merchant_funded); the parts add up exactly."""
    union_minor = apply_bps(discount_minor, union_share_bps)
    merchant_minor = discount_minor - union_minor
    if union_minor + merchant_minor != discount_minor or merchant_minor < 0:
        raise MoneyError(f"split of {discount_minor} at {union_share_bps} bps does not add up")
    return union_minor, merchant_minor


def format_yuan(amount_minor: int) -> str:
    """1234 -> '12.34' (no float on the way)."""
    sign = "-" if amount_minor < 0 else ""
    whole, fen = divmod(abs(amount_minor), 100)
    return f"{sign}{whole}.{fen:02d}"


def format_yuan_grouped(amount_minor: int) -> str:
    """Fen as yuan with thousands separators, for pages: 123456789 -> '1,234,567.89' (files keep format_yuan)."""
    text = format_yuan(amount_minor)
    sign = "-" if text.startswith("-") else ""
    whole, _, fen = text.lstrip("-").partition(".")
    return f"{sign}{int(whole):,}.{fen}"


def format_yuan_short(amount_minor: int) -> str:
    """Grouped yuan without a zero fraction: 80000 -> '800', 12345 -> '123.45' (amounts in a sentence)."""
    return format_yuan_grouped(amount_minor).removesuffix(".00")


def parse_yuan(text: str) -> int:
    """'12.3' -> 1230; at most two decimals, exact, never through float."""
    value = text.strip().replace(",", "")
    sign = 1
    if value.startswith("-"):
        sign, value = -1, value[1:]
    whole, _, fen = value.partition(".")
    if not whole.isdigit() and not (whole == "" and fen.isdigit()):
        raise ValueError(f"not an amount in yuan: {text!r}")
    if len(fen) > 2 or (fen and not fen.isdigit()):
        raise ValueError(f"at most two decimals: {text!r}")
    return sign * (int(whole or "0") * 100 + int(fen.ljust(2, "0") or "0"))
