"""The till API v1 and the admin API for merchants, contracts and terminals."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Parameter

from merchants import admin, till
from merchants.model import (
    ContractIn,
    MerchantIn,
    Problem,
    QuoteIn,
    QuoteOut,
    RedeemIn,
    RedemptionOut,
    RefundIn,
    StatusIn,
    TerminalIn,
)
from unioncard.auth import Principal, Role, requires

JSON = "application/json"
PROBLEMS = {
    status: ResponseSpec(Problem, description=text, media_type="application/problem+json")
    for status, text in (
        (401, "unauthorized: bad, revoked or missing terminal key"),
        (403, "terminal_suspended, merchant_suspended"),
        (404, "card_not_found, redemption_not_found"),
        (409, "card_inactive, idempotency_key_reused, refund_exceeds_remaining"),
        (422, "malformed_request, validation_failed, not_eligible (with reasons), currency_mismatch"),
    )
}


def _documented(status: int, model: type) -> dict[int, ResponseSpec]:
    return {status: ResponseSpec(model, description="success", media_type=JSON), **PROBLEMS}


IdempotencyKey = Annotated[
    str | None,
    Parameter(header="Idempotency-Key", description="unique per sale or refund; 1–255 chars"),
]


def _json(body: str, status_code: int = 200, replayed: bool | None = None) -> Response[bytes]:
    headers = {"Idempotent-Replayed": "true"} if replayed else {}
    return Response(body.encode(), status_code=status_code, media_type=JSON, headers=headers)


class TillController(Controller):
    path = "/api/till/v1"
    tags = ["till"]
    guards = [requires(Role.TERMINAL)]

    @post("/quote", operation_id="tillQuote", status_code=200, responses=_documented(200, QuoteOut))
    async def quote(self, data: QuoteIn, principal: Principal, state: State) -> Response[bytes]:
        """The discount a card would get for this amount; records nothing."""
        with state.lookup_limiter.lookup(principal.terminal_id):
            body = await till.quote_discount(state.pool, principal, data, state.settings.secret_key)
        return _json(body)

    @post("/redemptions", operation_id="tillRedeem", status_code=201, responses=_documented(201, RedemptionOut))
    async def redeem(
        self, data: RedeemIn, principal: Principal, state: State, idempotency_key: IdempotencyKey
    ) -> Response[bytes]:
        """Record a sale with its discount; replays return the first response."""
        with state.lookup_limiter.lookup(principal.terminal_id):
            body, replayed = await till.redeem(state.pool, principal, data, idempotency_key, state.settings.secret_key)
        return _json(body, 201, replayed)

    @post(
        "/redemptions/{redemption_id:str}/refunds",
        operation_id="tillRefund",
        status_code=201,
        responses=_documented(201, RedemptionOut),
    )
    async def refund(
        self,
        redemption_id: str,
        principal: Principal,
        state: State,
        idempotency_key: IdempotencyKey,
        data: RefundIn | None = None,
    ) -> Response[bytes]:
        """Refund a sale, all of what remains or `amount` of it."""
        body, replayed = await till.refund(state.pool, principal, redemption_id, data or RefundIn(), idempotency_key)
        return _json(body, 201, replayed)

    @get(
        "/redemptions/{redemption_id:str}", operation_id="tillGetRedemption", responses=_documented(200, RedemptionOut)
    )
    async def get_redemption(self, redemption_id: str, principal: Principal, state: State) -> Response[bytes]:
        """A sale with its refunds."""
        return _json(await till.get_redemption(state.pool, principal, redemption_id))


ADMIN = requires(Role.FEDERATION_ADMIN)
READERS = requires(Role.FEDERATION_ADMIN, Role.FINANCE_OFFICER, Role.MERCHANT_ADMIN)


class MerchantAdminController(Controller):
    path = "/api/admin/v1/merchants"
    tags = ["admin: merchants"]

    @post("/", operation_id="createMerchant", guards=[ADMIN])
    async def create(self, data: MerchantIn, principal: Principal, state: State) -> dict[str, Any]:
        return await admin.create_merchant(state.pool, principal, data)

    @get("/", operation_id="listMerchants", guards=[READERS])
    async def list_merchants(
        self,
        principal: Principal,
        state: State,
        category: str | None = None,
        after_id: int = 0,
        limit: Annotated[int, Parameter(ge=1, le=1000)] = 100,
    ) -> list[dict[str, Any]]:
        return await admin.list_merchants(state.pool, principal, category, after_id, limit)

    @post("/{merchant_id:int}/status", operation_id="setMerchantStatus", guards=[ADMIN])
    async def set_status(self, merchant_id: int, data: StatusIn, principal: Principal, state: State) -> dict[str, Any]:
        return await admin.set_merchant_status(state, principal, merchant_id, data.status)

    @post("/{merchant_id:int}/contracts", operation_id="createContractVersion", guards=[ADMIN])
    async def create_contract(
        self, merchant_id: int, data: ContractIn, principal: Principal, state: State
    ) -> dict[str, Any]:
        return await admin.create_contract_version(state.pool, principal, merchant_id, data)

    @get("/{merchant_id:int}/contracts", operation_id="listContractVersions", guards=[READERS])
    async def list_contracts(self, merchant_id: int, principal: Principal, state: State) -> list[dict[str, Any]]:
        return await admin.list_contract_versions(state.pool, principal, merchant_id)

    @post("/{merchant_id:int}/terminals", operation_id="createTerminal", guards=[ADMIN])
    async def create_terminal(
        self, merchant_id: int, data: TerminalIn, principal: Principal, state: State
    ) -> dict[str, Any]:
        """Create a terminal; its key is in this response and never shown again."""
        return await admin.create_terminal(state.pool, principal, merchant_id, data.name)

    @get("/{merchant_id:int}/terminals", operation_id="listTerminals", guards=[READERS])
    async def list_terminals(self, merchant_id: int, principal: Principal, state: State) -> list[dict[str, Any]]:
        return await admin.list_terminals(state.pool, principal, merchant_id)


class TerminalAdminController(Controller):
    path = "/api/admin/v1/terminals"
    tags = ["admin: merchants"]

    @post("/{terminal_id:int}/revoke", operation_id="revokeTerminal", guards=[ADMIN], status_code=200)
    async def revoke(self, terminal_id: int, principal: Principal, state: State) -> dict[str, Any]:
        return await admin.revoke_terminal(state, principal, terminal_id)


class MerchantImportController(Controller):
    path = "/api/admin/v1/imports"
    tags = ["admin: imports"]
    guards = [ADMIN]

    @post("/merchants", operation_id="importMerchants", status_code=201)
    async def merchants(self, request: Request[Any, Any, Any], state: State) -> dict[str, Any]:
        """Merchants from a CSV body (UTF-8, BOM or GBK); all lines or none."""
        from merchants.csv_import import import_merchants

        async with state.pool.acquire() as conn:
            return await import_merchants(conn, await request.body())
