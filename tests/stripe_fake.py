"""A fake Stripe behind the SDK's own HTTP client interface: the real SDK encodes requests and decodes answers.

Only what the rail calls: accounts (create, retrieve), account links, transfers (create, retrieve, list). Every
request and every answer is checked against Stripe's OpenAPI spec (tests/stripe_spec.py). Idempotency-Key is
honoured as Stripe does: the same key and parameters replay the first answer (a 500 too), other parameters get a
400 idempotency_error; forget_keys() is the same fake 24 hours later, when Stripe has dropped its keys.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import stripe

from tests.stripe_spec import SpecViolation, _segments, check_request, check_response, validate

Answer = tuple[int, dict[str, Any]]


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    params: dict[str, Any]
    idempotency_key: str | None
    status: int | None  # None: the caller got no answer


class FakeStripe(stripe.HTTPClient):
    """In-memory Stripe. fail_next("timeout" | "timeout_after" | "error_after" | "unauthorized" |
    "balance_insufficient" | "ok") scripts the next calls."""

    name = "fake"

    def __init__(self, balance_minor: int = 10**9) -> None:
        super().__init__()
        self.balance_minor = balance_minor
        self.accounts: dict[str, dict[str, Any]] = {}
        self.transfers: dict[str, dict[str, Any]] = {}
        self.seen: list[Seen] = []
        self._failures: list[str] = []
        self._replies: dict[str, tuple[str, Answer]] = {}
        self._ids = itertools.count(1)

    def fail_next(self, *failures: str) -> None:
        """timeout: no answer and nothing done; timeout_after: done, the answer lost; error_after: done, answered
        500 (kept under the key, as Stripe keeps it); unauthorized: a 401, nothing done; balance_insufficient;
        ok: answered as usual (to script a later call)."""
        self._failures.extend(failures)

    def forget_keys(self) -> None:
        """A day has passed: Stripe no longer knows the idempotency keys it saw (it keeps them 24 hours)."""
        self._replies.clear()

    def calls(self, method: str, path: str) -> list[Seen]:
        return [seen for seen in self.seen if seen.method == method and seen.path == path]

    async def request_async(
        self, method: str, url: str, headers: Mapping[str, str], post_data: Any = None
    ) -> tuple[bytes, int, Mapping[str, str]]:
        parts = urlsplit(url)
        body = post_data.decode() if isinstance(post_data, bytes) else post_data or ""
        query = parse_qsl(parts.query, keep_blank_values=True)
        form = parse_qsl(body, keep_blank_values=True)
        check_request(method, parts.path, query, form)
        params = _unflatten(form + query)
        key = headers.get("Idempotency-Key") if method == "post" else None
        failure = self._failures.pop(0) if self._failures else None
        failure = None if failure == "ok" else failure
        if failure == "timeout":
            self.seen.append(Seen(method, parts.path, params, key, None))
            raise stripe.APIConnectionError("fake: the request timed out", should_retry=True)
        replayed, (status, answer) = self._answer(method, parts.path, params, key, failure)
        check_response(method, parts.path, status, answer)
        self.seen.append(Seen(method, parts.path, params, key, None if failure == "timeout_after" else status))
        if failure == "timeout_after":
            raise stripe.APIConnectionError("fake: the answer was lost", should_retry=True)
        reply_headers = {"Request-Id": f"req_fake{next(self._ids)}", "Idempotent-Replayed": str(replayed).lower()}
        return json.dumps(answer).encode(), status, reply_headers

    def sleep_async(self, secs: float) -> Awaitable[None]:
        return asyncio.sleep(0)  # the SDK's retry back-off, without the wait

    async def close_async(self) -> None:
        return None

    def _answer(
        self, method: str, path: str, params: dict[str, Any], key: str | None, failure: str | None
    ) -> tuple[bool, Answer]:
        fingerprint = json.dumps([method, path, params], sort_keys=True)
        if key is not None and key in self._replies:
            first, answer = self._replies[key]
            if first != fingerprint:
                message = f"Keys for idempotent requests can only be used with the same parameters: {key}"
                return False, _error(400, "idempotency_error", None, message)
            return True, answer
        if failure == "unauthorized":  # refused before anything ran: not kept under the key
            return False, _error(401, "invalid_request_error", None, "Invalid API Key provided: sk_test_****fake")
        answer = self._handle(method, path, params, failure)
        if failure == "error_after":
            answer = _error(500, "api_error", None, "An unknown error occurred")
        if key is not None:
            self._replies[key] = (fingerprint, answer)
        return False, answer

    def _handle(self, method: str, path: str, params: dict[str, Any], failure: str | None) -> Answer:
        parts = path.strip("/").split("/")[1:]
        if method == "post" and parts == ["accounts"]:
            return self._create_account(params)
        if method == "get" and parts[0] == "accounts" and len(parts) == 2:
            return self._found(self.accounts, parts[1])
        if method == "post" and parts == ["account_links"]:
            return self._create_link(params)
        if method == "post" and parts == ["transfers"]:
            return self._create_transfer(params, failure)
        if method == "get" and parts[0] == "transfers" and len(parts) == 2:
            return self._found(self.transfers, parts[1])
        if method == "get" and parts == ["transfers"]:
            return self._list_transfers(params)
        raise NotImplementedError(f"the fake does not do {method.upper()} {path}")

    def _create_account(self, params: dict[str, Any]) -> Answer:
        account = {
            "id": f"acct_fake{next(self._ids):08d}", "object": "account", "type": params.get("type", "express"),
            "business_profile": None, "capabilities": {"transfers": "inactive"}, "charges_enabled": False,
            "country": "DE", "created": int(time.time()), "default_currency": "eur", "details_submitted": False,
            "email": None, "metadata": params.get("metadata", {}), "payouts_enabled": False,
        }  # fmt: skip
        self.accounts[account["id"]] = account
        return 200, account

    def _create_link(self, params: dict[str, Any]) -> Answer:
        if params["account"] not in self.accounts:
            return _error(400, "invalid_request_error", "account_invalid", f"No such account: {params['account']}")
        now = int(time.time())
        url = f"https://connect.stripe.com/setup/e/{params['account']}/link{next(self._ids)}"
        return 200, {"object": "account_link", "created": now, "expires_at": now + 300, "url": url}

    def _create_transfer(self, params: dict[str, Any], failure: str | None) -> Answer:
        amount = int(params["amount"])
        if params["destination"] not in self.accounts:
            return _error(400, "invalid_request_error", "resource_missing", f"No such destination: {params}")
        if failure == "balance_insufficient" or amount > self.balance_minor:
            message = "You have insufficient available funds in your Stripe account."
            return _error(400, "invalid_request_error", "balance_insufficient", message)
        self.balance_minor -= amount
        number = next(self._ids)
        transfer = {
            "id": f"tr_fake{number:08d}", "object": "transfer", "amount": amount, "amount_reversed": 0,
            "balance_transaction": f"txn_fake{number:08d}", "created": int(time.time()),
            "currency": params["currency"], "description": None, "destination": params["destination"],
            "destination_payment": f"py_fake{number:08d}", "livemode": False, "metadata": params.get("metadata", {}),
            "reversals": {"object": "list", "data": [], "has_more": False,
                          "url": f"/v1/transfers/tr_fake{number:08d}/reversals"},
            "reversed": False, "source_transaction": None, "source_type": "card",
            "transfer_group": params.get("transfer_group"),
        }  # fmt: skip
        self.transfers[transfer["id"]] = transfer
        return 200, transfer

    def _list_transfers(self, params: dict[str, Any]) -> Answer:
        """Newest first, filtered by transfer_group and destination, a page of `limit` after `starting_after`."""
        found = [transfer for transfer in reversed(self.transfers.values())
                 if params.get("transfer_group") in (None, transfer["transfer_group"])
                 and params.get("destination") in (None, transfer["destination"])]  # fmt: skip
        if "starting_after" in params:
            ids = [transfer["id"] for transfer in found]
            found = found[ids.index(params["starting_after"]) + 1 :] if params["starting_after"] in ids else []
        limit = int(params.get("limit", 10))
        return 200, {"object": "list", "data": found[:limit], "has_more": len(found) > limit, "url": "/v1/transfers"}

    def _found(self, store: dict[str, dict[str, Any]], object_id: str) -> Answer:
        if object_id not in store:
            return _error(404, "invalid_request_error", "resource_missing", f"No such object: '{object_id}'")
        return 200, store[object_id]


def _error(status: int, kind: str, code: str | None, message: str) -> Answer:
    error: dict[str, Any] = {"type": kind, "message": message}
    if code is not None:
        error["code"] = code
    return status, {"error": error}


def _unflatten(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for key, value in pairs:
        *path, last = _segments(key)
        node = tree
        for segment in path:
            node = node.setdefault(segment, {})
        node[last] = value
    return tree


# ------------------------------------------------------------------ events and signatures


def event(kind: str, stripe_object: dict[str, Any], *, account: str | None = None, created: int | None = None,
          event_id: str | None = None) -> dict[str, Any]:  # fmt: skip
    """A v1 snapshot event as Stripe sends it to a webhook endpoint (account: a connected account's event)."""
    body: dict[str, Any] = {
        "id": event_id or f"evt_fake{time.time_ns()}", "object": "event", "api_version": "2026-05-27.dahlia",
        "created": created or int(time.time()), "data": {"object": stripe_object}, "livemode": False,
        "pending_webhooks": 1, "request": {"id": None, "idempotency_key": None}, "type": kind,
    }  # fmt: skip
    if account is not None:
        body["account"] = account
    errors: list[str] = []
    validate({"$ref": "#/components/schemas/event"}, body, "event", errors)
    validate({"$ref": f"#/components/schemas/{stripe_object['object']}"}, stripe_object, "data.object", errors)
    if errors:
        raise SpecViolation("; ".join(errors))
    return body


def payout(amount: int, status: str, metadata: dict[str, str] | None = None, failure: str | None = None
           ) -> dict[str, Any]:  # fmt: skip
    """A connected account's payout to its bank, as payout.* events carry it."""
    now = int(time.time())
    return {
        "id": f"po_fake{time.time_ns()}", "object": "payout", "amount": amount, "arrival_date": now,
        "automatic": not metadata, "balance_transaction": f"txn_fake{now}", "created": now, "currency": "eur",
        "description": None, "destination": "ba_fake", "failure_balance_transaction": None,
        "failure_code": "account_closed" if failure else None, "failure_message": failure, "livemode": False,
        "metadata": metadata or {}, "method": "standard", "original_payout": None, "reconciliation_status":
        "completed", "reversed_by": None, "source_type": "card", "statement_descriptor": None, "status": status,
        "type": "bank_account",
    }  # fmt: skip


def sign(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """A Stripe-Signature header: t=…,v1=HMAC-SHA256(secret, f"{t}.{payload}")."""
    moment = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{moment}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={moment},v1={digest}"
