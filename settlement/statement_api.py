"""The settlement API v1 for merchant statements: JSON, or CSV for spreadsheets; a merchant's admin reads its own."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, MediaType, Request, Response, get
from litestar.datastructures import State

from settlement import statements
from unioncard import i18n
from unioncard.auth import Principal, Role, requires

READERS = requires(Role.FINANCE_OFFICER, Role.FEDERATION_ADMIN, Role.MERCHANT_ADMIN)


class StatementController(Controller):
    path = "/api/settlement/v1/statements"
    tags = ["settlement"]

    @get("/{merchant_id:int}/{period:str}", operation_id="getMerchantStatement", guards=[READERS])
    async def statement(
        self, request: Request[Any, Any, Any], merchant_id: int, period: str, principal: Principal, state: State
    ) -> Response[bytes]:
        """The merchant's statement for a month (`2026-11`) as JSON, or as CSV with `2026-11.csv` (`?lang=en`)."""
        csv_wanted = period.endswith(".csv")
        settings = state.settings
        async with state.pool.acquire() as conn:
            found = await statements.merchant_statement(
                conn, principal, merchant_id, period.removesuffix(".csv"),
                currency=settings.currency, timezone=settings.timezone,
            )  # fmt: skip
        if not csv_wanted:
            return Response(msgspec.json.encode(found), media_type=MediaType.JSON)
        lang = i18n.normalize(request.query_params.get("lang"))
        name = f"statement-{merchant_id}-{found['period']}.csv"
        headers = {"Content-Disposition": f'attachment; filename="{name}"'}
        return Response(statements.statement_csv(found, lang), media_type="text/csv; charset=utf-8", headers=headers)
