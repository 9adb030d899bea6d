"""Identifiers, card numbers and secrets: generation, Luhn, masking, hashing."""

from __future__ import annotations

import hashlib
import hmac
import secrets


def luhn_checksum_digit(partial: str) -> str:
    """The digit that makes partial + digit Luhn-valid."""
    total = 0
    for index, char in enumerate(reversed(partial)):
        digit = int(char)
        if index % 2 == 0:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return str((10 - total % 10) % 10)


def _ascii_digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def luhn_valid(number: str) -> bool:
    if not _ascii_digits(number) or len(number) < 2:
        return False
    return luhn_checksum_digit(number[:-1]) == number[-1]


def card_number_valid(number: str) -> bool:
    """16–19 digits, Luhn-valid."""
    return 16 <= len(number) <= 19 and luhn_valid(number)


def mask_card(number: str) -> str:
    """6217 **** **** 1234: first four and last four only."""
    return f"{number[:4]} **** **** {number[-4:]}"


def mask_name(name: str) -> str:
    return name[:1] + "*" * max(len(name) - 1, 1)


def new_secret(prefix: str, nbytes: int = 24) -> str:
    return f"{prefix}_{secrets.token_urlsafe(nbytes)}"


def hash_secret(secret: str) -> bytes:
    """Bearer secrets are high-entropy, so a plain SHA-256 is the right lookup hash."""
    return hashlib.sha256(secret.encode()).digest()


def keyed_hash(key: str, value: str) -> bytes:
    """National IDs and other low-entropy values: HMAC under the server's secret."""
    return hmac.new(key.encode(), value.encode(), hashlib.sha256).digest()
