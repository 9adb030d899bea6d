"""Stripe's webhooks: signatures verified (tampered, too old, the other endpoint's secret refused, nothing stored),
each event stored once, applied forward-only; and a real localstripe delivering a signed event to a live server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import stripe

from settlement import stripe_webhooks
from tests.factories import ok
from tests.stripe_fake import FakeStripe, event, payout, sign
from tests.stripe_world import (
    CONNECT_SECRET,
    PLATFORM_SECRET,
    V1,
    Shop,
    approved_batch,
    eur_shop,
    instructions,
    ledger,
    onboard,
    post_event,
    stripe_app,
)
from unioncard.auth import Principal

LOCALSTRIPE_START_S = 30.0
DELIVERY_S = 20.0


@pytest.fixture
def fake() -> FakeStripe:
    return FakeStripe()


@pytest.fixture
async def shop(dsn: str, fake: FakeStripe) -> AsyncIterator[Shop]:
    async with stripe_app(dsn, fake) as api:
        yield await eur_shop(api, dsn)


async def _stored(dsn: str) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT id, endpoint, type, account, outcome, detail FROM stripe_events ORDER BY received_at"
        )
    finally:
        await conn.close()
    return [dict(row) for row in rows]


async def _transferred(shop: Shop, fake: FakeStripe) -> tuple[dict[str, Any], dict[str, Any], str]:
    """An approved batch paid by a transfer: (batch, instruction, connected account)."""
    batch = await approved_batch(shop)
    account_id = await onboard(shop, fake)
    await ok(await shop.api.post(f"{V1}/batches/{batch['id']}/pay", headers=shop.finance), 200)
    [instruction] = await instructions(shop, batch["id"])
    assert instruction["status"] == "transferred"
    return batch, instruction, account_id


def _transfer_event(fake: FakeStripe, kind: str, reference: str, **changes: Any) -> dict[str, Any]:
    return event(kind, {**fake.transfers[reference], **changes})


async def test_signatures_are_verified_and_a_bad_one_stores_nothing(shop: Shop, fake: FakeStripe) -> None:
    body = event("transfer.created", {**_a_transfer(), "metadata": {}})
    good = await ok(await post_event(shop.api, "platform", body), 200)
    assert (good["id"], good["outcome"], good["duplicate"]) == (body["id"], "unmapped", False)

    refusals = {
        "tampered": (body | {"id": "evt_other"}, PLATFORM_SECRET, None, True),
        "too old": (body | {"id": "evt_old"}, PLATFORM_SECRET, int(time.time()) - 301, False),
        "the connect secret on the platform endpoint": (body | {"id": "evt_connect"}, CONNECT_SECRET, None, False),
    }
    for label, (sent, secret, timestamp, tamper) in refusals.items():
        payload = json.dumps(sent).encode()
        header = sign(json.dumps(body).encode() if tamper else payload, secret, timestamp)
        headers = {"Stripe-Signature": header, "Content-Type": "application/json"}
        response = await shop.api.post("/webhooks/stripe", content=payload, headers=headers)
        assert response.status_code == 400, label
        assert response.headers["content-type"].startswith("application/problem+json"), label
        assert response.json()["code"] == "webhook_signature_invalid", label
    platform_on_connect = await post_event(shop.api, "connect", body | {"id": "evt_x"}, secret=PLATFORM_SECRET)
    assert (platform_on_connect.status_code, platform_on_connect.json()["code"]) == (400, "webhook_signature_invalid")
    unsigned = await shop.api.post("/webhooks/stripe-connect", content=json.dumps(body).encode())
    assert unsigned.status_code == 400
    assert [row["id"] for row in await _stored(shop.dsn)] == [body["id"]]


async def test_a_duplicated_event_is_stored_and_applied_once(shop: Shop, fake: FakeStripe) -> None:
    batch, instruction, account_id = await _transferred(shop, fake)
    paid = event("payout.paid", payout(batch["payable_minor"], "paid", {"instruction_id": str(instruction["id"])}),
                 account=account_id)  # fmt: skip
    first = await ok(await post_event(shop.api, "connect", paid), 200)
    second = await ok(await post_event(shop.api, "connect", paid), 200)
    assert (first["outcome"], first["duplicate"], second["duplicate"]) == ("applied", False, True)
    assert [row["type"] for row in await _stored(shop.dsn) if row["id"] == paid["id"]] == ["payout.paid"]
    books = await ledger(shop.dsn, shop.merchant_id)
    assert (books["paid"], books["unbalanced"], books["in_transit"], books["cash"]) == (
        1, 0, 0, -batch["payable_minor"])  # fmt: skip


async def test_events_out_of_order_never_move_a_paid_instruction_back(shop: Shop, fake: FakeStripe) -> None:
    batch, instruction, account_id = await _transferred(shop, fake)
    metadata = {"instruction_id": str(instruction["id"])}
    paid = event("payout.paid", payout(batch["payable_minor"], "paid", metadata), account=account_id)
    assert (await ok(await post_event(shop.api, "connect", paid), 200))["outcome"] == "applied"

    late = [
        ("connect", event("payout.failed", payout(batch["payable_minor"], "failed", metadata, "closed"),
                          account=account_id)),
        ("platform", _transfer_event(fake, "transfer.created", instruction["rail_reference"])),
        ("platform", _transfer_event(fake, "transfer.reversed", instruction["rail_reference"], reversed=True)),
    ]  # fmt: skip
    for endpoint, body in late:
        answer = await ok(await post_event(shop.api, endpoint, body), 200)
        assert answer["outcome"] == "unchanged", (body["type"], answer)
    [still] = await instructions(shop, batch["id"])
    assert (still["status"], still["failure_reason"]) == ("paid", None)
    books = await ledger(shop.dsn, shop.merchant_id)
    assert (books["paid"], books["failed"], books["unbalanced"], books["payable"]) == (1, 0, 0, 0)


async def test_a_transfer_event_answers_a_call_that_timed_out(shop: Shop, fake: FakeStripe) -> None:
    batch = await approved_batch(shop)
    account_id = await onboard(shop, fake)
    fake.fail_next("timeout_after", "timeout", "timeout")
    await ok(await shop.api.post(f"{V1}/batches/{batch['id']}/pay", headers=shop.finance), 200)
    [waiting] = await instructions(shop, batch["id"])
    assert waiting["status"] == "submitting"
    [reference] = fake.transfers
    created_event = _transfer_event(fake, "transfer.created", reference)
    created = await ok(await post_event(shop.api, "platform", created_event), 200)
    assert created["outcome"] == "applied"
    [moved] = await instructions(shop, batch["id"])
    assert (moved["status"], moved["rail_reference"]) == ("transferred", reference)

    foreign = _transfer_event(fake, "transfer.updated", reference, destination="acct_someoneelse")
    assert (await ok(await post_event(shop.api, "platform", foreign), 200))["outcome"] == "unmapped"
    partial = _transfer_event(fake, "transfer.reversed", reference, amount_reversed=1, reversed=False)
    assert (await ok(await post_event(shop.api, "platform", partial), 200))["outcome"] == "ignored"
    full = _transfer_event(fake, "transfer.reversed", reference, amount_reversed=batch["payable_minor"], reversed=True)
    assert (await ok(await post_event(shop.api, "platform", full), 200))["outcome"] == "applied"
    [failed] = await instructions(shop, batch["id"])
    assert (failed["status"], failed["failure_reason"]) == ("failed", "transfer reversed on Stripe")
    books = await ledger(shop.dsn, shop.merchant_id)
    assert (books["failed"], books["unbalanced"], books["payable"], books["in_transit"]) == (
        1, 0, -batch["payable_minor"], 0)  # fmt: skip
    swept = event("payout.paid", payout(5000, "paid"), account=account_id)  # an automatic payout: no instruction
    assert (await ok(await post_event(shop.api, "connect", swept), 200))["outcome"] == "unmapped"


async def test_a_failed_payout_leaves_a_transferred_instruction_transferred(shop: Shop, fake: FakeStripe) -> None:
    batch, instruction, account_id = await _transferred(shop, fake)
    before = await ledger(shop.dsn, shop.merchant_id)
    metadata = {"instruction_id": str(instruction["id"])}
    failed = event("payout.failed", payout(batch["payable_minor"], "failed", metadata, "The bank account is closed."),
                   account=account_id)  # fmt: skip
    answer = await ok(await post_event(shop.api, "connect", failed), 200)
    assert answer["outcome"] == "unchanged" and "bank account is closed" in answer["detail"]
    [still] = await instructions(shop, batch["id"])
    assert (still["status"], still["rail_reference"]) == ("transferred", instruction["rail_reference"])
    assert still["failure_reason"] == "payout failed: The bank account is closed."  # for finance to see
    assert await ledger(shop.dsn, shop.merchant_id) == before
    retry = await shop.api.post(f"{V1}/payouts/{instruction['id']}/retry", headers=shop.finance)
    assert (retry.status_code, retry.json()["code"]) == (409, "conflict")
    assert len(fake.transfers) == 1
    [stored] = [row for row in await _stored(shop.dsn) if row["id"] == failed["id"]]
    assert (stored["type"], stored["outcome"]) == ("payout.failed", "unchanged")

    # The bank account fixed, Stripe pays the balance out: the instruction is paid, once.
    paid = event("payout.paid", payout(batch["payable_minor"], "paid", metadata), account=account_id)
    assert (await ok(await post_event(shop.api, "connect", paid), 200))["outcome"] == "applied"
    [done] = await instructions(shop, batch["id"])
    assert (done["status"], done["failure_reason"]) == ("paid", None)
    books = await ledger(shop.dsn, shop.merchant_id)
    assert (books["paid"], books["failed"], books["unbalanced"], books["approvals"]) == (1, 0, 0, 1)


async def test_webhooks_act_as_their_own_actor_not_a_principal(shop: Shop, fake: FakeStripe) -> None:
    assert not [name for name, value in vars(stripe_webhooks).items() if isinstance(value, Principal)]
    batch, instruction, account_id = await _transferred(shop, fake)
    paid = event("payout.paid", payout(batch["payable_minor"], "paid", {"instruction_id": str(instruction["id"])}),
                 account=account_id)  # fmt: skip
    assert (await ok(await post_event(shop.api, "connect", paid), 200))["outcome"] == "applied"
    conn = await asyncpg.connect(shop.dsn)
    try:
        moved_by = await conn.fetchval("SELECT actor FROM payout_events WHERE instruction_id = $1 AND status = 'paid'",
                                       instruction["id"])  # fmt: skip
        audited = await conn.fetchrow("SELECT actor, detail FROM audit_log WHERE action = 'settlement.payouts_settled'"
                                      " ORDER BY id DESC LIMIT 1")  # fmt: skip
    finally:
        await conn.close()
    assert moved_by == "stripe:webhook" and audited["actor"] == "stripe:webhook"
    assert json.loads(audited["detail"]) == {"applied": {str(instruction["id"]): "paid"}}


async def test_an_older_account_update_does_not_undo_a_newer_one(shop: Shop, fake: FakeStripe) -> None:
    account_id = await onboard(shop, fake)
    stale = event("account.updated", {**fake.accounts[account_id], "payouts_enabled": False},
                  account=account_id, created=int(time.time()) - 3600)  # fmt: skip
    assert (await ok(await post_event(shop.api, "connect", stale), 200))["outcome"] == "unchanged"
    payee = await ok(await shop.api.get(f"{V1}/payees/{shop.merchant_id}", headers=shop.finance), 200)
    assert payee["payouts_enabled"] is True
    stranger = event("account.updated", {**fake.accounts[account_id], "id": "acct_stranger"}, account="acct_stranger")
    assert (await ok(await post_event(shop.api, "connect", stranger), 200))["outcome"] == "unmapped"


def _a_transfer() -> dict[str, Any]:
    return {"id": "tr_unknown", "object": "transfer", "amount": 100, "amount_reversed": 0, "created": 1,
            "currency": "eur", "destination": "acct_x", "livemode": False, "metadata": {}, "reversed": False,
            "reversals": {"object": "list", "data": [], "has_more": False, "url": "/v1/transfers/tr_unknown/reversals"},
            "transfer_group": None}  # fmt: skip


# ------------------------------------------------------------------ localstripe, for real

LAUNCHER = """
import sys
from aiohttp import web
from localstripe import resources, server
resources.Store.dump_to_disk = lambda self: None  # keep its store in memory, not in /tmp/localstripe.pickle
web.run_app(server.app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(url: str, process: subprocess.Popen[bytes], log: Path, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{url}: the process exited with {process.returncode}:\n{log.read_text()}")
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(url, timeout=1.0)
            return
        time.sleep(0.2)
    pytest.fail(f"{url} did not answer within {seconds} s:\n{log.read_text()}")


@contextlib.contextmanager
def _process(args: list[str], env: dict[str, str], log: Path, url: str) -> Iterator[None]:
    with log.open("wb") as out:
        process = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait(url, process, log, LOCALSTRIPE_START_S)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture
def localstripe(tmp_path: Path) -> Iterator[str]:
    """localstripe on 127.0.0.1 only (its own CLI binds every interface, so it is started through its app)."""
    pytest.importorskip("localstripe", reason="the localstripe test extra is not installed")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with _process([sys.executable, "-c", LAUNCHER, str(port)], dict(os.environ), tmp_path / "localstripe.log", url):
        yield url


@pytest.fixture
def live_app(dsn: str, localstripe: str, tmp_path: Path) -> Iterator[str]:
    """`unioncard serve` on a free loopback port, its Stripe rail pointed at localstripe, in EUR."""
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": dsn, "UNIONCARD_SECRET_KEY": "test-secret", "UNIONCARD_DEBUG": "",
           "UNIONCARD_PAYOUT_RAIL": "stripe_connect", "UNIONCARD_CURRENCY": "EUR",
           "UNIONCARD_STRIPE_SECRET_KEY": "sk_test_localstripe", "UNIONCARD_STRIPE_API_BASE": localstripe,
           "UNIONCARD_STRIPE_WEBHOOK_SECRET": PLATFORM_SECRET,
           "UNIONCARD_STRIPE_CONNECT_WEBHOOK_SECRET": CONNECT_SECRET}  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    args = [sys.executable, "-m", "unioncard.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    with _process(args, env, tmp_path / "server.log", f"{url}/healthz"):
        yield url


@pytest.mark.slow
async def test_localstripe_delivers_a_signed_payout_event_that_is_verified_and_applied(
    dsn: str, localstripe: str, live_app: str
) -> None:
    async with httpx.AsyncClient(base_url=live_app, timeout=10.0) as api:
        shop = await eur_shop(api, dsn)
        batch = await approved_batch(shop)
    [instruction] = batch["instructions"]
    conn = await asyncpg.connect(dsn)
    try:  # localstripe has no Connect transfers: the instruction is put where a transfer would have left it
        await conn.execute("INSERT INTO stripe_accounts (merchant_id, account_id, payouts_enabled)"
                           " VALUES ($1, 'acct_localstripe', true)", shop.merchant_id)  # fmt: skip
        await conn.execute("UPDATE payout_instructions SET status = 'transferred' WHERE id = $1", instruction["id"])
    finally:
        await conn.close()
    async with httpx.AsyncClient(base_url=localstripe, timeout=10.0) as admin:
        hook = {"url": f"{live_app}/webhooks/stripe-connect", "secret": CONNECT_SECRET}
        registered = await admin.post("/_config/webhooks/unioncard", data=hook)
        assert registered.status_code == 200, registered.text

    client = stripe.StripeClient("sk_test_localstripe", base_addresses={"api": localstripe},
                                 http_client=stripe.HTTPXClient())  # fmt: skip
    made = await client.v1.payouts.create_async(
        {"amount": batch["payable_minor"], "currency": "eur",
         "metadata": {"instruction_id": str(instruction["id"])}, "status": "paid"}  # type: ignore[typeddict-unknown-key]
    )  # fmt: skip
    deadline = time.monotonic() + DELIVERY_S
    stored: list[dict[str, Any]] = []
    while time.monotonic() < deadline and len(stored) < 2:
        await asyncio.sleep(0.5)
        stored = await _stored(dsn)
    by_type = {row["type"]: row for row in stored}
    assert set(by_type) == {"payout.created", "payout.paid"}, stored
    assert by_type["payout.created"]["outcome"] == "ignored"
    assert (by_type["payout.paid"]["outcome"], by_type["payout.paid"]["endpoint"]) == ("applied", "connect")
    conn = await asyncpg.connect(dsn)
    try:
        status = await conn.fetchval("SELECT status FROM payout_instructions WHERE id = $1", instruction["id"])
        payload = await conn.fetchval("SELECT payload FROM stripe_events WHERE type = 'payout.paid'")
    finally:
        await conn.close()
    assert status == "paid" and json.loads(payload)["data"]["object"]["id"] == made.id
    assert (await ledger(dsn, shop.merchant_id))["unbalanced"] == 0
