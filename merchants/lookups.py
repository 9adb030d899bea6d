"""Failed card lookups are rate-limited per terminal, so a till cannot enumerate card numbers."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

from unioncard.errors import DomainError

FAILED_LOOKUPS_MAX = 20
WINDOW_S = 60.0
_COUNTED = frozenset({"card_not_found", "member_code_invalid"})


class LookupLimiter:
    """Per terminal, at most FAILED_LOOKUPS_MAX unknown cards or bad codes a minute (per process)."""

    def __init__(self, failures_max: int = FAILED_LOOKUPS_MAX, window_s: float = WINDOW_S) -> None:
        self.failures_max = failures_max
        self.window_s = window_s
        self._failures: dict[int, deque[float]] = {}

    def _recent(self, terminal_id: int, now: float) -> deque[float]:
        failures = self._failures.setdefault(terminal_id, deque())
        while failures and failures[0] < now - self.window_s:
            failures.popleft()
        return failures

    @contextmanager
    def lookup(self, terminal_id: int | None) -> Iterator[None]:
        """Refuse while over the limit; count the lookups that fail for want of a card."""
        if terminal_id is None:
            yield
            return
        now = time.monotonic()
        if len(self._recent(terminal_id, now)) >= self.failures_max:
            raise DomainError("rate_limited", "too many unknown cards from this terminal; wait a minute")
        try:
            yield
        except DomainError as error:
            if error.code in _COUNTED:
                self._recent(terminal_id, now).append(now)
            raise
