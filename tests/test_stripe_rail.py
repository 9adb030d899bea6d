"""The Stripe Connect rail against a spec-checked fake Stripe: onboarding, one transfer per instruction, a timeout
paid again under the same key, insufficient funds failed and retried, and the books square throughout."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from settlement.rails import BankFileRail, Instruction, Payee, RailUnavailable, rail_for
from settlement.stripe_rail import StripeConnectRail
from tests.factories import ok, staff_token
from tests.stripe_fake import FakeStripe
from tests.stripe_spec import SpecViolation, check_request, check_response
from tests.stripe_world import V1, Shop, approved_batch, eur_shop, instructions, ledger, onboard, stripe_settings
from unioncard.settings import Settings


@pytest.fixture
def fake() -> FakeStripe:
    return FakeStripe()


@pytest.fixture
async def shop(dsn: str, fake: FakeStripe) -> AsyncIterator[Shop]:
    from tests.stripe_world import stripe_app

    async with stripe_app(dsn, fake) as api:
        yield await eur_shop(api, dsn)


async def _audited(shop: Shop, action: str) -> list[Any]:
    conn = await asyncpg.connect(shop.dsn)
    try:
        rows = await conn.fetch("SELECT detail FROM audit_log WHERE action = $1 ORDER BY id", action)
    finally:
        await conn.close()
    return [json.loads(row["detail"])["reasons"] for row in rows]


async def _transfer_of(shop: Shop, instruction_id: int) -> str | None:
    conn = await asyncpg.connect(shop.dsn)
    try:
        return await conn.fetchval("SELECT rail_reference FROM payout_instructions WHERE id = $1", instruction_id)  # type: ignore[no-any-return]
    finally:
        await conn.close()


async def test_onboarding_opens_one_account_and_payouts_follow_account_updated(shop: Shop, fake: FakeStripe) -> None:
    url = f"{V1}/payees/{shop.merchant_id}"
    before = await ok(await shop.api.get(url, headers=shop.finance), 200)
    assert (before["rail"], before["ready"], before["stripe_account"]) == ("stripe_connect", False, None)

    first = await ok(await shop.api.post(f"{url}/stripe-onboarding", headers=shop.finance), 200)
    again = await ok(await shop.api.post(f"{url}/stripe-onboarding", headers=shop.finance), 200)
    assert first["stripe_account"] == again["stripe_account"] and first["stripe_account"].startswith("acct_")
    assert first["url"] != again["url"]  # a fresh link each time, one account
    [opened] = fake.calls("post", "/v1/accounts")
    assert opened.idempotency_key == f"stripe-account-merchant-{shop.merchant_id}"
    assert opened.params == {"type": "express", "capabilities": {"transfers": {"requested": "true"}},
                             "business_profile": {"name": "a超市"},
                             "metadata": {"merchant_id": str(shop.merchant_id)}}  # fmt: skip
    link = fake.calls("post", "/v1/account_links")[0].params
    assert link == {"account": first["stripe_account"], "type": "account_onboarding",
                    "refresh_url": f"https://unioncard.example{url}/stripe-onboarding",
                    "return_url": f"https://unioncard.example/staff/?stripe_onboarding={shop.merchant_id}"}  # fmt: skip
    waiting = await ok(await shop.api.get(url, headers=shop.finance), 200)
    assert (waiting["ready"], waiting["stripe_account"]) == (False, first["stripe_account"])
    assert "payouts" in waiting["readiness"]

    refreshed = await shop.api.get(f"{url}/stripe-onboarding", headers=shop.finance, follow_redirects=False)
    assert refreshed.status_code == 303 and refreshed.headers["location"].startswith("https://connect.stripe.com/")

    await onboard(shop, fake)  # account.updated with payouts_enabled
    ready = await ok(await shop.api.get(url, headers=shop.finance), 200)
    assert (ready["ready"], ready["payouts_enabled"], ready["readiness"]) == (True, True, "ready")
    assert len(fake.calls("post", "/v1/accounts")) == 1


async def test_a_merchant_admin_onboards_its_own_merchant_only(shop: Shop, fake: FakeStripe) -> None:
    own = await staff_token(shop.dsn, "merchant_admin", shop.merchant_id)
    other = await staff_token(shop.dsn, "merchant_admin", shop.world.merchants["b"])
    url = f"{V1}/payees/{shop.merchant_id}"
    assert (await shop.api.post(f"{url}/stripe-onboarding", headers=own)).status_code == 200
    assert (await shop.api.post(f"{url}/stripe-onboarding", headers=other)).status_code == 404
    assert (await shop.api.get(url, headers=other)).status_code == 404
    assert (await shop.api.get(url, headers=shop.world.terminals["a"])).status_code == 403
    assert len(fake.calls("post", "/v1/accounts")) == 1


async def test_paying_a_batch_makes_one_transfer_per_instruction(shop: Shop, fake: FakeStripe) -> None:
    batch = await approved_batch(shop)
    [instruction] = batch["instructions"]
    not_onboarded = await shop.api.post(f"{V1}/batches/{batch['id']}/pay", headers=shop.finance)
    assert (not_onboarded.status_code, not_onboarded.json()["code"]) == (422, "validation_failed")
    assert fake.calls("post", "/v1/transfers") == []
    assert (await instructions(shop, batch["id"]))[0]["status"] == "approved"

    account_id = await onboard(shop, fake)
    paid = await ok(await shop.api.post(f"{V1}/batches/{batch['id']}/pay", headers=shop.finance), 200)
    [sent] = paid["sent"]
    assert (sent["instruction_id"], sent["status"]) == (instruction["id"], "transferred")
    [call] = fake.calls("post", "/v1/transfers")
    assert call.idempotency_key == f"payout-instruction-{instruction['id']}"
    metadata = {"instruction_id": str(instruction["id"]), "batch_id": str(batch["id"])}
    assert call.params == {"amount": str(batch["payable_minor"]), "currency": "eur", "destination": account_id,
                           "transfer_group": f"batch-{batch['id']}", "metadata": metadata}  # fmt: skip
    [now] = paid["batch"]["instructions"]
    assert (now["status"], now["rail_reference"]) == ("transferred", sent["reference"])
    assert sent["reference"] in fake.transfers

    twice = await ok(await shop.api.post(f"{V1}/batches/{batch['id']}/pay", headers=shop.finance), 200)
    assert twice["sent"] == [] and len(fake.calls("post", "/v1/transfers")) == 1
    books = await ledger(shop.dsn, shop.merchant_id)
    assert (books["unbalanced"], books["payable"], books["in_transit"], books["approvals"]) == (
        0, 0, -batch["payable_minor"], 1)  # fmt: skip


async def test_a_lost_answer_is_found_among_the_batch_transfers_not_sent_again(shop: Shop, fake: FakeStripe) -> None:
    batch = await approved_batch(shop)
    await onboard(shop, fake)
    # Stripe made the transfer but the answer was lost; the SDK's two retries get no answer either.
    fake.fail_next("timeout_after", "timeout", "timeout")
    lost = await ok(await shop.api.post(f"{V1}/batches/{batch['id']}/pay", headers=shop.finance), 200)
    [sent] = lost["sent"]
    assert sent["status"] == "submitting" and "fake" in sent["reason"]
    assert len(fake.calls("post", "/v1/transfers")) == 3 and len(fake.transfers) == 1
    [waiting] = await instructions(shop, batch["id"])
    assert (waiting["status"], waiting["rail_reference"]) == ("submitting", None)
    assert (await ledger(shop.dsn, shop.merchant_id))["unbalanced"] == 0
    assert await _audited(shop, "settlement.payouts_unanswered") == [{str(waiting["id"]): sent["reason"]}]

    again = await ok(await shop.api.post(f"{V1}/batches/{batch['id']}/pay", headers=shop.finance), 200)
    [reference] = fake.transfers
    assert again["sent"] == [{"instruction_id": waiting["id"], "status": "transferred", "reason": None,
                              "reference": reference}]  # fmt: skip
    assert len(fake.calls("post", "/v1/transfers")) == 3  # found by listing, not sent again
    [listed] = fake.calls("get", "/v1/transfers")
    assert listed.params == {"transfer_group": f"batch-{batch['id']}", "limit": "100"}
    [done] = await instructions(shop, batch["id"])
    assert (done["status"], done["rail_reference"]) == ("transferred", reference)


async def test_a_lost_answer_pays_once_after_stripe_forgot_the_key(shop: Shop, fake: FakeStripe) -> None:
    batch = await approved_batch(shop)
    await onboard(shop, fake)
    fake.fail_next("timeout_after", "timeout", "timeout")
    await ok(await shop.api.post(f"{V1}/batches/{batch['id']}/pay", headers=shop.finance), 200)
    [first] = fake.transfers
    fake.forget_keys()  # more than 24 hours later: the key would make a new transfer
    again = await ok(await shop.api.post(f"{V1}/batches/{batch['id']}/pay", headers=shop.finance), 200)
    assert (again["sent"][0]["status"], again["sent"][0]["reference"]) == ("transferred", first)
    assert list(fake.transfers) == [first] and fake.balance_minor == 10**9 - batch["payable_minor"]
    [done] = await instructions(shop, batch["id"])
    assert (done["status"], done["rail_reference"]) == ("transferred", first)
    books = await ledger(shop.dsn, shop.merchant_id)
    assert (books["unbalanced"], books["approvals"], books["in_transit"]) == (0, 1, -batch["payable_minor"])


async def test_a_saved_500_is_not_replayed_forever(shop: Shop, fake: FakeStripe) -> None:
    batch = await approved_batch(shop)
    await onboard(shop, fake)
    fake.fail_next("error_after")  # done, answered 500; Stripe replays that 500 to the same key for a day
    lost = await ok(await shop.api.post(f"{V1}/batches/{batch['id']}/pay", headers=shop.finance), 200)
    assert lost["sent"][0]["status"] == "submitting" and len(fake.transfers) == 1
    posts = len(fake.calls("post", "/v1/transfers"))
    again = await ok(await shop.api.post(f"{V1}/batches/{batch['id']}/pay", headers=shop.finance), 200)
    assert (again["sent"][0]["status"], again["sent"][0]["reference"]) == ("transferred", next(iter(fake.transfers)))
    assert len(fake.calls("post", "/v1/transfers")) == posts


async def test_nothing_made_is_sent_again_under_the_same_key_and_no_answer_sends_nothing(
    shop: Shop, fake: FakeStripe
) -> None:
    batch = await approved_batch(shop)
    await onboard(shop, fake)
    fake.fail_next("timeout", "timeout", "timeout")  # nothing reached Stripe
    await ok(await shop.api.post(f"{V1}/batches/{batch['id']}/pay", headers=shop.finance), 200)
    assert fake.transfers == {}
    fake.fail_next("timeout", "timeout", "timeout")  # the listing gets no answer: nothing is sent
    unsure = await ok(await shop.api.post(f"{V1}/batches/{batch['id']}/pay", headers=shop.finance), 200)
    assert unsure["sent"][0]["status"] == "submitting" and len(fake.calls("post", "/v1/transfers")) == 3
    assert len(fake.calls("get", "/v1/transfers")) == 3

    paid = await ok(await shop.api.post(f"{V1}/batches/{batch['id']}/pay", headers=shop.finance), 200)
    assert paid["sent"][0]["status"] == "transferred" and len(fake.transfers) == 1
    [instruction] = await instructions(shop, batch["id"])
    keys = {call.idempotency_key for call in fake.calls("post", "/v1/transfers")}
    assert keys == {f"payout-instruction-{instruction['id']}"} and len(fake.calls("post", "/v1/transfers")) == 4


async def test_any_other_stripe_error_is_no_answer_not_a_500(shop: Shop, fake: FakeStripe) -> None:
    batch = await approved_batch(shop)
    await onboard(shop, fake)
    fake.fail_next("unauthorized")  # AuthenticationError: neither REFUSED nor a connection error
    answered = await ok(await shop.api.post(f"{V1}/batches/{batch['id']}/pay", headers=shop.finance), 200)
    [sent] = answered["sent"]
    assert sent["status"] == "submitting" and "Invalid API Key" in sent["reason"]
    [waiting] = await instructions(shop, batch["id"])
    assert waiting["status"] == "submitting" and fake.transfers == {}
    books = await ledger(shop.dsn, shop.merchant_id)
    assert (books["unbalanced"], books["failed"], books["payable"]) == (0, 0, 0)
    paid = await ok(await shop.api.post(f"{V1}/batches/{batch['id']}/pay", headers=shop.finance), 200)
    assert paid["sent"][0]["status"] == "transferred" and len(fake.transfers) == 1


async def test_onboarding_failing_at_stripe_answers_502(shop: Shop, fake: FakeStripe) -> None:
    url = f"{V1}/payees/{shop.merchant_id}/stripe-onboarding"
    fake.fail_next("unauthorized")
    opening = await shop.api.post(url, headers=shop.finance)
    assert (opening.status_code, opening.json()["code"]) == (502, "rail_unavailable")
    assert opening.headers["content-type"].startswith("application/problem+json")
    assert fake.accounts == {}
    fake.fail_next("ok", "unauthorized")  # the account is opened, its link refused
    linking = await shop.api.post(url, headers=shop.finance)
    assert (linking.status_code, linking.json()["code"]) == (502, "rail_unavailable")
    payee = await ok(await shop.api.get(f"{V1}/payees/{shop.merchant_id}", headers=shop.finance), 200)
    assert payee["stripe_account"] == next(iter(fake.accounts))  # kept: the next call only links it
    assert (await shop.api.post(url, headers=shop.finance)).status_code == 200
    assert len(fake.accounts) == 1


async def test_a_lost_answer_is_recovered_by_the_sdks_own_retry(shop: Shop, fake: FakeStripe) -> None:
    batch = await approved_batch(shop)
    await onboard(shop, fake)
    fake.fail_next("timeout_after")
    paid = await ok(await shop.api.post(f"{V1}/batches/{batch['id']}/pay", headers=shop.finance), 200)
    assert paid["sent"][0]["status"] == "transferred"
    assert len(fake.calls("post", "/v1/transfers")) == 2 and len(fake.transfers) == 1


async def test_insufficient_funds_fail_the_instruction_and_a_retry_pays(shop: Shop, fake: FakeStripe) -> None:
    batch = await approved_batch(shop)
    await onboard(shop, fake)
    fake.fail_next("balance_insufficient")
    refused = await ok(await shop.api.post(f"{V1}/batches/{batch['id']}/pay", headers=shop.finance), 200)
    [sent] = refused["sent"]
    assert sent["status"] == "failed" and sent["reason"].startswith("balance_insufficient:")
    [failed] = refused["batch"]["instructions"]
    assert (failed["status"], failed["failure_reason"]) == ("failed", sent["reason"])
    assert fake.transfers == {}
    books = await ledger(shop.dsn, shop.merchant_id)
    assert (books["unbalanced"], books["failed"], books["payable"], books["in_transit"]) == (
        0, 1, -batch["payable_minor"], 0)  # fmt: skip
    nothing = await shop.api.post(f"{V1}/batches/{batch['id']}/pay", headers=shop.finance)
    assert nothing.status_code == 409

    retried = await ok(await shop.api.post(f"{V1}/payouts/{failed['id']}/retry", headers=shop.finance), 200)
    new = retried["instructions"][1]
    paid = await ok(await shop.api.post(f"{V1}/batches/{batch['id']}/pay", headers=shop.finance), 200)
    assert paid["sent"][0] == {"instruction_id": new["id"], "status": "transferred", "reason": None,
                               "reference": next(iter(fake.transfers))}  # fmt: skip
    assert fake.calls("post", "/v1/transfers")[-1].idempotency_key == f"payout-instruction-{new['id']}"
    books = await ledger(shop.dsn, shop.merchant_id)
    assert (books["unbalanced"], books["approvals"], books["failed"], books["payable"], books["in_transit"]) == (
        0, 2, 1, 0, -batch["payable_minor"])  # fmt: skip


async def test_the_rail_reads_a_transfer_back(fake: FakeStripe) -> None:
    rail = StripeConnectRail(stripe_settings(), http_client=fake)
    opened = await rail.open_account(7, "某超市")
    payee = Payee(merchant_id=7, name=None, account=None, bank=None, rail_account=opened, rail_ready=True)
    item = Instruction(id=41, batch_id=9, amount_minor=1234, currency="EUR", payee=payee)
    assert await rail.fetch_status(item) is None  # no transfer known yet
    made = await rail.submit(item)
    assert (made.status, made.reference) == ("transferred", next(iter(fake.transfers)))
    known = Instruction(id=41, batch_id=9, amount_minor=1234, currency="EUR", payee=payee, reference=made.reference)
    assert (await rail.fetch_status(known)).status == "transferred"  # type: ignore[union-attr]
    fake.transfers[made.reference].update(reversed=True, amount_reversed=1234)  # type: ignore[index]
    assert (await rail.fetch_status(known)).status == "failed"  # type: ignore[union-attr]
    changed = Instruction(id=41, batch_id=9, amount_minor=999, currency="EUR", payee=payee)
    refused = await rail.submit(changed)  # the same key with other parameters: an IdempotencyError is no answer
    assert refused.status == "submitting" and "idempotent" in (refused.reason or "")
    assert len(fake.transfers) == 1
    other = Instruction(id=42, batch_id=9, amount_minor=1, currency="EUR", payee=payee)
    assert await rail.fetch_status(other) is None  # the batch's transfers listed: none is for instruction 42


async def test_the_bank_file_rail_is_not_paid_by_api(client: AsyncTestClient, dsn: str) -> None:
    finance = await staff_token(dsn, "finance_officer")
    refused = await client.post(f"{V1}/batches/1/pay", headers=finance)
    assert (refused.status_code, refused.json()["bank_file"]) == (409, "/api/settlement/v1/batches/1/bank-file.csv")
    onboarding = await client.post(f"{V1}/payees/1/stripe-onboarding", headers=finance)
    assert onboarding.status_code == 409


async def test_bank_file_endpoints_answer_409_under_stripe(shop: Shop, fake: FakeStripe) -> None:
    batch = await approved_batch(shop)
    exported = await shop.api.post(f"{V1}/batches/{batch['id']}/bank-file.csv", headers=shop.finance)
    assert (exported.status_code, exported.json()["code"]) == (409, "conflict")


def test_the_stripe_rail_needs_a_key_and_refuses_cny() -> None:
    assert isinstance(rail_for(stripe_settings()), StripeConnectRail)
    assert isinstance(rail_for(Settings()), BankFileRail)
    with pytest.raises(RailUnavailable, match="cannot pay CNY"):
        rail_for(stripe_settings(currency="CNY"))
    with pytest.raises(RailUnavailable, match="UNIONCARD_STRIPE_SECRET_KEY"):
        rail_for(stripe_settings(stripe_secret_key=""))
    from unioncard.app import create_app

    with pytest.raises(RailUnavailable, match="cannot pay CNY"):
        create_app(stripe_settings(currency="CNY"), dsn="postgresql://127.0.0.1:1/never-reached")


def test_the_spec_check_catches_bad_requests_and_answers() -> None:
    good = [("amount", "100"), ("currency", "eur"), ("destination", "acct_1"), ("metadata[instruction_id]", "1")]
    check_request("post", "/v1/transfers", [], good)
    bad_requests = {
        "not a parameter": good + [("destinaton", "acct_1")],
        "not a form-encoded integer": [("amount", "ten"), *good[1:]],
        "required": [pair for pair in good if pair[0] != "currency"],
        "takes no nested key": good + [("currency[x]", "eur")],
    }
    for expected, form in bad_requests.items():
        with pytest.raises(SpecViolation, match=expected):
            check_request("post", "/v1/transfers", [], form)
    with pytest.raises(SpecViolation, match="not an operation"):
        check_request("post", "/v1/transferz", [], good)
    with pytest.raises(SpecViolation, match="not a parameter"):
        check_request("get", "/v1/transfers/tr_1", [("limit", "3")], [])

    reversals = {"object": "list", "data": [], "has_more": False, "url": "/v1/transfers/tr_1/reversals"}
    transfer = {"id": "tr_1", "object": "transfer", "amount": 100, "amount_reversed": 0, "created": 1,
                "currency": "eur", "livemode": False, "metadata": {}, "reversed": False,
                "reversals": reversals}  # fmt: skip
    check_response("post", "/v1/transfers", 200, transfer)
    bad_answers = {
        "required": {k: v for k, v in transfer.items() if k != "reversed"},
        "not of type integer": {**transfer, "amount": "100"},
        "not a field": {**transfer, "payee": "x"},
        "is not one of": {**transfer, "object": "payout"},
        "null is not allowed": {**transfer, "livemode": None},
    }
    for expected, body in bad_answers.items():
        with pytest.raises(SpecViolation, match=expected):
            check_response("post", "/v1/transfers", 200, body)
    check_response("post", "/v1/transfers", 400, {"error": {"type": "invalid_request_error", "code": "x"}})
    with pytest.raises(SpecViolation, match="is not one of"):
        check_response("post", "/v1/transfers", 400, {"error": {"type": "oops"}})
