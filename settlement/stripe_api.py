"""Payees' onboarding on the Stripe rail and Stripe's webhooks (signed, so they carry no other credential)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.response import Redirect

from settlement import payees, stripe_webhooks
from settlement.batch_api import READERS, app_rail
from unioncard.auth import Principal

AnyRequest = Request[Any, Any, Any]


def _base_url(request: AnyRequest, state: State) -> str:
    return state.settings.public_base_url or str(request.base_url)


class PayeeController(Controller):
    path = "/api/settlement/v1/payees"
    tags = ["settlement"]

    @get("/{merchant_id:int}", operation_id="getPayee", guards=[READERS])
    async def get_payee(self, merchant_id: int, principal: Principal, state: State) -> dict[str, Any]:
        """Whether the configured rail can pay the merchant, and its Stripe account if any."""
        async with state.pool.acquire() as conn:
            return await payees.payee_status(conn, principal, merchant_id, app_rail(state))

    @post("/{merchant_id:int}/stripe-onboarding", operation_id="startStripeOnboarding", guards=[READERS],
          status_code=200)  # fmt: skip
    async def onboard(
        self, merchant_id: int, request: AnyRequest, principal: Principal, state: State
    ) -> dict[str, Any]:
        """Open the merchant's connected account (once) and answer an Account Link URL to onboard it."""
        base_url = _base_url(request, state)
        async with state.pool.acquire() as conn:
            return await payees.onboarding_link(conn, principal, merchant_id, app_rail(state), base_url)

    @get("/{merchant_id:int}/stripe-onboarding", operation_id="refreshStripeOnboarding", guards=[READERS])
    async def refresh(self, merchant_id: int, request: AnyRequest, principal: Principal, state: State) -> Redirect:
        """Stripe's refresh_url: a fresh Account Link, by redirect (an expired or used link lands here)."""
        base_url = _base_url(request, state)
        async with state.pool.acquire() as conn:
            link = await payees.onboarding_link(conn, principal, merchant_id, app_rail(state), base_url)
        return Redirect(path=link["url"], status_code=303)


class StripeWebhookController(Controller):
    path = "/webhooks"
    tags = ["webhooks"]

    @post("/stripe", operation_id="stripePlatformWebhook", status_code=200)
    async def platform(self, request: AnyRequest, state: State) -> dict[str, Any]:
        """The platform's events (transfers), signed with UNIONCARD_STRIPE_WEBHOOK_SECRET."""
        return await _receive(request, state, "platform")

    @post("/stripe-connect", operation_id="stripeConnectWebhook", status_code=200)
    async def connect(self, request: AnyRequest, state: State) -> dict[str, Any]:
        """The connected accounts' events (account.updated, payouts), signed with the Connect endpoint's secret."""
        return await _receive(request, state, "connect")


async def _receive(request: AnyRequest, state: State, endpoint: str) -> dict[str, Any]:
    body, signature = await request.body(), request.headers.get("stripe-signature")
    async with state.pool.acquire() as conn:
        return await stripe_webhooks.receive(conn, state.settings, endpoint, body, signature)
