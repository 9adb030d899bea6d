"""Settings from the environment, in one typed struct."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "unioncard"


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    database_url: str | None = None
    """A real PostgreSQL server; None starts the embedded one in data_dir."""
    data_dir: str = ""
    host: str = "127.0.0.1"
    port: int = 8000
    secret_key: str = "dev-secret-change-me"
    """Signs member dynamic codes and keys the national-ID hash; set it in production."""
    currency: str = "CNY"
    timezone: str = "Asia/Shanghai"
    member_code_ttl_s: int = 60
    health_check_hold_s: int = 600
    """How long a health-check slot is held for a member to confirm it."""
    pool_min_size: int = 4
    pool_max_size: int = 16
    session_ttl_s: int = 12 * 3600
    terminal_cache_ttl_s: float = 5.0
    payout_rail: str = "bank_file"
    stripe_secret_key: str = ""
    """The platform's Stripe secret key; the stripe_connect rail refuses to start without it."""
    stripe_webhook_secret: str = ""
    """Signs the platform's events (transfers) sent to /webhooks/stripe."""
    stripe_connect_webhook_secret: str = ""
    """Signs the connected accounts' events (account.updated, payouts) sent to /webhooks/stripe-connect."""
    stripe_api_base: str = "https://api.stripe.com"
    public_base_url: str = ""
    """Where browsers reach this service (Stripe onboarding returns there); empty means the request's own host."""
    debug: bool = False

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir) if self.data_dir else default_data_dir()


_ENV_NAMES = {
    "database_url": "DATABASE_URL",
    "data_dir": "UNIONCARD_DATA_DIR",
    "host": "UNIONCARD_HOST",
    "port": "UNIONCARD_PORT",
    "secret_key": "UNIONCARD_SECRET_KEY",
    "currency": "UNIONCARD_CURRENCY",
    "timezone": "UNIONCARD_TIMEZONE",
    "member_code_ttl_s": "UNIONCARD_MEMBER_CODE_TTL_S",
    "health_check_hold_s": "UNIONCARD_HEALTH_CHECK_HOLD_S",
    "pool_min_size": "UNIONCARD_POOL_MIN_SIZE",
    "pool_max_size": "UNIONCARD_POOL_MAX_SIZE",
    "session_ttl_s": "UNIONCARD_SESSION_TTL_S",
    "terminal_cache_ttl_s": "UNIONCARD_TERMINAL_CACHE_TTL_S",
    "payout_rail": "UNIONCARD_PAYOUT_RAIL",
    "stripe_secret_key": "UNIONCARD_STRIPE_SECRET_KEY",
    "stripe_webhook_secret": "UNIONCARD_STRIPE_WEBHOOK_SECRET",
    "stripe_connect_webhook_secret": "UNIONCARD_STRIPE_CONNECT_WEBHOOK_SECRET",
    "stripe_api_base": "UNIONCARD_STRIPE_API_BASE",
    "public_base_url": "UNIONCARD_PUBLIC_BASE_URL",
    "debug": "UNIONCARD_DEBUG",
}


def load_settings(environ: dict[str, str] | None = None, **overrides: object) -> Settings:
    """Read every setting from the environment; overrides win (tests, CLI flags)."""
    env = os.environ if environ is None else environ
    raw: dict[str, object] = {}
    for field, name in _ENV_NAMES.items():
        if name in env and env[name] != "":
            raw[field] = env[name]
    raw.update({k: v for k, v in overrides.items() if v is not None})
    return msgspec.convert(raw, Settings, strict=False)
