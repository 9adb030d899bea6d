"""Merchants, contracts (offers), terminals and the till."""
