"""Union Card: the service shell and its kernel (db, money, errors, auth)."""

__version__ = "0.1.0"
