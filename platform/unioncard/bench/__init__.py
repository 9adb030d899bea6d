"""Benchmarks as commands: `till` (HTTP load on the till beside the bare SQL ceiling) and `reconcile`.

`fixture`, `server`, `cpu`, `http` and `ceiling` are the till bench's parts; `reconcile` stands alone.
"""

from __future__ import annotations

import re


class BenchError(Exception):
    """The bench could not run; the message says why."""


def redact(dsn: str) -> str:
    return re.sub(r"://([^:/@]+):[^@/]+@", r"://\1:***@", dsn)
