"""The clock, in one place so tests can move it, and the local date the union's rules go by."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo


def now() -> datetime:
    return datetime.now(UTC)


def local_date(moment: datetime, timezone: str) -> date:
    """The date at `moment` where the union is (settings.timezone): caps, routing and quotas go by it."""
    return moment.astimezone(ZoneInfo(timezone)).date()


def local_today(timezone: str) -> date:
    return local_date(now(), timezone)
