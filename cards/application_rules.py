"""What a grant application must be, as pure checks with no I/O: the input types with their limits, the limits
checked whoever built the input (the API decodes with them; a page or the demo constructs structs, which msgspec
does not check), the fit of an application to its benefit, and the normal forms of an invoice number and a bank
account. Every refusal is DomainError validation_failed with `errors=[{"field", "message", "key"}]`."""

from __future__ import annotations

import hashlib
import unicodedata
from datetime import date
from typing import Annotated, Any, TypeVar, get_args, get_origin

import msgspec

from unioncard.errors import DomainError
from unioncard.money import AMOUNT_MINOR_MAX

NOTE_MAX = 500
DETAIL_KEYS_MAX = 20
ACCOUNT_DIGITS = (8, 30)

Short = Annotated[str, msgspec.Meta(max_length=200)]
DetailValue = Annotated[str, msgspec.Meta(max_length=NOTE_MAX)] | Annotated[int, msgspec.Meta(ge=0, le=10_000)]


class InvoiceIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    issuer: Short
    number: Annotated[str, msgspec.Meta(max_length=64)]
    amount_minor: Annotated[int, msgspec.Meta(gt=0, le=AMOUNT_MINOR_MAX)]
    issued_on: date


class PayeeIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The member's bank account the grant is paid to."""

    name: Short
    account: Annotated[str, msgspec.Meta(max_length=40)]
    bank: Short


class ApplicationIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """An application for a grant; amount_minor is needed (up to the benefit's maximum) unless the amount is fixed.

    details: free text and numbers, e.g. {"hospital": "…", "days_in_hospital": 6, "diagnosis": "…"}.
    """

    benefit_code: Annotated[str, msgspec.Meta(max_length=40)]
    payee: PayeeIn
    amount_minor: Annotated[int, msgspec.Meta(gt=0, le=AMOUNT_MINOR_MAX)] | None = None
    invoice: InvoiceIn | None = None
    details: dict[Annotated[str, msgspec.Meta(max_length=40)], DetailValue] = {}


class ApproveIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The amount approved (at most the amount requested; none: as requested) and a note."""

    amount_minor: Annotated[int, msgspec.Meta(gt=0, le=AMOUNT_MINOR_MAX)] | None = None
    note: Annotated[str, msgspec.Meta(max_length=NOTE_MAX)] = ""


class RejectIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    reason: Annotated[str, msgspec.Meta(max_length=NOTE_MAX)]


# ------------------------------------------------------------------ the input's own limits

Input = TypeVar("Input", bound=msgspec.Struct)
# A problem's field as the forms and the API name it, by its path in the input.
FIELD_NAMES = {"amount_minor": "amount", "payee.name": "payee_name", "payee.account": "payee_account",
               "payee.bank": "payee_bank", "invoice.issuer": "invoice_issuer", "invoice.number": "invoice_number",
               "invoice.amount_minor": "invoice_amount", "invoice.issued_on": "invoice_date"}  # fmt: skip


def problem(field: str, key: str, message: str) -> dict[str, str]:
    return {"field": field, "key": key, "message": message}


def validated(data: Input, keys: str = "appl_err") -> Input:
    """`data` once its types, lengths and ranges are checked: a struct constructed in code is not.

    Raises DomainError validation_failed listing each field out of bounds; the sentence keys are `<keys>_too_long`
    and `<keys>_not_valid`.
    """
    found = input_problems(data, type(data), (), keys)
    if found:
        raise DomainError("validation_failed", found[0]["message"], errors=found)
    return data


def input_problems(value: Any, annotation: Any, path: tuple[str, ...], keys: str) -> list[dict[str, str]]:
    """Each part of `value` that `annotation` refuses, by the innermost field at fault."""
    try:
        msgspec.convert(msgspec.to_builtins(value), annotation)
        return []
    except (msgspec.ValidationError, TypeError) as error:
        message = str(error).split(" - at ", 1)[0]
    found: list[dict[str, str]] = []
    if isinstance(value, msgspec.Struct):
        for info in msgspec.structs.fields(type(value)):
            found += input_problems(getattr(value, info.name), info.type, (*path, info.name), keys)
    elif isinstance(value, dict) and get_origin(annotation) is dict:
        key_type, value_type = get_args(annotation)
        for name, item in value.items():
            found += input_problems(name, key_type, path, keys)  # a key at fault is the whole's
            found += input_problems(item, value_type, (*path, str(name)), keys)
    if found:
        return found
    dotted = ".".join(path)
    key = f"{keys}_too_long" if "length" in message else f"{keys}_not_valid"
    return [problem(FIELD_NAMES.get(dotted, dotted), key, f"{dotted}: {message}" if dotted else message)]


# ------------------------------------------------------------------ normal forms


def normalize_invoice_number(text: str) -> str:
    """As printed, whatever the typing: half-width, upper case, no spaces. Normal already stays as it is."""
    folded = "".join(unicodedata.normalize("NFKC", text).split()).upper()
    return unicodedata.normalize("NFKC", folded)  # a removed space may leave a mark to compose ("A ́" → "Á")


def normalize_account(text: str) -> str:
    """A bank account as digits are kept: half-width, no spaces or dashes."""
    folded = "".join(unicodedata.normalize("NFKC", text).split()).replace("-", "")
    return unicodedata.normalize("NFKC", folded)


def clean_details(details: dict[str, Any]) -> dict[str, Any]:
    """The details without blank keys or values, text trimmed."""
    cleaned = {key.strip(): value.strip() if isinstance(value, str) else value for key, value in details.items()}
    return {key: value for key, value in cleaned.items() if key and value != ""}


def mask_account(account: str) -> str:
    """A bank account as a reviewer sees it: the last four digits (finance's bank file carries it whole)."""
    return f"**** {account[-4:]}"


def request_hash(data: ApplicationIn) -> bytes:
    return hashlib.sha256(msgspec.json.encode(data)).digest()


# ------------------------------------------------------------------ the fit to the benefit


def check_application(benefit: dict[str, Any], data: ApplicationIn, applied_on: date) -> int:
    """The amount requested, once the input fits the benefit. Raises DomainError validation_failed (all problems)."""
    problems = []
    fixed, most = benefit["amount_minor"], benefit["amount_max_minor"]
    amount = fixed if fixed is not None else data.amount_minor
    if fixed is not None and data.amount_minor not in (None, fixed):
        problems.append(problem("amount", "appl_err_amount_fixed", "this benefit pays a fixed amount"))
    elif amount is None:
        problems.append(problem("amount", "appl_err_amount_missing", "the amount requested is needed"))
    elif most is not None and amount > most:
        problems.append(problem("amount", "appl_err_amount_over_max", "more than this benefit pays at most"))
    if benefit["needs_invoice"]:
        problems += invoice_problems(data.invoice, applied_on)
        if data.invoice is not None and fixed is None and amount is not None and amount > data.invoice.amount_minor:
            problems.append(problem("amount", "appl_err_amount_over_invoice", "more than the invoice"))
    payee = data.payee
    for name in ("name", "bank"):
        if not getattr(payee, name).strip():
            problems.append(problem(f"payee_{name}", f"appl_err_payee_{name}", f"the payee's {name} is needed"))
    account, (fewest, most_digits) = normalize_account(payee.account), ACCOUNT_DIGITS
    if not (account.isascii() and account.isdigit() and fewest <= len(account) <= most_digits):
        problems.append(problem("payee_account", "appl_err_payee_account", "a bank account is 8 to 30 digits"))
    if len(data.details) > DETAIL_KEYS_MAX:
        problems.append(problem("details", "appl_err_details", f"at most {DETAIL_KEYS_MAX} details"))
    if problems:
        raise DomainError("validation_failed", problems[0]["message"], errors=problems)
    if amount is None:  # unreachable: a missing amount is a problem above
        raise RuntimeError("an application without an amount passed its checks")
    return int(amount)


def invoice_problems(invoice: InvoiceIn | None, applied_on: date) -> list[dict[str, str]]:
    """What keeps an invoice from being claimed: missing, no issuer or number, dated after the application."""
    if invoice is None:
        return [problem("invoice", "appl_err_invoice_missing", "this benefit needs the invoice's details")]
    problems = []
    if not invoice.issuer.strip():
        problems.append(problem("invoice_issuer", "appl_err_invoice_issuer", "the invoice's issuer is needed"))
    if not normalize_invoice_number(invoice.number):
        problems.append(problem("invoice_number", "appl_err_invoice_number", "the invoice's number is needed"))
    if invoice.issued_on > applied_on:
        problems.append(problem("invoice_date", "appl_err_invoice_date", "the invoice is dated in the future"))
    return problems
