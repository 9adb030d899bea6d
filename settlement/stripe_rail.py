"""The Stripe Connect payout rail: payees onboard by Account Links, each instruction is one Transfer."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec
import stripe

from settlement.rails import Instruction, Payee, RailEvent, RailUnavailable
from unioncard.settings import Settings

log = logging.getLogger("unioncard.stripe")
# Two-decimal currencies a Stripe platform pays out to connected accounts. Stripe does not pay out CNY for a
# mainland platform, and zero-decimal ones (JPY, KRW…) would need another minor unit than ours.
PAYOUT_CURRENCIES = frozenset({"EUR", "USD", "GBP", "CHF", "DKK", "NOK", "SEK", "PLN", "CZK", "CAD", "AUD", "NZD",
                               "SGD", "HKD"})  # fmt: skip
NETWORK_RETRIES = 2
TIMEOUT_S = 30
WEBHOOK_TOLERANCE_S = 300
LIST_LIMIT = 100  # transfers per page when looking for the one a lost answer made
# A definite no from Stripe: the transfer was not made, so the instruction failed (balance_insufficient is one).
# Any other StripeError (no answer, a 5xx or 409, rate limit, IdempotencyError, AuthenticationError…) is no answer:
# Stripe may or may not have made the transfer, so the instruction stays submitting.
REFUSED = (stripe.InvalidRequestError, stripe.CardError, stripe.PermissionError)


class SignatureInvalid(ValueError):
    """A webhook whose signature does not verify with the endpoint's secret, or is too old."""


def transfer_key(instruction_id: int) -> str:
    """The idempotency key of an instruction's transfer: our row id, so a retry can never pay twice."""
    return f"payout-instruction-{instruction_id}"


def account_key(merchant_id: int) -> str:
    """The idempotency key of a merchant's connected account."""
    return f"stripe-account-merchant-{merchant_id}"


def construct_event(payload: bytes, signature: str | None, secret: str) -> dict[str, Any]:
    """The event of a webhook body once its Stripe-Signature verifies (tolerance 300 s). Raises SignatureInvalid."""
    if not secret:
        raise SignatureInvalid("no webhook secret is configured for this endpoint")
    try:
        stripe.Webhook.construct_event(payload, signature, secret, tolerance=WEBHOOK_TOLERANCE_S)
    except stripe.SignatureVerificationError as exc:
        raise SignatureInvalid(str(exc)) from exc
    except ValueError as exc:  # a signed body that is not a Stripe event
        raise SignatureInvalid(f"not a Stripe event: {exc}") from exc
    event = msgspec.json.decode(payload)
    if not isinstance(event, dict) or not isinstance(event.get("id"), str) or not isinstance(event.get("type"), str):
        raise SignatureInvalid("not a Stripe event: no id or type")
    return event


def instruction_of(stripe_object: Mapping[str, Any]) -> int | None:
    """Our instruction id as the object's metadata names it (we set it on every transfer), else None."""
    metadata = stripe_object.get("metadata") or {}
    value = metadata.get("instruction_id") if isinstance(metadata, dict) else None
    return int(value) if isinstance(value, str) and value.isdigit() else None


def event_outcome(event: Mapping[str, Any], instruction_id: int) -> RailEvent | None:
    """What an instruction event says about the instruction, or None when it moves nothing.

    transfer.created/updated: transferred; transfer.reversed in full: failed (a partial reversal moves nothing);
    payout.paid: paid. payout.failed moves nothing: the transfer stands and the money waits in the connected
    account's balance (Stripe pays it out again once the bank account is fixed), so failing the instruction would
    let a retry pay twice; see payout_failure.
    """
    kind, found = event["type"], event["data"]["object"]
    if kind in ("transfer.created", "transfer.updated"):
        return RailEvent(instruction_id=instruction_id, status="transferred", reference=found.get("id"))
    if kind == "transfer.reversed" and found.get("reversed"):
        return RailEvent(instruction_id=instruction_id, status="failed", reason="transfer reversed on Stripe")
    if kind == "payout.paid":
        return RailEvent(instruction_id=instruction_id, status="paid")
    return None


def payout_failure(payout: Mapping[str, Any]) -> str:
    """Why a connected account's payout failed, as finance reads it."""
    reason = payout.get("failure_message") or payout.get("failure_code") or "payout failed on Stripe"
    return f"payout failed: {reason}"


class StripeConnectRail:
    """Finance pays a batch with one Transfer per instruction to the payee's connected account; webhooks say more."""

    name = "stripe_connect"
    currencies = PAYOUT_CURRENCIES

    def __init__(self, settings: Settings, http_client: stripe.HTTPClient | None = None) -> None:
        if not settings.stripe_secret_key:
            raise RailUnavailable("the stripe_connect rail needs UNIONCARD_STRIPE_SECRET_KEY")
        self._settings = settings
        self._http_client = http_client
        self._client: stripe.StripeClient | None = None

    @property
    def client(self) -> stripe.StripeClient:
        """The SDK client, made on first use (inside the event loop that will await it)."""
        if self._client is None:
            self._client = stripe.StripeClient(
                self._settings.stripe_secret_key,
                base_addresses={"api": self._settings.stripe_api_base.rstrip("/")},
                max_network_retries=NETWORK_RETRIES,
                http_client=self._http_client or stripe.HTTPXClient(timeout=TIMEOUT_S),
            )
        return self._client

    def onboard_payee(self, payee: Payee) -> str:
        if payee.rail_account is None:
            return "no Stripe account yet: start onboarding"
        return "ready" if payee.rail_ready else "Stripe has not enabled payouts for the account yet"

    async def open_account(self, merchant_id: int, name: str) -> str:
        """A connected Express account for the merchant, made once per merchant id; its acct_… id."""
        account = await self.client.v1.accounts.create_async(
            {
                "type": "express",
                "capabilities": {"transfers": {"requested": True}},
                "business_profile": {"name": name},
                "metadata": {"merchant_id": str(merchant_id)},
            },
            {"idempotency_key": account_key(merchant_id)},
        )
        return account.id

    async def account_link(self, account_id: str, refresh_url: str, return_url: str) -> str:
        """A one-time onboarding URL for the account's owner."""
        link = await self.client.v1.account_links.create_async(
            {"account": account_id, "refresh_url": refresh_url, "return_url": return_url,
             "type": "account_onboarding"}
        )  # fmt: skip
        return link.url

    async def submit(self, instruction: Instruction) -> RailEvent:
        """One Transfer, keyed by our instruction id: transferred, failed (Stripe said no) or submitting (no answer)."""
        if instruction.payee.rail_account is None:
            raise ValueError(f"instruction {instruction.id} has no connected account to pay")
        params: stripe.params.TransferCreateParams = {
            "amount": instruction.amount_minor,
            "currency": instruction.currency.lower(),
            "destination": instruction.payee.rail_account,
            "transfer_group": f"batch-{instruction.batch_id}",
            "metadata": {"instruction_id": str(instruction.id), "batch_id": str(instruction.batch_id)},
        }
        try:
            transfer = await self.client.v1.transfers.create_async(
                params, {"idempotency_key": transfer_key(instruction.id)}
            )
        except REFUSED as exc:
            return RailEvent(instruction_id=instruction.id, status="failed", reason=error_reason(exc))
        except stripe.StripeError as exc:  # no answer we can act on: the transfer may or may not have been made
            log.warning("instruction %s: no answer from Stripe to its transfer: %r", instruction.id, exc)
            return RailEvent(instruction_id=instruction.id, status="submitting", reason=error_reason(exc))
        return RailEvent(instruction_id=instruction.id, status="transferred", reference=transfer.id)

    def verify_event(self, payload: bytes, headers: Mapping[str, str]) -> list[RailEvent]:
        """A platform event (signed with the platform secret) as instruction outcomes, by our transfer metadata."""
        event = construct_event(payload, headers.get("stripe-signature"), self._settings.stripe_webhook_secret)
        found = instruction_of(event["data"]["object"])
        outcome = event_outcome(event, found) if found is not None else None
        return [outcome] if outcome is not None else []

    async def fetch_status(self, instruction: Instruction) -> RailEvent | None:
        """The instruction's transfer: transferred, or failed when reversed in full.

        With its transfer id kept: retrieved (None when Stripe does not answer). With none kept: found among the
        batch's transfers by our metadata instruction_id (find_transfer).
        """
        if instruction.reference is None:
            return await self.find_transfer(instruction)
        try:
            transfer = await self.client.v1.transfers.retrieve_async(instruction.reference)
        except stripe.StripeError:
            return None
        return _transfer_status(instruction.id, transfer)

    async def find_transfer(self, instruction: Instruction) -> RailEvent | None:
        """The transfer Stripe made for an instruction whose answer was lost, listed by the batch's transfer_group.

        Stripe keeps an idempotency key only 24 hours, so sending the instruction again is safe only once this
        answers None (Stripe made no transfer for it). Stripe not answering the listing: submitting (do not send).
        """
        group = f"batch-{instruction.batch_id}"
        try:
            page = await self.client.v1.transfers.list_async({"transfer_group": group, "limit": LIST_LIMIT})
            async for transfer in page.auto_paging_iter():
                if instruction_of(transfer.to_dict()) == instruction.id:
                    return _transfer_status(instruction.id, transfer)
        except stripe.StripeError as exc:
            log.warning("instruction %s: no answer from Stripe to listing %s: %r", instruction.id, group, exc)
            return RailEvent(instruction_id=instruction.id, status="submitting", reason=error_reason(exc))
        return None

    def confirm_paid(self, instruction_ids: Iterable[int]) -> list[RailEvent]:
        """Finance's word that these instructions were paid (a payout Stripe did not tie to an instruction)."""
        return [RailEvent(instruction_id=number, status="paid") for number in dict.fromkeys(instruction_ids)]


def _transfer_status(instruction_id: int, transfer: stripe.Transfer) -> RailEvent:
    if transfer.reversed:
        return RailEvent(instruction_id=instruction_id, status="failed", reason="transfer reversed on Stripe",
                         reference=transfer.id)  # fmt: skip
    return RailEvent(instruction_id=instruction_id, status="transferred", reference=transfer.id)


def error_reason(exc: stripe.StripeError) -> str:
    """Stripe's error as one line: its code and message (or the error's kind)."""
    code = getattr(exc, "code", None)
    message = exc.user_message or type(exc).__name__
    return f"{code}: {message}" if code else message
