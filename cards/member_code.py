"""The member's dynamic code: a signed, short-lived stand-in for the card number."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from datetime import datetime

from unioncard.errors import DomainError

_PREFIX = "MC1"
_PATTERN = re.compile(r"MC1-(\d{1,12})-(\d{9,11})-([A-Za-z0-9_-]{16})")


def _signature(secret_key: str, card_id: int, expires_at: int) -> str:
    message = f"member-code:{card_id}:{expires_at}".encode()
    digest = hmac.new(secret_key.encode(), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:12]).decode()


def issue_member_code(secret_key: str, card_id: int, now: datetime, ttl_s: int) -> tuple[str, int]:
    """A code for card_id valid for ttl_s seconds; returns (code, expires_at unix seconds)."""
    expires_at = int(now.timestamp()) + ttl_s
    return f"{_PREFIX}-{card_id}-{expires_at}-{_signature(secret_key, card_id, expires_at)}", expires_at


def verify_member_code(secret_key: str, code: str, now: datetime) -> int:
    """The card id a code stands for.

    Raises DomainError member_code_invalid (bad shape or signature) or member_code_expired.
    """
    match = _PATTERN.fullmatch(code.strip())
    if match is None:
        raise DomainError("member_code_invalid")
    card_id, expires_at, signature = int(match[1]), int(match[2]), match[3]
    if not hmac.compare_digest(signature, _signature(secret_key, card_id, expires_at)):
        raise DomainError("member_code_invalid")
    if expires_at < now.timestamp():
        raise DomainError("member_code_expired")
    return card_id
